// Reads a Worker's wrangler.jsonc, the single source of its bindings, compatibility
// settings and Durable Object migrations, into the plain data the desired state needs.
// Parsed with jsonc-parser (comments, trailing commas) and checked with zod; every
// problem names the file, line, column and field. A test proves the result equals what
// wrangler's own reader (unstable_readConfig) makes of the same file; wrangler itself is
// not imported here because loading it costs ~0.7 s, on every plan.
import { readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { findNodeAtLocation, parseTree, printParseErrorCode, type Node as JsonNode, type ParseError } from "jsonc-parser";
import { z } from "zod";
import { formatProblem, type Problem } from "./load.ts";

const Binding = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "a binding name is a JavaScript identifier");

const WranglerFile = z.looseObject({
  name: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, "lowercase letters, digits and dashes, at most 63"),
  main: z.string().min(1),
  compatibility_date: z.string().regex(/^\d{4}-\d{2}-\d{2}$/, "YYYY-MM-DD"),
  compatibility_flags: z.array(z.string()).default([]),
  vars: z.record(z.string(), z.string({ error: "edgefleet deploys vars as plain_text: use a string" })).default({}),
  kv_namespaces: z.array(z.looseObject({ binding: Binding })).default([]),
  // Keys wrangler deploys and edgefleet does not model are refused, never dropped: with
  // `jurisdiction: "eu"` wrangler binds the EU bucket, and a dropped key would bind (and
  // create) one of the same name in the default jurisdiction (wrangler-dist/cli.js, the
  // r2_bucket binding's jurisdiction; the queue producer's delivery_delay).
  r2_buckets: z.array(z.looseObject({ binding: Binding, bucket_name: z.string().min(1), jurisdiction: z.never({ error: "edgefleet does not model R2 jurisdictions: the bucket would be created and bound in the default one" }).optional() })).default([]),
  d1_databases: z.array(z.looseObject({ binding: Binding, database_name: z.string().min(1), migrations_dir: z.string().min(1).optional() })).default([]),
  queues: z
    .looseObject({
      producers: z.array(z.looseObject({ binding: Binding, queue: z.string().min(1), delivery_delay: z.never({ error: "edgefleet does not model a producer's delivery_delay: its messages would be delivered at once" }).optional() })).default([]),
      // Strict: every key wrangler knows for a consumer is deployed or refused, never
      // dropped (visibility_timeout_ms is for HTTP pull consumers, which edgefleet does not declare).
      consumers: z
        .array(
          z.strictObject({
            queue: z.string().min(1),
            type: z.literal("worker", { error: "edgefleet deploys Worker consumers only" }).optional(),
            // Queues' limits (developers.cloudflare.com/queues/platform/limits, read
            // 2026-11-28 from cloudflare/cloudflare-docs): a value past one is refused by the
            // API only when `pulumi up` updates the consumer, after the plan passed.
            max_batch_size: z.number().int().positive().max(100, { error: "at most 100 (Queues' maximum consumer batch size)" }).optional(),
            max_batch_timeout: z.number().nonnegative().max(60, { error: "at most 60 seconds (Queues' maximum batch wait time)" }).optional(),
            max_retries: z.number().int().nonnegative().max(100, { error: "at most 100 (Queues' message retries)" }).optional(),
            max_concurrency: z.number().int().positive().max(250, { error: "at most 250 (Queues' concurrent consumer invocations)" }).optional(),
            retry_delay: z.number().int().nonnegative().max(43_200, { error: "at most 43200 seconds (Queues' delaySeconds limit, 12 hours)" }).optional(),
            dead_letter_queue: z.string().min(1).optional(),
          }),
        )
        .default([]),
    })
    .default({ producers: [], consumers: [] }),
  analytics_engine_datasets: z.array(z.looseObject({ binding: Binding, dataset: z.string().min(1) })).default([]),
  durable_objects: z
    .looseObject({
      bindings: z.array(z.looseObject({ name: Binding, class_name: z.string().min(1), script_name: z.string().optional() })).default([]),
    })
    .default({ bindings: [] }),
  migrations: z
    .array(
      z.strictObject({
        tag: z.string().min(1),
        new_classes: z.array(z.string()).optional(),
        new_sqlite_classes: z.array(z.string()).optional(),
        deleted_classes: z.array(z.string()).optional(),
        renamed_classes: z.array(z.strictObject({ from: z.string(), to: z.string() })).optional(),
      }),
    )
    .default([]),
  version_metadata: z.looseObject({ binding: Binding }).optional(),
  // Cron Triggers (one WorkersCronTrigger holds a script's whole schedule). Cloudflare's
  // cron syntax has five fields (minute hour day-of-month month day-of-week), checked here
  // for shape only; Cloudflare checks the values on upload.
  triggers: z.strictObject({ crons: z.array(z.string().regex(/^\S+( \S+){4}$/, "a cron expression of five fields, e.g. \"17 3 * * *\"")).default([]) }).optional(),
  observability: z.strictObject({ enabled: z.boolean(), head_sampling_rate: z.number().min(0).max(1).optional() }).optional(),
});

