// What a client sees of an upstream answer: its headers by allowlist (issue 14.2) and a
// status text from a fixed table. Used by the handler (index.ts) for every forwarded answer.

/**
 * Upstream response headers a client may see. Everything else stays here: above all
 * `anthropic-ratelimit-*` (the organisation's quota on the shared provider key: every
 * tenant could watch the whole fleet's consumption; recorded in the data point instead,
 * metrics.ts), `anthropic-organization-id`, `server`, `via`, `cf-ray`, `set-cookie`,
 * hop-by-hop and any debug header. `request-id` is what Anthropic's SDKs surface as
 * `requestID` (docs.anthropic.com/en/api/errors, "Request id"; @anthropic-ai/sdk client.js
 * logs it) and what its support asks for.
 */
const PASS = ["content-type", "request-id"] as const;
/** Passed only on answers a client may retry (429, 5xx, 529): when to try again. The SDK
 *  reads `retry-after-ms` before `retry-after` (@anthropic-ai/sdk client.js retryRequest). */
const RETRY_AFTER = ["retry-after", "retry-after-ms"] as const;

/**
 * RFC 9110 reason phrases, and Anthropic's 529. The upstream's own reason phrase is not
 * used: HTTP/2 carries none, and workerd turns an empty one for 529 into "Server Error"
 * (checked in workerd 2026-07-30: `new Response(b, {status: 529})`).
 */
export const STATUS_TEXT: Readonly<Record<number, string>> = {
  200: "OK",
  400: "Bad Request",
  401: "Unauthorized",
  402: "Payment Required",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  408: "Request Timeout",
  409: "Conflict",
  411: "Length Required",
  413: "Content Too Large",
  422: "Unprocessable Content",
  429: "Too Many Requests",
  500: "Internal Server Error",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
  529: "Overloaded",
};

export function statusText(status: number): string {
  return STATUS_TEXT[status] ?? (status >= 500 ? "Server Error" : status >= 400 ? "Client Error" : "");
}

/**
 * The headers of a forwarded answer. `exhausted`: the proxy has used what it may spend on
 * retries for this call (forward.ts), so the client is told `x-should-retry: false`; the
 * Anthropic SDKs obey that header before their own rules (@anthropic-ai/sdk client.js,
 * shouldRetry). Otherwise the upstream's own `x-should-retry`, if it sent one, is passed.
 */
export function clientHeaders(up: Headers, status: number, exhausted: boolean): Headers {
  const out = new Headers();
  for (const h of PASS) {
    const v = up.get(h);
    if (v !== null) out.set(h, v);
  }
  if (status === 429 || status >= 500) {
    for (const h of RETRY_AFTER) {
      const v = up.get(h);
      if (v !== null) out.set(h, v);
    }
  }
  const should = up.get("x-should-retry");
  if (exhausted) out.set("x-should-retry", "false");
  else if (should === "true" || should === "false") out.set("x-should-retry", should);
  return out;
}
