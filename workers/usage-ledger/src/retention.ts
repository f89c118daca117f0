// Retention and size (docs/metering.md "Retention", "Watching the size"): the hourly
// purge of call rows past the retention, and the warning when the database nears D1's
// 10 GB. No Workers types: D1 is described by what the purge uses of it, so the tests
// can import this module.

/** What the purge uses of a D1Database. */
export interface PurgeDb {
  prepare(sql: string): { bind(...values: unknown[]): { run(): Promise<{ meta: { changes: number; size_after: number } }> } };
}

/** What a purge did: rows deleted, whether rows past the cutoff are left for the next
 *  run, and the database's size after its last statement (D1's `meta.size_after`). */
export interface Purged {
  deleted: number;
  more: boolean;
  sizeAfter: number;
}

/**
 * Deletes call rows older than `cutoff` (ms), in chunks so no statement runs long; the
 * rollups are kept. Bounded: a backlog larger than chunk x maxRounds (500,000 rows) is
 * left for the next run (the cron is hourly: 12 million rows a day).
 */
export async function purgeCalls(db: PurgeDb, cutoff: number, chunk = 5000, maxRounds = 100): Promise<Purged> {
  let deleted = 0;
  let sizeAfter = 0;
  for (let i = 0; i < maxRounds; i++) {
    const r = await db.prepare("DELETE FROM calls WHERE rowid IN (SELECT rowid FROM calls WHERE ts < ?1 LIMIT ?2)").bind(cutoff, chunk).run();
    deleted += r.meta.changes;
    sizeAfter = r.meta.size_after;
    if (r.meta.changes < chunk) return { deleted, more: false, sizeAfter };
  }
  return { deleted, more: true, sizeAfter };
}

/** D1's most for one database (developers.cloudflare.com/d1/platform/limits/). */
export const D1_MAX_BYTES = 10 * 1000 ** 3;
/** Above this share of D1_MAX_BYTES the ledger warns: writes fail once the database is full. */
export const SIZE_WARN_SHARE = 0.8;
/** How often one isolate repeats the warning while its batches find the database big. */
export const SIZE_WARN_EVERY_MS = 60 * 60 * 1000;

/**
 * The warning for a database of `bytes` (D1's `meta.size_after`), or undefined below
 * SIZE_WARN_SHARE of D1's 10 GB. Names what to do: once full, every write fails and the
 * events go to the dead-letter queue.
 */
export function sizeWarning(bytes: number): string | undefined {
  if (!(bytes >= D1_MAX_BYTES * SIZE_WARN_SHARE)) return undefined;
  const gb = (bytes / 1000 ** 3).toFixed(2);
  return `usage-ledger: the D1 database is ${gb} GB of D1's 10 GB; once full every write fails and events go to the dead-letter queue: lower ledger.call_retention_days (fleet/metering.yaml) or move old rows out (docs/metering.md "Sizing")`;
}
