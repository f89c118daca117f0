// SPF records read by RFC 7208's grammar, as the inventory's validation reads them
// (stacks/model/checks/spf.ts): a record that is a permerror, or whose 'all' passes or
// neutralises every sender (+all, ?all, a bare 'all', no 'all' and no 'redirect'), or
// '~all' in a zone that receives no mail, undoes the posture.
import type { StackValidationPolicy } from "@pulumi/policy";
import { allQualifier, parseSpf } from "../../stacks/model/checks/spf.ts";
import { dnsRecords, groupBy, isSpf, unquote } from "../lib/resources.ts";

export const spfGrammar: StackValidationPolicy = {
  name: "spf-grammar-and-all",
  description:
    "SPF records follow RFC 7208's grammar and end in '-all' ('~all' only in zones with a mail exchanger); " +
    "'+all', '?all' or no 'all' let anyone send. See https://www.rfc-editor.org/rfc/rfc7208#section-12",
  enforcementLevel: "mandatory",
  validateStack: (args, report) => {
    for (const [, recs] of groupBy(dnsRecords(args.resources), (r) => r.zone)) {
      const receivesMail = recs.some((r) => r.type === "MX" && r.content !== ".");
      for (const r of recs.filter(isSpf)) {
        const parsed = parseSpf(unquote(r.content));
        if (parsed.problem) {
          report(`${r.name}: SPF is invalid: ${parsed.problem}`, r.urn);
          continue;
        }
        const all = allQualifier(parsed);
        const redirect = parsed.terms.some((t) => t.name === "redirect");
        if (all === "+" || all === "?") report(`${r.name}: SPF '${all}all' lets anyone send`, r.urn);
        else if (all === "~" && !receivesMail) report(`${r.name}: SPF '~all' in a zone that sends no mail`, r.urn);
        else if (all === undefined && !redirect) report(`${r.name}: SPF has neither 'all' nor 'redirect=' (neutral for everyone)`, r.urn);
      }
    }
  },
};
