// RFC 7208 section 4.6.4: evaluating an SPF record may cause at most 10 DNS lookups and
// at most 2 void lookups. Includes and redirects that land on names of this stack are
// followed, as the inventory's validation does (stacks/model/checks/spf.ts).
import type { StackValidationPolicy } from "@pulumi/policy";
import { evaluateSpf, type FleetView } from "../../stacks/model/checks/spf.ts";
import { dnsRecords, groupBy, isSpf, unquote, type RecordView } from "../lib/resources.ts";

function stackView(recs: RecordView[]): FleetView {
  const byName = groupBy(recs, (r) => r.name);
  // Each zone's apex is its shortest record name.
  const apexes = new Set([...groupBy(recs, (r) => r.zone).values()].map((g) => g.map((r) => r.name).sort((a, b) => a.length - b.length)[0]!));
  const answering = (name: string): RecordView[] => {
    const own = byName.get(name);
    if (own) return own;
    let rest = name;
    while (rest.includes(".")) {
      rest = rest.slice(rest.indexOf(".") + 1);
      const wild = byName.get(`*.${rest}`);
      if (wild) return wild;
      if (byName.has(rest)) break;
    }
    return [];
  };
  return {
    inFleet: (name) => {
      for (let n = name; ; n = n.slice(n.indexOf(".") + 1)) {
        if (apexes.has(n)) return true;
        if (!n.includes(".")) return false;
      }
    },
    spfAt: (name) => answering(name).filter(isSpf).map((r) => unquote(r.content)),
    has: (name, type) => answering(name).some((r) => (type === "A" ? ["A", "AAAA", "CNAME"].includes(r.type) : r.type === "MX")),
  };
}

export const spfLookupLimit: StackValidationPolicy = {
  name: "spf-lookup-limit",
  description:
    "An SPF record causes at most 10 DNS lookups (include, a, mx, ptr, exists, redirect; includes inside the stack followed) " +
    "and at most 2 void lookups (RFC 7208 4.6.4).",
  enforcementLevel: "mandatory",
  validateStack: (args, report) => {
    const recs = dnsRecords(args.resources);
    const spf = recs.filter(isSpf);
    if (spf.length === 0) return;
    const view = stackView(recs);
    for (const r of spf) {
      const ev = evaluateSpf(r.name, unquote(r.content), view);
      if (ev.lookups > 10) report(`${r.name}: SPF has ${ev.lookups} DNS-lookup terms, more than 10`, r.urn);
      if (ev.voids > 2) report(`${r.name}: SPF makes ${ev.voids} void lookups, more than 2`, r.urn);
      if (ev.problem) report(`${r.name}: ${ev.problem}`, r.urn);
    }
  },
};
