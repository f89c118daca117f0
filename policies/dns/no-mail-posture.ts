// Every zone that sends no mail keeps the whole hardened posture: null MX, SPF -all,
// DMARC p=reject and the empty DKIM wildcard (RFC 7505, RFC 7208, RFC 7489/9989).
import type { StackValidationPolicy } from "@pulumi/policy";
import { EMPTY_DKIM } from "../../stacks/model/posture.ts";
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
      const dmarc = recs.find((r) => r.type === "TXT" && r.name.startsWith("_dmarc."));
      // The apex is the zone's shortest name (since issue 15.5 a null MX also stands at '*'
      // and at names with address records, so the first null MX is no longer the apex).
      const apex = dmarc?.name.slice("_dmarc.".length) ?? recs.map((r) => r.name).sort((a, b) => a.length - b.length)[0]!;
      const nullMx = mx.find((r) => r.content === "." && r.name === apex);
      const missing: string[] = [];
      if (!nullMx || nullMx.name !== apex) missing.push("a null MX ('0 .') at the apex");
      if (!recs.some((r) => isSpf(r) && r.name === apex && /^v=spf1\s+-all$/i.test(unquote(r.content).trim()))) missing.push("SPF 'v=spf1 -all' at the apex");
      if (!dmarc || !/(^|;)\s*p\s*=\s*reject\s*(;|$)/i.test(unquote(dmarc.content))) missing.push("DMARC with p=reject at _dmarc");
      if (!recs.some((r) => r.type === "TXT" && r.name === `*._domainkey.${apex}` && unquote(r.content).replace(/\s/g, "") === EMPTY_DKIM.replace(/\s/g, ""))) {
        missing.push("the empty DKIM wildcard '*._domainkey' 'v=DKIM1; p='");
      }
      if (missing.length > 0) report(`${apex} sends no mail but lacks ${missing.join(", ")}`, (nullMx ?? dmarc ?? recs[0]!).urn);
    }
  },
};
