// Policy step: CORS from an origin allowlist (CORS_ORIGINS; "*" allows any origin).
// Preflights are answered here and never reach the upstream.

// x-should-retry and retry-after-ms: the SDKs read them to decide on a retry (respond.ts).
const EXPOSE = "request-id, edgefleet-request-id, retry-after, retry-after-ms, x-should-retry, ratelimit-limit, ratelimit-remaining, ratelimit-reset";

export type CorsVerdict =
  | { kind: "preflight"; headers: Record<string, string> }
  | { kind: "forbidden"; message: string };

export function allowedOrigin(origin: string | null, allow: ReadonlySet<string>): boolean {
  return origin !== null && (allow.has(origin) || allow.has("*"));
}

/** Headers to add to an actual response (empty when the origin is not allowed). */
export function corsHeaders(origin: string | null, allow: ReadonlySet<string>): Record<string, string> {
  if (!allowedOrigin(origin, allow)) return {};
  return { "access-control-allow-origin": origin as string, "access-control-expose-headers": EXPOSE, vary: "Origin" };
}

export function preflight(headers: Headers, allow: ReadonlySet<string>): CorsVerdict {
  const origin = headers.get("origin");
  if (!allowedOrigin(origin, allow)) return { kind: "forbidden", message: "origin not allowed" };
  return {
    kind: "preflight",
    headers: {
      "access-control-allow-origin": origin as string,
      "access-control-allow-methods": "GET, POST, OPTIONS", // GET: /v1/models
      // The origin is trusted: echo what it asks for (SDKs send x-stainless-* headers).
      "access-control-allow-headers":
        headers.get("access-control-request-headers") ?? "x-api-key, authorization, content-type, anthropic-version, anthropic-beta",
      "access-control-max-age": "600",
      vary: "Origin",
    },
  };
}
