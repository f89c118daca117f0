// Runs the whole metering pipeline locally in one workerd (Miniflare): the LLM proxy, the
// usage Queue, the usage-ledger consumer with its D1 database (migrations applied) and the
// archive's R2 bucket. Used by `npm run dev:proxy`, the end-to-end test and the benchmark.
// Both Workers come from their own local runners (bindings from each wrangler.jsonc), so
// the proxy's USAGE_EVENTS producer and the ledger's consumer meet on the queue name
// `edgefleet-usage` as they do when deployed.
import type { D1Database } from "@cloudflare/workers-types";
import type { Miniflare } from "miniflare";
import { d1PersistPath, ledgerWorker, MIGRATIONS_DIR, WORKER_NAME as LEDGER, type LocalLedgerOptions } from "../../usage-ledger/local/miniflare.ts";
import { applyMigrations } from "../../usage-ledger/local/migrations.ts";
import { startLocalProxy, type LocalProxyOptions } from "./miniflare.ts";

export interface LocalPipelineOptions extends Omit<LocalProxyOptions, "d1PersistDir"> {
  /** The ledger's state folder (wrangler's --persist-to layout: `npm run usage --persist`
   *  reads it); in memory when absent. */
  ledgerPersistDir?: string;
  /** The ledger's vars and consumer settings (tests shorten the batch wait). */
  ledger?: Pick<LocalLedgerOptions, "vars" | "inventoryDir" | "consumer">;
}

export async function startLocalPipeline(o: LocalPipelineOptions): Promise<{ mf: Miniflare; url: URL; db: D1Database }> {
  const { ledgerPersistDir, ledger, ...proxy } = o;
  const { mf, url } = await startLocalProxy({
    ...proxy,
    ...(ledgerPersistDir !== undefined ? { d1PersistDir: d1PersistPath(ledgerPersistDir) } : {}),
    extraWorkers: [ledgerWorker(ledger), ...(o.extraWorkers ?? [])],
  });
  const db = (await mf.getD1Database("DB", LEDGER)) as unknown as D1Database;
  await applyMigrations(db, MIGRATIONS_DIR);
  return { mf, url, db };
}
