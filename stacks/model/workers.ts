// The fleet's Workers in the desired state. Pure apart from reading each Worker's
// wrangler.jsonc and bundling its code: from the inventory's `workers:` and `router:`
// and each Worker's wrangler.jsonc comes the list of Pulumi resources that deploy it
// (storage its bindings need, the script with every binding and its Durable Object
// migrations, routes and custom domains). The Worker component, the plan, the policies
// and key rotation all read this.
import { bundleWorker, MAIN_MODULE } from "./bundle.ts";
import type { DesiredResource, InputValue, Inputs, Ref } from "./desired.ts";
import type { Problem } from "./load.ts";
import { migrationsToUpload } from "./migrations.ts";
import { modelInputs, type ModelElement, type ModelInputs, type ProviderType } from "./provider-args.ts";
import { TYPES } from "./names.ts";
import { relativeName } from "./dns.ts";
import { assignShards as assignRouterShards, routerHosts, routerZones, shardCount, shardScriptName } from "./router-shards.ts";
import { mailZones, MTA_STS_LABEL } from "./mail.ts";
import type { Inventory, WorkerSpec, ZoneSpec } from "./schema.ts";
import type { SemanticProblem } from "./validate.ts";
import { expectedSecrets, readWorkerConfig, readWorkerConfigOrThrow, WORKERS_DIR, type WorkerConfig } from "./wrangler.ts";
import { ABORT_MULTIPART_AFTER_DAYS, ARCHIVE_RULE_ID, DAY_SECONDS, DEAD_LETTER_SOURCES, holdsArchives, METERING_FILE, METERING_VARS, meteringVarsFor } from "./metering.ts";
import { deadLetterPullConsumer, deadLetterQueueSettings } from "./dead-letters.ts";

/** `zone` of resources that belong to the account, not to one zone (scripts, storage). */
export const ACCOUNT_SCOPE = "(account)";

/** The path every Worker that binds OPERATOR_TOKEN serves its operator status on. */
export const STATUS_PATH = "/_edgefleet/status";
export const OPERATOR_TOKEN_BINDING = "OPERATOR_TOKEN";

export interface DesiredWorker {
  /** Cloudflare script name, unique in the account. */
  script: string;
  /** Folder under workers/ with its wrangler.jsonc, e.g. "llm-proxy". */
  source: string;
  /** Changed first: key rotation stages and confirms it before the rest. */
  canary: boolean;
  /** secret_text bindings and the Pulumi config key (namespace edgefleet) each comes from. */
  secrets: { binding: string; config: string }[];
  /** Hostnames routed to it (custom domains, or the router's zones and their www). */
  hostnames: string[];
  /** The operator status endpoint (Workers that bind OPERATOR_TOKEN serve one), or null. */
  statusUrl: string | null;
  /** "sha256:<hex>" of the uploaded bundle. */
  bundle: string;
  /** Durable Object migration tags of its wrangler.jsonc, in order (the live script's tag
   * decides which of them `pulumi up` sends: stacks/model/migrations.ts). */
  migrationTags: string[];
  /** Zones routed to it. */
  zones: string[];
  /** What the Worker component is given to deploy it. */
  deployment: WorkerDeployment;
}

/** Workers that bind a secret, canary first, then by script name: rotation's order. */
export function workersBindingSecret<W extends Pick<DesiredWorker, "script" | "canary" | "secrets">>(workers: readonly W[], binding: string): W[] {
  return workers
    .filter((w) => w.secrets.some((s) => s.binding === binding))
    .sort((a, b) => (a.canary !== b.canary ? (a.canary ? -1 : 1) : a.script < b.script ? -1 : a.script > b.script ? 1 : 0));
}

/** The zone of the inventory a hostname belongs to (longest suffix), if any. */
export function zoneOfHost(host: string, zones: ReadonlyMap<string, ZoneSpec>): ZoneSpec | undefined {
  const labels = host.split(".");
  for (let i = 0; i < labels.length - 1; i++) {
    const z = zones.get(labels.slice(i).join("."));
    if (z) return z;
  }
  return undefined;
}

// ----------------------------------------------------------------------- resources

export interface SecretRef {
  /** Pulumi config key (namespace edgefleet) read with requireSecret. */
  $secret: string;
}
export interface BundleRef {
  /** Folder under workers/ whose bundle is the script's content. */
  $bundle: string;
  sha256: string;
}

