// Reads and checks the ledger's inventory-given vars once per isolate. A missing or bad
// value throws: the queue handler then fails the whole batch, Queues retries it and, in
// the end, moves it to the dead-letter queue, from where it can be replayed once fixed.
// Acking events that cannot be priced would lose them.
import { PriceTableJsonSchema, type PriceTable } from "../../shared/pricing.ts";
import { retryBaseSeconds } from "./d1-retry.ts";
import type { LedgerEnv } from "./env.ts";

export interface LedgerConfig {
  prices: PriceTable;
  retentionDays: number;
  /** The growing retry delay's first step (WRITE_RETRY_SECONDS; default 30: never fails). */
  writeRetrySeconds: number;
}

/** The smallest retention that still outlives a Queue message (14 days) by a day. */
export const MIN_RETENTION_DAYS = 15;

let cached: { key: string; config: LedgerConfig } | undefined;

export function readConfig(env: LedgerEnv): LedgerConfig {
  const key = `${env.PRICES ?? ""}\u0000${env.CALL_RETENTION_DAYS ?? ""}\u0000${env.WRITE_RETRY_SECONDS ?? ""}`;
  if (cached?.key === key) return cached.config;
  if (!env.PRICES) throw new Error("PRICES is not set (it comes from fleet/metering.yaml)");
  let json: unknown;
  try {
    json = JSON.parse(env.PRICES);
  } catch {
    throw new Error("PRICES is not JSON");
  }
  const prices = PriceTableJsonSchema.safeParse(json);
  if (!prices.success) throw new Error(`PRICES is not a price table: ${prices.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`);
  const days = Number(env.CALL_RETENTION_DAYS);
  if (!/^\d+$/.test(env.CALL_RETENTION_DAYS ?? "") || days < MIN_RETENTION_DAYS) {
    throw new Error(`CALL_RETENTION_DAYS must be an integer >= ${MIN_RETENTION_DAYS}`);
  }
  const config = { prices: prices.data, retentionDays: days, writeRetrySeconds: retryBaseSeconds(env.WRITE_RETRY_SECONDS) };
  cached = { key, config };
  return config;
}
