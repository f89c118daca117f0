// A DMARC record at _dmarc.<subdomain> governs mail from that subdomain: one that is
// weaker than the zone's own (p=none, relaxed alignment, pct<100) or a second DMARC
// record at any name (receivers then ignore DMARC there) undoes the zone's p=reject.
// The same reading as the inventory's validation (stacks/model/checks/dmarc.ts).
import type { StackValidationPolicy } from "@pulumi/policy";
import { isDmarc, parseDmarc, weakerThan } from "../../stacks/model/checks/dmarc.ts";
import { dnsRecords, groupBy, unquote } from "../lib/resources.ts";

export const dmarcSubdomainNotWeaker: StackValidationPolicy = {
  name: "dmarc-one-per-name-none-weaker",
  description:
    "At most one DMARC record per name, and no subdomain DMARC weaker than its zone's (RFC 7489 6.6.3, RFC 9989). " +
    "Independent of record order.",
  enforcementLevel: "mandatory",
  validateStack: (args, report) => {
    const dmarc = dnsRecords(args.resources).filter((r) => r.type === "TXT" && r.name.startsWith("_dmarc.") && isDmarc(unquote(r.content)));
    for (const [, recs] of groupBy(dmarc, (r) => r.zone)) {
      const byName = groupBy(recs, (r) => r.name);
      for (const [name, group] of byName) {
        if (group.length > 1) report(`${name} has ${group.length} DMARC records; receivers ignore DMARC when there is more than one`, group[1]!.urn);
      }
      // The zone's own record is the one at the shortest _dmarc name.
      const ownName = [...byName.keys()].sort((a, b) => a.length - b.length || a.localeCompare(b))[0]!;
      const own = byName.get(ownName)!;
      if (own.length !== 1) continue;
      const ownParsed = parseDmarc(unquote(own[0]!.content));
      for (const [name, group] of byName) {
        if (name === ownName || !name.endsWith(`.${ownName.slice("_dmarc.".length)}`)) continue;
        for (const r of group) {
          const weak = weakerThan(parseDmarc(unquote(r.content)), ownParsed);
          if (weak) report(`${name} is weaker than ${ownName}: ${weak}`, r.urn);
        }
      }
    }
  },
};
