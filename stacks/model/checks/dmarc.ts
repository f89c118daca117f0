// DMARC records read as tag lists (RFC 9989 / RFC 7489 section 6.4), independent of
// record order: who publishes them, whether a subdomain's policy is weaker than the
// zone's own, and where their reports go.

export interface ParsedDmarc {
  tags: Map<string, string>;
  problem?: string;
}

export function isDmarc(txt: string): boolean {
  return /^\s*v\s*=\s*DMARC1\s*(;|$)/i.test(txt);
}

/** Parses 'v=DMARC1; p=reject; ...'; v must come first (RFC 7489 6.4), p is required
 * on an organisational record. Unknown tags are ignored, as receivers do. */
export function parseDmarc(txt: string): ParsedDmarc {
  const tags = new Map<string, string>();
  const parts = txt.split(";").map((p) => p.trim());
  if (parts[parts.length - 1] === "") parts.pop();
  for (const [i, part] of parts.entries()) {
    const eq = part.indexOf("=");
    if (eq < 1) return { tags, problem: `'${part}' is not a DMARC tag=value pair` };
    const key = part.slice(0, eq).trim().toLowerCase();
    const value = part.slice(eq + 1).trim();
    if (i === 0 && (key !== "v" || value !== "DMARC1")) return { tags, problem: "a DMARC record starts with 'v=DMARC1'" };
    if (tags.has(key)) return { tags, problem: `tag '${key}' appears twice` };
    tags.set(key, value);
  }
  return { tags };
}

const POLICY_RANK: Record<string, number> = { none: 0, quarantine: 1, reject: 2 };

/**
 * Why `sub` is weaker than `own`, or undefined. A receiver applies the record at
 * _dmarc.<sub> to mail from <sub>, so it must be at least as strict in every respect
 * the zone's own record sets: p, sp, np, pct, t (DMARCbis test mode), adkim and aspf.
 */
export function weakerThan(sub: ParsedDmarc, own: ParsedDmarc): string | undefined {
  const policy = (d: ParsedDmarc, tag: "p" | "sp" | "np") => {
    const p = d.tags.get("p");
    const v = tag === "p" ? p : (d.tags.get(tag) ?? (tag === "np" ? (d.tags.get("sp") ?? p) : p));
    return v === undefined ? -1 : (POLICY_RANK[v.toLowerCase()] ?? -1);
  };
  for (const tag of ["p", "sp", "np"] as const) {
    if (policy(sub, tag) < policy(own, tag)) return `${tag}=${sub.tags.get(tag) ?? `(${sub.tags.get("p") ?? "missing"})`} is weaker than the zone's own ${tag}=${own.tags.get(tag) ?? own.tags.get("p")}`;
  }
  const pct = (d: ParsedDmarc) => Number(d.tags.get("pct") ?? "100");
  if (!(pct(sub) >= pct(own))) return `pct=${sub.tags.get("pct")} applies the policy to only part of the mail`;
  if ((sub.tags.get("t") ?? "n").toLowerCase() === "y" && (own.tags.get("t") ?? "n").toLowerCase() !== "y") return "t=y (test mode) is weaker than the zone's own";
  for (const tag of ["adkim", "aspf"]) {
    const s = (sub.tags.get(tag) ?? "r").toLowerCase();
    const o = (own.tags.get(tag) ?? "r").toLowerCase();
    if (o === "s" && s !== "s") return `${tag}=${s} (relaxed alignment) is weaker than the zone's own ${tag}=s`;
  }
  return undefined;
}

/** The report URIs of a DMARC tag value: 'mailto:a@x,mailto:b@y!10m'. */
export function reportUris(value: string | undefined): string[] {
  return value === undefined ? [] : value.split(",").map((s) => s.trim()).filter((s) => s !== "");
}