export function isSecretRef(v: unknown): v is SecretRef {
  return typeof v === "object" && v !== null && "$secret" in v;
}
export function isBundleRef(v: unknown): v is BundleRef {
  return typeof v === "object" && v !== null && "$bundle" in v;
}

/** How a deployment of a Worker's code is shaped: what the Worker component takes. */
export interface WorkerDeployment {
  script: string;
  source: string;
  canary: boolean;
  /** Custom domains: hostname and the zone it is in. */
  domains: { hostname: string; zone: string }[];
  /** Routes: pattern (host/*) and its zone. */
  routes: { pattern: string; zone: string }[];
  secrets: Record<string, string>;
  /** Values of wrangler.jsonc's vars, and the vars the inventory gives this Worker's code
   * (metering.yaml's PRICES...: METERING_VARS), all bound as plain_text. */
  vars: Record<string, string>;
  /** KV namespace title per binding, when not `<wrangler name>-<binding>`. */
  kvTitles?: Record<string, string>;
  /** Days the lifecycle rule of a bucket that holds archives keeps an object
   * (metering.yaml archive.retention_days); required when the Worker binds one. */
  archiveRetentionDays?: number;
  /** Days each dead-letter queue of its Queue consumers keeps a message (metering.yaml
   * ledger.dead_letter_retention_days, for the Workers in DEAD_LETTER_SOURCES). When set,
   * each such queue also gets the HTTP pull consumer `npm run dead-letters` replays it
   * through (stacks/model/dead-letters.ts). */
  deadLetterRetentionDays?: number;
}

const ref = (name: string, output: Ref["$output"] = "id"): Ref => ({ $ref: name, $output: output });

export const names = {
  component: (script: string) => script,
  script: (script: string) => `${script}/script`,
  kv: (title: string) => `kv/${title}`,
  r2: (bucket: string) => `r2/${bucket}`,
  r2Lifecycle: (bucket: string) => `r2/${bucket}/lifecycle`,
  d1: (database: string) => `d1/${database}`,
  queue: (queue: string) => `queue/${queue}`,
  consumer: (script: string, queue: string) => `${script}/consumer/${queue}`,
  /** A queue's HTTP pull consumer (a dead-letter queue's: it belongs to no script). */
  pullConsumer: (queue: string) => `queue/${queue}/pull-consumer`,
  cron: (script: string) => `${script}/cron`,
  domain: (hostname: string) => `domain/${hostname}`,
  route: (pattern: string) => `route/${pattern}`,
};

export function kvTitle(config: Pick<WorkerConfig, "name">, binding: string, d: Pick<WorkerDeployment, "kvTitles">): string {
  return d.kvTitles?.[binding] ?? `${config.name}-${binding.toLowerCase().replace(/_/g, "-")}`;
}

/**
 * The resources of one deployment, given its wrangler config and bundle: storage its
 * bindings need (named by what it holds, so deployments of the same code share it), the
 * component, the script and the consumers under it, and its routes and custom domains.
 * `zoneId(zone)` says how a zone's id is known (inventory id or a reference).
 */
