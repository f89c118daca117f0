// Statistics the benchmarks share.

/** The p-th percentile of an ascending list (nearest rank, rounded down); NaN when empty. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** Median (the mean of the middle two of an even count) and quartiles (nearest rank) of
 *  ratios, in any order; NaN when there are none. The benchmarks' per-round paired ratios. */
export function spread(ratios: readonly number[]): { rounds: number; median: number; q1: number; q3: number } {
  const r = [...ratios].sort((a, b) => a - b);
  const mid = r.length >> 1;
  const median = r.length === 0 ? NaN : r.length % 2 === 1 ? r[mid]! : (r[mid - 1]! + r[mid]!) / 2;
  return { rounds: r.length, median, q1: percentile(r, 25), q3: percentile(r, 75) };
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
