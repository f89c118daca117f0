// SPF records checked by their grammar (RFC 7208 section 12), then evaluated as far as
// the fleet can be seen offline: includes and redirects that land in a zone of the
// fleet are followed, so loops, the 10-lookup limit and void lookups (4.6.4) are
// counted through them. Targets outside the fleet cost one lookup and are not followed.
// The terms are parsed here (the checks need their structure); every record is also
// run through mailauth's own RFC 7208 term validator (lib/spf/syntax.js, the one its
// SPF verification and our `verify` use), so validation never accepts a record the
// verifier would call a permerror. mailauth has no "exports" map, so the file is
// reachable; it is internal API, pinned by package-lock (mailauth 7.1.0, checked 2026-11-27).
import { createRequire } from "node:module";
import { isIPv4, isIPv6, typographicDash } from "../dns.ts";

const mailauthSyntax = createRequire(import.meta.url)("mailauth/lib/spf/syntax.js") as {
  /** The first syntax error of the terms (the record without 'v=spf1', split on SP), or false. */
  validateTerms(terms: string[]): string | false;
};

export type Qualifier = "+" | "-" | "~" | "?";

export interface SpfTerm {
  kind: "mechanism" | "modifier";
  /** Lowercased mechanism or modifier name. */
  name: string;
  qualifier: Qualifier;
  /** The domain-spec (or address) after ':' or '=', as written. */
  value?: string;
  raw: string;
}

export interface ParsedSpf {
  terms: SpfTerm[];
  /** The first grammar problem, if any. */
  problem?: string;
}

const MECHANISMS = new Set(["all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists"]);
/** Mechanisms and modifiers that cost a DNS lookup (RFC 7208 4.6.4). */
export const LOOKUP_TERMS = new Set(["include", "a", "mx", "ptr", "exists", "redirect"]);

const MACRO_LETTER = /^[slodiphcrtv]$/i;
const TOPLABEL = /^(?=.*[a-z])[a-z0-9]+$|^[a-z0-9][a-z0-9-]*[a-z0-9]$/i;

/** RFC 7208 7.1 macro-string: literals %x21-24 / %x26-7E and %{...}, %%, %_, %-. */
function macroStringProblem(s: string, allowExpLetters: boolean): string | undefined {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (s[i] === "%") {
      const next = s[i + 1];
      if (next === "%" || next === "_" || next === "-") {
        i++;
        continue;
      }
      if (next !== "{") return `'%' must start a macro (%{x}, %%, %_ or %-)`;
      const close = s.indexOf("}", i);
      if (close < 0) return "unterminated macro '%{'";
      const body = s.slice(i + 2, close);
      if (!/^[a-z][0-9]*r?[.+,/_=-]*$/i.test(body) || !MACRO_LETTER.test(body[0]!)) return `invalid macro '%{${body}}'`;
      if (!allowExpLetters && /^[crt]/i.test(body)) return `macro '%{${body}}' is only allowed in exp= (RFC 7208 7.2)`;
      i = close;
      continue;
    }
    if (c < 0x21 || c > 0x7e) return `character ${JSON.stringify(s[i])} is not allowed in a domain-spec`;
  }
  return undefined;
}

/** RFC 7208 domain-spec = macro-string domain-end; domain-end = "." toplabel ["."] / macro-expand. */
export function domainSpecProblem(spec: string): string | undefined {
  if (spec === "") return "empty domain-spec";
  const p = macroStringProblem(spec, false);
  if (p) return p;
  if (/%\{[^}]*\}$/.test(spec)) return undefined; // ends in a macro-expand
  const trimmed = spec.replace(/\.$/, "");
  const labels = trimmed.split(".");
  if (labels.length < 2) return `'${spec}' is not a domain name (it needs a dot and a top-level label)`;
  const top = labels[labels.length - 1]!;
  if (!TOPLABEL.test(top)) return `'${top}' is not a valid top-level label in '${spec}'`;
  if (labels.some((l) => l === "" && !l.includes("%"))) return `empty label in '${spec}'`;
  if (labels.some((l) => l.length > 63)) return `a label of '${spec}' is longer than 63 octets`;
  if (!spec.includes("%") && trimmed.length > 253) return `'${spec.slice(0, 30)}...' is longer than a domain name may be (253 characters)`;
  return undefined;
}

