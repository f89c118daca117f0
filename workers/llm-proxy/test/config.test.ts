// wrangler.jsonc is the single source of the Worker's bindings: this keeps the hand-typed
// Env (src/env.ts) and .dev.vars.example equal to it, and checks the Durable Object
// migration and version_metadata binding the issue requires.
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import ts from "typescript";
import { expect, it } from "vitest";
import { unstable_readConfig } from "wrangler";
import { WORKER_DIR, WRANGLER_CONFIG } from "../local/miniflare.ts";

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

it("Env declares exactly wrangler.jsonc's bindings and vars, plus the documented secrets", () => {
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
  expect([...env.keys()].sort()).toEqual([...expected.keys()].sort());
  for (const [k, type] of expected) expect(env.get(k)!.type, k).toBe(type);
});

it("declares the RateLimiter as a SQLite-backed Durable Object class in migration v1", () => {
  const c = unstable_readConfig({ config: WRANGLER_CONFIG });
  expect(c.migrations).toEqual([{ tag: "v1", new_sqlite_classes: ["RateLimiter"] }]);
  expect(c.durable_objects.bindings).toEqual([{ name: "RATE_LIMITER", class_name: "RateLimiter" }]);
  expect(c.compatibility_date).toMatch(/^\d{4}-\d{2}-\d{2}$/);
});
