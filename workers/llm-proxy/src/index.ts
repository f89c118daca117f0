// The LLM proxy Worker: applications call it instead of Anthropic's API. It runs the
// policy steps (CORS, auth, body size, rate limit), forwards the body as opaque bytes
// with the provider key attached, relays the answer (streams unbuffered) and records the
// call: a metrics data point, and its metering (metering.ts: usage event, archive).
import { config, type Config } from "./config.ts";
import type { Env } from "./env.ts";
import { errorResponse, errorTypeOf, type ErrorType } from "./errors.ts";
import { relayStream, sendWithRetries } from "./forward.ts";
import { callMeter, requestedModel } from "./metering.ts";
import { quotaFromHeaders, worthLogging, writeMetric, type CallRecord } from "./metrics.ts";
import { authenticate, clientAddress } from "./policy/auth.ts";
import { checkDeclaredLength, takeBody } from "./policy/body-size.ts";
import { corsHeaders, preflight } from "./policy/cors.ts";
import { LocalLimits, rateLimit } from "./policy/rate-limit.ts";
import { LEASE_MS } from "./policy/token-bucket.ts";
import { clientHeaders, statusText } from "./respond.ts";
import { reserveTokens, reservesFromBody } from "./tokens.ts";
import { lookupTenant, tenantSettings } from "./tenant-cache.ts";
import { operatorAuthorized, statusBody } from "./status.ts";
import { emptyUsage, usageFromJson, type Usage } from "./usage.ts";
import type { StreamEnd } from "../../shared/usage-event.ts";

export { RateLimiter } from "./rate-limiter.ts";

// Forwarded routes and their method. GET /v1/models (and /v1/models/{id}) list what the
// provider key can use; they carry nothing of other tenants.
const PROXY_ROUTES = new Map([
  ["/v1/messages", "POST"],
  ["/v1/messages/count_tokens", "POST"],
  ["/v1/models", "GET"],
]);
const MODEL_ROUTE = /^\/v1\/models\/[A-Za-z0-9._:@-]{1,128}$/;
// Message Batches and Files are scoped to the organisation's key, not to a tenant:
// passing them through would show every tenant's batches and files to every tenant.
const UNSUPPORTED = /^\/v1\/(messages\/batches|files)(\/|$)/;
const STATUS_PATH = "/_edgefleet/status";

