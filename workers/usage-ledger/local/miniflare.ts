// Runs the usage-ledger Worker locally in workerd (Miniflare), for its tests and for
// `npm run usage` on local state. Bindings and queue settings come from wrangler.jsonc
// through wrangler's own reader; PRICES and CALL_RETENTION_DAYS from fleet/metering.yaml
// (meteringVars). Persisted state uses wrangler's layout (<dir>/v3/d1), so
// `wrangler d1 execute edgefleet-usage --local --persist-to <dir>` reads the same database.
import "../../../scripts/lib/no-telemetry.ts";
import { bundleWorker } from "../../../stacks/model/bundle.ts";
import { loadMeteringOrThrow, meteringVars } from "../../../stacks/model/metering.ts";
import { Miniflare, type WorkerOptions } from "miniflare";
import { CapturingLog } from "../../llm-proxy/local/miniflare.ts";
import type { D1Database } from "@cloudflare/workers-types";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { unstable_getMiniflareWorkerOptions } from "wrangler";
import { applyMigrations } from "./migrations.ts";

export const WORKER_DIR = resolve(dirname(fileURLToPath(import.meta.url)), "..");
/** The repository's inventory (fleet/), whatever the working directory. */
const INVENTORY_DIR = resolve(WORKER_DIR, "../../fleet");
export const WRANGLER_CONFIG = join(WORKER_DIR, "wrangler.jsonc");
export const MIGRATIONS_DIR = join(WORKER_DIR, "migrations");
export const WORKER_NAME = "usage-ledger";

/** Where wrangler keeps local D1 databases under a --persist-to folder. */
export function d1PersistPath(persistDir: string): string {
  return resolve(persistDir, "v3", "d1");
}

export interface LocalLedgerOptions {
  /** Vars over the inventory's (e.g. another PRICES). */
  vars?: Record<string, string>;
  /** Inventory folder for PRICES and CALL_RETENTION_DAYS; default fleet/. */
  inventoryDir?: string;
  /** Persist D1 here (wrangler's layout); in memory when absent. */
  persistDir?: string;
  /** Overrides of wrangler.jsonc's consumer settings (tests shorten the waits). */
  consumer?: { maxBatchSize?: number; maxBatchTimeout?: number; maxRetries?: number; retryDelay?: number };
  /** More Workers in the same runtime (a test producer, a dead-letter recorder). */
  extraWorkers?: WorkerOptions[];
  /** Receives the Worker's log lines. */
  onLog?: (line: string) => void;
  /** Apply the migrations at start (default true). */
  migrate?: boolean;
}

/** wrangler.jsonc as Miniflare options (D1, queue producer and consumer, cron). */
export function ledgerWorkerOptions(): WorkerOptions & { rootPath?: string } {
  return unstable_getMiniflareWorkerOptions(WRANGLER_CONFIG).workerOptions as WorkerOptions & { rootPath?: string };
}

/** The ledger as one Worker of a Miniflare (here, or beside the proxy: llm-proxy/local/pipeline.ts). */
export function ledgerWorker(o: Pick<LocalLedgerOptions, "vars" | "inventoryDir" | "consumer"> = {}): WorkerOptions {
  const script = bundleWorker({ dir: WORKER_DIR, main: "src/index.ts", compatibilityFlags: [] }).content;
  const { rootPath: _root, queueConsumers, ...rest } = ledgerWorkerOptions();
  const consumers = Object.fromEntries(
    Object.entries((queueConsumers ?? {}) as Record<string, object>).map(([q, c]) => [q, { ...c, ...o.consumer }]),
  );
  return {
    ...rest,
    name: WORKER_NAME,
    modules: true,
    script,
    scriptPath: join(WORKER_DIR, "src/index.js"),
    // Any working directory (see workers/llm-proxy/local/miniflare.ts).
    modulesRoot: WORKER_DIR,
    queueConsumers: consumers,
    bindings: { ...meteringVars(loadMeteringOrThrow(o.inventoryDir ?? INVENTORY_DIR)), ...o.vars },
  } as WorkerOptions;
}

export async function startLocalLedger(o: LocalLedgerOptions = {}): Promise<{ mf: Miniflare; db: D1Database }> {
  const onLog = o.onLog ?? ((line: string) => process.stderr.write(line + "\n"));
  const mf = new Miniflare({
    host: "127.0.0.1",
    port: 0,
    cf: false,
    log: new CapturingLog(onLog),
    handleStructuredLogs: ({ message }: { message: string }) => {
      onLog(message);
    },
    ...(o.persistDir ? { d1Persist: d1PersistPath(o.persistDir) } : {}),
    workers: [ledgerWorker(o), ...(o.extraWorkers ?? [])],
  });
  await mf.ready;
  const db = (await mf.getD1Database("DB", WORKER_NAME)) as unknown as D1Database;
  if (o.migrate !== false) await applyMigrations(db, MIGRATIONS_DIR);
  return { mf, db };
}