export function workerResources(
  d: WorkerDeployment,
  config: WorkerConfig,
  bundle: { sha256: string },
  accountId: string,
  zoneId: (zone: string) => string | Ref,
): DesiredResource[] {
  const out: DesiredResource[] = [];
  const component = names.component(d.script);
  // Every literal below is checked against the provider's Args (provider-args.ts).
  const account = <K extends ProviderType>(type: K, name: string, inputs: ModelInputs<K>, options?: DesiredResource["options"]): DesiredResource => ({
    type,
    name,
    zone: ACCOUNT_SCOPE,
    inputs: modelInputs(type, inputs),
    parent: component,
    ...(options ? { options } : {}),
  });
  // Storage holds data (tenant records, usage rows, archived bodies, messages in flight):
  // removing a Worker from the inventory, or renaming its store, never deletes it
  // (retainOnDelete), and is refused at preview (protect) rather than planned: a rename
  // would bind a new, empty store (every tenant key refused, the ledger on unmigrated
  // tables), and a store retained out of the state cannot be declared again under its
  // name, which Cloudflare keeps taken. Removing one is a decision made by hand: `pulumi
  // state unprotect <urn>`, then the `up` (docs/deploys.md).
  const keep = { retainOnDelete: true, protect: true };
  type Binding = ModelElement<typeof TYPES.workersScript, "bindings">;
  const bindings: Binding[] = [];

  for (const kv of config.kv) {
    const title = kvTitle(config, kv.binding, d);
    out.push(account(TYPES.workersKvNamespace, names.kv(title), { accountId, title }, keep));
    bindings.push({ type: "kv_namespace", name: kv.binding, namespaceId: ref(names.kv(title)) });
  }
  const archives = new Set<string>();
  for (const r2 of config.r2) {
    out.push(account(TYPES.r2Bucket, names.r2(r2.bucket), { accountId, name: r2.bucket }, keep));
    bindings.push({ type: "r2_bucket", name: r2.binding, bucketName: r2.bucket });
    if (holdsArchives(r2.bucket, r2.binding)) archives.add(r2.bucket);
  }
  for (const bucket of [...archives].sort()) {
    if (d.archiveRetentionDays === undefined) throw new Error(`${config.file}: R2 bucket '${bucket}' holds archives, and ${d.script} was given no retention for it (metering.yaml archive.retention_days)`);
    out.push(account(TYPES.r2BucketLifecycle, names.r2Lifecycle(bucket), { accountId, bucketName: bucket, rules: [archiveRule(d.archiveRetentionDays)] }, { dependsOn: [names.r2(bucket)] }));
  }
  for (const db of config.d1) {
    // read_replication: optional and not computed in the provider, but read back from the
    // API (which always has it), so after a refresh the next update would send it as null,
    // which the D1 API refuses ("Expected object, received null",
    // cloudflare/terraform-provider-cloudflare#6309; upstream skips its own no-drift test
    // for it). The program never sets it: its changes are not the program's to make.
    out.push(account(TYPES.d1Database, names.d1(db.database), { accountId, name: db.database }, { ...keep, ignoreChanges: ["readReplication"] }));
    bindings.push({ type: "d1", name: db.binding, id: ref(names.d1(db.database), "uuid") });
  }
  // Every queue the Worker sends to, consumes, or dead-letters into: one Queue resource
  // each, named by the queue, so a producer in one Worker and the consumer in another
  // share it.
  const queues = new Set([...config.queueProducers.map((q) => q.queue), ...config.queueConsumers.flatMap((q) => (q.deadLetterQueue ? [q.queue, q.deadLetterQueue] : [q.queue]))]);
  // Dead-letter queues the inventory keeps (and `npm run dead-letters` reads): a retention.
  const kept = new Set(d.deadLetterRetentionDays === undefined ? [] : config.queueConsumers.flatMap((c) => (c.deadLetterQueue ? [c.deadLetterQueue] : [])));
  for (const q of [...queues].sort()) {
    const settings = kept.has(q) ? { settings: deadLetterQueueSettings(d.deadLetterRetentionDays!) } : {};
    out.push(account(TYPES.queue, names.queue(q), { accountId, queueName: q, ...settings }, keep));
  }
  for (const q of config.queueProducers) bindings.push({ type: "queue", name: q.binding, queueName: q.queue });
  for (const a of config.analytics) bindings.push({ type: "analytics_engine", name: a.binding, dataset: a.dataset });
  for (const o of config.durableObjects) {
    bindings.push({ type: "durable_object_namespace", name: o.binding, className: o.className, ...(o.scriptName ? { scriptName: o.scriptName } : {}) });
  }
  if (config.versionMetadata) bindings.push({ type: "version_metadata", name: config.versionMetadata });
  for (const [k, v] of Object.entries({ ...config.vars, ...d.vars })) bindings.push({ type: "plain_text", name: k, text: v });
  for (const [binding, key] of Object.entries(d.secrets)) bindings.push({ type: "secret_text", name: binding, text: { $secret: key } });
  bindings.sort((a, b) => (String(a.name) < String(b.name) ? -1 : 1));

  out.push({ type: TYPES.worker, name: component, zone: ACCOUNT_SCOPE, inputs: {} });
  // What the first upload of a new script sends: every step, no old_tag. The Worker
  // component replaces it with what the live script's tag calls for (migrations.ts).
  const migrations = migrationsToUpload(d.script, config.migrations, null).upload;
  // The script binds its R2 buckets and the queues it sends to by name, not by an output
  // of theirs: without these, its upload could race their creation, and Cloudflare refuses
  // a script bound to a bucket that does not exist yet ("R2 bucket '...' not found",
  // code 10085: cloudflare/workers-sdk#9418). (KV and D1 are bound by id: their outputs
  // order them already.)
  const storeWaits = [...new Set([...config.r2.map((r) => names.r2(r.bucket)), ...config.queueProducers.map((q) => names.queue(q.queue))])].sort();
  out.push(
    account(
      TYPES.workersScript,
      names.script(d.script),
      {
      accountId,
      scriptName: d.script,
      mainModule: MAIN_MODULE,
      content: { $bundle: d.source, sha256: bundle.sha256 },
      compatibilityDate: config.compatibilityDate,
      bindings,
      // Written in the form the provider reads back, so an unchanged Worker previews as
      // unchanged (docs/deploys.md): no empty flag list, observability with its defaults.
      ...(config.compatibilityFlags.length > 0 ? { compatibilityFlags: [...config.compatibilityFlags] } : {}),
      ...(config.observability ? { observability: observabilityInputs(config.observability) } : {}),
      ...(migrations ? { migrations: { newTag: migrations.newTag, steps: migrations.steps } } : {}),
      },
      storeWaits.length > 0 ? { dependsOn: storeWaits } : undefined,
    ),
  );
  for (const c of config.queueConsumers) {
    const settings: NonNullable<ModelInputs<typeof TYPES.queueConsumer>["settings"]> = {};
    if (c.maxBatchSize !== undefined) settings.batchSize = c.maxBatchSize;
    if (c.maxBatchTimeout !== undefined) settings.maxWaitTimeMs = c.maxBatchTimeout * 1000;
    if (c.maxRetries !== undefined) settings.maxRetries = c.maxRetries;
    if (c.maxConcurrency !== undefined) settings.maxConcurrency = c.maxConcurrency;
    if (c.retryDelay !== undefined) settings.retryDelay = c.retryDelay;
    // The consumer names its script and its dead-letter queue (by name, as wrangler
    // sends it): both exist before it.
    const dependsOn = [names.script(d.script), ...(c.deadLetterQueue ? [names.queue(c.deadLetterQueue)] : [])];
    out.push(
      account(
        TYPES.queueConsumer,
        names.consumer(d.script, c.queue),
        {
          accountId,
          queueId: ref(names.queue(c.queue), "queueId"),
          scriptName: d.script,
          type: "worker",
          settings,
          ...(c.deadLetterQueue ? { deadLetterQueue: c.deadLetterQueue } : {}),
        },
        { dependsOn },
      ),
    );
  }
  // A kept dead-letter queue is read over HTTP (`npm run dead-letters`), never by a Worker:
  // its pull consumer needs only the queue.
  for (const q of [...kept].sort()) {
    out.push(account(TYPES.queueConsumer, names.pullConsumer(q), deadLetterPullConsumer(accountId, ref(names.queue(q), "queueId")), { dependsOn: [names.queue(q)] }));
  }
  // One resource holds the script's whole schedule (the API replaces it as a whole).
  if (config.crons.length > 0) {
    out.push(account(TYPES.workersCronTrigger, names.cron(d.script), { accountId, scriptName: d.script, schedules: config.crons.map((cron) => ({ cron })) }, { dependsOn: [names.script(d.script)] }));
  }
  // Routes and custom domains belong to their zone (and its shard: a sharded stack
  // declares the Worker component to hold them); they name the script, which the
  // first shard's stack creates.
  for (const dom of d.domains) {
    const inputs = modelInputs(TYPES.workersCustomDomain, { accountId, hostname: dom.hostname, service: d.script, zoneId: zoneId(dom.zone) });
    out.push({ type: TYPES.workersCustomDomain, name: names.domain(dom.hostname), zone: dom.zone, parent: component, inputs, options: { dependsOn: [names.script(d.script)] } });
  }
  for (const r of d.routes) {
    const inputs = modelInputs(TYPES.workersRoute, { zoneId: zoneId(r.zone), pattern: r.pattern, script: d.script });
    out.push({ type: TYPES.workersRoute, name: names.route(r.pattern), zone: r.zone, parent: component, inputs, options: { dependsOn: [names.script(d.script)] } });
  }
  return out;
}

