// wrangler.jsonc is the single source of the Worker's bindings: this keeps the hand-typed
// Env (src/env.ts) and .dev.vars.example equal to it (plus the vars that come from the
// inventory, PRICES), and checks the Durable Object migration and version_metadata
// binding the issue requires.
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import ts from "typescript";
import { expect, it } from "vitest";
import { unstable_readConfig } from "wrangler";
import { priceTableFromJson } from "../../shared/cost.ts";
import { PriceTableJsonSchema } from "../../shared/pricing.ts";
import { inventoryVars, WORKER_DIR, WRANGLER_CONFIG } from "../local/miniflare.ts";

function envInterface(): Map<string, { optional: boolean; type: string }> {
  const file = resolve(WORKER_DIR, "src/env.ts");
  const sf = ts.createSourceFile(file, readFileSync(file, "utf8"), ts.ScriptTarget.ES2022, true);
  const out = new Map<string, { optional: boolean; type: string }>();
  sf.forEachChild((n) => {
    if (ts.isInterfaceDeclaration(n) && n.name.text === "Env") {
      for (const m of n.members) {
        if (ts.isPropertySignature(m) && m.name && ts.isIdentifier(m.name)) {
          out.set(m.name.text, { optional: m.questionToken !== undefined, type: m.type?.getText(sf) ?? "" });
        }
      }
    }
  });
  return out;
}

it("Env declares exactly wrangler.jsonc's bindings and vars, the inventory's vars, plus the documented secrets", () => {
  const c = unstable_readConfig({ config: WRANGLER_CONFIG });
  const env = envInterface();
  const expected = new Map<string, string>();
  for (const k of Object.keys(c.vars)) expected.set(k, "string");
  for (const kv of c.kv_namespaces) expected.set(kv.binding, "KVNamespace");
  for (const d of c.durable_objects.bindings) expected.set(d.name, `DurableObjectNamespace<${d.class_name}>`);
  for (const a of c.analytics_engine_datasets) expected.set(a.binding, "AnalyticsEngineDataset");
  for (const q of c.queues.producers ?? []) expected.set(q.binding, "Queue");
  for (const r of c.r2_buckets) expected.set(r.binding, "R2Bucket");
  expect(c.version_metadata?.binding).toBeDefined();
  expected.set(c.version_metadata!.binding, "WorkerVersionMetadata");
  const secrets = [...readFileSync(resolve(WORKER_DIR, ".dev.vars.example"), "utf8").matchAll(/^([A-Z_][A-Z0-9_]*)=/gm)].map((m) => m[1]!);
  expect(secrets.sort()).toEqual(["ANTHROPIC_API_KEY", "OPERATOR_TOKEN"]);
  for (const s of secrets) expected.set(s, "string");
  // PRICES comes from fleet/metering.yaml (meteringVars()), never from wrangler.jsonc: one
  // source for the ledger's and the proxy's price table.
  const fromInventory = Object.keys(inventoryVars());
  expect(fromInventory).toEqual(["PRICES"]);
  for (const k of fromInventory) {
    expect(Object.keys(c.vars), k).not.toContain(k);
    expected.set(k, "string");
  }
  expect([...env.keys()].sort()).toEqual([...expected.keys()].sort());
  for (const [k, type] of expected) expect(env.get(k)!.type, k).toBe(type);
});

it("declares the RateLimiter as a SQLite-backed Durable Object class in migration v1", () => {
  const c = unstable_readConfig({ config: WRANGLER_CONFIG });
  expect(c.migrations).toEqual([{ tag: "v1", new_sqlite_classes: ["RateLimiter"] }]);
  expect(c.durable_objects.bindings).toEqual([{ name: "RATE_LIMITER", class_name: "RateLimiter" }]);
  expect(c.compatibility_date).toMatch(/^\d{4}-\d{2}-\d{2}$/);
});

it("reads the inventory's PRICES as the ledger's schema does, and refuses what it refuses", () => {
  const { PRICES } = inventoryVars();
  const table = priceTableFromJson(PRICES);
  expect(table).toEqual(PriceTableJsonSchema.parse(JSON.parse(PRICES)));
  const t = JSON.parse(PRICES) as { asOf: string; models: Record<string, Record<string, unknown>> };
  const first = Object.keys(t.models)[0]!;
  const bad = [
    "not json",
    JSON.stringify({ ...t, extra: 1 }),
    JSON.stringify({ ...t, asOf: "27.11.2026" }),
    JSON.stringify({ ...t, models: {} }),
    JSON.stringify({ ...t, models: { [first]: { ...t.models[first], input: 1.5 } } }),
    JSON.stringify({ ...t, models: { [first]: { ...t.models[first], output: -1 } } }),
    JSON.stringify({ ...t, models: { [first]: { ...t.models[first], surprise: 1 } } }),
  ];
  for (const b of bad) {
    expect(typeof priceTableFromJson(b), b.slice(0, 60)).toBe("string");
    let zodOk = false;
    try {
      zodOk = PriceTableJsonSchema.safeParse(JSON.parse(b)).success;
    } catch {
      zodOk = false;
    }
    expect(zodOk, b.slice(0, 60)).toBe(false);
  }
});

// Every call sets and clears timers (forward.ts Watchdog, relayStream's lag); with
// `nodejs_compat` and a compatibility date from 2026-02-10 on, workerd replaces the global
// timers with Node's Timeout objects (enable_nodejs_global_timers), a JavaScript layer
// over the native timer: ~1 µs more per set and clear (docs/llm-proxy.md, "Native
// timers"). The proxy imports no node:* module and needs none of it; this keeps the
// runtime's timers native, and the Node.js APIs out of the proxy's reach.
it("runs on workerd's native timers (no Node.js compatibility layer)", async () => {
  const c = unstable_readConfig({ config: WRANGLER_CONFIG });
  expect(c.compatibility_flags).not.toContain("nodejs_compat");
  expect(c.compatibility_flags).not.toContain("nodejs_compat_v2");
  // Explicit (wrangler.jsonc says why): an empty list would leave a deployed script's flags.
  expect(c.compatibility_flags).toEqual(expect.arrayContaining(["no_nodejs_compat", "no_nodejs_compat_v2"]));
  const { Miniflare } = await import("miniflare");
  const mf = new Miniflare({
    modules: true,
    compatibilityDate: c.compatibility_date,
    compatibilityFlags: c.compatibility_flags,
    script: `export default { fetch() { const t = setTimeout(() => {}, 1000); clearTimeout(t); return new Response(typeof t); } };`,
  });
  try {
    expect(await (await mf.dispatchFetch("http://proxy.test/")).text()).toBe("number");
  } finally {
    await mf.dispose();
  }
});
