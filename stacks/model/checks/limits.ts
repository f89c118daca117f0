// What a DNS server or Cloudflare would refuse, found before deploy (issue 15 item 3):
// owner names and labels past RFC 1035's limits, TXT records past Cloudflare's size
// limits (counted in bytes), characters that break a zone file in CAA values, vars that
// do not fit where their profile puts them, IP literals as MX/CNAME targets, CNAME
// loops inside the fleet, zones that are public suffixes and invalid punycode.
import { parse as parsePublicSuffix } from "tldts";
import { toUnicode } from "tr46";
import { fqdn, hostnameProblem, isIPv4, isIPv6 } from "../dns.ts";
import { expand, templateVars, type DnsRec } from "../posture.ts";
import type { CheckCtx, Path, ZoneCtx } from "./context.ts";

/**
 * Cloudflare's size limits for a DNS record, last verified 2026-11-27:
 * "Each DNS record has a maximum wire format size of 4,096 bytes" and "If you have
 * multiple records with the same name and type, their combined content length must not
 * exceed 8,192 characters" (developers.cloudflare.com/dns/manage-dns-records/reference/
 * dns-record-types/, since cloudflare-docs PR #29286 of 2026-03-24, which removed the
 * older TXT-only 2,048-character limit). cloudflare-docs issue #30039 measured the
 * largest accepted TXT content at 4,080 characters: 4,080 bytes in 16 strings of 255
 * plus 16 length octets is exactly 4,096 bytes of RDATA.
 */
export const CF_RDATA_MAX = 4096;
export const CF_COMBINED_CONTENT_MAX = 8192;

/** Wire size of a TXT RDATA: each <character-string> of up to 255 octets plus its length octet. */
export function txtWireSize(content: string): number {
  const bytes = Buffer.byteLength(content, "utf8");
  return bytes + Math.max(1, Math.ceil(bytes / 255));
}

/** RFC 1035 2.3.4: names are at most 255 octets on the wire (253 characters written), labels 63. */
export function nameLengthProblem(name: string): string | undefined {
  // Fast path for the common case: ASCII, short, no long label (one character is one octet).
  if (name.length <= 253 && !/[^.]{64}|[^\x00-\x7f]/.test(name)) return undefined;
  const long = name.split(".").find((l) => Buffer.byteLength(l) > 63);
  if (long) return `label '${long.slice(0, 20)}...' of ${name.slice(0, 40)}... is ${Buffer.byteLength(long)} octets; DNS allows 63`;
  const wire = name.split(".").reduce((n, l) => n + Buffer.byteLength(l) + 1, 1);
  if (wire > 255) return `the name ${name.slice(0, 40)}... is ${wire} octets on the wire; DNS allows 255`;
  return undefined;
}

/** Labels 'xn--...' must be valid IDNA A-labels (UTS #46 via tr46, the WHATWG URL library). */
export function punycodeProblem(name: string): string | undefined {
  if (!name.includes("xn--") && !name.includes("XN--")) return undefined;
  for (const label of name.split(".")) {
    if (!/^xn--/i.test(label)) continue;
    const r = toUnicode(label, { checkHyphens: true, checkBidi: true, checkJoiners: true, useSTD3ASCIIRules: true });
    if (r.error || r.domain === label) return `'${label}' is not valid punycode (an IDNA A-label that decodes to a valid name)`;
  }
  return undefined;
}

/** A host name that is record content: an IP written where a name belongs is refused. */
export function targetProblem(host: string): string | undefined {
  if (isIPv4(host) || isIPv6(host) || /^[0-9]+$/.test(host.split(".").pop() ?? "")) {
    return `'${host}' is an IP address; MX, CNAME and SRV targets must be host names (RFC 1035 3.3.9, RFC 2181 10.3)`;
  }
  return nameLengthProblem(host) ?? punycodeProblem(host);
}

