// Statistics the benchmarks share.

/** The p-th percentile of an ascending list (nearest rank, rounded down); NaN when empty. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** What a closed-loop load run reports (the proxy's and the router's benchmarks). */
export interface LoadSummary {
  /** Completed requests. */
  requests: number;
  errors: number;
  seconds: number;
  rps: number;
  p50Ms: number;
  p99Ms: number;
}
