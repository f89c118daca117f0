// The local ledger's D1 (Miniflare's persisted state, wrangler's layout) as a UsageSource.
// Read-only use: it never applies migrations; state without the ledger's tables is an error.
import "../no-telemetry.ts";
import { existsSync } from "node:fs";
import { Miniflare } from "miniflare";
import { d1PersistPath, ledgerWorkerOptions } from "../../../workers/usage-ledger/local/miniflare.ts";
import type { UsageSource } from "./report.ts";

/** What `wrangler dev` / `wrangler d1 migrations apply --local` in workers/usage-ledger use. */
export const DEFAULT_PERSIST = "workers/usage-ledger/.wrangler/state";

export class NoLedgerError extends Error {}

export async function openLocalSource(persistDir: string): Promise<UsageSource> {
  const where = `local state ${persistDir}`;
  // Checked first: Miniflare would create the folder and an empty database in it.
  if (!existsSync(d1PersistPath(persistDir))) throw new NoLedgerError(`no usage ledger in ${where} (no D1 state in it): run the ledger locally first, or give --persist`);
  const { d1Databases } = ledgerWorkerOptions();
  const mf = new Miniflare({
    cf: false,
    d1Persist: d1PersistPath(persistDir),
    modules: true,
    script: "export default { fetch() { return new Response(null, { status: 404 }); } }",
    d1Databases,
  });
  await mf.ready;
  const db = await mf.getD1Database("DB");
  const tables = await db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'usage_daily'").all();
  if (tables.results.length === 0) {
    await mf.dispose();
    throw new NoLedgerError(`no usage ledger in ${where} (no usage_daily table): run the ledger locally first, or give --persist`);
  }
  return {
    where,
    async query(sql, params) {
      return (await db.prepare(sql).bind(...params).all()).results;
    },
    close: () => mf.dispose(),
  };
}
