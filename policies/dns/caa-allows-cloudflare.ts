// A proxied zone gets its edge certificates from Cloudflare's CAs; a CAA record set
// that leaves one out can stop certificate issuance and renewal for the whole zone.
import type { StackValidationPolicy } from "@pulumi/policy";
import { CLOUDFLARE_CAS } from "../../stacks/model/dns.ts";
import { dnsRecords, groupBy } from "../lib/resources.ts";

export const caaAllowsCloudflare: StackValidationPolicy = {
  name: "caa-allows-cloudflare-cas",
  description:
    "On a zone with proxied records, CAA 'issue' records must allow every CA Cloudflare uses " +
    `(${CLOUDFLARE_CAS.join(", ")}). See https://developers.cloudflare.com/ssl/edge-certificates/caa-records/`,
  enforcementLevel: "mandatory",
  validateStack: (args, report) => {
    for (const [, recs] of groupBy(dnsRecords(args.resources), (r) => r.zone)) {
      if (!recs.some((r) => r.proxied)) continue;
      const issue = recs.filter((r) => r.type === "CAA" && r.data?.tag === "issue");
      if (issue.length === 0) continue; // no CAA at all: any CA may issue
      const allowed = new Set(issue.map((r) => String(r.data?.value ?? "").split(";")[0]!.trim()));
      const missing = CLOUDFLARE_CAS.filter((ca) => !allowed.has(ca));
      if (missing.length > 0) report(`${issue[0]!.name} is proxied but its CAA does not allow ${missing.join(", ")}`, issue[0]!.urn);
    }
  },
};
