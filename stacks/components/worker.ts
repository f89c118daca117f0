// Worker: deploys one Worker from its folder. It reads the folder's wrangler.jsonc (the
// single source of binding names and kinds, compatibility settings, Durable Object
// classes and migrations), bundles the code with esbuild deterministically, creates the
// storage its bindings need (KV namespaces, R2 buckets and the lifecycle rule of one that
// holds archives, D1 databases, Queues including dead-letter queues; Analytics Engine
// datasets need no resource: Cloudflare creates one on its first write), declares the
// cloudflare.WorkersScript with every binding, its migrations and version_metadata,
// takes secrets from Pulumi secret config (requireSecret) as secret_text bindings, and
// attaches its Queue consumers, Cron Triggers, routes and custom domains.
//
// What it declares is computed by stacks/model/workers.ts (workerResources), the same
// function the offline plan, the policies and key rotation read, so the three cannot
// disagree; this file only maps that list onto @pulumi/cloudflare.
import * as cloudflare from "@pulumi/cloudflare";
import * as pulumi from "@pulumi/pulumi";
import { basename, dirname, resolve } from "node:path";
import { bundleWorker } from "../model/bundle.ts";
import { mapRefs, type DesiredResource, type InputValue, type Inputs } from "../model/desired.ts";
import { formatProblem } from "../model/load.ts";
import { migrationsToUpload } from "../model/migrations.ts";
import { TYPES } from "../model/names.ts";
import type { ProviderArgs, ProviderType } from "../model/provider-args.ts";
import { isBundleRef, isSecretRef, names, workerResources, type WorkerDeployment } from "../model/workers.ts";
import { readWorkerConfig, type WorkerConfig } from "../model/wrangler.ts";
import type { MigrationTagReader } from "../live-migration-tags.ts";

/** Outputs of resources declared elsewhere, by desired-state name (zones, shared storage). */
export type Declared = Map<string, { resource: pulumi.Resource; outputs: Record<string, pulumi.Output<string>> }>;

/** The resources of these desired-state names that are declared (a name this stack does
 *  not declare is skipped). */
export function declaredResources(declared: Declared, names: string[]): pulumi.Resource[] {
  return names.map((n) => declared.get(n)?.resource).filter((x): x is pulumi.Resource => x !== undefined);
}

export interface WorkerArgs {
  accountId: string;
  /** The Worker's folder, holding wrangler.jsonc (e.g. workers/llm-proxy). */
  folder: string;
  /** Script name; default wrangler.jsonc's `name`. */
  script?: string;
  canary?: boolean;
  /** Custom domains and the zone each is in. */
  domains?: { hostname: string; zone: string }[];
  /** Route patterns and the zone each is in. */
  routes?: { pattern: string; zone: string }[];
  /** secret_text binding -> Pulumi config key (namespace edgefleet), read with requireSecret. */
  secrets?: Record<string, string>;
  /** Values for vars declared in wrangler.jsonc, and the vars the inventory gives the
   * code (metering.yaml's PRICES...: stacks/model/metering.ts METERING_VARS). */
  vars?: Record<string, string>;
  kvTitles?: Record<string, string>;
  /** Days a bucket that holds archives keeps an object (its lifecycle rule); required
   * when wrangler.jsonc binds one (metering.yaml archive.retention_days). */
  archiveRetentionDays?: number;
  /** Days each dead-letter queue of its consumers keeps a message; when set, each also
   * gets its HTTP pull consumer (metering.yaml ledger.dead_letter_retention_days). */
  deadLetterRetentionDays?: number;
  /** Zone name -> zone id (or the desired-state name of the Zone resource when it is a Ref). */
  zoneIds?: Record<string, pulumi.Input<string>>;
  /** Resources already declared by the caller: zones and storage shared between deployments. */
  declared?: Declared;
  /** Declare only these of the Worker's resources (a sharded stack declares its part). */
  include?: (r: DesiredResource) => boolean;
  /** Resources of other components the script must wait for (the scripts consuming its
   *  queues, declared later: stacks/fleet.ts resolves the promise once they exist). */
  scriptAfter?: Promise<pulumi.Resource[]>;
  /** Where secrets come from; default new pulumi.Config("edgefleet"). */
  config?: pulumi.Config;
  /** The live script's Durable Object migration tag (stacks/live-migration-tags.ts);
   * required when wrangler.jsonc has migrations: the upload sends `old_tag` and only the
   * later steps (stacks/model/migrations.ts, docs/deploys.md). */
  migrationTag?: MigrationTagReader;
}