// Request headers the upstream receives from the client; everything else (the
// tenant's key above all) stays here. The provider key is added server-side. Response
// headers go back by allowlist (respond.ts).
const FORWARD_HEADERS = ["content-type", "accept", "anthropic-version", "anthropic-beta"];

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
  let budgetFailedOpen = false;
  // Writes the call's data point (and a log line if it is unusual). Synchronous: with
  // the real Analytics Engine binding nothing is left pending after the response.
  const record = (status: number, extra: Partial<CallRecord> = {}) => {
    const now = Date.now();
    const r: CallRecord = { requestId, tenant: tenantId, route, status, usage: emptyUsage(), latencyMs: now - started, ttfbMs: now - started, retries: 0, ...extra };
    if (worthLogging(r, failedOpen || budgetFailedOpen)) {
      log({ requestId, tenant: r.tenant, route, status, error: r.usage.errorType || undefined, retries: r.retries, latencyMs: r.latencyMs, rateLimiter: failedOpen ? "failed_open" : undefined, budget: budgetFailedOpen ? "failed_open" : undefined });
    }
    const pending = writeMetric(env.METRICS, r, cfg.sampleRate);
    if (pending !== undefined) ctx.waitUntil(pending);
  };
  const fail = (status: number, type: ErrorType, message: string, headers: Record<string, string> = {}, retries = 0, details?: { error_code: string }) => {
    const u = emptyUsage();
    u.errorType = type;
    record(status, { usage: u, retries });
    return errorResponse(status, type, message, requestId, { ...cors, ...headers }, details);
  };

  if (route === STATUS_PATH) {
    if (request.method !== "GET") return fail(405, "invalid_request_error", "method not allowed", { allow: "GET" });
    if (!(await operatorAuthorized(request.headers, env.OPERATOR_TOKEN))) return fail(401, "authentication_error", "operator token required");
    return new Response(JSON.stringify(await statusBody(env)), {
      headers: { "content-type": "application/json", "request-id": requestId, "cache-control": "no-store" },
    });
  }
  if (UNSUPPORTED.test(route)) {
    return fail(403, "permission_error", "the Message Batches and Files APIs are not available through this proxy: they are scoped to the organisation's key, not to a tenant");
  }
  const method = PROXY_ROUTES.get(route) ?? (MODEL_ROUTE.test(route) ? "GET" : undefined);
  if (method === undefined) return fail(404, "not_found_error", `no route for ${request.method} ${route}`);
  if (request.method === "OPTIONS") {
    const v = preflight(request.headers, cfg.corsOrigins);
    if (v.kind === "forbidden") return errorResponse(403, "permission_error", v.message, requestId);
    return new Response(null, { status: 204, headers: { ...v.headers, "request-id": requestId } });
  }
  if (request.method !== method) return fail(405, "invalid_request_error", "method not allowed", { allow: `${method}, OPTIONS` });

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
      // waitUntil: a counter call past its deadline is kept alive to land (ask()).
      await rateLimit(name, (cap, ask) => env.RATE_LIMITER.get(env.RATE_LIMITER.idFromName(name)).take(s.authFailPerMinute, s.authFailBurst, cap, ask), authFailures, Date.now, true, LEASE_MS, undefined, undefined, undefined, (p) => ctx.waitUntil(p));
    }
    return fail(401, "authentication_error", auth.message);
  }
  const tenant = auth.tenant;
  tenantId = tenant.id;

  const declared = checkDeclaredLength(request.headers, cfg.maxBodyBytes);
  if (!declared.ok) return fail(413, "request_too_large", declared.message);
  // Every refusal that needs no rate-limit token comes before the rate limit (issue 14.9).
  const providerKey = env.ANTHROPIC_API_KEY;
  if (providerKey === undefined || providerKey === "") return fail(500, "api_error", "proxy is not configured with a provider key");
  let body = method === "GET" ? undefined : await takeBody(request, cfg.bufferBodyBytes, cfg.maxBodyBytes);
  if (body?.kind === "refused") {
    return fail(body.status, body.status === 413 ? "request_too_large" : "invalid_request_error", body.message);
  }

  // A tenant with token limits or a spend budget reserves tokens and money in the same
  // Durable Object call as its request token (tokens.ts), from the body's bytes and its
  // max_tokens: such a tenant's body is therefore read whole even above BUFFER_BODY_BYTES
  // (up to MAX_BODY_BYTES, which its content-length was checked against). Without token
  // limits and budgets nothing changes.
  if (reservesFromBody(tenant) && body?.kind === "stream") body = { kind: "bytes", bytes: await new Response(body.stream).arrayBuffer() };
  const tokens = await reserveTokens(env, cfg, ctx, limits, tenant, route, request.headers, body?.kind === "bytes" ? body.bytes : undefined);
  const limit = tokens.verdict;
  budgetFailedOpen = tokens.budgetFailedOpen === true;
  if (!limit.ok) {
    // An exhausted budget: 402 billing_error; one held by calls in flight (not spent):
    // 429, retried shortly (docs/llm-proxy.md "Spend budgets").
    if (limit.status === 402 && limit.held === true) return fail(429, "rate_limit_error", limit.message, limit.headers, 0, { error_code: "edgefleet_budget_held" });
    if (limit.status === 402) return fail(402, "billing_error", limit.message, limit.headers, 0, { error_code: "edgefleet_budget_exhausted" });
    // count_tokens refused the request: its own answer (the call would be refused alike).
    if (limit.status === 400 && limit.upstream !== undefined) return fail(limit.upstream.status, errorTypeOf(limit.upstream.type), limit.message, limit.headers);
    const type: ErrorType = limit.status === 429 ? "rate_limit_error" : limit.status === 400 ? "invalid_request_error" : limit.status === 403 ? "permission_error" : "api_error";
    return fail(limit.status, type, limit.message, limit.headers);
  }
  failedOpen = limit.failedOpen;
  // Every way out below settles the reservation (idempotent): to the usage read from the
  // answer, or to nothing when no answer came.
  const settle = tokens.settle;
  // Usage event and archive (METERING); everything it does runs in waitUntil.
  const requested = () => requestedModel(body?.kind === "bytes" ? body.bytes : undefined, tokens.model);
  const meter = callMeter(env, ctx, cfg, { requestId, tenantId, archive: tenant.archive === true, route, startedMs: started, requestedModel: requested }, log);

  const headers = new Headers();
  for (const h of FORWARD_HEADERS) {
    const v = request.headers.get(h);
    if (v !== null) headers.set(h, v);
  }
  headers.set("x-api-key", providerKey);

  // The query string goes through as sent (e.g. `?beta=true`, issue 14.5).
  let outBody = body === undefined ? null : body.kind === "bytes" ? body.bytes : body.stream;
  if (meter) outBody = meter.request(outBody, request.headers);
  // A call holding a reservation retries only attempts the upstream cannot have billed
  // (forward.ts `again`): the reservation covers one billed attempt.
  const up = await sendWithRetries(cfg.upstream + route + url.search, { method, headers, body: outBody }, cfg, started, tokens.holds === true);
  const retryHint: Record<string, string> = up.exhausted ? { "x-should-retry": "false" } : {};
  if (up.response === undefined) {
    // An attempt the upstream may have billed (forward.ts `again`) keeps the reservation,
    // and the ledger gets the call, with no usage (unknown) and what the budget kept.
    const charged = settle(undefined, up.billable === true);
    // Each failure's status, its name in the usage event, and what the client is told.
    const [status, why, message] =
      up.failure === "timeout"
        ? ([504, "timeout", "upstream did not answer in time"] as const)
        : up.failure === "cut"
          ? ([502, "broke_off", "the upstream's answer broke off before it was whole"] as const)
          : ([502, "unreachable", "upstream unreachable"] as const);
    if (up.billable === true || up.maybeBilledRetries !== undefined) meter?.noAnswer(status, why, charged, up.maybeBilledRetries);
    // The call was admitted: its answer carries the tenant's rate-limit headers like any other.
    const h = { ...limit.headers, ...retryHint };
    // A call that holds a reservation was not retried after such an attempt: say why.
    const held = tokens.holds === true && up.billable === true ? "; it may have been billed, so this call keeps its reservation and was not retried by the proxy (a retry is a new call)" : "";
    return fail(status, "api_error", message + held, h, up.retries);
  }
  const res = up.response;
  const ttfbMs = Date.now() - started;
  const out = clientHeaders(res.headers, res.status, up.exhausted);
  for (const [k, v] of Object.entries({ ...cors, ...limit.headers })) out.set(k, v);
  out.set("edgefleet-request-id", requestId);
  if (!out.has("request-id")) out.set("request-id", requestId);
  if ((out.get("content-type") ?? "").startsWith("text/event-stream")) {
    out.set("cache-control", "no-cache");
    out.set("x-accel-buffering", "no");
  }

  // Settles, records and meters the answered call: each step runs even when one before it
  // threw (a bug, a binding that throws), so the usage event and the archive's response
  // object (a stream's is written once meter.done has run) never depend on the budget or
  // the metrics point; the error is still thrown after them.
  const answered = (usage: Usage, ended: StreamEnd | undefined, interrupted: boolean) => {
    let charged: number | undefined;
    try {
      charged = settle(usage, interrupted);
    } finally {
      try {
        // The provider's quota is read here, after the answer (a stream's first byte does
        // not wait for it).
        record(res.status, { usage, ttfbMs, retries: up.retries, latencyMs: Date.now() - started, quota: quotaFromHeaders(res.headers) });
      } finally {
        meter?.done(res.status, usage, ended, charged, up.maybeBilledRetries);
      }
    }
  };

  const init = { status: res.status, statusText: statusText(res.status), headers: out };
  if (up.stream === undefined) {
    // JSON (read whole by sendWithRetries): record, then answer with the same bytes.
    const bytes = up.bytes ?? new ArrayBuffer(0);
    meter?.responseBytes(bytes, res.status, out.get("content-type"));
    if (bytes.byteLength <= JSON_INLINE_LIMIT) answered(usageFromJson(decoder.decode(bytes)), undefined, false);
    // A big answer is not held up by parsing it; the runtime finishes that after.
    else ctx.waitUntil(Promise.resolve().then(() => answered(usageFromJson(decoder.decode(bytes)), undefined, false)));
    return new Response(bytes, init);
  }
  // SSE: relayed as it comes; the data point is written when the stream ends. waitUntil
  // keeps the request alive to write it even if the client goes away mid-stream.
  let finished!: () => void;
  ctx.waitUntil(new Promise<void>((r) => (finished = r)));
  const relayed = relayStream(up.stream, { lagMs: cfg.sseScanLagMs, idleMs: cfg.sseIdleTimeoutMs, requestId }, ({ usage, ended, started: messageStarted }) => {
    try {
      // Only a started message can have been generated past what was reported: a stream
      // cut before its message_start (an overload relayed as it came, then the client
      // left) is settled to its usage, not to max_tokens.
      answered(usage, ended, ended !== undefined && messageStarted);
    } finally {
      finished();
    }
  });
  const stream = meter ? meter.responseStream(relayed, res.status, out.get("content-type")) : relayed;
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