/** Characters that would break a quoted CAA value in a zone file, or that RFC 8659 does not allow. */
export function caaCharsProblem(tag: string, value: string): string | undefined {
  const bad = /["\\]|[^\x20-\x7e]/.exec(value);
  if (bad) return `CAA ${tag} value contains ${JSON.stringify(bad[0])}: only printable ASCII without '"' or '\\' is allowed (RFC 8659 4.1.1)`;
  if (tag === "iodef" && /\s/.test(value)) return "CAA iodef is a URL and has no spaces (RFC 8659 4.4)";
  return undefined;
}

/** A DKIM key record (RFC 6376 3.6.1): tag=value pairs, v=DKIM1 first if present, p= base64. */
export function dkimKeyProblem(txt: string): string | undefined {
  const tags = new Map<string, string>();
  const parts = txt.split(";").map((p) => p.trim());
  if (parts[parts.length - 1] === "") parts.pop();
  for (const [i, part] of parts.entries()) {
    const m = /^([a-zA-Z][a-zA-Z0-9_]*)\s*=\s*([\x21-\x3a\x3c-\x7e \t]*)$/.exec(part);
    if (!m) return `'${part.slice(0, 30)}' is not a DKIM tag=value pair`;
    const key = m[1]!;
    if (key === "v" && (i !== 0 || m[2] !== "DKIM1")) return "v=DKIM1 must come first";
    if (tags.has(key)) return `tag '${key}' appears twice`;
    tags.set(key, m[2]!.trim());
  }
  const p = tags.get("p");
  if (p === undefined) return "a DKIM key record needs 'p=' (the public key)";
  if (!/^[A-Za-z0-9+/\s]*={0,2}$/.test(p)) return "the DKIM key 'p=' is not base64";
  const k = tags.get("k");
  if (k !== undefined && k !== "rsa" && k !== "ed25519") return `unknown DKIM key type k=${k}`;
  return undefined;
}

/**
 * Where a bad posture value built from a template comes from: the first var whose value
 * is to blame (the value is fine with that var replaced by a plain label), else the
 * profile (the template or the zone's name, as ${zone} or ${zoneDashed}, is).
 */
function templatePath(z: ZoneCtx, template: string, problem: (value: string) => string | undefined): Path {
  for (const v of templateVars(template)) {
    if (!(v in z.zone.vars)) continue;
    // A label for a var inside a name, a whole host name for a var that is the name
    // (Microsoft 365's m365Mx, m365Dkim1/2), a key for a DKIM key var.
    const plains = v === "googleDkim" || /dkim/i.test(v) ? ["v=DKIM1; k=rsa; p=AAAA", "x", "x.example"] : ["x", "x.example"];
    for (const plain of plains) {
      if (!problem(expand(template, { ...z.zone, vars: { ...z.zone.vars, [v]: plain } }))) return ["zones", z.index, "vars", v];
    }
  }
  return ["zones", z.index, "profile"];
}

/**
 * A host value that is one var alone and not a host name is reported by mailProblems
 * (mail.ts), at that var; reporting it here too would give the operator two errors for
 * one mistake. A var missing altogether is reported by validate.ts.
 */
function hostVarReportedByMail(z: ZoneCtx, template: string): boolean {
  const v = /^\$\{vars\.([a-zA-Z][a-zA-Z0-9]*)\}$/.exec(template)?.[1];
  return v !== undefined && (!(v in z.zone.vars) || hostnameProblem(expand(template, z.zone)) !== undefined);
}

function checkVars(ctx: CheckCtx, z: ZoneCtx): void {
  const provider = z.resolved.provider;
  if (!provider) return;
  for (const mx of provider.mx) {
    if (hostVarReportedByMail(z, mx.host)) continue;
    const hostCheck = (h: string) => hostnameProblem(h) ?? targetProblem(h);
    const p = hostCheck(expand(mx.host, z.zone));
    if (p) ctx.add("zones", templatePath(z, mx.host, hostCheck), `the MX host of '${provider.name}' for this zone is not a host name: ${p}`);
  }
  for (const d of provider.dkim) {
    if (d.type === "CNAME" && hostVarReportedByMail(z, d.value)) continue;
    const check = d.type === "CNAME" ? (h: string) => hostnameProblem(h) ?? targetProblem(h) : (v: string) => dkimKeyProblem(v) ?? (txtWireSize(v) > CF_RDATA_MAX ? `the key record is ${txtWireSize(v)} bytes on the wire; Cloudflare accepts at most ${CF_RDATA_MAX}` : undefined);
    const p = check(expand(d.value, z.zone));
    if (p) ctx.add("zones", templatePath(z, d.value, check), `DKIM ${d.selector} of '${provider.name}' (${d.type}) for this zone: ${p}`);
  }
}

export function checkLimits(ctx: CheckCtx): void {
  const iodef = ctx.inv.fleet.caa.iodef;
  if (iodef !== undefined) {
    const p = caaCharsProblem("iodef", iodef);
    if (p) ctx.add("fleet", ["caa", "iodef"], p);
  }
  for (const z of ctx.zones) {
    const name = z.zone.name;
    const psl = parsePublicSuffix(name, { allowPrivateDomains: true });
    if (psl.domain === null || psl.publicSuffix === name) {
      ctx.add("zones", ["zones", z.index, "name"], `'${name}' is a public suffix (publicsuffix.org list${psl.isPrivate ? ", private section" : ""}): it cannot be a zone of this fleet`);
    }
    const zp = punycodeProblem(name);
    if (zp) ctx.add("zones", ["zones", z.index, "name"], zp);
    checkVars(ctx, z);

    // A bad owner name is reported once, at the inventory record that names it: the
    // posture also writes at names the inventory declares (null MX and SPF -all at every
    // address name of a zone that sends no mail), and the zone line is not the culprit.
    const owners = new Map<string, DnsRec>();
    for (const r of z.records) {
      const first = owners.get(r.name);
      if (!first || (first.source !== "extra" && r.source === "extra")) owners.set(r.name, r);
    }
    for (const r of owners.values()) {
      const np = nameLengthProblem(fqdn(r.name, r.zone)) ?? punycodeProblem(fqdn(r.name, r.zone));
      if (np) ctx.add("zones", ctx.where(r, "name"), np);
    }
    const combined = new Map<string, number>();
    for (const r of z.records) {
      const fromTemplate = r.source === "posture" && z.resolved.provider !== undefined;
      if (r.type === "TXT") {
        const size = txtWireSize(r.content ?? "");
        // (A provider's DKIM key too large is reported by checkVars, at the var.)
        if (size > CF_RDATA_MAX && !(fromTemplate && r.key === "dkim")) {
          ctx.add("zones", ctx.where(r, "content"), `TXT content is ${Buffer.byteLength(r.content ?? "")} bytes (${size} on the wire); Cloudflare accepts at most ${CF_RDATA_MAX} bytes of record data (4,080 bytes of text)`);
        }
        const k = `TXT ${r.name}`;
        combined.set(k, (combined.get(k) ?? 0) + Buffer.byteLength(r.content ?? ""));
      }
      if (r.source === "extra") {
        if (r.type === "CAA") {
          const p = caaCharsProblem(r.caa!.tag, r.caa!.value);
          if (p) ctx.add("zones", ctx.where(r, "value"), p);
        }
        const target = r.type === "MX" && r.content !== "." ? r.content : r.type === "CNAME" ? r.content : r.type === "SRV" && r.srv!.target !== "." ? r.srv!.target : undefined;
        if (target !== undefined) {
          const p = targetProblem(target);
          if (p) ctx.add("zones", ctx.where(r, r.type === "SRV" ? "target" : "content"), p);
        }
      }
    }
    for (const [k, bytes] of combined) {
      if (bytes > CF_COMBINED_CONTENT_MAX) {
        const r = z.records.find((x) => `${x.type} ${x.name}` === k && x.source === "extra") ?? z.records.find((x) => `${x.type} ${x.name}` === k)!;
        ctx.add("zones", ctx.where(r), `the ${k} records together hold ${bytes} bytes; Cloudflare allows at most ${CF_COMBINED_CONTENT_MAX} per name and type`);
      }
    }
  }
  checkCnameLoops(ctx);
}

/** CNAME chains that come back to themselves inside the fleet never resolve (RFC 1034 3.6.2). */
function checkCnameLoops(ctx: CheckCtx): void {
  const target = new Map<string, DnsRec>();
  for (const [name, recs] of ctx.byName) {
    const c = recs.find((r) => r.type === "CNAME");
    if (c) target.set(name, c);
  }
  const done = new Set<string>();
  for (const start of target.keys()) {
    if (done.has(start)) continue;
    const chain: string[] = [];
    const onChain = new Set<string>();
    let at: string | undefined = start;
    while (at !== undefined && target.has(at) && !done.has(at) && !onChain.has(at)) {
      chain.push(at);
      onChain.add(at);
      at = target.get(at)!.content;
    }
    if (at !== undefined && onChain.has(at)) {
      const loop = chain.slice(chain.indexOf(at));
      const recs = loop.map((n) => target.get(n)!);
      const culprit = recs.find((r) => r.source === "extra") ?? recs[0]!;
      ctx.add("zones", ctx.where(culprit, "content"), `CNAME loop inside the fleet: ${[...loop, at].join(" -> ")}`);
    }
    for (const n of chain) done.add(n);
  }
}
