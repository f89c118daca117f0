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
}

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
