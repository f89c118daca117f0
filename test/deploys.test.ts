// Later deploys of a Worker with Durable Objects: the real Worker component under
// Pulumi's mocks reads the live migration tag through the real reader (the official
// SDK) from a fake of Cloudflare's script API that enforces the tag precondition
// (test/fakes/cloudflare-workers-scripts-api.ts); the upload the provider would send
// goes to the same fake. A deploy uploads only when the preview shows a change, as
// `pulumi up` does.
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { TYPES } from "../stacks/model/names.ts";
import { FakeWorkersScriptsApi, readBack, scriptDiff, uploadAsProvider } from "./fakes/cloudflare-workers-scripts-api.ts";
import { FLEET, METERING, PROFILES, ZONES } from "./support/inventory.ts";
import { runUnderMocks, SECRET_SIG, SECRET_VALUE } from "./support/pulumi-mocks.ts";

const ACCOUNT = "0123456789abcdef0123456789abcdef";
type Json = Record<string, unknown>;
type Migration = { tag: string; new_sqlite_classes?: string[]; new_classes?: string[] };

let api: FakeWorkersScriptsApi;
beforeAll(async () => {
  api = await new FakeWorkersScriptsApi(ACCOUNT).start();
});
afterAll(() => api.stop());

/** A Worker folder: code that exports `classes`, bound and migrated as given. */
function workerFolder(name: string, classes: string[], migrations: Migration[], codeVersion: number): string {
  const dir = mkdtempSync(join(tmpdir(), "edgefleet-deploys-"));
  mkdirSync(join(dir, "src"));
  const src = [
    ...classes.map((c) => `export class ${c} { constructor(state) { this.state = state; } fetch() { return new Response("${c}"); } }`),
    `export default { fetch() { return new Response("code version ${codeVersion}"); } };`,
  ].join("\n");
  writeFileSync(join(dir, "src", "index.js"), src);
  writeFileSync(
    join(dir, "wrangler.jsonc"),
    JSON.stringify({
      name,
      main: "src/index.js",
      compatibility_date: "2026-07-30",
      durable_objects: { bindings: classes.map((c) => ({ name: c.toUpperCase(), class_name: c })) },
      migrations,
    }),
  );
  return dir;
}

interface Deploy {
  /** The WorkersScript's inputs the program registered. */
  inputs: Json;
  /** Properties the preview shows as changed against the previous state (all, when new). */
  changed: string[];
  /** The API's answer to the upload, when there was one. */
  upload?: { status: number; code?: number };
  state: Json;
  warnings: string[];
}

/** One `pulumi up` of one Worker: program run, preview diff, upload if it changed, read-back. */
async function deploy(folder: string, script: string, previous: Json | undefined): Promise<Deploy> {
  const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
  const info = vi.spyOn(console, "log").mockImplementation(() => {});
  try {
    const run = await runUnderMocks({ stack: "deploys" }, async () => {
      const { Worker } = await import("../stacks/components/worker.ts");
      const { cloudflareMigrationTags } = await import("../stacks/live-migration-tags.ts");
      new Worker(script, { accountId: ACCOUNT, folder, script, migrationTag: cloudflareMigrationTags({ accountId: ACCOUNT, apiToken: async () => api.token, baseURL: api.url, maxRetries: 0 }) });
    });
    const inputs = run.registrations.find((r) => r.type === TYPES.workersScript)!.inputs;
    const changed = previous ? scriptDiff(inputs, previous) : Object.keys(inputs);
    if (changed.length === 0) return { inputs, changed, state: previous!, warnings: warn.mock.calls.map((c) => String(c[0])) };
    const res = await uploadAsProvider(api, inputs);
    const upload = { status: res.status, code: res.body.errors[0]?.code };
    return { inputs, changed, upload, state: res.status === 200 ? readBack(api, inputs) : previous ?? {}, warnings: warn.mock.calls.map((c) => String(c[0])) };
  } finally {
    warn.mockRestore();
    info.mockRestore();
  }
}

const V1: Migration = { tag: "v1", new_sqlite_classes: ["RateLimiter"] };
const V2: Migration = { tag: "v2", new_sqlite_classes: ["TenantLedger"] };

