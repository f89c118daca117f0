// Which D1 write errors are passing, and how long to wait before trying again (the
// ledger's queue handler, index.ts).

/**
 * D1 errors that say a write did not happen for a passing reason: the database is busy or
 * was moved, not that the statement is wrong. The first three are the ones Cloudflare's
 * own template retries (developers.cloudflare.com/d1/best-practices/retry-queries, its
 * shouldRetry); the rest are D1's overload and timeout errors (d1/observability/debug-d1,
 * "Error list": "retry"). A D1 database runs one query at a time (d1/platform/limits), so
 * under a backlog many consumers can meet these at once.
 */
const TRANSIENT_D1 = ["Network connection lost", "storage caused object to be reset", "reset because its code was updated", "D1 DB is overloaded", "Too many requests queued", "exceeded timeout"];

export function transientD1Error(e: unknown): boolean {
  const text = String(e);
  return TRANSIENT_D1.some((t) => text.includes(t));
}

/** When Queues should deliver a batch again after a transient D1 error: 30 s doubled per
 *  attempt, at most 10 minutes, with jitter (50-100% of it), so an overloaded database gets
 *  room instead of every consumer's writes at once (wrangler.jsonc's fixed retry_delay is
 *  for other failures). */
export function retryDelaySeconds(attempts: number, random = Math.random()): number {
  const step = Math.min(600, 30 * 2 ** Math.max(0, attempts - 1));
  return Math.max(1, Math.round(step * (0.5 + random / 2)));
}
