// The KV content map's format, shared by the build (scripts/lib/sites) and the router
// Worker. Pure: no Node and no Workers APIs, so both sides import this one file.
//
// Key layout (one KV namespace):
//   host:<hostname>   JSON HostTable: the host's routes, redirects and 404 page
//   sha256:<hex>      the raw bytes of one file, content-addressed (immutable)
// A request costs at most one KV read for the host's table (on an in-isolate cache
// miss) plus one for the content (on a miss of the in-isolate content cache).

export const TABLE_VERSION = 1;
export const HOST_PREFIX = "host:";
export const CONTENT_PREFIX = "sha256:";

export const hostKey = (host: string): string => `${HOST_PREFIX}${host}`;
export const contentKey = (hexHash: string): string => `${CONTENT_PREFIX}${hexHash}`;

/** One servable file: its content hash (hex), content type, cache-control and size. */
export interface FileEntry {
  h: string;
  t: string;
  c: string;
  s: number;
}

export type RedirectStatus = 301 | 302 | 303 | 307 | 308;
export const REDIRECT_STATUSES: readonly number[] = [301, 302, 303, 307, 308];

export interface RedirectRule {
  from: string;
  to: string;
  status: RedirectStatus;
}

export interface HostTable {
  v: typeof TABLE_VERSION;
  /** When set, the host only redirects (301) to this host, keeping path and query (www -> apex). */
  canonical?: string;
  /** URL path (percent-encoded, as in URL.pathname) -> file. */
  files: Record<string, FileEntry>;
  /** Rules without placeholders, looked up by exact path. */
  redirects: Record<string, { to: string; status: RedirectStatus }>;
  /** Rules with `*` or `:name`, tried in file order after the exact ones. */
  patterns: RedirectRule[];
  /** Path of the host's 404 page in `files`, if it has one. */
  notFound?: string;
}

/**
 * Matches a path against a pattern rule. `*` (at most one) captures the rest as
 * :splat; `:name` captures one path segment. Returns the target with captures
 * substituted, or undefined when the rule does not match.
 */
export function matchPattern(rule: RedirectRule, path: string): string | undefined {
  const from = rule.from.split("/");
  const got = path.split("/");
  const captures: Record<string, string> = {};
  for (let i = 0; i < from.length; i++) {
    const seg = from[i]!;
    if (seg === "*" && i === from.length - 1) {
      captures.splat = got.slice(i).join("/");
      return substitute(rule.to, captures);
    }
    const have = got[i];
    if (have === undefined) return undefined;
    if (seg.startsWith(":")) {
      if (have === "") return undefined;
      captures[seg.slice(1)] = have;
    } else if (seg !== have) {
      return undefined;
    }
  }
  return got.length === from.length ? substitute(rule.to, captures) : undefined;
}

function substitute(to: string, captures: Record<string, string>): string {
  return to.replace(/:([A-Za-z]\w*)/g, (whole, name: string) => captures[name] ?? whole);
}

/** The redirect for a path, exact rules first, then patterns in file order. */
export function findRedirect(table: HostTable, path: string): { to: string; status: RedirectStatus } | undefined {
  const exact = table.redirects[path];
  if (exact) return exact;
  for (const rule of table.patterns) {
    const to = matchPattern(rule, path);
    if (to !== undefined) return { to, status: rule.status };
  }
  return undefined;
}
