// RFC 7208 section 4.6.4: an SPF record may cause at most 10 DNS lookups.
import type { ResourceValidationPolicy } from "@pulumi/policy";
import { spfLookupCount } from "../../stacks/model/dns.ts";
import { TYPE, unquote } from "../lib/resources.ts";

export const spfLookupLimit: ResourceValidationPolicy = {
  name: "spf-lookup-limit",
  description: "An SPF record has at most 10 DNS-lookup terms (include, a, mx, ptr, exists, redirect; RFC 7208 4.6.4).",
  enforcementLevel: "mandatory",
  validateResource: (args, report) => {
    if (args.type !== TYPE.dnsRecord || args.props.type !== "TXT") return;
    const content = unquote(String(args.props.content ?? ""));
    if (!/^v=spf1(\s|$)/i.test(content)) return;
    const n = spfLookupCount(content);
    if (n > 10) report(`${args.props.name}: SPF has ${n} DNS-lookup terms, more than 10`);
  },
};
