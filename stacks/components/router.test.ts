// The Router component under Pulumi's mocks: one content-map namespace, one Worker per
// shard with the bindings of workers/router/wrangler.jsonc and the real namespace id,
// `<zone>/*` and `www.<zone>/*` routes with each zone's id, and sharding past 800 zones.
// The mock monitor stands in for the engine only; the component's code runs for real.
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { bundleWorker } from "../model/bundle.ts";
import { loadInventoryOrThrow } from "../model/load.ts";
import { assignShards, routerZones } from "../model/router-shards.ts";
import { FleetFile, type Inventory } from "../model/schema.ts";
import { deployments } from "../model/workers.ts";
import { readWorkerConfigOrThrow, WORKERS_DIR } from "../model/wrangler.ts";
import { mockId, runUnderMocks, type Registration } from "../../test/support/pulumi-mocks.ts";

const ACCOUNT = "0123456789abcdef0123456789abcdef";
let registered: Registration[] = [];
const FOLDER = join(WORKERS_DIR, "router");

const inventory = loadInventoryOrThrow("fleet");
const exampleShards = deployments(inventory).router;
const exampleZoneIds = Object.fromEntries(inventory.zones.map((z) => [z.name, z.id ?? `created:${z.name}`]));
const bigInventory: Inventory = {
  dir: "(generated)",
  fleet: { ...FleetFile.parse({ dmarc: { rua: "mailto:dmarc@ops.example" } }), router: { source: "router", namespaceTitle: "big-sites" } },
  profiles: { providers: {}, profiles: { web: { mail: "none", web: "proxied" } } } as unknown as Inventory["profiles"],
  zones: Array.from({ length: 1700 }, (_, i) => ({ name: `site${i}.example`, profile: "web", overrides: {} }) as unknown as Inventory["zones"][number]),
};
const bigShards = deployments(bigInventory).router;
const bigZoneIds = Object.fromEntries(bigInventory.zones.map((z, i) => [z.name, `zone-${i}`]));

beforeAll(async () => {
  const run = await runUnderMocks({ stack: "test" }, async () => {
    const { Router } = await import("./router.ts");
    new Router("router", { accountId: ACCOUNT, folder: FOLDER, shards: exampleShards, zoneIds: exampleZoneIds });
    new Router("big", { accountId: ACCOUNT, folder: FOLDER, shards: bigShards, zoneIds: bigZoneIds });
  });
  registered = run.registrations;
});

const SCRIPT = "cloudflare:index/workersScript:WorkersScript";
const ROUTE = "cloudflare:index/workersRoute:WorkersRoute";
const KV = "cloudflare:index/workersKvNamespace:WorkersKvNamespace";
const zoneIdOf = (r: Registration) => (r.inputs as { zoneId: string }).zoneId;
const routesOf = (ids: Record<string, string>) => registered.filter((r) => r.type === ROUTE && Object.values(ids).includes(zoneIdOf(r)));

describe("the Router component", () => {
  const config = readWorkerConfigOrThrow("router");

  it("declares one content-map namespace per router and, under 800 zones, one Worker", () => {
    expect(registered.filter((r) => r.type === KV).map((r) => (r.inputs as { title: string }).title).sort()).toEqual(["big-sites", "edgefleet-sites"]);
    expect(exampleShards.map((d) => d.script)).toEqual([config.name]);
  });

  it("uploads the esbuild bundle with wrangler.jsonc's compatibility date and bindings, and the real namespace id", () => {
    const script = registered.find((r) => r.type === SCRIPT && (r.inputs as { scriptName: string }).scriptName === config.name)!;
    const inputs = script.inputs as { content: string; mainModule: string; compatibilityDate: string; bindings: { type: string; name: string; namespaceId?: string; text?: string }[] };
    expect(inputs.content).toBe(bundleWorker(config).content);
    expect(inputs.mainModule).toBe("index.js");
    expect(inputs.compatibilityDate).toBe(config.compatibilityDate);
    const kv = inputs.bindings.find((b) => b.type === "kv_namespace")!;
    expect(kv.name).toBe(config.kv[0]!.binding);
    expect(kv.namespaceId).toBe(mockId("kv/edgefleet-sites"));
    for (const [k, v] of Object.entries(config.vars)) expect(inputs.bindings).toContainEqual({ type: "plain_text", name: k, text: v });
  });

  it("routes <zone>/* and www.<zone>/* of every router zone to the Worker, with the zone's id", () => {
    const routes = routesOf(exampleZoneIds);
    const zones = routerZones(inventory);
    expect(routes).toHaveLength(zones.length * 2);
    for (const z of zones) {
      for (const host of [z.name, `www.${z.name}`]) {
        const r = routes.find((x) => (x.inputs as { pattern: string }).pattern === `${host}/*`);
        expect(r, host).toBeDefined();
        expect(zoneIdOf(r!)).toBe(exampleZoneIds[z.name]);
        expect((r!.inputs as { script: string }).script).toBe(config.name);
      }
    }
    // A zone whose web posture is none gets no route.
    expect(routes.some((r) => (r.inputs as { pattern: string }).pattern.startsWith("ops-mail.example/"))).toBe(false);
  });

  it("shards 1,700 zones over 3 Workers as assignShards says, none over 1,000 zones", () => {
    const names = bigShards.map((d) => d.script);
    expect(names).toEqual(["edgefleet-router", "edgefleet-router-1", "edgefleet-router-2"]);
    const want = assignShards(bigInventory.zones.map((z) => z.name));
    const perScript = new Map<string, number>();
    for (const r of routesOf(bigZoneIds)) {
      const { pattern, script } = r.inputs as { pattern: string; script: string };
      const zone = pattern.replace(/^www\./, "").replace(/\/\*$/, "");
      expect(script).toBe(names[want.get(zone)!]);
      perScript.set(script, (perScript.get(script) ?? 0) + 1);
    }
    expect([...perScript.keys()].sort()).toEqual([...names].sort());
    for (const n of perScript.values()) expect(n / 2).toBeLessThanOrEqual(1000);
    // Every shard binds the same namespace: one content map for all of them.
    const scripts = registered.filter((r) => r.type === SCRIPT && names.slice(1).includes((r.inputs as { scriptName: string }).scriptName));
    expect(scripts).toHaveLength(2);
    for (const s of scripts) {
      const kv = (s.inputs as { bindings: { type: string; namespaceId?: string }[] }).bindings.find((b) => b.type === "kv_namespace");
      expect(kv!.namespaceId).toBe(mockId("kv/big-sites"));
    }
  });

  it("keeps a zone on its shard when another zone is added", () => {
    const more: Inventory = { ...bigInventory, zones: [...bigInventory.zones, { ...bigInventory.zones[0]!, name: "zzz-new.example" }] };
    const before = new Map(bigShards.flatMap((d) => d.routes.map((r) => [r.pattern, d.script] as const)));
    const after = new Map(deployments(more).router.flatMap((d) => d.routes.map((r) => [r.pattern, d.script] as const)));
    for (const [pattern, script] of before) expect(after.get(pattern)).toBe(script);
  });
});