describe("the fake script API (the contract the deploys below are judged by)", () => {
  it("refuses a migration without old_tag to a script that has a tag (10079), as Cloudflare does", async () => {
    api.seed("contract-check", "v1", { RateLimiter: "sqlite" });
    const res = await uploadAsProvider(api, { scriptName: "contract-check", mainModule: "index.js", content: "export default {}", migrations: { newTag: "v1", newSqliteClasses: ["RateLimiter"] } });
    expect(res.status).toBe(400);
    expect(res.body.errors[0]).toEqual({ code: 10079, message: "Migration tag precondition failed; current tag is 'v1'" });
  });

  it("refuses an old_tag that is not the live tag, a binding to a class no migration created (10061), and a bad token", async () => {
    api.seed("contract-check-2", "v1", { RateLimiter: "sqlite" });
    const base = { scriptName: "contract-check-2", mainModule: "index.js", content: "export default {}" };
    expect((await uploadAsProvider(api, { ...base, migrations: { oldTag: "v0", newTag: "v2", steps: [{ newSqliteClasses: ["X"] }] } })).body.errors[0]?.code).toBe(10079);
    expect((await uploadAsProvider(api, { ...base, bindings: [{ type: "durable_object_namespace", name: "X", className: "Missing" }] })).body.errors[0]?.code).toBe(10061);
    expect((await uploadAsProvider(api, base, "wrong-token")).status).toBe(403);
    // Re-creating a class that exists fails even with the right old_tag.
    expect((await uploadAsProvider(api, { ...base, migrations: { oldTag: "v1", newTag: "v2", steps: [{ newSqliteClasses: ["RateLimiter"] }] } })).status).toBe(400);
    expect(api.scripts.get("contract-check-2")!.migrationTag).toBe("v1");
  });
});

describe("deploys of a Durable Object Worker, one after another", () => {
  const script = "proxy-sequence";
  let state: Json | undefined;

  it("1. first create: every migration, no old_tag; the script is then at v1", async () => {
    const d = await deploy(workerFolder(script, ["RateLimiter"], [V1], 1), script, undefined);
    expect(d.inputs.migrations).toEqual({ newTag: "v1", steps: [{ newSqliteClasses: ["RateLimiter"] }] });
    expect(d.upload).toEqual({ status: 200, code: undefined });
    expect(api.scripts.get(script)!.migrationTag).toBe("v1");
    expect(api.tagReads.filter((s) => s === script)).toHaveLength(1);
    state = d.state;
  });

  it("the old behaviour (new_tag again, no old_tag) is what Cloudflare refuses on the second deploy", async () => {
    const res = await uploadAsProvider(api, { ...state!, content: "export default { fetch() { return new Response('2') } }", migrations: { newTag: "v1", steps: [{ newSqliteClasses: ["RateLimiter"] }] } });
    expect(res.body.errors[0]?.code).toBe(10079);
  });

  it("2. a code-only change: no migrations sent, the upload is accepted, the tag stays v1", async () => {
    const d = await deploy(workerFolder(script, ["RateLimiter"], [V1], 2), script, state);
    expect(d.inputs.migrations).toBeUndefined();
    expect(d.changed).toEqual(["content", "migrations"]);
    expect(d.upload?.status).toBe(200);
    expect(api.scripts.get(script)!.migrationTag).toBe("v1");
    state = d.state;
  });

  it("3. nothing changed: the preview shows no change and nothing is uploaded", async () => {
    const uploads = api.uploads.length;
    const d = await deploy(workerFolder(script, ["RateLimiter"], [V1], 2), script, state);
    expect(d.changed).toEqual([]);
    expect(api.uploads.length).toBe(uploads);
  });

  it("4. a v2 migration that adds a class: old_tag v1 and only the v2 step; the script is at v2 with both classes", async () => {
    const d = await deploy(workerFolder(script, ["RateLimiter", "TenantLedger"], [V1, V2], 3), script, state);
    expect(d.inputs.migrations).toEqual({ oldTag: "v1", newTag: "v2", steps: [{ newSqliteClasses: ["TenantLedger"] }] });
    expect(d.upload?.status).toBe(200);
    const live = api.scripts.get(script)!;
    expect(live.migrationTag).toBe("v2");
    expect([...live.classes.keys()].sort()).toEqual(["RateLimiter", "TenantLedger"]);
    state = d.state;
  });

  it("5. the run after a migration re-uploads once without the migration metadata, then the fleet is quiet", async () => {
    const folder = workerFolder(script, ["RateLimiter", "TenantLedger"], [V1, V2], 3);
    const once = await deploy(folder, script, state);
    expect(once.changed).toEqual(["migrations"]);
    expect(once.upload?.status).toBe(200);
    const again = await deploy(folder, script, once.state);
    expect(again.changed).toEqual([]);
  });
});

