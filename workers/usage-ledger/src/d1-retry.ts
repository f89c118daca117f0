// Which D1 write errors are passing, and how long to wait before trying again (the
// ledger's queue handler, index.ts).

/**
 * D1 errors that say a write did not happen for a passing reason: the database is busy,
 * was reset or could not be reached, not that the statement is wrong. Every row of D1's
 * error table (d1/observability/debug-d1, "List of D1_ERRORs", read 2026-11-28 from
 * cloudflare/cloudflare-docs) is one: those whose action is "Retry the operation" (code
 * updated, storage reset at start-up or later, network connection lost, transient issue on
 * the remote node, request stream cut), and those whose action is to spread the load
 * (storage timeout, overloaded: queued too long or too many, the database's isolate over
 * its memory or CPU limit and reset): the ledger's writes are small, so such a reset was
 * another query's doing (a big report, a purge) and the batch is sound. The first three
 * are also what Cloudflare's own template retries (d1/best-practices/retry-queries,
 * shouldRetry). A D1 database runs one query at a time (d1/platform/limits), so under a
 * backlog many consumers can meet these at once.
 */
const TRANSIENT_D1 = [
  "Network connection lost",
  "storage caused object to be reset",
  "reset because its code was updated",
  "Cannot resolve D1 DB due to transient issue",
  "Can't read from request stream because client disconnected",
  "exceeded timeout",
  "D1 DB is overloaded",
  "Too many requests queued",
  "exceeded its memory limit and was reset",
  "exceeded its CPU time limit and was reset",
];

export function transientD1Error(e: unknown): boolean {
  const text = String(e);
  return TRANSIENT_D1.some((t) => text.includes(t));
}

/** The first delay of retryDelaySeconds: WRITE_RETRY_SECONDS when it is a whole number
 *  from 0 to 600, else 30. */
export function retryBaseSeconds(v: string | undefined): number {
  return v !== undefined && /^\d{1,3}$/.test(v) && Number(v) <= 600 ? Number(v) : 30;
}

/** When Queues should deliver a batch again after a transient D1 error: `base` (30 s unless
 *  WRITE_RETRY_SECONDS says otherwise, LedgerConfig.writeRetrySeconds) doubled per
 *  attempt, at most 10 minutes, with jitter (50-100% of it), so an overloaded database gets
 *  room instead of every consumer's writes at once (wrangler.jsonc's fixed retry_delay is
 *  for other failures). */
export function retryDelaySeconds(attempts: number, random = Math.random(), base = 30): number {
  const step = Math.min(600, base * 2 ** Math.max(0, attempts - 1));
  return Math.max(1, Math.round(step * (0.5 + random / 2)));
}