/** The lifecycle rule of a bucket that holds archives: delete every object `days` after
 * it was written, and (R2's default, which a lifecycle configuration would otherwise
 * replace) abort multipart uploads left incomplete for 7 days.
 * No storage-class transitions, written as an empty list as the API reads it back: the
 * provider's Read copies the API's rule into state as it comes, and its
 * storage_class_transitions is optional, not computed (terraform-provider-cloudflare
 * internal/services/r2_bucket_lifecycle/schema.go and resource.go; its own test of a rule
 * without them declares `storage_class_transitions = []` and expects a list of size 0,
 * testdata/r2_lifecycle_minimal_rules.tf). Left out, a refreshed stack would show this
 * rule as changed on every preview (cloudflare/terraform-provider-cloudflare#7338,
 * "unused transition always shows in plan", for a rule of this very shape). */
export function archiveRule(days: number): ModelElement<typeof TYPES.r2BucketLifecycle, "rules"> {
  return {
    id: ARCHIVE_RULE_ID,
    enabled: true,
    conditions: { prefix: "" },
    deleteObjectsTransition: { condition: { type: "Age", maxAge: days * DAY_SECONDS } },
    abortMultipartUploadsTransition: { condition: { type: "Age", maxAge: ABORT_MULTIPART_AFTER_DAYS * DAY_SECONDS } },
    storageClassTransitions: [],
  };
}

