// Consistency: for every Worker of the example fleet, what the Pulumi program declares is
// exactly what its wrangler.jsonc says, as wrangler itself reads it (the file `wrangler
// dev` and the Worker tests use): the bindings, plus the secrets fleet.yaml gives it and
// the vars metering.yaml gives its code; the storage each binding names (KV, R2, D1,
// Queues); its Queue consumers with wrangler's settings and dead-letter queue; its Cron
// Triggers; same compatibility settings and Durable Object migrations. And storage two
// Workers share (the usage Queue: the proxies produce, the ledger consumes) is one resource.
// The ledger's dead-letter queue, which wrangler.jsonc cannot describe beyond its name, is
// kept metering.yaml's ledger.dead_letter_retention_days and read by an HTTP pull consumer.
import { join } from "node:path";
import { unstable_readConfig } from "wrangler";
import { describe, expect, it } from "vitest";
import { deriveDesiredState, type DesiredResource, type Ref } from "../stacks/model/desired.ts";
import { loadInventoryOrThrow } from "../stacks/model/load.ts";
import { DEAD_LETTER_PULL } from "../stacks/model/dead-letters.ts";
import { DEAD_LETTER_SOURCES, holdsArchives, meteringVarsFor } from "../stacks/model/metering.ts";
import { TYPES } from "../stacks/model/names.ts";
import { names } from "../stacks/model/workers.ts";
import { WORKERS_DIR } from "../stacks/model/wrangler.ts";

const inventory = loadInventoryOrThrow("fleet");
const state = deriveDesiredState(inventory, { accountId: "acct" });
const read = (source: string) => unstable_readConfig({ config: join(WORKERS_DIR, source, "wrangler.jsonc") });
const find = (type: string, name: string): DesiredResource | undefined => state.resources.find((r) => r.type === type && r.name === name);
const all = (type: string) => state.resources.filter((r) => r.type === type);

/** binding name -> kind, as wrangler reads wrangler.jsonc (kinds in the provider's words). */
function wranglerBindings(source: string): Record<string, string> {
  const w = read(source);
  const out: Record<string, string> = {};
  for (const k of Object.keys(w.vars ?? {})) out[k] = "plain_text";
  for (const b of w.kv_namespaces) out[b.binding] = "kv_namespace";
  for (const b of w.r2_buckets) out[b.binding] = "r2_bucket";
  for (const b of w.d1_databases) out[b.binding] = "d1";
  for (const b of w.queues.producers ?? []) out[b.binding] = "queue";
  for (const b of w.analytics_engine_datasets) out[b.binding] = "analytics_engine";
  for (const b of w.durable_objects.bindings) out[b.name] = "durable_object_namespace";
  if (w.version_metadata) out[w.version_metadata.binding] = "version_metadata";
  return out;
}

type Binding = { type: string; name: string; text?: string; bucketName?: string; queueName?: string; id?: Ref; namespaceId?: Ref };

