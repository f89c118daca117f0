// The ledger's wrangler.jsonc, as wrangler reads it: the dead-letter producer is the
// consumer's DLQ, retries and the cron exist, the batch fits D1's per-invocation query
// limit, and the migrations folder is where wrangler looks; and the Pulumi model reads
// all of it (cron, consumer settings), so `pulumi up` deploys what `wrangler deploy` would.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { unstable_readConfig } from "wrangler";
import { describe, expect, it } from "vitest";
import { parseWorkerConfig } from "../../../stacks/model/wrangler.ts";
import { WORKER_DIR, WRANGLER_CONFIG } from "../local/miniflare.ts";

const cfg = unstable_readConfig({ config: WRANGLER_CONFIG });

describe("usage-ledger wrangler.jsonc", () => {
  it("dead-letters to the queue its DEAD_LETTERS binding sends to", () => {
    const consumer = cfg.queues.consumers?.[0];
    expect(cfg.queues.consumers).toHaveLength(1);
    expect(consumer?.queue).toBe("edgefleet-usage");
    const dlq = cfg.queues.producers?.find((p: { binding: string; queue: string }) => p.binding === "DEAD_LETTERS")?.queue;
    expect(dlq).toBeDefined();
    expect(consumer?.dead_letter_queue).toBe(dlq);
    expect(dlq).not.toBe(consumer?.queue);
    expect(consumer?.max_retries).toBeGreaterThanOrEqual(1);
  });

  it("keeps a batch within D1's 1,000 queries per invocation (Workers Paid), even on the one-by-one path", () => {
    // Each event is 2 statements in the batch, and 2 more if the batch is retried one by one.
    const size = cfg.queues.consumers?.[0]?.max_batch_size ?? 10;
    expect(size * 4).toBeLessThanOrEqual(1000);
  });

  it("has a retention cron and its D1 migrations where wrangler looks", () => {
    expect(cfg.triggers.crons?.length).toBeGreaterThan(0);
    const d1 = cfg.d1_databases.find((d: { binding: string }) => d.binding === "DB")!;
    expect(d1.database_name).toBe("edgefleet-usage");
    const dir = join(WORKER_DIR, d1.migrations_dir ?? "migrations");
    expect(existsSync(dir) && readdirSync(dir).some((f) => /^\d{4}_.+\.sql$/.test(f))).toBe(true);
  });

  it("is read whole by the Pulumi model: its cron, and the consumer's retries, delay and DLQ", () => {
    const r = parseWorkerConfig("workers/usage-ledger/wrangler.jsonc", WORKER_DIR, readFileSync(WRANGLER_CONFIG, "utf8"));
    if (!r.ok) throw new Error(r.problems.map((p) => `${p.path}: ${p.message}`).join("\n"));
    expect(r.config.crons).toEqual(cfg.triggers.crons);
    const consumer = cfg.queues.consumers![0]!;
    expect(r.config.queueConsumers).toEqual([
      {
        queue: consumer.queue,
        maxBatchSize: consumer.max_batch_size,
        maxBatchTimeout: consumer.max_batch_timeout,
        maxRetries: consumer.max_retries,
        maxConcurrency: consumer.max_concurrency,
        retryDelay: consumer.retry_delay,
        deadLetterQueue: consumer.dead_letter_queue,
      },
    ]);
  });
});