/**
 * wrangler's observability as the provider reads it back: Workers Logs with its defaults
 * spelt out (head sampling 1, invocation logs on, logs persisted), since the API returns
 * them filled in and a missing `logs` would show as a change on every preview
 * (test/fakes/cloudflare-workers-scripts-api.ts cites the sources).
 */
export function observabilityInputs(o: NonNullable<WorkerConfig["observability"]>): NonNullable<ModelInputs<typeof TYPES.workersScript>["observability"]> {
  const rate = o.headSamplingRate ?? 1;
  return { enabled: o.enabled, headSamplingRate: rate, logs: { enabled: o.enabled, invocationLogs: true, headSamplingRate: rate, persist: true } };
}

// ------------------------------------------------------------------------- fleet

export interface FleetWorkers {
  workers: DesiredWorker[];
  resources: DesiredResource[];
}

export interface WorkerOptions {
  workersDir?: string;
  /** The inventory's metering.yaml as problems name it, when it has one (even an invalid one). */
  meteringFile?: string;
}

/** The deployments the inventory asks for: its `workers:` and the router's shards. */
export function deployments(inv: Inventory, opts: WorkerOptions = {}): { router: WorkerDeployment[]; workers: WorkerDeployment[] } {
  const zones = new Map(inv.zones.map((z) => [z.name, z]));
  const workers = inv.fleet.workers.map((w: WorkerSpec) => ({
    script: w.script,
    source: w.source,
    canary: w.canary,
    domains: w.domains.map((h) => ({ hostname: h, zone: zoneOfHost(h, zones)?.name ?? "" })),
    routes: w.routes.map((pattern) => ({ pattern, zone: zoneOfHost(pattern.slice(0, pattern.indexOf("/")), zones)?.name ?? "" })),
    secrets: w.secrets,
    // The inventory's values for this code: metering.yaml's vars and archive retention.
    vars: { ...w.vars, ...(inv.metering ? meteringVarsFor(w.source, inv.metering) : {}) },
    ...(inv.metering ? { archiveRetentionDays: inv.metering.archiveRetentionDays } : {}),
    ...(inv.metering && DEAD_LETTER_SOURCES.includes(w.source) ? { deadLetterRetentionDays: inv.metering.deadLetterRetentionDays } : {}),
  }));
  const router: WorkerDeployment[] = [];
  // The router serves the proxied zones (routes on apex and www) and the MTA-STS policy
  // host of every zone that receives mail (a custom domain: Cloudflare creates its DNS
  // record and a certificate for exactly mta-sts.<zone>; stacks/model/mail.ts).
  const proxied = new Set(routerZones(inv).map((z) => z.name));
  const policyHosts = new Set(mailZones(inv).map((z) => z.name));
  const served = [...new Set([...proxied, ...policyHosts])];
  if (served.length > 0) {
    const cfg = readWorkerConfig(inv.fleet.router.source, opts.workersDir ?? WORKERS_DIR);
    const base = cfg.ok ? cfg.config.name : "edgefleet-router";
    const shards = inv.fleet.router.shards ?? shardCount(served.length);
    const shardOf = assignRouterShards(served, { shards });
    for (let s = 0; s < shards; s++) {
      const mine = served.filter((z) => shardOf.get(z) === s).sort();
      const kvTitles = cfg.ok && cfg.config.kv[0] ? { [cfg.config.kv[0].binding]: inv.fleet.router.namespaceTitle } : {};
      router.push({
        script: shardScriptName(base, s),
        source: inv.fleet.router.source,
        canary: false,
        domains: mine.filter((z) => policyHosts.has(z)).map((z) => ({ hostname: `${MTA_STS_LABEL}.${z}`, zone: z })),
        routes: mine.filter((z) => proxied.has(z)).flatMap((z) => [{ pattern: `${z}/*`, zone: z }, { pattern: `www.${z}/*`, zone: z }]),
        secrets: {},
        vars: {},
        kvTitles,
      });
    }
  }
  return { router, workers };
}

