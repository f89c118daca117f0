// RFC 7505: a null MX ('0 .') says a domain accepts no mail; it must be its only MX.
import type { StackValidationPolicy } from "@pulumi/policy";
import { dnsRecords, groupBy } from "../lib/resources.ts";

export const nullMxAlone: StackValidationPolicy = {
  name: "null-mx-alone",
  description: "A null MX must be the only MX record at its name (RFC 7505 section 3).",
  enforcementLevel: "mandatory",
  validateStack: (args, report) => {
    const mx = dnsRecords(args.resources).filter((r) => r.type === "MX");
    for (const [name, recs] of groupBy(mx, (r) => `${r.zone} ${r.name}`)) {
      const nullMx = recs.find((r) => r.content === ".");
      if (nullMx && recs.length > 1) report(`${name.split(" ")[1]} has a null MX beside ${recs.length - 1} other MX record(s)`, nullMx.urn);
    }
  },
};
