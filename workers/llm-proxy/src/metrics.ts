// One Analytics Engine data point per call. Errors are always written; successes are
// sampled at METRICS_SAMPLE_RATE, and each point carries its sample weight (1/rate) so
// sums stay unbiased. Also decides which calls get a log line (the unusual ones).
import type { Usage } from "./usage.ts";

export interface CallRecord {
  requestId: string;
  tenant: string;
  route: string;
  status: number;
  usage: Usage;
  latencyMs: number;
  ttfbMs: number;
  retries: number;
  /** The provider's remaining quota on the shared key, from its response headers. */
  quota?: ProviderQuota;
}

/**
 * Anthropic's `anthropic-ratelimit-*-remaining` headers: they describe the whole
 * organisation's quota on the provider key, so they are never passed to tenants
 * (issue 14.2) but recorded here for capacity planning. -1: the header was absent.
 * Header names: docs.anthropic.com/en/api/rate-limits (response headers), checked 2026-11.
 */
export interface ProviderQuota {
  requestsRemaining: number;
  tokensRemaining: number;
  inputTokensRemaining: number;
  outputTokensRemaining: number;
}

const QUOTA_HEADERS = [
  ["requestsRemaining", "anthropic-ratelimit-requests-remaining"],
  ["tokensRemaining", "anthropic-ratelimit-tokens-remaining"],
  ["inputTokensRemaining", "anthropic-ratelimit-input-tokens-remaining"],
  ["outputTokensRemaining", "anthropic-ratelimit-output-tokens-remaining"],
] as const;

const DIGITS = /^\d{1,15}$/;

export function quotaFromHeaders(h: Headers): ProviderQuota {
  const q = { requestsRemaining: -1, tokensRemaining: -1, inputTokensRemaining: -1, outputTokensRemaining: -1 };
  for (const [field, name] of QUOTA_HEADERS) {
    const v = h.get(name)?.trim();
    if (v !== undefined && DIGITS.test(v)) q[field] = Number(v);
  }
  return q;
}

const NO_QUOTA: ProviderQuota = { requestsRemaining: -1, tokensRemaining: -1, inputTokensRemaining: -1, outputTokensRemaining: -1 };

/** Data point layout (query with blob1.., double1..; documented in docs/llm-proxy.md). */
export function toDataPoint(r: CallRecord, weight: number): AnalyticsEngineDataPoint {
  return {
    indexes: [r.tenant || "-"],
    blobs: [r.tenant, r.usage.model, r.route, String(r.status), r.usage.errorType, r.requestId],
    doubles: [
      r.status,
      r.usage.inputTokens,
      r.usage.outputTokens,
      r.usage.cacheCreationTokens,
      r.usage.cacheReadTokens,
      r.latencyMs,
      r.retries,
      r.ttfbMs,
      weight,
      r.usage.countedTokens,
      (r.quota ?? NO_QUOTA).requestsRemaining,
      (r.quota ?? NO_QUOTA).tokensRemaining,
      (r.quota ?? NO_QUOTA).inputTokensRemaining,
      (r.quota ?? NO_QUOTA).outputTokensRemaining,
    ],
  };
}

export function isError(r: CallRecord): boolean {
  return r.status >= 400 || r.usage.errorType !== "";
}

/**
 * Whether the call deserves a log line: errors, retried calls and calls let through
 * because the rate limiter failed. Plain successes are in the data point and in the
 * platform's own invocation log; a line each would only cost time and log volume.
 */
export function worthLogging(r: CallRecord, failedOpen: boolean): boolean {
  return isError(r) || r.retries > 0 || failedOpen;
}

/** Returns the weight to record with, or 0 to skip (a sampled-out success). */
export function sampleWeight(r: CallRecord, rate: number, random: number): number {
  if (isError(r)) return 1;
  if (rate <= 0) return 0;
  return random < rate ? 1 / rate : 0;
}

/**
 * Writes the call's data point (unless sampled out). The real binding's writeDataPoint
 * is synchronous and returns nothing, so nothing is left to wait for after the response;
 * a recording binding (tests, `dev:proxy`) returns a promise, handed back for
 * ctx.waitUntil.
 */
export function writeMetric(sink: AnalyticsEngineDataset, r: CallRecord, rate: number, random = Math.random()): Promise<unknown> | undefined {
  const w = sampleWeight(r, rate, random);
  if (w === 0) return undefined;
  const ret = sink.writeDataPoint(toDataPoint(r, w)) as unknown;
  return typeof (ret as { then?: unknown } | undefined)?.then === "function" ? Promise.resolve(ret) : undefined;
}
