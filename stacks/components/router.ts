// Router: the router Worker that serves the fleet's static zones from KV. Declares the
// content map's KV namespace, the Worker (bundled with esbuild, bindings from its
// wrangler.jsonc) and `<zone>/*` + `www.<zone>/*` routes for every router zone. Past
// Cloudflare's 1,000 zones per Worker it runs several identical router Workers
// (shards) and assigns zones by stable rendezvous hashing (stacks/model/router-shards).
// The content itself is published by `npm run sites publish`, not by Pulumi.
import * as cloudflare from "@pulumi/cloudflare";
import * as pulumi from "@pulumi/pulumi";
import { assignShards, shardCount, shardScriptName } from "../model/router-shards.ts";
import { bundleRouter, ROUTER_MAIN_MODULE } from "../../workers/router/bundle.ts";
import { readRouterConfig, type RouterConfig } from "../../workers/router/config.ts";

export const ROUTER_TYPE = "edgefleet:cloudflare:Router";

export interface RouterZone {
  /** The zone's name, e.g. shop.example. */
  name: string;
  /** The zone's Cloudflare id (from the inventory or the ZonePosture that created it). */
  zoneId: pulumi.Input<string>;
}

export interface RouterArgs {
  accountId: pulumi.Input<string>;
  /** The router's zones: those whose effective web posture is proxied (routerZones()). */
  zones: RouterZone[];
  /** Title of the content map's KV namespace; default "edgefleet-sites". */
  namespaceTitle?: string;
  /** Fix the number of router Workers; default ceil(zones / 800) (see router-shards.ts). */
  shards?: number;
  /** The Worker's module source; default: workers/router bundled by esbuild. */
  content?: string;
  /** The router's wrangler settings; default: read from workers/router/wrangler.jsonc. */
  config?: RouterConfig;
}

export class Router extends pulumi.ComponentResource {
  /** The content map's namespace id: what `npm run sites publish --namespace-id` needs. */
  public readonly namespaceId: pulumi.Output<string>;
  /** Script name of each shard, shard 0 first. */
  public readonly scriptNames: string[];
  /** Zone name -> shard index. */
  public readonly shardOf: Map<string, number>;

  constructor(name: string, args: RouterArgs, opts?: pulumi.ComponentResourceOptions) {
    super(ROUTER_TYPE, name, {}, opts);
    const config = args.config ?? readRouterConfig();
    const content = args.content ?? bundleRouter();
    const names = args.zones.map((z) => z.name);
    if (new Set(names).size !== names.length) throw new Error(`Router ${name}: a zone is listed twice`);

    const namespace = new cloudflare.WorkersKvNamespace(
      `${name}-sites`,
      { accountId: args.accountId, title: args.namespaceTitle ?? "edgefleet-sites" },
      { parent: this },
    );

    const shards = args.shards ?? shardCount(names.length);
    this.shardOf = assignShards(names, { shards });
    this.scriptNames = Array.from({ length: shards }, (_, s) => shardScriptName(config.name, s));

    // The bindings of wrangler.jsonc, with the real namespace id in place of its local one.
    const bindings = [
      { type: "kv_namespace", name: config.kvBinding, namespaceId: namespace.id },
      ...Object.entries(config.vars)
        .sort(([a], [b]) => (a < b ? -1 : 1))
        .map(([k, v]) => ({ type: "plain_text", name: k, text: v })),
    ];
    const scripts = this.scriptNames.map(
      (scriptName, s) =>
        new cloudflare.WorkersScript(
          `${name}-shard-${s}`,
          {
            accountId: args.accountId,
            scriptName,
            mainModule: ROUTER_MAIN_MODULE,
            content,
            compatibilityDate: config.compatibilityDate,
            compatibilityFlags: config.compatibilityFlags,
            bindings,
          },
          { parent: this },
        ),
    );

    // Routes, not custom domains: the web posture already has proxied AAAA 100::
    // placeholders at @ and www, which a custom domain would conflict with.
    for (const zone of [...args.zones].sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const script = scripts[this.shardOf.get(zone.name)!]!;
      for (const [role, host] of [["apex", zone.name], ["www", `www.${zone.name}`]] as const) {
        new cloudflare.WorkersRoute(
          `${name}/${zone.name}/${role}`,
          { zoneId: zone.zoneId, pattern: `${host}/*`, script: script.scriptName },
          { parent: this },
        );
      }
    }

    this.namespaceId = namespace.id;
    this.registerOutputs({ namespaceId: this.namespaceId, scriptNames: this.scriptNames });
  }
}