describe("each Worker's Pulumi declaration equals its wrangler.jsonc", () => {
  it("covers the router, the LLM proxies and the usage ledger", () => {
    expect(new Set(state.workers.map((w) => w.source))).toEqual(new Set(["router", "llm-proxy", "usage-ledger"]));
  });

  it.each(state.workers.map((w) => [w.script, w] as const))("%s", (script, w) => {
    const res = find(TYPES.workersScript, names.script(script))!;
    const inputs = res.inputs as { bindings: Binding[]; compatibilityDate: string; compatibilityFlags: string[]; migrations?: unknown };
    const declared = Object.fromEntries(inputs.bindings.map((b) => [b.name, b.type]));
    const fromMetering = meteringVarsFor(w.source, inventory.metering!);
    const expected = {
      ...wranglerBindings(w.source),
      ...Object.fromEntries(w.secrets.map((s) => [s.binding, "secret_text"])),
      ...Object.fromEntries(Object.keys(fromMetering).map((k) => [k, "plain_text"])),
    };
    expect(declared).toEqual(expected);
    // The inventory's vars arrive with metering.yaml's values.
    for (const [k, v] of Object.entries(fromMetering)) expect(inputs.bindings.find((b) => b.name === k)?.text).toBe(v);
    const cfg = read(w.source);
    expect(inputs.compatibilityDate).toBe(cfg.compatibility_date);
    // No flags: the input is left out (the provider reads an empty list back as none).
    expect(inputs.compatibilityFlags ?? []).toEqual(cfg.compatibility_flags ?? []);
    if ((cfg.compatibility_flags ?? []).length === 0) expect(inputs).not.toHaveProperty("compatibilityFlags");
    const tags = cfg.migrations.map((m: { tag: string }) => m.tag);
    if (tags.length === 0) expect(inputs.migrations).toBeUndefined();
    else expect(inputs.migrations).toMatchObject({ newTag: tags[tags.length - 1] });
    expect(w.migrationTags).toEqual(tags);
    // Every Durable Object class bound is created by a migration.
    for (const b of cfg.durable_objects.bindings) {
      expect(cfg.migrations.some((m: { new_sqlite_classes?: string[]; new_classes?: string[] }) => [...(m.new_sqlite_classes ?? []), ...(m.new_classes ?? [])].includes(b.class_name))).toBe(true);
    }

    // The storage each binding names is declared: R2 buckets by name, D1 by the
    // database's uuid, queues by name; a bucket that holds archives has its lifecycle rule.
    const by = Object.fromEntries(inputs.bindings.map((b) => [b.name, b]));
    for (const b of cfg.r2_buckets) {
      expect(by[b.binding]!.bucketName).toBe(b.bucket_name);
      expect(find(TYPES.r2Bucket, names.r2(b.bucket_name!))?.inputs).toEqual({ accountId: "acct", name: b.bucket_name });
      if (holdsArchives(b.bucket_name!, b.binding)) {
        const lifecycle = find(TYPES.r2BucketLifecycle, names.r2Lifecycle(b.bucket_name!))!;
        expect(lifecycle.inputs).toMatchObject({ bucketName: b.bucket_name, rules: [{ enabled: true, conditions: { prefix: "" }, deleteObjectsTransition: { condition: { type: "Age", maxAge: inventory.metering!.archiveRetentionDays * 86_400 } } }] });
      }
    }
    for (const b of cfg.d1_databases) {
      expect(by[b.binding]!.id).toEqual({ $ref: names.d1(b.database_name!), $output: "uuid" });
      expect(find(TYPES.d1Database, names.d1(b.database_name!))?.inputs).toEqual({ accountId: "acct", name: b.database_name });
    }
    // A dead-letter queue of a Worker whose DLQs the inventory keeps has its retention.
    const keptDlqs = new Set<string>(DEAD_LETTER_SOURCES.includes(w.source) ? (cfg.queues.consumers ?? []).flatMap((c: { dead_letter_queue?: string }) => (c.dead_letter_queue ? [c.dead_letter_queue] : [])) : []);
    const queueInputs = (q: string) => ({ accountId: "acct", queueName: q, ...(keptDlqs.has(q) ? { settings: { messageRetentionPeriod: inventory.metering!.deadLetterRetentionDays * 86_400 } } : {}) });
    for (const b of cfg.queues.producers ?? []) {
      expect(by[b.binding]!.queueName).toBe(b.queue);
      expect(find(TYPES.queue, names.queue(b.queue))?.inputs).toEqual(queueInputs(b.queue));
    }
    // Consumers with wrangler's settings, in the provider's units, and their DLQ declared.
    const consumers = all(TYPES.queueConsumer).filter((r) => r.inputs.scriptName === script);
    expect(consumers.map((r) => r.name).sort()).toEqual((cfg.queues.consumers ?? []).map((c: { queue: string }) => names.consumer(script, c.queue)).sort());
    for (const c of cfg.queues.consumers ?? []) {
      const r = find(TYPES.queueConsumer, names.consumer(script, c.queue))!;
      expect(r.inputs.queueId).toEqual({ $ref: names.queue(c.queue), $output: "queueId" });
      const settings = Object.fromEntries(
        Object.entries({ batchSize: c.max_batch_size, maxWaitTimeMs: c.max_batch_timeout === undefined ? undefined : c.max_batch_timeout * 1000, maxRetries: c.max_retries, maxConcurrency: c.max_concurrency ?? undefined, retryDelay: c.retry_delay }).filter(([, v]) => v !== undefined),
      );
      expect(r.inputs.settings).toEqual(settings);
      expect(r.inputs.deadLetterQueue).toBe(c.dead_letter_queue);
      if (c.dead_letter_queue) expect(find(TYPES.queue, names.queue(c.dead_letter_queue))?.inputs, c.dead_letter_queue).toEqual(queueInputs(c.dead_letter_queue));
    }
    // Each kept DLQ has its HTTP pull consumer; no other queue of this Worker has one.
    for (const q of keptDlqs) {
      expect(find(TYPES.queueConsumer, names.pullConsumer(q))?.inputs).toEqual({ accountId: "acct", queueId: { $ref: names.queue(q), $output: "queueId" }, type: "http_pull", settings: { maxRetries: DEAD_LETTER_PULL.maxRetries, visibilityTimeoutMs: DEAD_LETTER_PULL.visibilityTimeoutMs } });
    }
    const pulls = all(TYPES.queueConsumer).filter((r) => r.inputs.type === "http_pull" && r.parent === names.component(script));
    expect(pulls.map((r) => r.name).sort()).toEqual([...keptDlqs].map(names.pullConsumer).sort());
    // Cron Triggers: one resource with the whole schedule, or none.
    const crons: string[] = cfg.triggers.crons ?? [];
    const cron = find(TYPES.workersCronTrigger, names.cron(script));
    if (crons.length === 0) expect(cron).toBeUndefined();
    else expect(cron?.inputs).toEqual({ accountId: "acct", scriptName: script, schedules: crons.map((c) => ({ cron: c })) });
  });

  it("has one usage Queue, which every proxy produces to and the ledger consumes, one archive bucket, one usage database", () => {
    const proxies = state.workers.filter((w) => w.source === "llm-proxy");
    expect(proxies.length).toBeGreaterThan(1);
    const usage = read("usage-ledger").queues.consumers![0]!.queue;
    for (const p of proxies) {
      const bindings = (find(TYPES.workersScript, names.script(p.script))!.inputs as { bindings: Binding[] }).bindings;
      expect(bindings.find((b) => b.name === "USAGE_EVENTS")?.queueName).toBe(usage);
      expect(bindings.find((b) => b.name === "ARCHIVE")?.bucketName).toBe("edgefleet-archive");
    }
    expect(all(TYPES.queue).filter((r) => r.inputs.queueName === usage)).toHaveLength(1);
    expect(all(TYPES.r2Bucket).filter((r) => r.inputs.name === "edgefleet-archive")).toHaveLength(1);
    expect(all(TYPES.r2BucketLifecycle)).toHaveLength(1);
    expect(all(TYPES.d1Database)).toHaveLength(1);
    // The ledger's consumer, and the HTTP pull consumer of its dead-letter queue.
    expect(all(TYPES.queueConsumer).map((r) => r.name).sort()).toEqual([names.consumer("edgefleet-usage-ledger", usage), names.pullConsumer("edgefleet-usage-dlq")]);
    expect(inventory.metering!.deadLetterRetentionDays).toBe(14);
  });
});
