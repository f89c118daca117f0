// RFC 7208 section 3.2: more than one SPF record at a name is a permanent error.
import type { StackValidationPolicy } from "@pulumi/policy";
import { dnsRecords, groupBy, isSpf } from "../lib/resources.ts";

export const oneSpfPerName: StackValidationPolicy = {
  name: "one-spf-per-name",
  description: "At most one 'v=spf1' TXT record per name; two make every SPF check a permerror (RFC 7208 3.2).",
  enforcementLevel: "mandatory",
  validateStack: (args, report) => {
    const spf = dnsRecords(args.resources).filter(isSpf);
    for (const [, recs] of groupBy(spf, (r) => `${r.zone} ${r.name}`)) {
      if (recs.length > 1) report(`${recs[0]!.name} has ${recs.length} SPF records`, recs[1]!.urn);
    }
  },
};
