// Parses a site's `_redirects` file (Cloudflare Pages / Workers static assets format)
// for the sites build. Strict: every problem is reported with its line, and a file
// with any problem is rejected whole (Cloudflare's own parser skips bad lines, which
// would publish a site that silently lacks a redirect).
//
// Why hand-written: Cloudflare's parser (workers-shared/utils/configuration/
// parseRedirects.ts) is only bundled inside wrangler and miniflare, not exported, and
// @cloudflare/pages-shared does not export it either (last checked 2026-11). The
// format is small; this follows its documented rules:
// https://developers.cloudflare.com/workers/static-assets/redirects/
import { REDIRECT_STATUSES, type RedirectRule, type RedirectStatus } from "../../../workers/router/src/table.ts";

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

export function parseRedirects(text: string): ParsedRedirects {
  const exact: ParsedRedirects["exact"] = {};
  const patterns: RedirectRule[] = [];
  const problems: RedirectProblem[] = [];
  const seen = new Set<string>();
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
    const tokens = line.replace(/\s+#.*$/, "").split(/\s+/);
    if (tokens.length < 2 || tokens.length > 3) {
      bad(`expected 'FROM TO [STATUS]' (2 or 3 fields), got ${tokens.length}`);
      continue;
    }
    const [from, to, statusText = "302"] = tokens as [string, string, string?];
    if (!from.startsWith("/")) {
      bad(`source '${from}' must be a path starting with '/'`);
      continue;
    }
    if (from.includes("?") || from.includes("#")) {
      bad(`source '${from}' must not contain a query or fragment`);
      continue;
    }
    const stars = from.split("*").length - 1;
    if (stars > 1 || (stars === 1 && !from.endsWith("/*") && from !== "*")) {
      bad(`source '${from}': only one '*', as the last path segment, is supported`);
      continue;
    }
    if (!to.startsWith("/") && !/^https?:\/\/[^/\s]+/i.test(to)) {
      bad(`target '${to}' must be a path starting with '/' or an http(s) URL`);
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
    const placeholders = [...from.matchAll(/:([A-Za-z]\w*)/g)].map((m) => m[1]!);
    const known = new Set([...placeholders, ...(stars ? ["splat"] : [])]);
    const unknown = [...to.replace(/^https?:\/\/[^/]+/i, "").matchAll(/:([A-Za-z]\w*)/g)].map((m) => m[1]!).filter((p) => !known.has(p));
    if (unknown.length > 0) {
      bad(`target uses ${unknown.map((u) => `:${u}`).join(", ")}, which the source does not capture`);
      continue;
    }
    if (seen.has(from)) {
      bad(`duplicate rule for '${from}'`);
      continue;
    }
    seen.add(from);
    if (from === to) {
      bad(`'${from}' redirects to itself`);
      continue;
    }
    if (known.size === 0) {
      exact[from] = { to, status: status as RedirectStatus };
      if (Object.keys(exact).length > MAX_EXACT_RULES) bad(`more than ${MAX_EXACT_RULES} exact rules`);
    } else {
      patterns.push({ from, to, status: status as RedirectStatus });
      if (patterns.length > MAX_PATTERN_RULES) bad(`more than ${MAX_PATTERN_RULES} rules with '*' or ':placeholder'`);
    }
  }
  return { exact, patterns, problems };
}