/** Sections wrangler knows that edgefleet's Worker component does not deploy (yet). */
const UNSUPPORTED = [
  "services", "ai", "browser", "hyperdrive", "vectorize", "mtls_certificates", "dispatch_namespaces",
  "send_email", "workflows", "assets", "secrets_store_secrets", "unsafe", "pipelines", "images",
  "tail_consumers", "routes", "route", "env", "placement", "limits",
] as const;

/** Top-level keys the model reads (and so deploys); any other key is refused, so that
 * nothing `wrangler deploy` would honour is silently dropped by Pulumi. */
const KNOWN = new Set([
  "$schema", "name", "main", "compatibility_date", "compatibility_flags", "vars", "kv_namespaces", "r2_buckets",
  "d1_databases", "queues", "analytics_engine_datasets", "durable_objects", "migrations", "version_metadata", "observability",
  "triggers",
]);

export interface WorkerConfig {
  /** wrangler.jsonc, relative to the working directory, for messages. */
  file: string;
  /** The folder holding wrangler.jsonc. */
  dir: string;
  name: string;
  main: string;
  compatibilityDate: string;
  compatibilityFlags: string[];
  vars: Record<string, string>;
  kv: { binding: string }[];
  r2: { binding: string; bucket: string }[];
  /** D1 databases; `migrationsDir` is wrangler.jsonc's migrations_dir (wrangler's default: "migrations"). */
  d1: { binding: string; database: string; migrationsDir?: string }[];
  queueProducers: { binding: string; queue: string }[];
  queueConsumers: { queue: string; maxBatchSize?: number; maxBatchTimeout?: number; maxRetries?: number; maxConcurrency?: number; retryDelay?: number; deadLetterQueue?: string }[];
  /** Cron Triggers' schedules (wrangler's triggers.crons). */
  crons: string[];
  analytics: { binding: string; dataset: string }[];
  durableObjects: { binding: string; className: string; scriptName?: string }[];
  migrations: { tag: string; newClasses: string[]; newSqliteClasses: string[]; deletedClasses: string[]; renamedClasses: { from: string; to: string }[] }[];
  versionMetadata?: string;
  /** Workers Logs (wrangler's observability). */
  observability?: { enabled: boolean; headSamplingRate?: number };
}

export type WorkerConfigResult = { ok: true; config: WorkerConfig } | { ok: false; problems: Problem[] };

function lineCol(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let last = -1;
  for (let i = 0; i < offset && i < text.length; i++) {
    if (text.charCodeAt(i) === 10) {
      line++;
      last = i;
    }
  }
  return { line, column: offset - last };
}

function fieldPath(path: readonly PropertyKey[]): string {
  return path.map((seg, i) => (typeof seg === "number" ? `[${seg}]` : i === 0 ? String(seg) : `.${String(seg)}`)).join("");
}