/** Checks the `workers:` and `router:` sections against the zones and each wrangler.jsonc. */
export function validateWorkers(inv: Inventory, opts: WorkerOptions = {}): { problems: SemanticProblem[]; configProblems: Problem[] } {
  const problems: SemanticProblem[] = [];
  const configProblems: Problem[] = [];
  const zones = new Map(inv.zones.map((z) => [z.name, z]));
  const seenConfig = new Set<string>();
  const config = (source: string) => {
    const r = readWorkerConfig(source, opts.workersDir ?? WORKERS_DIR);
    if (!r.ok && !seenConfig.has(source)) configProblems.push(...r.problems);
    seenConfig.add(source);
    return r.ok ? r.config : undefined;
  };
  const scripts = new Map<string, number>();
  const hosts = new Map<string, string>();
  const routed = routerHosts(inv);
  // The router's shards take their script names first (edgefleet-router, -1, ...).
  const routerScripts = new Set(deployments(inv, opts).router.map((d) => d.script));
  // Queues a Worker consumes, and dead-letter queues read over HTTP (`npm run dead-letters`):
  // Cloudflare lets a queue have a Worker consumer or a pull consumer, not both.
  const consumedBy = new Map<string, number>();
  const pulled = new Map<string, string>();
  inv.fleet.workers.forEach((w, i) => {
    const at = (...p: (string | number)[]) => ["workers", i, ...p];
    const first = scripts.get(w.script);
    if (first !== undefined) problems.push({ file: "fleet", path: at("script"), message: `script '${w.script}' is declared twice (first at workers[${first}])` });
    else scripts.set(w.script, i);
    if (routerScripts.has(w.script)) problems.push({ file: "fleet", path: at("script"), message: `script '${w.script}' is a router shard's name (${[...routerScripts].join(", ")})` });
    const cfg = config(w.source);
    w.domains.forEach((h, j) => {
      const zone = zoneOfHost(h, zones);
      if (!zone) problems.push({ file: "fleet", path: at("domains", j), message: `'${h}' is in no zone of the inventory` });
      const other = hosts.get(h);
      if (other) problems.push({ file: "fleet", path: at("domains", j), message: `'${h}' is already served by ${other}` });
      hosts.set(h, `workers[${i}] (${w.script})`);
      if (routed.has(h)) problems.push({ file: "fleet", path: at("domains", j), message: `'${h}' is served by the router (its zone's web posture is proxied); use another hostname` });
      if (zone) {
        const prefix = relativeName(h, zone.name);
        const clash = zone.records.find((r) => r.name === prefix);
        if (clash) problems.push({ file: "fleet", path: at("domains", j), message: `'${h}' already has a ${clash.type} record in zones.yaml; a custom domain creates its own DNS record` });
      }
    });
    w.routes.forEach((pattern, j) => {
      const h = pattern.slice(0, pattern.indexOf("/"));
      const zone = zoneOfHost(h, zones);
      if (!zone) {
        problems.push({ file: "fleet", path: at("routes", j), message: `'${h}' is in no zone of the inventory` });
        return;
      }
      if (routed.has(h)) problems.push({ file: "fleet", path: at("routes", j), message: `'${h}' is served by the router (its zone's web posture is proxied); use another hostname` });
      const other = hosts.get(pattern);
      if (other) problems.push({ file: "fleet", path: at("routes", j), message: `route '${pattern}' is already taken by ${other}` });
      hosts.set(pattern, `workers[${i}] (${w.script})`);
      const prefix = relativeName(h, zone.name);
      const proxied = zone.records.some((r) => r.name === prefix && (r.type === "A" || r.type === "AAAA" || r.type === "CNAME") && r.proxied);
      if (!proxied) problems.push({ file: "fleet", path: at("routes", j), message: `'${h}' has no proxied A, AAAA or CNAME record in zones.yaml, so the route would never see a request (add e.g. { type: AAAA, name: ${prefix}, content: "100::", proxied: true })` });
    });
    if (!cfg) return;
    for (const c of cfg.queueConsumers) {
      const first = consumedBy.get(c.queue);
      if (first === undefined) consumedBy.set(c.queue, i);
      // Cloudflare gives a queue one Worker consumer: the second Worker's deploy would fail
      // with API error 11004 (workers.api.error.consumer_exists; Queues get-started guide,
      // "Each queue can only have one consumer Worker connected to it").
      else if (first !== i) problems.push({ file: "fleet", path: at("source"), message: `${w.source} (script ${w.script}) consumes queue '${c.queue}', which workers[${first}] (${inv.fleet.workers[first]!.script}) already consumes; Cloudflare allows one Worker consumer per queue (its deploy would fail with error 11004, consumer_exists)` });
    }
    if (DEAD_LETTER_SOURCES.includes(w.source)) for (const c of cfg.queueConsumers) if (c.deadLetterQueue) pulled.set(c.deadLetterQueue, w.script);
    for (const k of Object.keys(w.vars)) {
      if (!(k in cfg.vars)) problems.push({ file: "fleet", path: at("vars", k), message: `'${k}' is not a var of ${cfg.file} (vars: ${Object.keys(cfg.vars).join(", ") || "none"})` });
    }
    // What the inventory's metering.yaml gives this code: its vars, and the retention of
    // any bucket that holds archives (the lifecycle rule).
    const fromMetering = METERING_VARS[w.source] ?? [];
    const archives = cfg.r2.filter((b) => holdsArchives(b.bucket, b.binding)).map((b) => `the retention of its archive bucket '${b.bucket}' (archive.retention_days)`);
    if (!inv.metering && !opts.meteringFile && (fromMetering.length > 0 || archives.length > 0)) {
      problems.push({ file: "fleet", path: at("source"), message: `${w.source} needs ${[...fromMetering, ...archives].join(", ")} from ${METERING_FILE}, which this inventory does not have` });
    }
    for (const v of fromMetering) {
      if (v in cfg.vars) problems.push({ file: "fleet", path: at("source"), message: `${cfg.file} declares var '${v}', which the inventory's ${METERING_FILE} gives this Worker: remove it from wrangler.jsonc` });
    }
    const bound = new Set([...Object.keys(cfg.vars), ...cfg.kv.map((b) => b.binding), ...cfg.r2.map((b) => b.binding), ...cfg.d1.map((b) => b.binding), ...cfg.queueProducers.map((b) => b.binding), ...cfg.analytics.map((b) => b.binding), ...cfg.durableObjects.map((b) => b.binding), ...(cfg.versionMetadata ? [cfg.versionMetadata] : [])]);
    for (const k of Object.keys(w.secrets)) {
      if (bound.has(k)) problems.push({ file: "fleet", path: at("secrets", k), message: `'${k}' is already a binding in ${cfg.file}` });
    }
    const expected = expectedSecrets(cfg);
    if (expected) {
      const missing = expected.filter((s) => !(s in w.secrets));
      if (missing.length) problems.push({ file: "fleet", path: at("secrets"), message: `${w.source} needs secrets ${missing.join(", ")} (listed in ${cfg.file.replace(/wrangler\.jsonc$/, ".dev.vars.example")})` });
      for (const k of Object.keys(w.secrets)) if (!expected.includes(k)) problems.push({ file: "fleet", path: at("secrets", k), message: `${w.source} does not use a secret '${k}' (its .dev.vars.example lists ${expected.join(", ")})` });
    }
  });
  for (const [queue, i] of consumedBy) {
    const owner = pulled.get(queue);
    if (owner !== undefined) problems.push({ file: "fleet", path: ["workers", i, "source"], message: `${inv.fleet.workers[i]!.source} consumes queue '${queue}', the dead-letter queue of ${owner}, which is read over HTTP (npm run dead-letters); Cloudflare allows a Worker consumer or a pull consumer on a queue, not both` });
  }
  if (routerZones(inv).length > 0 || mailZones(inv).length > 0) config(inv.fleet.router.source);
  return { problems, configProblems };
}