function cidrProblem(s: string | undefined, max: number): string | undefined {
  if (s === undefined) return undefined;
  if (!/^(0|[1-9][0-9]{0,2})$/.test(s) || Number(s) > max) return `CIDR length '/${s}' must be 0-${max}`;
  return undefined;
}

function mechanismProblem(name: string, value: string | undefined, cidr: string[]): string | undefined {
  switch (name) {
    case "all":
      if (value !== undefined || cidr.length) return "'all' takes no argument";
      return undefined;
    case "include":
    case "exists":
      if (cidr.length) return `'${name}' takes no CIDR length`;
      return value === undefined ? `'${name}' needs a domain ('${name}:example.net')` : domainSpecProblem(value);
    case "ptr":
      if (cidr.length) return "'ptr' takes no CIDR length";
      return value === undefined ? undefined : domainSpecProblem(value);
    case "a":
    case "mx": {
      if (value !== undefined) {
        const p = domainSpecProblem(value);
        if (p) return p;
      }
      // dual-cidr-length = [ "/" ip4 ] [ "//" ip6 ]: "/24" -> [24], "//64" -> ["", 64], "/24//64" -> [24, "", 64]
      if (cidr.length === 1) return cidrProblem(cidr[0], 32);
      if (cidr.length === 2 && cidr[0] === "") return cidrProblem(cidr[1], 128);
      if (cidr.length === 3 && cidr[1] === "") return cidrProblem(cidr[0], 32) ?? cidrProblem(cidr[2], 128);
      if (cidr.length > 0) return `'${name}' CIDR is '/n' for IPv4 and '//n' for IPv6`;
      return undefined;
    }
    case "ip4":
      if (value === undefined || !isIPv4(value)) return `'ip4:${value ?? ""}' needs an IPv4 address`;
      if (cidr.length > 1) return "ip4 takes one CIDR length";
      return cidrProblem(cidr[0], 32);
    case "ip6":
      if (value === undefined || !isIPv6(value)) return `'ip6:${value ?? ""}' needs an IPv6 address`;
      if (cidr.length > 1) return "ip6 takes one CIDR length";
      return cidrProblem(cidr[0], 128);
  }
  return `unknown mechanism '${name}'`;
}

/** Parses an SPF record; `problem` is the first violation of RFC 7208's grammar. */
export function parseSpf(record: string): ParsedSpf {
  const terms: SpfTerm[] = [];
  const dash = typographicDash(record);
  if (dash) return { terms, problem: `typographic dash (${dash}) in SPF record: '-all' must use the ASCII '-'` };
  if (/[^\x20-\x7e]/.test(record)) return { terms, problem: "SPF records are ASCII: found a control or non-ASCII character" };
  const words = record.split(" ");
  if (words[0]!.toLowerCase() !== "v=spf1") return { terms, problem: "an SPF record starts with 'v=spf1'" };
  const seen = new Set<string>();
  let afterAll = false;
  for (const raw of words.slice(1)) {
    if (raw === "") continue; // 1*SP between terms; trailing spaces are allowed
    const mod = /^([a-z][a-z0-9_.-]*)=(.*)$/i.exec(raw);
    if (mod) {
      const name = mod[1]!.toLowerCase();
      const value = mod[2]!;
      if (name === "redirect" || name === "exp") {
        if (seen.has(name)) return { terms, problem: `'${name}=' appears twice (RFC 7208 6: at most once)` };
        seen.add(name);
        const p = value === "" ? `'${name}=' needs a domain` : name === "exp" ? (macroStringProblem(value, true) ?? domainSpecProblemLoose(value)) : domainSpecProblem(value);
        if (p) return { terms, problem: `${raw}: ${p}` };
      } else {
        const p = macroStringProblem(value, false);
        if (p) return { terms, problem: `${raw}: ${p}` };
      }
      terms.push({ kind: "modifier", name, qualifier: "+", value, raw });
      continue;
    }
    const m = /^([+\-~?]?)([a-z0-9]+)(?::([^/]*))?((?:\/[^/]*)*)$/i.exec(raw);
    const name = m?.[2]?.toLowerCase();
    if (!m || !name || !MECHANISMS.has(name)) return { terms, problem: `'${raw}' is not an SPF mechanism or modifier (RFC 7208 5, 6)` };
    // ip6 addresses contain ':'; re-split them: ip6:<addr>[/len]
    let value = m[3];
    let cidr = m[4] ? m[4].split("/").slice(1) : [];
    if (name === "ip6") {
      const body = raw.replace(/^[+\-~?]?ip6:?/i, "");
      const slash = body.indexOf("/");
      value = raw.toLowerCase().includes("ip6:") ? (slash < 0 ? body : body.slice(0, slash)) : undefined;
      cidr = slash < 0 ? [] : body.slice(slash + 1).split("/");
    } else if (m[3] === undefined && /:/.test(raw)) {
      return { terms, problem: `'${raw}' is not an SPF mechanism` };
    }
    const p = mechanismProblem(name, value === "" ? "" : value, cidr);
    if (p) return { terms, problem: `${raw}: ${p}` };
    if (afterAll) return { terms, problem: `'${raw}' comes after 'all' and is never evaluated` };
    if (name === "all") afterAll = true;
    terms.push({ kind: "mechanism", name, qualifier: (m[1] || "+") as Qualifier, value, raw });
  }
  if (afterAll && seen.has("redirect")) return { terms, problem: "'redirect=' beside 'all' is never used (RFC 7208 6.1): keep one of them" };
  const second = mailauthSyntax.validateTerms(words.slice(1).filter((w) => w !== ""));
  if (second) return { terms, problem: `mailauth's RFC 7208 validator: ${second}` };
  return { terms };
}

