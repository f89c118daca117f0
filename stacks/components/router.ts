// Router: the router Worker that serves the fleet's static zones from the KV content map.
// One Worker component per shard: past Cloudflare's 1,000 zones per Worker the zones are
// spread over several identical router Workers by stable rendezvous hashing
// (stacks/model/router-shards.ts), all bound to the one content-map namespace. Each
// shard routes `<zone>/*` and `www.<zone>/*` of its zones (routes, not custom domains:
// the web posture already has proxied AAAA 100:: records at @ and www).
// The shards and routes come from stacks/model/workers.ts (deployments); the content is
// published by `npm run sites publish`, not by Pulumi (docs/router.md says why).
import * as pulumi from "@pulumi/pulumi";
import type { DesiredResource } from "../model/desired.ts";
import { TYPES } from "../model/names.ts";
import { names, type WorkerDeployment } from "../model/workers.ts";
import { Worker, type Declared } from "./worker.ts";
import type { MigrationTagReader } from "../live-migration-tags.ts";

export const ROUTER_TYPE = TYPES.router;

export interface RouterArgs {
  accountId: string;
  /** The router's folder (workers/router). */
  folder: string;
  /** One deployment per shard, shard 0 first (deployments(inventory).router). */
  shards: WorkerDeployment[];
  zoneIds: Record<string, pulumi.Input<string>>;
  declared?: Declared;
  include?: (r: DesiredResource) => boolean;
  /** Live Durable Object migration tags (only read if the router's wrangler.jsonc has migrations). */
  migrationTag?: MigrationTagReader;
}

export class Router extends pulumi.ComponentResource {
  /** The content map's namespace id (npm run sites publish --namespace-id), when declared here. */
  public readonly namespaceId: pulumi.Output<string> | undefined;
  public readonly workers: Worker[];

  constructor(name: string, args: RouterArgs, opts?: pulumi.ComponentResourceOptions) {
    super(ROUTER_TYPE, name, {}, opts);
    const declared: Declared = args.declared ?? new Map();
    this.workers = args.shards.map(
      (d) =>
        new Worker(
          names.component(d.script),
          {
            accountId: args.accountId,
            folder: args.folder,
            script: d.script,
            routes: d.routes,
            domains: d.domains,
            kvTitles: d.kvTitles,
            zoneIds: args.zoneIds,
            declared,
            include: args.include,
            migrationTag: args.migrationTag,
          },
          { parent: this },
        ),
    );
    const kv = this.workers[0]?.config.kv[0];
    const title = kv ? args.shards[0]!.kvTitles?.[kv.binding] : undefined;
    this.namespaceId = title ? declared.get(names.kv(title))?.outputs.id : undefined;
    this.registerOutputs({ namespaceId: this.namespaceId, scriptNames: args.shards.map((d) => d.script) });
  }
}