/** The resource types a Worker declares, and the provider class of each: the compiler
 * checks that each class takes the Args the model typed its inputs against. */
type WorkerResourceType = Exclude<ProviderType, typeof TYPES.zone | typeof TYPES.dnsRecord>;
const CONSTRUCTORS: { [K in WorkerResourceType]: new (name: string, args: ProviderArgs[K], opts?: pulumi.CustomResourceOptions) => pulumi.CustomResource } = {
  [TYPES.workersKvNamespace]: cloudflare.WorkersKvNamespace,
  [TYPES.r2Bucket]: cloudflare.R2Bucket,
  [TYPES.r2BucketLifecycle]: cloudflare.R2BucketLifecycle,
  [TYPES.d1Database]: cloudflare.D1Database,
  [TYPES.queue]: cloudflare.Queue,
  [TYPES.workersScript]: cloudflare.WorkersScript,
  [TYPES.queueConsumer]: cloudflare.QueueConsumer,
  [TYPES.workersCronTrigger]: cloudflare.WorkersCronTrigger,
  [TYPES.workersRoute]: cloudflare.WorkersRoute,
  [TYPES.workersCustomDomain]: cloudflare.WorkersCustomDomain,
};

/**
 * Declares one provider resource. `args` are the model's inputs with their references
 * resolved: the model wrote them as ModelInputs<K> (checked against ProviderArgs[K] by
 * the compiler, stacks/model/provider-args.ts), and resolving swaps each reference for
 * the Output or secret it names, which leaves exactly ProviderArgs[K].
 */
function declare<K extends WorkerResourceType>(type: K, name: string, args: unknown, opts: pulumi.CustomResourceOptions): pulumi.CustomResource {
  const Ctor = CONSTRUCTORS[type] as new (name: string, args: ProviderArgs[K], opts?: pulumi.CustomResourceOptions) => pulumi.CustomResource;
  return new Ctor(name, args as ProviderArgs[K], opts);
}

/** The outputs other resources refer to (Ref.$output), by resource type. */
function outputsOf(type: string, r: pulumi.CustomResource): Record<string, pulumi.Output<string>> {
  const out: Record<string, pulumi.Output<string>> = { id: r.id };
  if (type === TYPES.d1Database) out.uuid = (r as cloudflare.D1Database).uuid;
  if (type === TYPES.queue) out.queueId = (r as cloudflare.Queue).queueId;
  return out;
}

export class Worker extends pulumi.ComponentResource {
  public readonly scriptName: string;
  /** "sha256:<hex>" of the uploaded bundle. */
  public readonly bundleSha256: string;
  public readonly config: WorkerConfig;
  /** Everything this component declared or reused, by desired-state name. */
  public readonly resources: Declared;