/** exp= is a domain-spec that may use the exp-only macro letters. */
function domainSpecProblemLoose(spec: string): string | undefined {
  return /%\{[^}]*\}$/.test(spec) ? undefined : domainSpecProblem(spec.replace(/%\{[^}]*\}/g, "x"));
}

/** The 'all' mechanism's qualifier, or undefined when the record has none. */
export function allQualifier(spf: ParsedSpf): Qualifier | undefined {
  return spf.terms.find((t) => t.kind === "mechanism" && t.name === "all")?.qualifier;
}

/** What the fleet knows about a name, to follow SPF evaluation offline. */
export interface FleetView {
  /** Whether the name lies in a zone of the fleet (so its records are all known). */
  inFleet(name: string): boolean;
  /** The SPF records published at a name of the fleet. */
  spfAt(name: string): string[];
  /** Whether a name of the fleet has records of the type (wildcards included). */
  has(name: string, type: "A" | "MX"): boolean;
}

export interface SpfEvaluation {
  lookups: number;
  voids: number;
  /** A problem found while following includes, e.g. a loop or an include without SPF. */
  problem?: string;
}

/** Counts DNS lookups and void lookups of the SPF record at `owner`, following the fleet. */
export function evaluateSpf(owner: string, record: string, view: FleetView): SpfEvaluation {
  const out: SpfEvaluation = { lookups: 0, voids: 0 };
  const walk = (domain: string, rec: string, path: string[]): void => {
    const parsed = parseSpf(rec);
    if (parsed.problem) {
      if (path.length > 1) out.problem ??= `the SPF record at ${domain} (reached through ${path.slice(1).join(" -> ")}) is invalid: ${parsed.problem}`;
      return;
    }
    const hasAll = allQualifier(parsed) !== undefined;
    for (const t of parsed.terms) {
      if (!LOOKUP_TERMS.has(t.name)) continue;
      if (t.name === "redirect" && hasAll) continue;
      out.lookups++;
      const target = (t.value ?? domain).toLowerCase().replace(/\.$/, "");
      if (target.includes("%") || !view.inFleet(target)) continue;
      if (t.name === "include" || t.name === "redirect") {
        if (path.includes(target)) {
          out.problem ??= `SPF ${t.name} loop: ${[...path, target].join(" -> ")}`;
          continue;
        }
        const spf = view.spfAt(target);
        if (spf.length === 0) {
          out.voids++;
          out.problem ??= `'${t.raw}' names ${target}, which has no SPF record in the fleet (a permerror, RFC 7208 5.2)`;
          continue;
        }
        if (spf.length > 1) {
          out.problem ??= `'${t.raw}' names ${target}, which has ${spf.length} SPF records (a permerror)`;
          continue;
        }
        // Past the limit the verdict is certain: follow no further, so a hostile include
        // tree costs at most ~10 records (the count is then a lower bound).
        if (out.lookups <= 10) walk(target, spf[0]!, [...path, target]);
      } else if (t.name === "a" || t.name === "exists") {
        if (!view.has(target, "A")) out.voids++;
      } else if (t.name === "mx") {
        if (!view.has(target, "MX")) out.voids++;
      }
    }
  };
  walk(owner, record, [owner]);
  return out;
}
