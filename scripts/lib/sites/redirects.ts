// Parses a site's `_redirects` file (Cloudflare Pages / Workers static assets format)
// for the sites build. Strict: every problem is reported with its line, and a file
// with any problem is rejected whole (Cloudflare's own parser skips bad lines with a
// warning, which would publish a site that silently lacks a redirect).
//
// Why hand-written (checked on npm 2026-11, see docs/router.md): Cloudflare's parser
// (workers-sdk packages/workers-shared/utils/configuration/parseRedirects.ts) is not
// published as a library; it is bundled inside wrangler and miniflare, and
// @cloudflare/workers-shared ships only built Workers. `cloudflare-redirect-parser`
// skips bad lines without a line number and builds regexes from unescaped input;
// `redirects-in-workers` only exports a request-time evaluator. The rules below follow
// Cloudflare's parser and rules engine for the subset the router supports:
// https://developers.cloudflare.com/workers/static-assets/redirects/
import { compileRule, matchCompiled, REDIRECT_STATUSES, type RedirectRule, type RedirectStatus } from "../../../workers/router/src/table.ts";

export interface RedirectProblem {
  line: number;
  message: string;
}

export interface ParsedRedirects {
  /** Exact rules, by path. */
  exact: Record<string, { to: string; status: RedirectStatus }>;
  /** Rules with a splat or placeholders, in file order. */
  patterns: RedirectRule[];
  problems: RedirectProblem[];
}

// Cloudflare's limits: 2,000 static and 100 dynamic rules, 1,000 characters a line.
export const MAX_EXACT_RULES = 2000;
export const MAX_PATTERN_RULES = 100;
export const MAX_LINE_LENGTH = 1000;

/** A path as a request's `URL.pathname` spells it (percent-encoded, dot segments resolved). */
function normalizePath(path: string): string {
  return new URL(path, "https://h.invalid").pathname;
}

/**
 * True when a rule matches its own (relative) target whatever it captured, so a
 * redirect would follow itself forever: '/a /a?x=1', '/* /index.html',
 * '/blog/* /blog/new/:splat'. Captures in the target are probed with a segment no
 * source can spell literally (a space; sources are percent-encoded).
 */
function redirectsToItself(rule: RedirectRule, pattern: boolean): boolean {
  if (!rule.to.startsWith("/")) return false;
  const probe = normalizePath(rule.to.split(/[?#]/)[0]!).replace(/:[A-Za-z]\w*/g, " ");
  return pattern ? matchCompiled(compileRule(rule), probe.split("/")) !== undefined : probe === rule.from;
}

export function parseRedirects(text: string): ParsedRedirects {
  const exact: ParsedRedirects["exact"] = {};
  const patterns: RedirectRule[] = [];
  const problems: RedirectProblem[] = [];
  const seen = new Set<string>();
  // As on Cloudflare: plain rules above the first rule with `*` or `:name` are looked up
  // by path; from that rule on, every rule is tried in file order (and counts as dynamic).
  let dynamic = false;
  const lines = text.split(/\r?\n/);
  for (const [i, raw] of lines.entries()) {
    const lineNo = i + 1;
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const bad = (message: string) => problems.push({ line: lineNo, message });
    if (line.length > MAX_LINE_LENGTH) {
      bad(`line is longer than ${MAX_LINE_LENGTH} characters`);
      continue;
    }
    const tokens = line.split(/\s+/);
    const comment = tokens.findIndex((t) => t.startsWith("#"));
    if (comment >= 0) {
      bad("a comment must be a line of its own, starting with '#' (Cloudflare reads a trailing '# ...' as more fields)");
      continue;
    }
    if (tokens.length < 2 || tokens.length > 3) {
      bad(`expected 'FROM TO [STATUS]' (2 or 3 fields), got ${tokens.length}`);
      continue;
    }
    const [rawFrom, to, statusText = "302"] = tokens as [string, string, string?];
    if (!rawFrom.startsWith("/")) {
      bad(`source '${rawFrom}' must be a path starting with '/'`);
      continue;
    }
    if (rawFrom.includes("?") || rawFrom.includes("#")) {
      bad(`source '${rawFrom}' must not contain a query or fragment`);
      continue;
    }
    const segs = rawFrom.split("/");
    const stars = rawFrom.split("*").length - 1;
    if (stars > 1 || (stars === 1 && segs[segs.length - 1] !== "*")) {
      bad(`source '${rawFrom}': only one '*', as the last path segment ('/path/*'), is supported`);
      continue;
    }
    const placeholders = segs.filter((seg) => seg.startsWith(":")).map((seg) => seg.slice(1));
    if (placeholders.some((p) => !/^[A-Za-z]\w*$/.test(p)) || segs.some((seg) => !seg.startsWith(":") && seg.includes(":"))) {
      bad(`source '${rawFrom}': a placeholder must be a whole path segment, ':name' (letters, digits, '_')`);
      continue;
    }
    if (new Set(placeholders).size !== placeholders.length || placeholders.includes("splat")) {
      bad(`source '${rawFrom}': each placeholder name may appear once (and ':splat' is the '*')`);
      continue;
    }
    const from = normalizePath(rawFrom);
    if (!to.startsWith("/") && !/^https:\/\/[^/\s]+/i.test(to)) {
      bad(`target '${to}' must be a path starting with '/' or an https:// URL`);
      continue;
    }
    if (!/^\d{3}$/.test(statusText)) {
      bad(`status '${statusText}' is not a number`);
      continue;
    }
    const status = Number(statusText);
    if (status === 200) {
      bad("status 200 (rewrite/proxy) is not supported by the router; use 301, 302, 303, 307 or 308");
      continue;
    }
    if (!REDIRECT_STATUSES.includes(status)) {
      bad(`status ${status} is not a redirect; use 301, 302, 303, 307 or 308`);
      continue;
    }
    const known = new Set([...placeholders, ...(stars ? ["splat"] : [])]);
    const unknown = [...to.replace(/^https:\/\/[^/]+/i, "").matchAll(/:([A-Za-z]\w*)/g)].map((m) => m[1]!).filter((p) => !known.has(p));
    if (unknown.length > 0) {
      bad(`target uses ${unknown.map((u) => `:${u}`).join(", ")}, which the source does not capture`);
      continue;
    }
    if (seen.has(from)) {
      bad(`duplicate rule for '${from}'`);
      continue;
    }
    seen.add(from);
    const rule: RedirectRule = { from, to, status: status as RedirectStatus };
    if (redirectsToItself(rule, known.size > 0)) {
      bad(`'${rawFrom}' redirects to '${to}', which it matches itself (a redirect loop)`);
      continue;
    }
    if (known.size > 0) dynamic = true;
    if (!dynamic) {
      exact[from] = { to, status: rule.status };
      if (Object.keys(exact).length > MAX_EXACT_RULES) bad(`more than ${MAX_EXACT_RULES} rules without '*' or ':placeholder' above the first rule with one`);
    } else {
      patterns.push(rule);
      if (patterns.length > MAX_PATTERN_RULES) {
        bad(`more than ${MAX_PATTERN_RULES} rules from the first rule with '*' or ':placeholder' on (Cloudflare counts every rule below it as dynamic; move plain rules above it)`);
      }
    }
  }
  return { exact, patterns, problems };
}
