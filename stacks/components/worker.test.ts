// The Worker component under Pulumi's mocks, on a fixture Worker that uses every binding
// kind: what it reads from wrangler.jsonc, the storage it creates, the script's bindings
// and migrations, secrets kept secret, routes and custom domains with their zone ids,
// and the include/declared options a sharded fleet uses. Only the engine is mocked.
import type * as pulumi from "@pulumi/pulumi";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { bundleWorker } from "../model/bundle.ts";
import { TYPES } from "../model/names.ts";
import { readWorkerConfig } from "../model/wrangler.ts";
import { mockId, runUnderMocks, SECRET_SIG, type Registration } from "../../test/support/pulumi-mocks.ts";

const FIXTURES = join(import.meta.dirname, "..", "..", "test", "fixtures", "workers");
let registered: Registration[] = [];
/** The options each resource of the "kitchen-sink" component was declared with (seen by a transformation). */
const options = new Map<string, pulumi.ResourceOptions>();

beforeAll(async () => {
  const config = { "edgefleet:kitchenToken": "kitchen-secret-value-42" };
  const run = await runUnderMocks({ stack: "worker-test", config, secrets: Object.keys(config) }, async () => {
    const { Worker } = await import("./worker.ts");
    new Worker("kitchen-sink", {
      accountId: "acct",
      folder: join(FIXTURES, "kitchen-sink"),
      secrets: { API_TOKEN: "kitchenToken" },
      vars: { MODE: "prod" },
      routes: [{ pattern: "api.shop.example/*", zone: "shop.example" }],
      domains: [{ hostname: "hooks.shop.example", zone: "shop.example" }],
      zoneIds: { "shop.example": "zone-shop" },
      archiveRetentionDays: 14,
      // A script that does not exist yet (test/deploys.test.ts reads live tags from a fake API).
      migrationTag: async () => null,
    }, { transformations: [(a) => (options.set(`${a.type}::${a.name}`, a.opts), undefined)] });
    // A second deployment of the same code shares the storage the first declared, and
    // (as in a shard's stack) declares only the resources it is told to.
    const declared = new Map();
    new Worker("first", { accountId: "acct", folder: join(FIXTURES, "kitchen-sink"), script: "kitchen-a", secrets: { API_TOKEN: "kitchenToken" }, declared, archiveRetentionDays: 14, migrationTag: async () => "v1" });
    new Worker("second", { accountId: "acct", folder: join(FIXTURES, "kitchen-sink"), script: "kitchen-b", secrets: { API_TOKEN: "kitchenToken" }, declared, archiveRetentionDays: 14, include: (r) => r.type !== TYPES.queueConsumer, migrationTag: async () => "v2" });
  });
  registered = run.registrations;
});

// The first registration of a name: the "kitchen-sink" component's (the two others,
// sharing their own `declared` map, register the same storage names once more).
const one = (type: string, name: string) => {
  const hit = registered.find((r) => r.type === type && r.name === name);
  expect(hit, `${type} ${name}`).toBeDefined();
  return hit!;
};
const unwrap = (v: unknown): unknown => (v && typeof v === "object" && SECRET_SIG in v ? (v as unknown as { value: unknown }).value : v);

