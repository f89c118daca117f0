// DNS facts as small pure functions: name syntax, SPF term counting, DMARC
// mailboxes, CAA properties. Used by the inventory schema and by the posture.

/** One label of a host name: letters, digits, hyphens (LDH), 1-63 octets. */
const LDH_LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;
/** Labels of owner names may also start with an underscore (_dmarc, _acme-challenge). */
const OWNER_LABEL = /^(\*|_?(?!-)[a-z0-9_-]{1,63}(?<!-))$/;

/** A zone name in canonical form: lowercase, no trailing dot, at least two labels. */
export function zoneNameProblem(name: string): string | undefined {
  if (name !== name.toLowerCase()) return `zone names are lowercase: use '${name.toLowerCase()}'`;
  if (name.endsWith(".")) return `zone names have no trailing dot: use '${name.replace(/\.+$/, "")}'`;
  if (name.length > 253) return "a zone name is at most 253 characters";
  const labels = name.split(".");
  if (labels.length < 2) return "a zone name has at least two labels (e.g. 'shop.example')";
  for (const label of labels) {
    if (!LDH_LABEL.test(label)) return `'${label}' is not a valid label (letters, digits and inner hyphens, 1-63 characters)`;
  }
  if (/^[0-9]+$/.test(labels[labels.length - 1] ?? "")) return "the top-level label cannot be all digits";
  return undefined;
}

/** A host name used as record content (MX exchange, CNAME target); no trailing dot. */
export function hostnameProblem(host: string): string | undefined {
  if (host !== host.toLowerCase()) return `host names are lowercase: use '${host.toLowerCase()}'`;
  if (host.endsWith(".")) return `host names are written without a trailing dot: use '${host.replace(/\.+$/, "")}'`;
  const labels = host.split(".");
  if (labels.length < 2) return `'${host}' is not a fully qualified host name`;
  for (const label of labels) {
    if (!OWNER_LABEL.test(label) || label === "*") return `'${label}' is not a valid host name label`;
  }
  return undefined;
}

/** A record owner name relative to its zone: '@' for the apex, else labels without the zone. */
export function relativeNameProblem(name: string): string | undefined {
  if (name === "@") return undefined;
  if (name !== name.toLowerCase()) return `record names are lowercase: use '${name.toLowerCase()}'`;
  if (name.endsWith(".")) return "record names are relative to the zone (use 'www', or '@' for the apex), not fully qualified";
  const labels = name.split(".");
  for (const [i, label] of labels.entries()) {
    if (!OWNER_LABEL.test(label)) return `'${label}' is not a valid name label`;
    if (label === "*" && i !== 0) return "a wildcard '*' may only be the leftmost label";
  }
  return undefined;
}

/** The fully qualified owner name of a relative name in a zone. */
export function fqdn(relative: string, zone: string): string {
  return relative === "@" ? zone : `${relative}.${zone}`;
}

/** The inverse of fqdn: a name (any case, trailing dot or not) relative to its zone; '@'
 * for the apex. A name outside the zone comes back as it is (lowercased). */
export function relativeName(name: string, zone: string): string {
  const n = name.toLowerCase().replace(/\.$/, "");
  if (n === zone) return "@";
  return n.endsWith(`.${zone}`) ? n.slice(0, -zone.length - 1) : n;
}

export function isIPv4(s: string): boolean {
  const parts = s.split(".");
  return parts.length === 4 && parts.every((p) => /^(0|[1-9][0-9]{0,2})$/.test(p) && Number(p) <= 255);
}

export function isIPv6(s: string): boolean {
  // Accept the forms RFC 4291 allows, including one '::' and an embedded IPv4 tail.
  if (!/^[0-9a-f:.]+$/i.test(s) || s.split("::").length > 2) return false;
  let groups = s.split(":");
  const last = groups[groups.length - 1] ?? "";
  let wanted = 8;
  if (last.includes(".")) {
    if (!isIPv4(last)) return false;
    groups = groups.slice(0, -1);
    wanted = 6;
  }
  if (s.includes("::")) {
    const filled = groups.filter((g) => g !== "");
    return filled.length < wanted && filled.every((g) => /^[0-9a-f]{1,4}$/i.test(g));
  }
  return groups.length === wanted && groups.every((g) => /^[0-9a-f]{1,4}$/i.test(g));
}

// ---------------------------------------------------------------- SPF (RFC 7208)

/** Characters that look like '-' but are not ASCII hyphen-minus: a classic copy-paste trap in '-all'. */
const TYPOGRAPHIC_DASHES = /[\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d]/u;

export function typographicDash(s: string): string | undefined {
  const m = TYPOGRAPHIC_DASHES.exec(s);
  if (!m) return undefined;
  const cp = m[0].codePointAt(0) ?? 0;
  return `U+${cp.toString(16).toUpperCase().padStart(4, "0")}`;
}

