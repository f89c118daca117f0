// The wrangler.jsonc reader: it must agree with wrangler's own reader on every Worker of
// the repository (so the Pulumi side never restates a binding), and locate problems.
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { unstable_readConfig } from "wrangler";
import { describe, expect, it } from "vitest";
import { parseWorkerConfig, readWorkerConfig, WORKERS_DIR } from "./wrangler.ts";

const FIXTURES = join(import.meta.dirname, "..", "..", "test", "fixtures", "workers");
// Every Worker folder (one with a wrangler.jsonc; workers/shared is a library).
const folders = [
  ...readdirSync(WORKERS_DIR, { withFileTypes: true })
    .filter((d) => d.isDirectory() && existsSync(join(WORKERS_DIR, d.name, "wrangler.jsonc")))
    .map((d) => [d.name, WORKERS_DIR] as const),
  ["kitchen-sink", FIXTURES] as const,
];

describe("readWorkerConfig", () => {
  it.each(folders)("reads %s's wrangler.jsonc as wrangler does", (source, dir) => {
    const ours = readWorkerConfig(source, dir);
    if (!ours.ok) throw new Error(JSON.stringify(ours.problems));
    const c = ours.config;
    const w = unstable_readConfig({ config: join(dir, source, "wrangler.jsonc") });
    expect(c.name).toBe(w.name);
    expect(c.compatibilityDate).toBe(w.compatibility_date);
    expect(c.compatibilityFlags).toEqual(w.compatibility_flags ?? []);
    expect(c.vars).toEqual(w.vars ?? {});
    expect(c.kv.map((b) => b.binding)).toEqual(w.kv_namespaces.map((b: { binding: string }) => b.binding));
    expect(c.r2).toEqual(w.r2_buckets.map((b: { binding: string; bucket_name: string }) => ({ binding: b.binding, bucket: b.bucket_name })));
    expect(c.d1.map(({ binding, database }) => ({ binding, database }))).toEqual(w.d1_databases.map((b: { binding: string; database_name: string }) => ({ binding: b.binding, database: b.database_name })));
    expect(c.queueProducers).toEqual((w.queues.producers ?? []).map((b: { binding: string; queue: string }) => ({ binding: b.binding, queue: b.queue })));
    type Consumer = { queue: string; max_batch_size?: number; max_batch_timeout?: number; max_retries?: number; max_concurrency?: number | null; retry_delay?: number; dead_letter_queue?: string };
    expect(c.queueConsumers).toEqual(
      (w.queues.consumers ?? []).map((q: Consumer) => ({
        queue: q.queue,
        maxBatchSize: q.max_batch_size,
        maxBatchTimeout: q.max_batch_timeout,
        maxRetries: q.max_retries,
        maxConcurrency: q.max_concurrency ?? undefined,
        retryDelay: q.retry_delay,
        deadLetterQueue: q.dead_letter_queue,
      })),
    );
    expect(c.d1.map((d) => d.migrationsDir)).toEqual(w.d1_databases.map((d: { migrations_dir?: string }) => d.migrations_dir));
    expect(c.crons).toEqual(w.triggers.crons ?? []);
    expect(c.analytics).toEqual(w.analytics_engine_datasets.map((b: { binding: string; dataset: string }) => ({ binding: b.binding, dataset: b.dataset })));
    expect(c.durableObjects.map((b) => [b.binding, b.className])).toEqual(w.durable_objects.bindings.map((b: { name: string; class_name: string }) => [b.name, b.class_name]));
    expect(c.migrations.map((m) => [m.tag, m.newSqliteClasses, m.newClasses])).toEqual(w.migrations.map((m: { tag: string; new_sqlite_classes?: string[]; new_classes?: string[] }) => [m.tag, m.new_sqlite_classes ?? [], m.new_classes ?? []]));
    expect(c.versionMetadata).toBe(w.version_metadata?.binding);
    expect(c.observability?.enabled).toBe(w.observability?.enabled);
  });

  it("refuses, located, an R2 jurisdiction and a producer's delivery_delay (wrangler deploys both; dropped, the bucket would be the default jurisdiction's)", () => {
    const text = `{
  "name": "x",
  "main": "i.ts",
  "compatibility_date": "2026-01-01",
  "r2_buckets": [{ "binding": "ARCHIVE", "bucket_name": "b", "jurisdiction": "eu" }],
  "queues": { "producers": [{ "binding": "Q", "queue": "q", "delivery_delay": 30 }] }
}`;
    const r = parseWorkerConfig("w/wrangler.jsonc", "w", text);
    expect(r.ok ? [] : r.problems.map((p) => `${p.line}:${p.path}: ${p.message}`)).toEqual([
      "5:r2_buckets[0].jurisdiction: edgefleet does not model R2 jurisdictions: the bucket would be created and bound in the default one",
      "6:queues.producers[0].delivery_delay: edgefleet does not model a producer's delivery_delay: its messages would be delivered at once",
    ]);
  });

  it("refuses, located, consumer settings past Queues' limits (the API would refuse them only during pulumi up)", () => {
    const consumer = (settings: string) => `{
  "name": "x",
  "main": "i.ts",
  "compatibility_date": "2026-01-01",
  "queues": { "consumers": [{ "queue": "q", ${settings} }] }
}`;
    const within = parseWorkerConfig("w/wrangler.jsonc", "w", consumer(`"max_batch_size": 100, "max_batch_timeout": 60, "max_retries": 100, "max_concurrency": 250, "retry_delay": 43200`));
    expect(within.ok ? [] : within.problems).toEqual([]);
    const past = parseWorkerConfig("w/wrangler.jsonc", "w", consumer(`"max_batch_size": 101, "max_batch_timeout": 61, "max_retries": 101, "max_concurrency": 251, "retry_delay": 43201`));
    expect(past.ok ? [] : past.problems.map((p) => `${p.line}:${p.path}: ${p.message}`)).toEqual([
      "5:queues.consumers[0].max_batch_size: at most 100 (Queues' maximum consumer batch size)",
      "5:queues.consumers[0].max_batch_timeout: at most 60 seconds (Queues' maximum batch wait time)",
      "5:queues.consumers[0].max_retries: at most 100 (Queues' message retries)",
      "5:queues.consumers[0].max_concurrency: at most 250 (Queues' concurrent consumer invocations)",
      "5:queues.consumers[0].retry_delay: at most 43200 seconds (Queues' delaySeconds limit, 12 hours)",
    ]);
  });

  it("locates a bad cron, a consumer key it would not deploy, a queue consumed twice and a queue that dead-letters into itself", () => {
    const text = `{
  "name": "x",
  "main": "i.ts",
  "compatibility_date": "2026-01-01",
  "queues": {
    "consumers": [
      { "queue": "a", "dead_letter_queue": "a" },
      { "queue": "a", "visibility_timeout_ms": 1000 }
    ]
  },
  "triggers": { "crons": ["17 3 * *"] }
}`;
    const r = parseWorkerConfig("w/wrangler.jsonc", "w", text);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.problems.map((p) => `${p.line}:${p.path}: ${p.message}`)).toEqual([
      expect.stringMatching(/^8:queues\.consumers\[1\]: Unrecognized key: "visibility_timeout_ms"/),
      '11:triggers.crons[0]: a cron expression of five fields, e.g. "17 3 * * *"',
    ]);
    // The cross-field rules run once the shapes are right.
    const loop = parseWorkerConfig("w/wrangler.jsonc", "w", text.replace(', "visibility_timeout_ms": 1000', "").replace('"17 3 * *"', '"17 3 * * *"'));
    expect(loop.ok ? [] : loop.problems.map((p) => `${p.line}:${p.path}: ${p.message}`)).toEqual([
      "7:queues.consumers[0].dead_letter_queue: the dead-letter queue of 'a' is 'a' itself",
      "8:queues.consumers[1].queue: queue 'a' is consumed twice (a queue has one consumer)",
    ]);
  });

  it("locates syntax errors, bad fields, duplicate bindings and unmigrated Durable Objects", () => {
    const bad = parseWorkerConfig("w/wrangler.jsonc", "w", '{\n  "name": "x",\n  "main": "i.ts",\n  "compatibility_date": "2026-01-01",\n  "vars": { "A": 1 }\n}');
    expect(bad.ok).toBe(false);
    if (!bad.ok) expect(bad.problems).toEqual([expect.objectContaining({ file: "w/wrangler.jsonc", line: 5, path: "vars.A", message: "edgefleet deploys vars as plain_text: use a string" })]);

    const syntax = parseWorkerConfig("w/wrangler.jsonc", "w", '{\n  "name": "x"\n  "main": "i.ts"\n}');
    expect(syntax.ok).toBe(false);
    if (!syntax.ok) expect(syntax.problems[0]).toMatchObject({ line: 3, message: "JSONC: CommaExpected" });

    const semantic = parseWorkerConfig(
      "w/wrangler.jsonc",
      "w",
      JSON.stringify(
        {
          name: "x",
          main: "i.ts",
          compatibility_date: "2026-01-01",
          vars: { TENANTS: "a" },
          kv_namespaces: [{ binding: "TENANTS" }],
          durable_objects: { bindings: [{ name: "LIMITER", class_name: "Limiter" }] },
          services: [{ binding: "S", service: "other" }],
          workers_dev: false,
        },
        null,
        2,
      ),
    );
    expect(semantic.ok).toBe(false);
    if (!semantic.ok) {
      const messages = semantic.problems.map((p) => `${p.line}:${p.path}: ${p.message}`);
      expect(messages).toEqual(
        expect.arrayContaining([
          expect.stringMatching(/kv_namespaces\[0\]\.binding: binding 'TENANTS' is declared twice \(first at vars\.TENANTS\)/),
          expect.stringMatching(/durable_objects\.bindings\[0\]\.class_name: Durable Object class 'Limiter' has no migration/),
          expect.stringMatching(/services: 'services' is not deployed by edgefleet's Worker component/),
          // A key the model does not map is refused, never silently dropped.
          expect.stringMatching(/workers_dev: 'workers_dev' is not deployed by edgefleet's Worker component/),
        ]),
      );
    }
  });
});
