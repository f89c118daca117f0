// Every zone that sends no mail keeps the whole hardened posture: null MX, SPF -all,
// DMARC p=reject and the empty DKIM wildcard (RFC 7505, RFC 7208, RFC 7489/9989).
import type { StackValidationPolicy } from "@pulumi/policy";
import { EMPTY_DKIM } from "../../stacks/model/posture.ts";
import { isDmarc, parseDmarc } from "../../stacks/model/checks/dmarc.ts";
import { dnsRecords, groupBy, isSpf, unquote } from "../lib/resources.ts";

export const noMailPosture: StackValidationPolicy = {
  name: "no-mail-zone-posture",
  description:
    "A zone with no mail exchanger must publish a null MX, 'v=spf1 -all', DMARC p=reject and the empty DKIM wildcard, " +
    "so nobody can send or receive mail in its name. See https://www.gov.uk/guidance/protect-domains-that-dont-send-email",
  enforcementLevel: "mandatory",
  validateStack: (args, report) => {
    for (const [, recs] of groupBy(dnsRecords(args.resources), (r) => r.zone)) {
      const mx = recs.filter((r) => r.type === "MX");
      if (mx.some((r) => r.content !== ".")) continue; // the zone receives mail: not a no-mail zone
      // The apex is the zone's shortest name (every zone has posture records there); it is
      // never read from a DMARC record, whose position in the list means nothing, nor from
      // the first null MX (since issue 15.5 null MXs also stand at '*' and at address names).
      const apex = recs.map((r) => r.name).sort((a, b) => a.length - b.length || a.localeCompare(b))[0]!;
      const nullMx = mx.find((r) => r.content === "." && r.name === apex);
      // Every DMARC record at _dmarc.<apex> is read, in any order: exactly one, with p=reject.
      const dmarcs = recs.filter((r) => r.type === "TXT" && r.name === `_dmarc.${apex}` && isDmarc(unquote(r.content)));
      const dmarc = dmarcs[0];
      const missing: string[] = [];
      if (!nullMx || nullMx.name !== apex) missing.push("a null MX ('0 .') at the apex");
      if (!recs.some((r) => isSpf(r) && r.name === apex && /^v=spf1\s+-all$/i.test(unquote(r.content).trim()))) missing.push("SPF 'v=spf1 -all' at the apex");
      if (dmarcs.length !== 1 || parseDmarc(unquote(dmarcs[0]!.content)).tags.get("p")?.toLowerCase() !== "reject") {
        missing.push(dmarcs.length > 1 ? `exactly one DMARC record at _dmarc (it has ${dmarcs.length})` : "DMARC with p=reject at _dmarc");
      }
      if (!recs.some((r) => r.type === "TXT" && r.name === `*._domainkey.${apex}` && unquote(r.content).replace(/\s/g, "") === EMPTY_DKIM.replace(/\s/g, ""))) {
        missing.push("the empty DKIM wildcard '*._domainkey' 'v=DKIM1; p='");
      }
      if (missing.length > 0) report(`${apex} sends no mail but lacks ${missing.join(", ")}`, (nullMx ?? dmarc ?? recs[0]!).urn);
    }
  },
};