/** The fleet's Workers and their resources (assumes validateWorkers found nothing). */
export function deriveWorkers(inv: Inventory, accountId: string, zoneId: (zone: string) => string | Ref, opts: WorkerOptions = {}): FleetWorkers {
  const { router, workers } = deployments(inv, opts);
  const resources: DesiredResource[] = [];
  const out: DesiredWorker[] = [];
  const seen = new Set<string>();
  const configs = new Map<string, WorkerConfig>();
  const configOf = (d: WorkerDeployment): WorkerConfig => {
    let c = configs.get(d.source);
    if (c === undefined) configs.set(d.source, (c = readWorkerConfigOrThrow(d.source, opts.workersDir ?? WORKERS_DIR)));
    return c;
  };
  const add = (d: WorkerDeployment, parent?: string) => {
    const config = configOf(d);
    const bundle = bundleWorker(config);
    for (const res of workerResources(d, config, bundle, accountId, zoneId)) {
      // Storage shared by several deployments is declared once.
      const key = `${res.type}::${res.name}`;
      if (seen.has(key)) continue;
      seen.add(key);
      if (parent && res.type === TYPES.worker) res.parent = parent;
      resources.push(res);
    }
    const hostnames = [...d.domains.map((x) => x.hostname), ...d.routes.map((x) => x.pattern.replace(/\/\*$/, ""))];
    out.push({
      script: d.script,
      source: d.source,
      canary: d.canary,
      secrets: Object.entries(d.secrets).map(([binding, config]) => ({ binding, config })).sort((a, b) => (a.binding < b.binding ? -1 : 1)),
      hostnames,
      statusUrl: OPERATOR_TOKEN_BINDING in d.secrets && hostnames[0] ? `https://${hostnames[0]}${STATUS_PATH}` : null,
      bundle: bundle.sha256,
      migrationTags: config.migrations.map((m) => m.tag),
      zones: [...new Set([...d.domains.map((x) => x.zone), ...d.routes.map((x) => x.zone)])].sort(),
      deployment: d,
    });
  };
  if (router.length > 0) {
    resources.push({ type: TYPES.router, name: "router", zone: ACCOUNT_SCOPE, inputs: {} });
    for (const d of router) add(d, "router");
  }
  for (const d of workers) add(d);
  // A producer's script waits for the scripts consuming its queues: in one `pulumi up` the
  // consumer's new version is live before the producer's, which may send what only the new
  // consumer reads (a new field of the usage event, say; docs/metering.md). The Pulumi
  // program passes these to the Worker components (stacks/fleet.ts); the order in which
  // the components are declared, and so every URN, stays the inventory's.
  const all = [...router, ...workers];
  for (const [script, consumers] of queueWaits(all, configOf)) {
    const r = resources.find((x) => x.type === TYPES.workersScript && x.name === names.script(script));
    if (r !== undefined) r.options = { ...r.options, dependsOn: [...(r.options?.dependsOn ?? []), ...consumers.map((c) => names.script(c))] };
  }
  return { workers: out, resources };
}