export function isSpf(txt: string): boolean {
  return /^v=spf1(\s|$)/i.test(txt);
}

/** Mechanisms and modifiers that cost a DNS lookup when evaluated (RFC 7208 section 4.6.4). */
const LOOKUP_TERMS = new Set(["include", "a", "mx", "ptr", "exists", "redirect"]);

/** Number of DNS-lookup terms directly in an SPF record (nested includes are not expanded offline). */
export function spfLookupCount(record: string): number {
  return record
    .trim()
    .split(/\s+/)
    .slice(1)
    .map((term) => term.replace(/^[+?~-]/, "").split(/[:=/]/, 1)[0]!.toLowerCase())
    .filter((name) => LOOKUP_TERMS.has(name)).length;
}

/** Problems with one SPF term written in the inventory (e.g. 'include:_spf.google.com'). */
export function spfTermProblem(term: string): string | undefined {
  const dash = typographicDash(term);
  if (dash) return `typographic dash (${dash}) in SPF term '${term}': use the ASCII '-'`;
  if (/\s/.test(term)) return "an SPF term has no spaces: give one term per list item";
  if (/^[+?~-]?all$/i.test(term)) return "'all' is added by edgefleet itself ('-all')";
  if (!/^[+?~-]?(include|a|mx|ptr|exists|ip4|ip6|redirect|exp)([:=/].*)?$/i.test(term)) {
    return `'${term}' is not an SPF mechanism (include:, a, mx, ip4:, ip6:, exists:, ...)`;
  }
  return undefined;
}

/** Problems with a whole SPF record found in a TXT record. */
export function spfRecordProblem(record: string): string | undefined {
  const dash = typographicDash(record);
  if (dash) return `typographic dash (${dash}) in SPF record '${record}': '-all' must use the ASCII '-'`;
  const n = spfLookupCount(record);
  if (n > 10) return `SPF record has ${n} DNS-lookup terms; RFC 7208 allows at most 10`;
  return undefined;
}

// ---------------------------------------------------------------- DMARC (RFC 9989 / RFC 7489)

const MAILBOX = /^[a-z0-9.!#$%&'*+/=?^_`{|}~-]+@([a-z0-9-]+\.)+[a-z0-9-]+$/i;

/** A DMARC report URI must be mailto:; returns the problem or undefined. */
export function mailtoProblem(uri: string): string | undefined {
  if (!uri.startsWith("mailto:")) return `'${uri}' is not a mailto: URI (DMARC reports go to mailto: addresses)`;
  const address = uri.slice("mailto:".length).replace(/!\d+[kmgt]?$/i, "");
  if (!MAILBOX.test(address)) return `'${address}' is not a mail address`;
  return undefined;
}

/** The domain of a mailto: URI, lowercased. */
export function mailtoDomain(uri: string): string {
  return uri.slice(uri.indexOf("@") + 1).replace(/!\d+[kmgt]?$/i, "").toLowerCase();
}

// ---------------------------------------------------------------- CAA (RFC 8659)

export const CAA_TAGS = ["issue", "issuewild", "iodef", "issuemail", "issuevmc"] as const;

/**
 * The CAs Cloudflare uses for Universal and Advanced certificates on proxied zones.
 * Cloudflare adds CAA records for them itself when any CAA exists; we declare them
 * explicitly so the posture says what it allows. Last verified 2026-11 (FINDINGS.md).
 */
export const CLOUDFLARE_CAS = ["letsencrypt.org", "pki.goog", "ssl.com", "sectigo.com"] as const;

export function caaProblem(tag: string, value: string): string | undefined {
  if (!(CAA_TAGS as readonly string[]).includes(tag)) {
    return `'${tag}' is not a CAA property tag (${CAA_TAGS.join(", ")})`;
  }
  if (tag === "iodef") {
    if (/^mailto:/.test(value)) return mailtoProblem(value);
    if (/^https?:\/\/[^\s]+$/.test(value)) return undefined;
    return `iodef value '${value}' must be a mailto: or https: URL`;
  }
  // issue / issuewild / issuemail / issuevmc: "[domain] [; params]"
  const [domain = "", ...params] = value.split(";");
  const d = domain.trim();
  if (d !== "" && hostnameProblem(d)) return `CAA ${tag} value '${value}' must name a CA domain (e.g. 'letsencrypt.org') or be ';'`;
  for (const p of params) {
    if (p.trim() !== "" && !/^\s*[a-z0-9]+=[\x21-\x3a\x3c-\x7e]*\s*$/i.test(p)) return `CAA parameter '${p.trim()}' must be key=value`;
  }
  return undefined;
}