describe("adopting and drifting scripts", () => {
  it("adopts a script wrangler deployed at v1: no migrations sent, accepted", async () => {
    api.seed("adopted-proxy", "v1", { RateLimiter: "sqlite" });
    const d = await deploy(workerFolder("adopted-proxy", ["RateLimiter"], [V1], 1), "adopted-proxy", undefined);
    expect(d.inputs.migrations).toBeUndefined();
    expect(d.upload?.status).toBe(200);
    expect(api.scripts.get("adopted-proxy")!.migrationTag).toBe("v1");
  });

  it("adopts a script at v1 when the config is at v2: old_tag v1 and the v2 step", async () => {
    api.seed("adopted-behind", "v1", { RateLimiter: "sqlite" });
    const d = await deploy(workerFolder("adopted-behind", ["RateLimiter", "TenantLedger"], [V1, V2], 1), "adopted-behind", undefined);
    expect(d.inputs.migrations).toEqual({ oldTag: "v1", newTag: "v2", steps: [{ newSqliteClasses: ["TenantLedger"] }] });
    expect(d.upload?.status).toBe(200);
  });

  it("warns about a live tag the config does not know and sends every step with old_tag = that tag", async () => {
    api.seed("drifted-proxy", "manual-2026-10", {});
    const d = await deploy(workerFolder("drifted-proxy", ["RateLimiter"], [V1], 1), "drifted-proxy", undefined);
    expect(d.inputs.migrations).toEqual({ oldTag: "manual-2026-10", newTag: "v1", steps: [{ newSqliteClasses: ["RateLimiter"] }] });
    expect(d.warnings.join("\n")).toContain("drifted-proxy has migration tag 'manual-2026-10', which its wrangler.jsonc does not list (v1)");
    expect(d.upload?.status).toBe(200);
    expect(api.scripts.get("drifted-proxy")!.migrationTag).toBe("v1");
  });

  it("stops with a clear error when the live tag cannot be read (bad token), without the token in the message", async () => {
    const { cloudflareMigrationTags } = await import("../stacks/live-migration-tags.ts");
    const read = cloudflareMigrationTags({ accountId: ACCOUNT, apiToken: async () => "sk-not-the-token-123", baseURL: api.url, maxRetries: 0 });
    const err = await read("adopted-proxy").catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/cannot read the live migration tag of Worker 'adopted-proxy': 403/);
    expect((err as Error).message).not.toContain("sk-not-the-token-123");
    const none = cloudflareMigrationTags({ accountId: ACCOUNT, apiToken: async () => undefined, baseURL: api.url });
    await expect(none("x")).rejects.toThrow(/set cloudflare:apiToken/);
  });
});

// ---------------------------------------------------------------------------------
// No endless diffs: the whole program, run again over an unchanged inventory, shows no
// change against the state the provider read back after the previous run.

const unwrapSecrets = (v: unknown): unknown => {
  if (Array.isArray(v)) return v.map(unwrapSecrets);
  if (v && typeof v === "object") {
    const o = v as Record<string, unknown>;
    if (o[SECRET_SIG] === SECRET_VALUE) return unwrapSecrets(o.value);
    return Object.fromEntries(Object.entries(o).map(([k, x]) => [k, unwrapSecrets(x)]));
  }
  return v;
};