/** For each deployment that produces to a queue another deployment consumes: those
 *  consumers' scripts, sorted (a Worker consuming its own queue waits for nobody). A wait
 *  that would close a cycle (A produces to B's queue and B to A's) is left out, taken in
 *  the inventory's order: Pulumi cannot order a cycle, and the program would wait forever. */
export function queueWaits<D extends { script: string }>(deployments: D[], configOf: (d: D) => Pick<WorkerConfig, "queueProducers" | "queueConsumers">): Map<string, string[]> {
  const consumers = new Map<string, Set<string>>();
  for (const d of deployments) {
    for (const c of configOf(d).queueConsumers) {
      const set = consumers.get(c.queue) ?? new Set<string>();
      set.add(d.script);
      consumers.set(c.queue, set);
    }
  }
  const waits = new Map<string, string[]>();
  // Whether `from` already waits, directly or through others, for `to`.
  const reaches = (from: string, to: string, seen = new Set<string>()): boolean => {
    if (from === to) return true;
    if (seen.has(from)) return false;
    seen.add(from);
    return (waits.get(from) ?? []).some((next) => reaches(next, to, seen));
  };
  for (const d of deployments) {
    const of = [...new Set(configOf(d).queueProducers.flatMap((p) => [...(consumers.get(p.queue) ?? [])]))].filter((c) => c !== d.script).sort();
    for (const c of of) {
      if (reaches(c, d.script)) continue;
      waits.set(d.script, [...(waits.get(d.script) ?? []), c]);
    }
  }
  return waits;
}
