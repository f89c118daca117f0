// A typographic dash pasted into '-all' ('–all') is not an SPF qualifier: receivers
// treat the record as a permerror and the zone loses its hard fail.
import type { ResourceValidationPolicy } from "@pulumi/policy";
import { typographicDash } from "../../stacks/model/dns.ts";
import { TYPE, unquote } from "../lib/resources.ts";

export const spfAsciiAll: ResourceValidationPolicy = {
  name: "spf-ascii-dash",
  description: "SPF records use the ASCII '-' in '-all', never a typographic dash (RFC 7208 4.6.2 qualifiers).",
  enforcementLevel: "mandatory",
  validateResource: (args, report) => {
    if (args.type !== TYPE.dnsRecord || args.props.type !== "TXT") return;
    const content = unquote(String(args.props.content ?? ""));
    if (!/^v=spf1(\s|$)/i.test(content)) return;
    const dash = typographicDash(content);
    if (dash) report(`${args.props.name}: SPF contains a typographic dash (${dash}); '-all' must use ASCII '-'`);
  },
};