describe("an unchanged fleet previews as unchanged", () => {
  // The router (no compatibility flags) on site.example, and an LLM proxy (observability,
  // a Durable Object migration, secrets) on a custom domain.
  const dir = mkdtempSync(join(tmpdir(), "edgefleet-nodiff-"));
  writeFileSync(join(dir, "fleet.yaml"), `${FLEET}workers:\n  - script: nodiff-llm-proxy\n    source: llm-proxy\n    domains: [api.ops.example]\n    secrets: { ANTHROPIC_API_KEY: anthropicApiKey, OPERATOR_TOKEN: operatorToken }\n`);
  writeFileSync(join(dir, "profiles.yaml"), PROFILES);
  writeFileSync(join(dir, "zones.yaml"), ZONES);
  writeFileSync(join(dir, "metering.yaml"), METERING);
  const secrets = { "edgefleet:anthropicApiKey": "sk-ant-nodiff-0001", "edgefleet:operatorToken": "operator-nodiff-0001" };

  /** One program run: each resource's inputs (secrets unwrapped), by type::name. */
  async function programRun(): Promise<Map<string, { type: string; inputs: Json }>> {
    const config = { "edgefleet:accountId": ACCOUNT, "edgefleet:inventory": dir, ...secrets, "cloudflare:apiToken": api.token, "cloudflare:baseUrl": api.url };
    const info = vi.spyOn(console, "log").mockImplementation(() => {});
    try {
      const run = await runUnderMocks({ stack: "nodiff", config, secrets: [...Object.keys(secrets), "cloudflare:apiToken"] }, async () => (await import("../stacks/program.ts")).main());
      return new Map(run.registrations.filter((r) => r.custom).map((r) => [`${r.type}::${r.name}`, { type: r.type, inputs: unwrapSecrets(r.inputs) as Json }]));
    } finally {
      info.mockRestore();
    }
  }

  /** `pulumi up`: what changed against `state`; uploads changed scripts; the new state. */
  async function up(state: Map<string, Json>): Promise<{ changed: Record<string, string[]>; state: Map<string, Json> }> {
    const changed: Record<string, string[]> = {};
    const next = new Map<string, Json>();
    for (const [key, { type, inputs }] of await programRun()) {
      const before = state.get(key);
      const diff = !before ? ["(create)"] : type === TYPES.workersScript ? scriptDiff(inputs, before) : JSON.stringify(inputs) === JSON.stringify(before) ? [] : ["(inputs)"];
      if (diff.length) changed[key] = diff;
      if (type !== TYPES.workersScript) {
        next.set(key, inputs);
        continue;
      }
      if (!diff.length) {
        next.set(key, before!);
        continue;
      }
      const res = await uploadAsProvider(api, inputs);
      expect(res.body.errors, key).toEqual([]);
      next.set(key, readBack(api, inputs));
    }
    return { changed, state: next };
  }

  it("creates, settles the migration metadata once, then shows nothing", async () => {
    const first = await up(new Map());
    const scripts = Object.keys(first.changed).filter((k) => k.startsWith(TYPES.workersScript)).sort();
    expect(scripts).toEqual([`${TYPES.workersScript}::edgefleet-router/script`, `${TYPES.workersScript}::nodiff-llm-proxy/script`]);
    // The run after the proxy's migration was applied drops the metadata (docs/deploys.md).
    const second = await up(first.state);
    expect(second.changed).toEqual({ [`${TYPES.workersScript}::nodiff-llm-proxy/script`]: ["migrations"] });
    const third = await up(second.state);
    expect(third.changed).toEqual({});
    expect(api.scripts.get("nodiff-llm-proxy")!.migrationTag).toBe("v1");
  });

  it("would show a change on every run with the forms the provider does not read back (the control)", async () => {
    const raw = { scriptName: "nodiff-control", mainModule: "index.js", content: "export default {}", compatibilityDate: "2026-07-01", compatibilityFlags: [], observability: { enabled: true } };
    expect((await uploadAsProvider(api, raw)).status).toBe(200);
    expect(scriptDiff(raw, readBack(api, raw))).toEqual(["compatibilityFlags", "observability"]);
  });
});
