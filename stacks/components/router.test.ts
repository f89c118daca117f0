// The Router component under Pulumi's mocks: the KV namespace, the Worker(s) with the
// bindings of wrangler.jsonc and the real namespace id, a route per router zone and
// host, and sharding past 800 zones. The mock monitor stands in for the engine only.
import * as pulumi from "@pulumi/pulumi";
import { beforeAll, describe, expect, it } from "vitest";
import { loadInventoryOrThrow } from "../model/load.ts";
import { assignShards, routerZones } from "../model/router-shards.ts";
import { bundleRouter } from "../../workers/router/bundle.ts";
import { readRouterConfig } from "../../workers/router/config.ts";

const ACCOUNT = "0123456789abcdef0123456789abcdef";
interface Registered {
  type: string;
  name: string;
  inputs: Record<string, unknown>;
}
const registered: Registered[] = [];
const mockId = (name: string) => `mock-id:${name}`;

const inventory = loadInventoryOrThrow("fleet");
const zones = routerZones(inventory).map((z) => ({ name: z.name, zoneId: z.id ?? `created:${z.name}` }));
const bigZones = Array.from({ length: 1700 }, (_, i) => ({ name: `site${i}.example`, zoneId: `zone-${i}` }));
let router: { namespaceId: pulumi.Output<string>; scriptNames: string[]; shardOf: Map<string, number> };
let big: typeof router;

beforeAll(async () => {
  const stackTraceLimit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  (pulumi.Resource as unknown as { callsites: () => unknown[] }).callsites = () => [];
  await pulumi.runtime.setMocks(
    {
      newResource(args) {
        registered.push({ type: args.type, name: args.name, inputs: args.inputs });
        return { id: args.custom ? mockId(args.name) : undefined, state: args.inputs };
      },
      call(args) {
        throw new Error(`the component must not call provider functions (it called ${args.token})`);
      },
    },
    "edgefleet",
    "test",
    false,
  );
  const { Router } = await import("./router.ts");
  router = new Router("router", { accountId: ACCOUNT, zones });
  big = new Router("big", { accountId: ACCOUNT, zones: bigZones, namespaceTitle: "big-sites" });
  await (pulumi.runtime as unknown as { waitForRPCs(): Promise<void> }).waitForRPCs();
  Error.stackTraceLimit = stackTraceLimit;
});

const of = (prefix: string, type: string) => registered.filter((r) => r.type === type && (r.name === prefix || r.name.startsWith(`${prefix}-`) || r.name.startsWith(`${prefix}/`)));
const SCRIPT = "cloudflare:index/workersScript:WorkersScript";
const ROUTE = "cloudflare:index/workersRoute:WorkersRoute";
const KV = "cloudflare:index/workersKvNamespace:WorkersKvNamespace";

describe("the Router component", () => {
  it("declares one KV namespace and, under 800 zones, one Worker", () => {
    expect(of("router", KV)).toEqual([{ type: KV, name: "router-sites", inputs: { accountId: ACCOUNT, title: "edgefleet-sites" } }]);
    const scripts = of("router", SCRIPT);
    expect(scripts.map((s) => s.name)).toEqual(["router-shard-0"]);
    expect(router.scriptNames).toEqual(["edgefleet-router"]);
    expect(of("router", "edgefleet:cloudflare:Router")).toHaveLength(1);
  });

  it("uploads the esbuild bundle with wrangler.jsonc's compatibility date and bindings, and the real namespace id", () => {
    const config = readRouterConfig();
    const [script] = of("router", SCRIPT);
    const inputs = script!.inputs as {
      scriptName: string;
      mainModule: string;
      content: string;
      compatibilityDate: string;
      bindings: { type: string; name: string; namespaceId?: string; text?: string }[];
    };
    expect(inputs.scriptName).toBe(config.name);
    expect(inputs.mainModule).toBe("index.js");
    expect(inputs.content).toBe(bundleRouter());
    expect(inputs.content).toContain("host:");
    expect(inputs.compatibilityDate).toBe(config.compatibilityDate);
    // The same binding names and kinds as wrangler.jsonc, nothing more.
    expect(inputs.bindings.map((b) => `${b.type} ${b.name}`).sort()).toEqual(
      [`kv_namespace ${config.kvBinding}`, ...Object.keys(config.vars).map((k) => `plain_text ${k}`)].sort(),
    );
    expect(inputs.bindings.find((b) => b.type === "kv_namespace")!.namespaceId).toBe(mockId("router-sites"));
    for (const [k, v] of Object.entries(config.vars)) expect(inputs.bindings.find((b) => b.name === k)!.text).toBe(v);
  });

  it("routes <zone>/* and www.<zone>/* of every router zone to the Worker, with the zone's id", () => {
    const routes = of("router", ROUTE);
    expect(routes).toHaveLength(zones.length * 2);
    const byName = new Map(routes.map((r) => [r.name, r.inputs]));
    for (const z of zones) {
      expect(byName.get(`router/${z.name}/apex`)).toEqual({ zoneId: z.zoneId, pattern: `${z.name}/*`, script: "edgefleet-router" });
      expect(byName.get(`router/${z.name}/www`)).toEqual({ zoneId: z.zoneId, pattern: `www.${z.name}/*`, script: "edgefleet-router" });
    }
    // A zone whose web posture is none gets no route.
    expect(byName.has("router/ops-mail.example/apex")).toBe(false);
  });

  it("shards 1,700 zones over 3 Workers as assignShards says, none over 1,000 zones", () => {
    const scripts = of("big", SCRIPT).map((s) => (s.inputs as { scriptName: string }).scriptName);
    expect(scripts).toEqual(["edgefleet-router", "edgefleet-router-1", "edgefleet-router-2"]);
    const want = assignShards(bigZones.map((z) => z.name));
    const perScript = new Map<string, number>();
    for (const r of of("big", ROUTE)) {
      const zone = r.name.split("/")[1]!;
      const script = (r.inputs as { script: string }).script;
      expect(script).toBe(big.scriptNames[want.get(zone)!]);
      perScript.set(script, (perScript.get(script) ?? 0) + 1);
    }
    for (const n of perScript.values()) expect(n / 2).toBeLessThanOrEqual(1000);
    // Every shard binds the same namespace: one content map for all of them.
    for (const s of of("big", SCRIPT)) {
      const kv = (s.inputs as { bindings: { type: string; namespaceId?: string }[] }).bindings.find((b) => b.type === "kv_namespace");
      expect(kv!.namespaceId).toBe(mockId("big-sites"));
    }
  });

  it("registers no two resources under one name", () => {
    const names = registered.map((r) => `${r.type}::${r.name}`);
    expect(new Set(names).size).toBe(names.length);
  });

  it("bundles deterministically", () => {
    expect(bundleRouter()).toBe(bundleRouter());
  });
});