/** Parses the text of a wrangler.jsonc; `file` is how problems name it. */
export function parseWorkerConfig(file: string, dir: string, text: string): WorkerConfigResult {
  const errors: ParseError[] = [];
  const tree = parseTree(text, errors, { allowTrailingComma: true, disallowComments: false });
  const problems: Problem[] = [];
  const at = (path: readonly PropertyKey[]) => {
    let node: JsonNode | undefined;
    for (let n = path.length; n >= 0 && !node; n--) node = tree && findNodeAtLocation(tree, path.slice(0, n) as (string | number)[]);
    return lineCol(text, node?.offset ?? 0);
  };
  for (const e of errors) {
    problems.push({ file, ...lineCol(text, e.offset), path: "", message: `JSONC: ${printParseErrorCode(e.error)}` });
  }
  if (problems.length > 0 || !tree) return { ok: false, problems: problems.length ? problems : [{ file, line: 1, column: 1, path: "", message: "empty file" }] };
  const data = JSON.parse(JSON.stringify(parseJsonc(tree)));
  const result = WranglerFile.safeParse(data);
  if (!result.success) {
    for (const issue of result.error.issues) {
      problems.push({ file, ...at(issue.path), path: fieldPath(issue.path), message: issue.message });
    }
    return { ok: false, problems };
  }
  for (const key of Object.keys(data)) {
    if ((UNSUPPORTED as readonly string[]).includes(key) || !KNOWN.has(key)) {
      problems.push({ file, ...at([key]), path: key, message: `'${key}' is not deployed by edgefleet's Worker component; remove it or extend stacks/model/workers.ts` });
    }
  }
  const w = result.data;
  // Cross-field rules the deploy depends on.
  const names = new Map<string, string>();
  const claim = (binding: string, path: PropertyKey[]) => {
    const first = names.get(binding);
    if (first) problems.push({ file, ...at(path), path: fieldPath(path), message: `binding '${binding}' is declared twice (first at ${first})` });
    else names.set(binding, fieldPath(path));
  };
  Object.keys(w.vars).forEach((k) => claim(k, ["vars", k]));
  w.kv_namespaces.forEach((b, i) => claim(b.binding, ["kv_namespaces", i, "binding"]));
  w.r2_buckets.forEach((b, i) => claim(b.binding, ["r2_buckets", i, "binding"]));
  w.d1_databases.forEach((b, i) => claim(b.binding, ["d1_databases", i, "binding"]));
  w.queues.producers.forEach((b, i) => claim(b.binding, ["queues", "producers", i, "binding"]));
  w.analytics_engine_datasets.forEach((b, i) => claim(b.binding, ["analytics_engine_datasets", i, "binding"]));
  w.durable_objects.bindings.forEach((b, i) => claim(b.name, ["durable_objects", "bindings", i, "name"]));
  if (w.version_metadata) claim(w.version_metadata.binding, ["version_metadata", "binding"]);
  const migrated = new Set(w.migrations.flatMap((m) => [...(m.new_classes ?? []), ...(m.new_sqlite_classes ?? []), ...(m.renamed_classes ?? []).map((r) => r.to)]));
  for (const m of w.migrations) for (const c of [...(m.deleted_classes ?? []), ...(m.renamed_classes ?? []).map((r) => r.from)]) migrated.delete(c);
  w.durable_objects.bindings.forEach((b, i) => {
    if (!b.script_name && !migrated.has(b.class_name)) {
      problems.push({ file, ...at(["durable_objects", "bindings", i, "class_name"]), path: fieldPath(["durable_objects", "bindings", i, "class_name"]), message: `Durable Object class '${b.class_name}' has no migration that creates it (add it to migrations[].new_sqlite_classes)` });
    }
  });
  const tags = new Set<string>();
  w.migrations.forEach((m, i) => {
    if (tags.has(m.tag)) problems.push({ file, ...at(["migrations", i, "tag"]), path: fieldPath(["migrations", i, "tag"]), message: `migration tag '${m.tag}' is used twice` });
    tags.add(m.tag);
  });
  const consumed = new Set<string>();
  w.queues.consumers.forEach((c, i) => {
    const path = ["queues", "consumers", i];
    // Cloudflare allows one consumer per queue; a queue that dead-letters into itself never lets go.
    if (consumed.has(c.queue)) problems.push({ file, ...at([...path, "queue"]), path: fieldPath([...path, "queue"]), message: `queue '${c.queue}' is consumed twice (a queue has one consumer)` });
    consumed.add(c.queue);
    if (c.dead_letter_queue === c.queue) problems.push({ file, ...at([...path, "dead_letter_queue"]), path: fieldPath([...path, "dead_letter_queue"]), message: `the dead-letter queue of '${c.queue}' is '${c.queue}' itself` });
  });
  if (problems.length > 0) return { ok: false, problems };
  return {
    ok: true,
    config: {
      file,
      dir,
      name: w.name,
      main: w.main,
      compatibilityDate: w.compatibility_date,
      compatibilityFlags: w.compatibility_flags,
      vars: w.vars,
      kv: w.kv_namespaces.map((b) => ({ binding: b.binding })),
      r2: w.r2_buckets.map((b) => ({ binding: b.binding, bucket: b.bucket_name })),
      d1: w.d1_databases.map((b) => ({ binding: b.binding, database: b.database_name, ...(b.migrations_dir !== undefined ? { migrationsDir: b.migrations_dir } : {}) })),
      queueProducers: w.queues.producers.map((b) => ({ binding: b.binding, queue: b.queue })),
      queueConsumers: w.queues.consumers.map((c) => ({
        queue: c.queue,
        maxBatchSize: c.max_batch_size,
        maxBatchTimeout: c.max_batch_timeout,
        maxRetries: c.max_retries,
        maxConcurrency: c.max_concurrency,
        retryDelay: c.retry_delay,
        deadLetterQueue: c.dead_letter_queue,
      })),
      crons: w.triggers?.crons ?? [],
      analytics: w.analytics_engine_datasets.map((b) => ({ binding: b.binding, dataset: b.dataset })),
      durableObjects: w.durable_objects.bindings.map((b) => ({ binding: b.name, className: b.class_name, scriptName: b.script_name })),
      migrations: w.migrations.map((m) => ({
        tag: m.tag,
        newClasses: m.new_classes ?? [],
        newSqliteClasses: m.new_sqlite_classes ?? [],
        deletedClasses: m.deleted_classes ?? [],
        renamedClasses: m.renamed_classes ?? [],
      })),
      versionMetadata: w.version_metadata?.binding,
      observability: w.observability && {
        enabled: w.observability.enabled,
        ...(w.observability.head_sampling_rate !== undefined ? { headSamplingRate: w.observability.head_sampling_rate } : {}),
      },
    },
  };
}