describe("the Worker component", () => {
  const config = readWorkerConfig("kitchen-sink", FIXTURES);
  if (!config.ok) throw new Error(JSON.stringify(config.problems));

  it("creates the storage its bindings need, named by what it holds", () => {
    expect(one(TYPES.workersKvNamespace, "kv/kitchen-sink-cache").inputs).toEqual({ accountId: "acct", title: "kitchen-sink-cache" });
    expect(one(TYPES.r2Bucket, "r2/kitchen-blobs").inputs).toEqual({ accountId: "acct", name: "kitchen-blobs" });
    expect(one(TYPES.d1Database, "d1/kitchen-db").inputs).toEqual({ accountId: "acct", name: "kitchen-db" });
    expect(one(TYPES.queue, "queue/kitchen-jobs").inputs).toEqual({ accountId: "acct", queueName: "kitchen-jobs" });
    // The consumer's dead-letter queue is a queue of its own.
    expect(one(TYPES.queue, "queue/kitchen-jobs-dlq").inputs).toEqual({ accountId: "acct", queueName: "kitchen-jobs-dlq" });
    // Stores hold data: removing the Worker never deletes them.
    for (const key of [`${TYPES.workersKvNamespace}::kv/kitchen-sink-cache`, `${TYPES.r2Bucket}::r2/kitchen-blobs`, `${TYPES.d1Database}::d1/kitchen-db`, `${TYPES.queue}::queue/kitchen-jobs`]) {
      expect(options.get(key)?.retainOnDelete, key).toBe(true);
      // ... and removing or renaming one fails the preview instead of binding an empty store.
      expect(options.get(key)?.protect, key).toBe(true);
    }
    expect(options.get(`${TYPES.workersScript}::kitchen-sink/script`)?.retainOnDelete).toBeFalsy();
    expect(options.get(`${TYPES.workersScript}::kitchen-sink/script`)?.protect).toBeFalsy();
    // D1 reads back read_replication, which the program never sets: without this, the
    // update after a refresh sends it as null and the API refuses it.
    expect(options.get(`${TYPES.d1Database}::d1/kitchen-db`)?.ignoreChanges).toEqual(["readReplication"]);
    // Analytics Engine datasets need no resource: Cloudflare creates one on first write.
    expect(registered.some((r) => /analytics/i.test(r.type))).toBe(false);
  });

  it("declares the script with every binding of wrangler.jsonc, the real ids, and the bundle", () => {
    const script = one(TYPES.workersScript, "kitchen-sink/script").inputs;
    expect(script.scriptName).toBe("kitchen-sink");
    expect(script.content).toBe(bundleWorker(config.config).content);
    expect(script.mainModule).toBe("index.js");
    expect(script.compatibilityDate).toBe("2026-06-01");
    expect(script.compatibilityFlags).toEqual(["nodejs_compat"]);
    const bindings = unwrap(script.bindings) as Record<string, unknown>[];
    expect(bindings.map((b) => [b.name, b.type])).toEqual([
      ["API_TOKEN", "secret_text"],
      ["ARCHIVE", "r2_bucket"],
      ["BLOBS", "r2_bucket"],
      ["CACHE", "kv_namespace"],
      ["COUNTER", "durable_object_namespace"],
      ["DB", "d1"],
      ["EVENTS", "analytics_engine"],
      ["JOBS", "queue"],
      ["LEGACY", "durable_object_namespace"],
      ["MODE", "plain_text"],
      ["VERSION", "version_metadata"],
    ]);
    const by = Object.fromEntries(bindings.map((b) => [b.name, b]));
    expect(by.CACHE).toMatchObject({ namespaceId: mockId("kv/kitchen-sink-cache") });
    expect(by.DB).toMatchObject({ id: mockId("d1/kitchen-db") });
    expect(by.BLOBS).toMatchObject({ bucketName: "kitchen-blobs" });
    expect(by.JOBS).toMatchObject({ queueName: "kitchen-jobs" });
    expect(by.EVENTS).toMatchObject({ dataset: "kitchen_events" });
    expect(by.COUNTER).toMatchObject({ className: "Counter" });
    // A deployment's vars override wrangler.jsonc's values.
    expect(by.MODE).toEqual({ type: "plain_text", name: "MODE", text: "prod" });
  });

  it("applies wrangler's Durable Object migrations after the live tag: all to a new script, the rest after v1, none when current", () => {
    expect(one(TYPES.workersScript, "kitchen-sink/script").inputs.migrations).toEqual({
      newTag: "v2",
      steps: [{ newClasses: ["Journal"] }, { newSqliteClasses: ["Counter"], renamedClasses: [{ from: "Journal", to: "Ledger" }] }],
    });
    expect(one(TYPES.workersScript, "kitchen-a/script").inputs.migrations).toEqual({
      oldTag: "v1",
      newTag: "v2",
      steps: [{ newSqliteClasses: ["Counter"], renamedClasses: [{ from: "Journal", to: "Ledger" }] }],
    });
    expect(one(TYPES.workersScript, "kitchen-b/script").inputs).not.toHaveProperty("migrations");
  });

  it("takes the secret from Pulumi secret config and keeps the bindings secret", () => {
    const script = one(TYPES.workersScript, "kitchen-sink/script").inputs;
    expect(script.bindings).toHaveProperty(SECRET_SIG);
    const secret = (unwrap(script.bindings) as Record<string, unknown>[]).find((b) => b.name === "API_TOKEN");
    expect(secret).toEqual({ type: "secret_text", name: "API_TOKEN", text: "kitchen-secret-value-42" });
  });

  it("consumes its queue with wrangler's consumer settings and dead-letter queue, once its script and the DLQ exist", () => {
    expect(one(TYPES.queueConsumer, "kitchen-sink/consumer/kitchen-jobs").inputs).toEqual({
      accountId: "acct",
      queueId: mockId("queue/kitchen-jobs"),
      scriptName: "kitchen-sink",
      type: "worker",
      settings: { batchSize: 10, maxWaitTimeMs: 5000, maxRetries: 3, retryDelay: 20 },
      deadLetterQueue: "kitchen-jobs-dlq",
    });
    const deps = (options.get(`${TYPES.queueConsumer}::kitchen-sink/consumer/kitchen-jobs`)?.dependsOn ?? []) as pulumi.Resource[];
    expect(deps.length).toBe(2);
  });

  it("declares its Cron Triggers as one schedule, after its script", () => {
    expect(one(TYPES.workersCronTrigger, "kitchen-sink/cron").inputs).toEqual({ accountId: "acct", scriptName: "kitchen-sink", schedules: [{ cron: "*/5 * * * *" }, { cron: "0 4 * * 1" }] });
    expect((options.get(`${TYPES.workersCronTrigger}::kitchen-sink/cron`)?.dependsOn as pulumi.Resource[]).length).toBe(1);
  });

  it("gives a bucket that holds archives a lifecycle rule that deletes objects after the retention, and leaves other buckets alone", () => {
    expect(one(TYPES.r2BucketLifecycle, "r2/kitchen-bodies/lifecycle").inputs).toEqual({
      accountId: "acct",
      bucketName: "kitchen-bodies",
      rules: [
        {
          id: "edgefleet-retention",
          enabled: true,
          conditions: { prefix: "" },
          deleteObjectsTransition: { condition: { type: "Age", maxAge: 14 * 86_400 } },
          abortMultipartUploadsTransition: { condition: { type: "Age", maxAge: 7 * 86_400 } },
          // As the provider reads the rule back: without it a refreshed stack diffs (workers.ts archiveRule).
          storageClassTransitions: [],
        },
      ],
    });
    expect(registered.some((r) => r.type === TYPES.r2BucketLifecycle && r.name === "r2/kitchen-blobs/lifecycle")).toBe(false);
  });

  it("stops when a bucket holds archives and no retention is given", async () => {
    const { Worker } = await import("./worker.ts");
    expect(() => new Worker("no-retention", { accountId: "acct", folder: join(FIXTURES, "kitchen-sink"), script: "kitchen-c", migrationTag: async () => null })).toThrow(
      /Worker no-retention: .*kitchen-sink\/wrangler\.jsonc: R2 bucket 'kitchen-bodies' holds archives, and kitchen-c was given no retention for it \(metering\.yaml archive\.retention_days\)/,
    );
  });

  it("attaches routes and custom domains with the zone's id", () => {
    expect(one(TYPES.workersRoute, "route/api.shop.example/*").inputs).toEqual({ zoneId: "zone-shop", pattern: "api.shop.example/*", script: "kitchen-sink" });
    expect(one(TYPES.workersCustomDomain, "domain/hooks.shop.example").inputs).toEqual({ accountId: "acct", hostname: "hooks.shop.example", service: "kitchen-sink", zoneId: "zone-shop" });
  });

  it("shares storage between deployments of the same code and declares only what it is told to", () => {
    // kitchen-sink declares its own storage; kitchen-a declares it once more into the
    // shared map and kitchen-b reuses it: two namespaces, not three.
    expect(registered.filter((r) => r.type === TYPES.workersKvNamespace)).toHaveLength(2);
    expect(registered.filter((r) => r.type === TYPES.queue)).toHaveLength(4);
    expect(registered.filter((r) => r.type === TYPES.workersScript).map((r) => r.inputs.scriptName).sort()).toEqual(["kitchen-a", "kitchen-b", "kitchen-sink"]);
    expect(registered.some((r) => r.name === "kitchen-a/consumer/kitchen-jobs")).toBe(true);
    expect(registered.some((r) => r.name === "kitchen-b/consumer/kitchen-jobs")).toBe(false);
  });

  it("stops with the wrangler.jsonc problem, located, for a bad folder", async () => {
    const { Worker } = await import("./worker.ts");
    expect(() => new Worker("missing", { accountId: "acct", folder: join(FIXTURES, "no-such-worker") })).toThrow(/no-such-worker\/wrangler\.jsonc:1:1: cannot read the file \(ENOENT\)/);
  });
});
