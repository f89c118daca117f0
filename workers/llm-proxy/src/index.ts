// The LLM proxy Worker: applications call it instead of Anthropic's API. It runs the
// policy steps (CORS, auth, body size, rate limit), forwards the body as opaque bytes
// with the provider key attached, relays the answer (streams unbuffered) and records the
// call.
import { config, type Config } from "./config.ts";
import type { Env } from "./env.ts";
import { errorResponse, type ErrorType } from "./errors.ts";
import { relayStream, sendWithRetries } from "./forward.ts";
import { worthLogging, writeMetric, type CallRecord } from "./metrics.ts";
import { authenticate, clientAddress } from "./policy/auth.ts";
import { checkDeclaredLength, readLimited } from "./policy/body-size.ts";
import { corsHeaders, preflight } from "./policy/cors.ts";
import { LocalLimits, rateLimit } from "./policy/rate-limit.ts";
import { LEASE_MS } from "./policy/token-bucket.ts";
import { reserveTokens } from "./tokens.ts";
import { lookupTenant, tenantSettings } from "./tenant-cache.ts";
import { operatorAuthorized, statusBody } from "./status.ts";
import { emptyUsage, usageFromJson, type Usage } from "./usage.ts";

export { RateLimiter } from "./rate-limiter.ts";

const PROXY_ROUTES = new Set(["/v1/messages", "/v1/messages/count_tokens"]);
const STATUS_PATH = "/_edgefleet/status";

// Request headers the upstream receives from the client; everything else (the
// tenant's key above all) stays here. The provider key is added server-side.
const FORWARD_HEADERS = ["content-type", "accept", "anthropic-version", "anthropic-beta"];
// Upstream response headers the client never sees.
const DROP_RESPONSE_HEADERS = ["content-length", "content-encoding", "transfer-encoding", "connection", "keep-alive", "set-cookie", "anthropic-organization-id"];

const limits = new LocalLimits();
// Failed authentications per client address (the same Durable Object class, named
// `authfail:<address>`): its own isolate memory, so tenants' leases are untouched.
const authFailures = new LocalLimits();
const decoder = new TextDecoder();
// JSON answers up to this size are parsed for usage before they are sent (a few µs);
// bigger ones after, so parsing never delays them noticeably.
const JSON_INLINE_LIMIT = 64 * 1024;

function log(line: Record<string, unknown>): void {
  // One structured line per unusual call (metrics.ts worthLogging); ids and numbers
  // only, never a key or token.
  console.log(JSON.stringify(line));
}

