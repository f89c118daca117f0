// One Analytics Engine data point per call. Errors are always written; successes are
// sampled at METRICS_SAMPLE_RATE, and each point carries its sample weight (1/rate) so
// sums stay unbiased.
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

/** Returns the weight to record with, or 0 to skip (a sampled-out success). */
export function sampleWeight(r: CallRecord, rate: number, random: number): number {
  if (isError(r)) return 1;
  if (rate <= 0) return 0;
  return random < rate ? 1 / rate : 0;
}

export async function writeMetric(sink: AnalyticsEngineDataset, r: CallRecord, rate: number): Promise<void> {
  const w = sampleWeight(r, rate, Math.random());
  if (w === 0) return;
  // The real binding returns nothing; awaiting lets a recording binding (tests, local
  // debugging) finish its write inside ctx.waitUntil.
  await (sink.writeDataPoint(toDataPoint(r, w)) as unknown);
}
