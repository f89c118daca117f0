// Consistency: for every Worker of the example fleet, the bindings the Pulumi program
// declares are exactly those of its wrangler.jsonc as wrangler itself reads it (the
// file `wrangler dev` and the Worker tests use), plus the secrets fleet.yaml gives it;
// same compatibility settings and Durable Object migrations.
import { join } from "node:path";
import { unstable_readConfig } from "wrangler";
import { describe, expect, it } from "vitest";
import { deriveDesiredState } from "../stacks/model/desired.ts";
import { loadInventoryOrThrow } from "../stacks/model/load.ts";
import { TYPES } from "../stacks/model/names.ts";
import { names } from "../stacks/model/workers.ts";
import { WORKERS_DIR } from "../stacks/model/wrangler.ts";

const state = deriveDesiredState(loadInventoryOrThrow("fleet"), { accountId: "acct" });

/** binding name -> kind, as wrangler reads wrangler.jsonc (kinds in the provider's words). */
function wranglerBindings(source: string): Record<string, string> {
  const w = unstable_readConfig({ config: join(WORKERS_DIR, source, "wrangler.jsonc") });
  const out: Record<string, string> = {};
  for (const k of Object.keys(w.vars ?? {})) out[k] = "plain_text";
  for (const b of w.kv_namespaces) out[b.binding] = "kv_namespace";
  for (const b of w.r2_buckets) out[b.binding] = "r2_bucket";
  for (const b of w.d1_databases) out[b.binding] = "d1";
  for (const b of w.queues.producers ?? []) out[b.binding] = "queue";
  for (const b of w.analytics_engine_datasets) out[b.binding] = "analytics_engine";
  for (const b of w.durable_objects.bindings) out[b.name] = "durable_object_namespace";
  if (w.version_metadata) out[w.version_metadata.binding] = "version_metadata";
  return out;
}

describe("each Worker's Pulumi bindings equal its wrangler.jsonc", () => {
  it("covers the router and the LLM proxies", () => {
    expect(new Set(state.workers.map((w) => w.source))).toEqual(new Set(["router", "llm-proxy"]));
  });

  it.each(state.workers.map((w) => [w.script, w] as const))("%s", (script, w) => {
    const res = state.resources.find((r) => r.type === TYPES.workersScript && r.name === names.script(script))!;
    const inputs = res.inputs as { bindings: { type: string; name: string }[]; compatibilityDate: string; compatibilityFlags: string[]; migrations?: unknown };
    const declared = Object.fromEntries(inputs.bindings.map((b) => [b.name, b.type]));
    const expected = { ...wranglerBindings(w.source), ...Object.fromEntries(w.secrets.map((s) => [s.binding, "secret_text"])) };
    expect(declared).toEqual(expected);
    const cfg = unstable_readConfig({ config: join(WORKERS_DIR, w.source, "wrangler.jsonc") });
    expect(inputs.compatibilityDate).toBe(cfg.compatibility_date);
    // No flags: the input is left out (the provider reads an empty list back as none).
    expect(inputs.compatibilityFlags ?? []).toEqual(cfg.compatibility_flags ?? []);
    if ((cfg.compatibility_flags ?? []).length === 0) expect(inputs).not.toHaveProperty("compatibilityFlags");
    const tags = cfg.migrations.map((m: { tag: string }) => m.tag);
    if (tags.length === 0) expect(inputs.migrations).toBeUndefined();
    else expect(inputs.migrations).toMatchObject({ newTag: tags[tags.length - 1] });
    expect(w.migrationTags).toEqual(tags);
    // Every Durable Object class bound is created by a migration.
    for (const b of cfg.durable_objects.bindings) {
      expect(cfg.migrations.some((m: { new_sqlite_classes?: string[]; new_classes?: string[] }) => [...(m.new_sqlite_classes ?? []), ...(m.new_classes ?? [])].includes(b.class_name))).toBe(true);
    }
  });
});