async function handle(request: Request, env: Env, ctx: ExecutionContext): Promise<Response> {
  const started = Date.now();
  const cfg = config(env);
  const requestId = "req_ef_" + crypto.randomUUID().replace(/-/g, "");
  const url = new URL(request.url);
  const route = url.pathname;
  const cors = corsHeaders(request.headers.get("origin"), cfg.corsOrigins);
  let tenantId = "";

  let failedOpen = false;
  // Writes the call's data point (and a log line if it is unusual). Synchronous: with
  // the real Analytics Engine binding nothing is left pending after the response.
  const record = (status: number, extra: Partial<CallRecord> = {}) => {
    const now = Date.now();
    const r: CallRecord = { requestId, tenant: tenantId, route, status, usage: emptyUsage(), latencyMs: now - started, ttfbMs: now - started, retries: 0, ...extra };
    if (worthLogging(r, failedOpen)) {
      log({ requestId, tenant: r.tenant, route, status, error: r.usage.errorType || undefined, retries: r.retries, latencyMs: r.latencyMs, rateLimiter: failedOpen ? "failed_open" : undefined });
    }
    const pending = writeMetric(env.METRICS, r, cfg.sampleRate);
    if (pending !== undefined) ctx.waitUntil(pending);
  };
  const fail = (status: number, type: ErrorType, message: string, headers: Record<string, string> = {}, retries = 0) => {
    const u = emptyUsage();
    u.errorType = type;
    record(status, { usage: u, retries });
    return errorResponse(status, type, message, requestId, { ...cors, ...headers });
  };

  if (route === STATUS_PATH) {
    if (request.method !== "GET") return fail(405, "invalid_request_error", "method not allowed", { allow: "GET" });
    if (!(await operatorAuthorized(request.headers, env.OPERATOR_TOKEN))) return fail(401, "authentication_error", "operator token required");
    return new Response(JSON.stringify(await statusBody(env)), {
      headers: { "content-type": "application/json", "request-id": requestId, "cache-control": "no-store" },
    });
  }
  if (!PROXY_ROUTES.has(route)) return fail(404, "not_found_error", `no route for ${request.method} ${route}`);
  if (request.method === "OPTIONS") {
    const v = preflight(request.headers, cfg.corsOrigins);
    if (v.kind === "forbidden") return errorResponse(403, "permission_error", v.message, requestId);
    return new Response(null, { status: 204, headers: { ...v.headers, "request-id": requestId } });
  }
  if (request.method !== "POST") return fail(405, "invalid_request_error", "method not allowed", { allow: "POST, OPTIONS" });

  // Policy steps, cheapest first; each returns a verdict acted on here.
  // An address that failed too often is refused before any KV read; only keys this
  // isolate already knows still work from it (tenant-cache.ts, policy/auth.ts).
  const address = clientAddress(request.headers);
  const blockedMs = authFailures.deniedFor("authfail:" + address, Date.now());
  const auth = await authenticate(request.headers, (h) => lookupTenant(env, h, blockedMs !== undefined));
  if (!auth.ok) {
    if (blockedMs !== undefined && auth.presented) {
      return fail(429, "rate_limit_error", "too many failed authentications from this address", { "retry-after": String(Math.max(1, Math.ceil(blockedMs / 1000))) });
    }
    if (auth.presented) {
      const s = tenantSettings(env);
      const name = "authfail:" + address;
      // Counted in the Durable Object (every isolate and location shares the count); a
      // failure of the counter never turns a 401 into something else.
      await rateLimit(name, (cap) => env.RATE_LIMITER.get(env.RATE_LIMITER.idFromName(name)).take(s.authFailPerMinute, s.authFailBurst, cap), authFailures, Date.now, true, LEASE_MS);
    }
    return fail(401, "authentication_error", auth.message);
  }
  const tenant = auth.tenant;
  tenantId = tenant.id;

  const declared = checkDeclaredLength(request.headers, cfg.maxBodyBytes);
  if (!declared.ok) return fail(413, "request_too_large", declared.message);

  // A tenant with token limits reserves tokens in the same Durable Object call as its
  // request token (tokens.ts), so its body is read first; without them, nothing changes.
  const tokenLimited = (tenant.inputTokensPerMinute ?? 0) > 0 || (tenant.outputTokensPerMinute ?? 0) > 0;
  let body: ArrayBuffer | undefined;
  if (tokenLimited) {
    body = await readLimited(request, cfg.maxBodyBytes);
    if (body === undefined) return fail(413, "request_too_large", `request body exceeds the ${cfg.maxBodyBytes}-byte limit`);
  }
  const tokens = await reserveTokens(env, cfg, ctx, limits, tenant, route, request.headers, body);
  const limit = tokens.verdict;
  if (!limit.ok) {
    return fail(limit.status, limit.status === 429 ? "rate_limit_error" : "api_error", limit.message, limit.headers);
  }
  failedOpen = limit.failedOpen;
  // Every way out below settles the reservation (idempotent): to the usage read from the
  // answer, or to nothing when no answer came.
  const settle = tokens.settle;

  if (body === undefined) body = await readLimited(request, cfg.maxBodyBytes);
  if (body === undefined) return fail(413, "request_too_large", `request body exceeds the ${cfg.maxBodyBytes}-byte limit`);

  const providerKey = env.ANTHROPIC_API_KEY;
  if (providerKey === undefined || providerKey === "") {
    settle(undefined);
    return fail(500, "api_error", "proxy is not configured with a provider key");
  }

  const headers = new Headers();
  for (const h of FORWARD_HEADERS) {
    const v = request.headers.get(h);
    if (v !== null) headers.set(h, v);
  }
  headers.set("x-api-key", providerKey);

  const up = await sendWithRetries(cfg.upstream + route, { method: "POST", headers, body }, cfg);
  if (up.response === undefined) {
    settle(undefined);
    return fail(502, "api_error", "upstream unreachable", {}, up.retries);
  }
  const res = up.response;
  const ttfbMs = Date.now() - started;
  const out = new Headers(res.headers);
  for (const h of DROP_RESPONSE_HEADERS) out.delete(h);
  for (const [k, v] of Object.entries({ ...cors, ...limit.headers })) out.set(k, v);
  out.set("edgefleet-request-id", requestId);
  if (!out.has("request-id")) out.set("request-id", requestId);
  if ((out.get("content-type") ?? "").startsWith("text/event-stream")) {
    out.set("cache-control", "no-cache");
    out.set("x-accel-buffering", "no");
  }

  const init = { status: res.status, statusText: res.statusText, headers: out };
  if (up.stream === undefined) {
    // JSON (read whole by sendWithRetries): record, then answer with the same bytes.
    const bytes = up.bytes ?? new ArrayBuffer(0);
    const done = (usage: Usage) => (settle(usage), record(res.status, { usage, ttfbMs, retries: up.retries, latencyMs: Date.now() - started }));
    if (bytes.byteLength <= JSON_INLINE_LIMIT) done(usageFromJson(decoder.decode(bytes)));
    // A big answer is not held up by parsing it; the runtime finishes that after.
    else ctx.waitUntil(Promise.resolve().then(() => done(usageFromJson(decoder.decode(bytes)))));
    return new Response(bytes, init);
  }
  // SSE: relayed as it comes; the data point is written when the stream ends. waitUntil
  // keeps the request alive to write it even if the client goes away mid-stream.
  let finished!: () => void;
  ctx.waitUntil(new Promise<void>((r) => (finished = r)));
  const stream = relayStream(up.stream, cfg.sseScanLagMs, ({ usage, interrupted }) => {
    try {
      settle(usage, interrupted);
      record(res.status, { usage, ttfbMs, retries: up.retries, latencyMs: Date.now() - started });
    } finally {
      finished();
    }
  });
  return new Response(stream, init);
}

export default {
  async fetch(request, env, ctx) {
    try {
      return await handle(request, env, ctx);
    } catch (e) {
      // Never echo the error: it could quote a header. Log its class only.
      console.error(JSON.stringify({ error: "unhandled", name: e instanceof Error ? e.name : typeof e }));
      return errorResponse(500, "api_error", "internal error", "req_ef_" + crypto.randomUUID().replace(/-/g, ""));
    }
  },
} satisfies ExportedHandler<Env>;
