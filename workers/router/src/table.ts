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
  /** Rules without placeholders above the first pattern rule, looked up by exact path. */
  redirects: Record<string, { to: string; status: RedirectStatus }>;
  /**
   * Every rule from the first one with `*` or `:name` on, in file order (a plain rule
   * below a pattern rule stays in order, as on Cloudflare), tried after the exact ones.
   */
  patterns: RedirectRule[];
  /** Path of the host's 404 page in `files`, if it has one. */
  notFound?: string;
}

/** A pattern rule split into segments once, so matching a request splits only its path. */
export interface CompiledRule {
  /** `from`'s segments; a `:name` segment captures one path segment, a final `*` the rest. */
  segs: readonly string[];
  splat: boolean;
  to: string;
  status: RedirectStatus;
}

export function compileRule(rule: RedirectRule): CompiledRule {
  const segs = rule.from.split("/");
  const splat = segs[segs.length - 1] === "*";
  return { segs: splat ? segs.slice(0, -1) : segs, splat, to: rule.to, status: rule.status };
}

/**
 * Matches a path (split on "/") against a compiled rule, as Cloudflare's rules engine
 * does for the forms the sites build accepts: `:name` is one non-empty segment, a final
 * `/*` is the rest of the path (possibly empty, but the slash before it is required:
 * `/api/*` matches `/api/` and `/api/x`, not `/api`). Returns the target with the
 * captures substituted, or undefined.
 */
export function matchCompiled(rule: CompiledRule, got: readonly string[]): string | undefined {
  const { segs } = rule;
  if (rule.splat ? got.length <= segs.length : got.length !== segs.length) return undefined;
  let captures: Record<string, string> | undefined;
  for (let i = 0; i < segs.length; i++) {
    const seg = segs[i]!;
    const have = got[i]!;
    if (seg.charCodeAt(0) === 58 /* ":" */) {
      if (have === "") return undefined;
      (captures ??= {})[seg.slice(1)] = have;
    } else if (seg !== have) {
      return undefined;
    }
  }
  if (rule.splat) (captures ??= {}).splat = got.slice(segs.length).join("/");
  return captures ? substitute(rule.to, captures) : rule.to;
}

/** Matches a path against a pattern rule (compiling it on the way; the Worker keeps rules compiled). */
export function matchPattern(rule: RedirectRule, path: string): string | undefined {
  return matchCompiled(compileRule(rule), path.split("/"));
}

function substitute(to: string, captures: Record<string, string>): string {
  return to.replace(/:([A-Za-z]\w*)/g, (whole, name: string) => captures[name] ?? whole);
}

/**
 * The request's query string is kept when the target has none, as Cloudflare's
 * `_redirects` handling does (`/old?x=1` -> `/new?x=1`); a target's own query wins.
 */
export function withQuery(to: string, search: string): string {
  if (search === "" || to.includes("?")) return to;
  const hash = to.indexOf("#");
  return hash < 0 ? to + search : to.slice(0, hash) + search + to.slice(hash);
}

/**
 * The redirect for a path, as Cloudflare orders `_redirects` rules: the exact rules
 * (those above the first pattern rule, looked up by path), then `patterns` in file
 * order, first match wins. `compiled` is `patterns` compiled, if the caller keeps them.
 */
export function findRedirect(
  table: HostTable,
  path: string,
  compiled: readonly CompiledRule[] = table.patterns.map(compileRule),
): { to: string; status: RedirectStatus } | undefined {
  const exact = table.redirects[path];
  if (exact) return exact;
  if (compiled.length === 0) return undefined;
  const got = path.split("/");
  for (const rule of compiled) {
    const to = matchCompiled(rule, got);
    if (to !== undefined) return { to, status: rule.status };
  }
  return undefined;
}