  constructor(name: string, args: WorkerArgs, opts?: pulumi.ComponentResourceOptions) {
    super(TYPES.worker, name, {}, opts);
    const folder = resolve(args.folder);
    const read = readWorkerConfig(basename(folder), dirname(folder));
    if (!read.ok) throw new pulumi.RunError(read.problems.map(formatProblem).join("\n"));
    this.config = read.config;
    const bundle = bundleWorker(read.config);
    this.bundleSha256 = bundle.sha256;
    const deployment: WorkerDeployment = {
      script: args.script ?? read.config.name,
      source: basename(folder),
      canary: args.canary ?? false,
      domains: args.domains ?? [],
      routes: args.routes ?? [],
      secrets: args.secrets ?? {},
      vars: args.vars ?? {},
      kvTitles: args.kvTitles,
      archiveRetentionDays: args.archiveRetentionDays,
      deadLetterRetentionDays: args.deadLetterRetentionDays,
    };
    this.scriptName = deployment.script;
    const zoneIds = args.zoneIds ?? {};
    // Shared with the caller: storage another deployment declared is reused, and what
    // this one declares is visible to the next.
    const declared: Declared = args.declared ?? new Map();
    this.resources = declared;
    const secrets = args.config ?? new pulumi.Config("edgefleet");
    // Zone ids are passed in: given in the inventory, or the id of a Zone the stack creates.
    const zoneRef = (zone: string) => ({ $ref: `zone:${zone}`, $output: "id" as const });
    let all: DesiredResource[];
    try {
      all = workerResources(deployment, read.config, bundle, args.accountId, zoneRef);
    } catch (e) {
      throw new pulumi.RunError(`Worker ${name}: ${(e as Error).message}`);
    }
    const wanted = all.filter((r) => r.type !== TYPES.worker && (args.include?.(r) ?? true));

    const resolveValue = (v: InputValue) =>
      mapRefs(v, (ref): pulumi.Input<unknown> => {
        if (isSecretRef(ref)) return secrets.requireSecret(ref.$secret);
        if (isBundleRef(ref)) return bundle.content;
        if (ref.$ref.startsWith("zone:")) {
          const zone = ref.$ref.slice("zone:".length);
          if (zoneIds[zone] === undefined) throw new pulumi.RunError(`Worker ${name}: no zone id for '${zone}' (is the zone in this stack's inventory or shard?)`);
          return zoneIds[zone];
        }
        const hit = declared.get(ref.$ref)?.outputs[ref.$output];
        if (!hit) throw new Error(`internal: ${name} refers to ${ref.$ref}.${ref.$output}, which is not declared`);
        return hit;
      });

    // Storage first (unless shared and declared already), then the script, then what
    // names the script (consumers, cron triggers, routes, custom domains).
    const order: WorkerResourceType[] = [
      TYPES.workersKvNamespace, TYPES.r2Bucket, TYPES.r2BucketLifecycle, TYPES.d1Database, TYPES.queue,
      TYPES.workersScript, TYPES.queueConsumer, TYPES.workersCronTrigger, TYPES.workersRoute, TYPES.workersCustomDomain,
    ];
    for (const type of order) {
      for (const r of wanted.filter((x) => x.type === type)) {
        if (declared.has(r.name)) continue;
        const own = declaredResources(declared, r.options?.dependsOn ?? []);
        const after = type === TYPES.workersScript ? args.scriptAfter : undefined;
        const dependsOn: pulumi.Input<pulumi.Input<pulumi.Resource>[]> = after === undefined ? own : after.then((more) => [...own, ...more]);
        const inputs = resolveValue(r.inputs as Inputs) as Record<string, unknown>;
        if (type === TYPES.workersScript) inputs.migrations = this.migrations(deployment.script, read.config, args.migrationTag);
        const o = r.options;
        const res = declare(type, r.name, inputs, {
          parent: this,
          dependsOn,
          ...(o?.retainOnDelete ? { retainOnDelete: true } : {}),
          ...(o?.protect ? { protect: true } : {}),
          ...(o?.ignoreChanges ? { ignoreChanges: o.ignoreChanges } : {}),
        });
        declared.set(r.name, { resource: res, outputs: outputsOf(type, res) });
      }
    }
    this.registerOutputs({ scriptName: this.scriptName, bundleSha256: this.bundleSha256 });
  }

  /** The `migrations` input: what the live script's tag calls for, read when the program
   * runs (preview and up alike); undefined when the script is current. */
  private migrations(script: string, config: WorkerConfig, reader: MigrationTagReader | undefined): pulumi.Output<unknown> | undefined {
    if (config.migrations.length === 0) return undefined;
    if (!reader) throw new pulumi.RunError(`Worker ${script}: ${config.file} has Durable Object migrations, so the component needs the live migration tag (WorkerArgs.migrationTag)`);
    return pulumi.output(reader(script)).apply((live) => {
      const plan = migrationsToUpload(script, config.migrations, live);
      if (plan.status === "apply" && plan.warning) void pulumi.log.warn(plan.warning, this);
      const tags = plan.tags.join(", ");
      const what =
        plan.status === "current"
          ? `live tag ${plan.live} is current (${tags}): no migrations sent`
          : plan.status === "apply"
            ? `live tag ${plan.live ?? "(none)"}: sending ${plan.upload.steps.length} step(s) to ${plan.upload.newTag}${plan.upload.oldTag ? ` with old_tag ${plan.upload.oldTag}` : ""}`
            : "no migrations";
      void pulumi.log.info(`Durable Object migrations of ${script}: ${what}`, this);
      return plan.upload;
    });
  }
}

/** The desired-state name of a Worker's script (for callers that look it up). */
export const scriptResourceName = names.script;
