// Parses the Worker's string vars into typed settings with defaults. Used by the
// handler once per isolate (cached by the env object's identity).
import { priceTableFromJson, type PriceTable } from "../../shared/cost.ts";
import type { Env } from "./env.ts";

/** The most ARCHIVE_MAX_BYTES may be (a larger setting is clamped to it). */
export const MAX_ARCHIVE_BYTES = 16 * 1024 * 1024;

export interface Config {
  upstream: string;
  maxRetries: number;
  retryBaseMs: number;
  retryMaxBackoffMs: number;
  retryAfterCapMs: number;
  maxBodyBytes: number;
  failOpen: boolean;
  corsOrigins: ReadonlySet<string>;
  sampleRate: number;
  /** How far the SSE usage scan may lag behind the client (forward.ts relayStream). */
  sseScanLagMs: number;
  /** Per attempt: from sending it to its response headers (forward.ts). */
  headersTimeoutMs: number;
  /** Per attempt: from the headers to a stream's first event, or to a JSON answer's end. */
  firstEventTimeoutMs: number;
  /** Longest silence between two chunks of a stream before it is ended with an error event. */
  sseIdleTimeoutMs: number;
  /** Cap on the time spent waiting between attempts (backoff and retry-after), per call. */
  retryDeadlineMs: number;
  /** Bodies up to this size are held in memory (and can be retried); bigger ones are streamed. */
  bufferBodyBytes: number;
  /** BUDGET_FAIL_MODE=open: a tenant with a budget is let through, unreserved, when the
   *  budget cannot be checked (Durable Object failing, no price table). Default closed. */
  budgetFailOpen: boolean;
  /** The price table budgets are priced with (PRICES, from fleet/metering.yaml), or
   *  what is wrong with it: then no budget can be enforced (BUDGET_FAIL_MODE decides). */
  prices: PriceTable | string;
  /** METERING: usage events and the archive ("on", the default) or neither ("off"). */
  metering: boolean;
  /** ARCHIVE_MAX_BYTES: the most of one body (request or response) the archive keeps. */
  archiveMaxBytes: number;
  /** BUDGET_HOLD_TTL_MS: how long a tenant's Durable Object keeps the money an isolate
   *  holds reserved (leases, calls in flight) without hearing from it (budget.ts,
   *  "Holders"). An isolate with a budgeted call in flight is heard from within two
   *  fifths of it. */
  holdTtlMs: number;
}

/** A numeric var: its default when unset or not a number, clamped to [min, max]. */
export function num(v: string | undefined, dflt: number, min: number, max: number): number {
  if (v === undefined || v.trim() === "") return dflt;
  const n = Number(v);
  return Number.isFinite(n) ? Math.min(max, Math.max(min, n)) : dflt;
}

const cache = new WeakMap<Env, Config>();

export function config(env: Env): Config {
  let c = cache.get(env);
  if (c) return c;
  c = {
    upstream: (env.UPSTREAM_BASE_URL || "https://api.anthropic.com").replace(/\/+$/, ""),
    maxRetries: Math.floor(num(env.MAX_RETRIES, 2, 0, 10)),
    retryBaseMs: num(env.RETRY_BASE_MS, 250, 0, 60_000),
    retryMaxBackoffMs: num(env.RETRY_MAX_BACKOFF_MS, 4000, 0, 60_000),
    retryAfterCapMs: num(env.RETRY_AFTER_CAP_MS, 10_000, 0, 120_000),
    maxBodyBytes: Math.floor(num(env.MAX_BODY_BYTES, 32 * 1024 * 1024, 1, 100 * 1024 * 1024)),
    // Fail closed unless the operator explicitly chose "open".
    failOpen: (env.RATE_LIMIT_FAIL_MODE ?? "").trim().toLowerCase() === "open",
    corsOrigins: new Set(
      (env.CORS_ORIGINS ?? "").split(",").map((s) => s.trim()).filter((s) => s !== ""),
    ),
    sampleRate: num(env.METRICS_SAMPLE_RATE, 1, 0, 1),
    // Capped at 5 s: the scan branch holds about this much of a stream (docs/llm-proxy.md).
    sseScanLagMs: num(env.SSE_SCAN_LAG_MS, 1000, 0, 5000),
    // 10 minutes: a non-streaming answer arrives whole, after the model finished, and the
    // Anthropic SDKs wait that long themselves (DEFAULT_TIMEOUT, @anthropic-ai/sdk client.js).
    headersTimeoutMs: num(env.HEADERS_TIMEOUT_MS, 600_000, 100, 3_600_000),
    firstEventTimeoutMs: num(env.FIRST_EVENT_TIMEOUT_MS, 60_000, 100, 3_600_000),
    sseIdleTimeoutMs: num(env.SSE_IDLE_TIMEOUT_MS, 120_000, 100, 3_600_000),
    retryDeadlineMs: num(env.RETRY_DEADLINE_MS, 30_000, 0, 600_000),
    bufferBodyBytes: Math.floor(num(env.BUFFER_BODY_BYTES, 1024 * 1024, 0, 100 * 1024 * 1024)),
    // Closed unless the operator explicitly chose "open", like RATE_LIMIT_FAIL_MODE.
    budgetFailOpen: (env.BUDGET_FAIL_MODE ?? "").trim().toLowerCase() === "open",
    prices: env.PRICES === undefined || env.PRICES === "" ? "PRICES is not set (it comes from fleet/metering.yaml)" : priceTableFromJson(env.PRICES),
    // On unless the operator explicitly chose "off": a typo never silently stops billing.
    metering: (env.METERING ?? "").trim().toLowerCase() !== "off",
    // At most 16 MiB: an archived call can hold about three times this while it streams
    // (the request's copy, what tee buffers for the slower branch, the response's copy),
    // and an isolate has 128 MB for every call it serves (docs/metering.md).
    archiveMaxBytes: Math.floor(num(env.ARCHIVE_MAX_BYTES, 4 * 1024 * 1024, 0, MAX_ARCHIVE_BYTES)),
    // 5 minutes; at most a day, and at least 2 s: an isolate holding only a lease is
    // heard from again when the lease's unspent money goes back, LEASE_MS (1 s) + 50 ms
    // after it was granted. Values under a minute are for tests.
    holdTtlMs: Math.floor(num(env.BUDGET_HOLD_TTL_MS, 300_000, 2_000, 86_400_000)),
  };
  cache.set(env, c);
  return c;
}