function parseJsonc(node: JsonNode): unknown {
  switch (node.type) {
    case "object":
      return Object.fromEntries((node.children ?? []).map((p) => [p.children![0]!.value as string, p.children![1] ? parseJsonc(p.children![1]) : null]));
    case "array":
      return (node.children ?? []).map(parseJsonc);
    default:
      return node.value;
  }
}

/** The repository's workers/ folder. */
export const WORKERS_DIR = join(import.meta.dirname, "..", "..", "workers");

const cache = new Map<string, WorkerConfigResult>();

/** Reads workers/<source>/wrangler.jsonc (cached per process). */
export function readWorkerConfig(source: string, workersDir = WORKERS_DIR, base = process.cwd()): WorkerConfigResult {
  const dir = join(workersDir, source);
  const path = join(dir, "wrangler.jsonc");
  const cached = cache.get(path);
  if (cached) return cached;
  const file = relative(base, path) || path;
  let result: WorkerConfigResult;
  try {
    result = parseWorkerConfig(file, dir, readFileSync(path, "utf8"));
  } catch (e) {
    result = { ok: false, problems: [{ file, line: 1, column: 1, path: "", message: `cannot read the file (${(e as NodeJS.ErrnoException).code})` }] };
  }
  cache.set(path, result);
  return result;
}

/** readWorkerConfig for callers that cannot go on without it: its problems, one per line, as the error. */
export function readWorkerConfigOrThrow(source: string, workersDir = WORKERS_DIR): WorkerConfig {
  const r = readWorkerConfig(source, workersDir);
  if (!r.ok) throw new Error(r.problems.map(formatProblem).join("\n"));
  return r.config;
}

/** Secret names a Worker expects: the keys of its .dev.vars.example, if it has one. */
export function expectedSecrets(config: Pick<WorkerConfig, "dir">): string[] | undefined {
  let text: string;
  try {
    text = readFileSync(join(config.dir, ".dev.vars.example"), "utf8");
  } catch {
    return undefined;
  }
  return text
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith("#") && l.includes("="))
    .map((l) => l.slice(0, l.indexOf("=")).trim())
    .sort();
}
