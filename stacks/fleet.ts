// Declares a whole desired state with Pulumi: one ZonePosture per zone, then the
// router's shards (Router) and the inventory's Workers (Worker). Called by the program
// (stacks/program.ts) and, under Pulumi's mocks, by the equivalence test.
import * as pulumi from "@pulumi/pulumi";
import { join } from "node:path";
import { Router } from "./components/router.ts";
import { Worker, type Declared } from "./components/worker.ts";
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
  const workers = new Map<string, Worker>();
  for (const w of state.workers) {
    if (!present(w.script) || isRouterShard(w.script)) continue;
    const d = w.deployment;
    workers.set(
      w.script,
      new Worker(
        names.component(w.script),
        { accountId: state.accountId, folder: join(workersDir, w.source), script: d.script, canary: d.canary, domains: d.domains, routes: d.routes, secrets: d.secrets, vars: d.vars, kvTitles: d.kvTitles, archiveRetentionDays: d.archiveRetentionDays, deadLetterRetentionDays: d.deadLetterRetentionDays, zoneIds, declared, include, migrationTag: declareOpts.migrationTag },
        opts,
      ),
    );
  }
  return { zones, declared, router, workers };
}
