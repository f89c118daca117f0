// Declares a whole desired state with Pulumi: one ZonePosture per zone, then the
// router's shards (Router) and the inventory's Workers (Worker). Called by the program
// (stacks/program.ts) and, under Pulumi's mocks, by the equivalence test.
import * as pulumi from "@pulumi/pulumi";
import { join } from "node:path";
import { Router } from "./components/router.ts";
import { declaredResources, Worker, type Declared } from "./components/worker.ts";
import { ZonePosture } from "./components/zone-posture.ts";
import type { DesiredResource, DesiredState } from "./model/desired.ts";
import { TYPES } from "./model/names.ts";
import { names } from "./model/workers.ts";
import { WORKERS_DIR } from "./model/wrangler.ts";
import type { MigrationTagReader } from "./live-migration-tags.ts";

export interface DeclaredFleet {
  zones: Map<string, ZonePosture>;
  /** Every Worker resource declared, by desired-state name (storage ids for outputs). */
  declared: Declared;
  router?: Router;
  workers: Map<string, Worker>;
}

export interface DeclareOptions {
  /** Where the Workers' folders are; default the repository's workers/. */
  workersDir?: string;
  /** Reads a script's live Durable Object migration tag (stacks/live-migration-tags.ts). */
  migrationTag?: MigrationTagReader;
}

export function declareFleet(state: DesiredState, opts?: pulumi.ComponentResourceOptions, declareOpts: DeclareOptions = {}): DeclaredFleet {
  const children = new Map<string, DesiredResource[]>();
  for (const r of state.resources) {
    if (!r.parent) continue;
    const siblings = children.get(r.parent);
    if (siblings) siblings.push(r);
    else children.set(r.parent, [r]);
  }
  const zones = new Map<string, ZonePosture>();
  for (const r of state.resources) {
    if (r.type !== TYPES.zonePosture) continue;
    zones.set(r.zone, new ZonePosture(r.name, { resources: children.get(r.name) ?? [] }, opts));
  }

  // Workers: each declares the part of its resources this stack's state holds.
  const inStack = new Set(state.resources.map((r) => `${r.type}::${r.name}`));
  const include = (r: DesiredResource) => inStack.has(`${r.type}::${r.name}`);
  const zoneIds: Record<string, pulumi.Input<string>> = {};
  for (const z of state.zones) {
    const id = z.id ?? zones.get(z.name)?.zoneId;
    if (id !== undefined) zoneIds[z.name] = id;
  }
  const declared: Declared = new Map();
  const workersDir = declareOpts.workersDir ?? WORKERS_DIR;
  const present = (script: string) => inStack.has(`${TYPES.worker}::${names.component(script)}`);
  // The router's shards are the Worker components under the Router component.
  const underRouter = new Set(state.resources.filter((r) => r.type === TYPES.worker && r.parent === "router").map((r) => r.name));
  const isRouterShard = (script: string) => underRouter.has(names.component(script));
  const routerShards = state.workers.filter((w) => present(w.script) && isRouterShard(w.script));
  let router: Router | undefined;
  if (routerShards.length > 0) {
    router = new Router(
      "router",
      { accountId: state.accountId, folder: join(workersDir, routerShards[0]!.source), shards: routerShards.map((w) => w.deployment), zoneIds, declared, include, migrationTag: declareOpts.migrationTag },
      opts,
    );
  }
  // A producer's script waits for the scripts consuming its queues (the desired state's
  // dependsOn naming another Worker's script, stacks/model/workers.ts queueWaits). Those may
  // be declared by a later component: the wait is a promise, resolved once every component
  // exists (with what this stack declares of them; a script in another stack is not waited
  // for). The components keep the inventory's order, and so their URNs.
  const ownScripts = new Set(state.workers.map((w) => names.script(w.script)));
  const waits: { names: string[]; resolve: (rs: pulumi.Resource[]) => void }[] = [];
  const scriptAfter = (script: string): Promise<pulumi.Resource[]> | undefined => {
    const r = state.resources.find((x) => x.type === TYPES.workersScript && x.name === names.script(script));
    const others = (r?.options?.dependsOn ?? []).filter((n) => ownScripts.has(n) && n !== names.script(script));
    if (others.length === 0) return undefined;
    return new Promise<pulumi.Resource[]>((resolve) => waits.push({ names: others, resolve }));
  };
  const workers = new Map<string, Worker>();
  for (const w of state.workers) {
    if (!present(w.script) || isRouterShard(w.script)) continue;
    const d = w.deployment;
    const after = scriptAfter(w.script);
    workers.set(
      w.script,
      new Worker(
        names.component(w.script),
        { accountId: state.accountId, folder: join(workersDir, w.source), script: d.script, canary: d.canary, domains: d.domains, routes: d.routes, secrets: d.secrets, vars: d.vars, kvTitles: d.kvTitles, archiveRetentionDays: d.archiveRetentionDays, deadLetterRetentionDays: d.deadLetterRetentionDays, zoneIds, declared, include, migrationTag: declareOpts.migrationTag, ...(after ? { scriptAfter: after } : {}) },
        opts,
      ),
    );
  }
  for (const w of waits) w.resolve(declaredResources(declared, w.names));
  return { zones, declared, router, workers };
}
