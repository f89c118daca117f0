// The one way edgefleet's tools and the Pulumi program make a Cloudflare API client: with
// the API token they were given and nothing else. The SDK's constructor otherwise takes
// CLOUDFLARE_API_KEY, CLOUDFLARE_EMAIL, CLOUDFLARE_API_USER_SERVICE_KEY and
// CLOUDFLARE_BASE_URL from the environment and sends every credential it finds
// (node_modules/cloudflare/client.js: the constructor's defaults and authHeaders): a global
// API key left in an operator's shell would ride beside the token (the API then
// authenticates with the global key: cloudflare/cloudflare-typescript#2454), and to
// whatever host CLOUDFLARE_BASE_URL names. Each tool decides its base URL itself (its own
// option or variable, documented in its --help).
import Cloudflare, { type ClientOptions } from "cloudflare";

export const CLOUDFLARE_API_BASE = "https://api.cloudflare.com/client/v4";

/** The longest retry-after an interactive command (usage, archive, tenants) leaves the
 *  SDK to wait out: past it the call fails at once, saying how long Cloudflare asked for.
 *  The SDK sleeps whatever a 429 or 5xx asks, uncapped (client.js retryRequest): the
 *  account-wide limit's 5-minute block made a report sit silent for 10 minutes (two
 *  retries), and a day's retry-after for a day. Batch commands (import, sites publish,
 *  dead-letters replay) wait it out, as they document. */
export const MAX_RETRY_AFTER_MS = 60_000;

/** How long the SDK will wait before retrying, in ms, read as it reads it (client.js
 *  retryRequest): retry-after-ms when it is a nonzero number, else retry-after in seconds
 *  or as an HTTP date. */
function retryAfterMsOf(h: Headers): number | undefined {
  const ms = Number.parseFloat(h.get("retry-after-ms") ?? "");
  if (!Number.isNaN(ms) && ms !== 0) return ms;
  const v = h.get("retry-after");
  if (v === null) return undefined;
  const s = Number.parseFloat(v);
  if (!Number.isNaN(s)) return s * 1000;
  const t = Date.parse(v);
  return Number.isNaN(t) ? undefined : t - Date.now();
}

/**
 * The fetch the client sends with, around the caller's own (a rate limiter) or the global.
 * Error answers (4xx, 5xx) only; anything else passes untouched:
 * - with `maxRetryAfterMs`, an answer the SDK would retry after longer than that is marked
 *   `x-should-retry: false` (the SDK obeys it before its own rules: client.js
 *   shouldRetry), so the call fails at once with the status and its retry-after;
 * - the body has the token replaced by `***`: the SDK puts the body's messages in its
 *   error, and an endpoint (or a proxy before it) that echoes the Authorization header
 *   would otherwise print the token with it.
 */
function guardedFetch(apiToken: string, maxRetryAfterMs: number | undefined, inner: typeof fetch): typeof fetch {
  return async (input, init) => {
    const res = await inner(input, init);
    if (res.status < 400) return res;
    const wait = maxRetryAfterMs !== undefined && (res.status === 429 || res.status === 408 || res.status === 409 || res.status >= 500) ? retryAfterMsOf(res.headers) : undefined;
    const tooLong = wait !== undefined && wait > maxRetryAfterMs!;
    const text = await res.text();
    const body = apiToken.length >= 8 ? text.split(apiToken).join("***") : text;
    const headers = new Headers(res.headers);
    headers.delete("content-length");
    if (tooLong) headers.set("x-should-retry", "false");
    return new Response(body, { status: res.status, statusText: res.statusText, headers });
  };
}

export function cloudflareClient(
  o: { apiToken: string; baseURL?: string | undefined; maxRetryAfterMs?: number } & Omit<ClientOptions, "apiToken" | "apiKey" | "apiEmail" | "userServiceKey" | "baseURL">,
): Cloudflare {
  const { apiToken, baseURL, maxRetryAfterMs, fetch: inner, ...rest } = o;
  const fetchWith = guardedFetch(apiToken, maxRetryAfterMs, (inner as typeof fetch | undefined) ?? ((i, init) => fetch(i, init)));
  return new Cloudflare({ ...rest, fetch: fetchWith as ClientOptions["fetch"], apiToken, apiKey: null, apiEmail: null, userServiceKey: null, baseURL: baseURL || CLOUDFLARE_API_BASE });
}
