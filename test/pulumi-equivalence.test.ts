// Runs the real Pulumi program (stacks/program.ts) under Pulumi's mocks and proves
// it registers exactly the desired state: the same types, names and inputs, with
// nothing missing and nothing extra. The mock monitor stands in for the engine; no
// resource code is mocked away.
import type * as pulumi from "@pulumi/pulumi";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { canonical } from "../stacks/model/diff.ts";
import { bundleWorker } from "../stacks/model/bundle.ts";
import { deriveDesiredState, isRef, isSecretRef, mapRefs, type InputValue } from "../stacks/model/desired.ts";
import { readWorkerConfigOrThrow } from "../stacks/model/wrangler.ts";
import { loadInventoryOrThrow } from "../stacks/model/load.ts";
import { TYPES } from "../stacks/model/names.ts";
import { FakeWorkersScriptsApi } from "./fakes/cloudflare-workers-scripts-api.ts";
import { FLEET, METERING, PROFILES, ZONES } from "./support/inventory.ts";
import { mockId, runUnderMocks, SECRET_SIG, SECRET_VALUE } from "./support/pulumi-mocks.ts";

const ACCOUNT = "0123456789abcdef0123456789abcdef";
// Test values of the stack's secret config (fleet.yaml's workers: name the keys).
const SECRETS = { "edgefleet:anthropicApiKey": "sk-ant-test-equivalence-0001", "edgefleet:operatorToken": "operator-token-test-0001" };
const INVENTORY = "fleet";

interface Registered {
  type: string;
  name: string;
  inputs: Record<string, unknown>;
  custom: boolean;
  /** Input fields the engine received as secrets. */
  secretFields: string[];
  dependencies: string[];
}

/** Unwraps Pulumi's secret envelopes, noting the top-level fields that carried one. */
function unwrapSecrets(inputs: Record<string, unknown>): { inputs: Record<string, unknown>; secretFields: string[] } {
  const secretFields = new Set<string>();
  const unwrap = (v: unknown, field: string): unknown => {
    if (Array.isArray(v)) return v.map((x) => unwrap(x, field));
    if (v && typeof v === "object") {
      const o = v as Record<string, unknown>;
      if (o[SECRET_SIG] === SECRET_VALUE) {
        secretFields.add(field);
        return unwrap(o.value, field);
      }
      return Object.fromEntries(Object.entries(o).map(([k, x]) => [k, unwrap(x, field)]));
    }
    return v;
  };
  const out = Object.fromEntries(Object.entries(inputs).map(([k, v]) => [k, unwrap(v, k)]));
  return { inputs: out, secretFields: [...secretFields].sort() };
}

let registered: Registered[] = [];
let outputs: ReturnType<typeof import("../stacks/program.ts").main>;
let urns: string[] = [];
// The program reads each Durable Object Worker's live migration tag, with the provider's
// token and base URL (cloudflare:apiToken, cloudflare:baseUrl): here from a fake account
// where no script exists yet, so every migration is sent (test/deploys.test.ts covers later deploys).
const api = new FakeWorkersScriptsApi(ACCOUNT);
const cloudflareConfig = () => ({ "cloudflare:apiToken": api.token, "cloudflare:baseUrl": api.url });

beforeAll(async () => {
  await api.start();
  const config = { "edgefleet:accountId": ACCOUNT, "edgefleet:inventory": INVENTORY, ...SECRETS, ...cloudflareConfig() };
  const run = await runUnderMocks(
    { stack: "test", config, secrets: [...Object.keys(SECRETS), "cloudflare:apiToken"] },
    async () => (await import("../stacks/program.ts")).main(),
  );
  outputs = run.result;
  urns = run.urns;
  registered = run.registrations.map((r) => ({ ...r, ...unwrapSecrets(r.inputs) }));
});
afterAll(() => api.stop());

function resolveRefs(v: InputValue): unknown {
  return mapRefs(v, (ref) => {
    if (isRef(ref)) return mockId(ref.$ref);
    if (isSecretRef(ref)) return SECRETS[`edgefleet:${ref.$secret}` as keyof typeof SECRETS];
    const bundle = bundleWorker(readWorkerConfigOrThrow(ref.$bundle));
    expect(bundle.sha256).toBe(ref.sha256);
    return bundle.content;
  });
}

describe("the Pulumi program under mocks", () => {
  const desired = deriveDesiredState(loadInventoryOrThrow(INVENTORY), { accountId: ACCOUNT });

  it("reads the live migration tag of each Worker with Durable Object migrations, once, with the stack's API token", () => {
    const withMigrations = desired.workers.filter((w) => w.migrationTags.length > 0).map((w) => w.script).sort();
    expect(withMigrations.length).toBeGreaterThan(0);
    expect([...api.tagReads].sort()).toEqual(withMigrations);
  });

  it("covers a fleet of at least 50 zones", () => {
    expect(desired.zones.length).toBeGreaterThanOrEqual(50);
    expect(outputs.zoneCount).toBe(desired.zones.length);
  });

  it("registers exactly the desired resources: same types, names and inputs", () => {
    const want = desired.resources.map((r) => canonical({ type: r.type, name: r.name, inputs: resolveRefs(r.inputs) })).sort();
    const got = registered
      .filter((r) => r.type !== "pulumi:pulumi:Stack" && r.type !== "pulumi:providers:cloudflare")
      .map((r) => canonical({ type: r.type, name: r.name, inputs: r.inputs }))
      .sort();
    expect(got.length).toBe(want.length);
    // Compare as sets first for a readable failure, then exactly.
    const missing = want.filter((w) => !got.includes(w)).slice(0, 5);
    const extra = got.filter((g) => !want.includes(g)).slice(0, 5);
    expect({ missing, extra }).toEqual({ missing: [], extra: [] });
    expect(got).toEqual(want);
  });

  it("parents every zone's resources under its ZonePosture component", () => {
    const children = urns.filter((u) => u.includes(`$${TYPES.dnsRecord}::`) || u.includes(`$${TYPES.zone}::`));
    expect(children.length).toBe(desired.resources.filter((r) => r.type === TYPES.dnsRecord || r.type === TYPES.zone).length);
    for (const urn of children) expect(urn).toContain(`::${TYPES.zonePosture}$`);
  });

  it("covers the Workers: the router's shard(s), the LLM proxies and the usage ledger, their storage and routes", () => {
    const scripts = registered.filter((r) => r.type === TYPES.workersScript).map((r) => r.inputs.scriptName).sort();
    expect(scripts).toEqual(desired.workers.map((w) => w.script).sort());
    expect(scripts).toEqual(expect.arrayContaining(["edgefleet-router", "edgefleet-llm-proxy", "edgefleet-llm-proxy-eu", "edgefleet-usage-ledger"]));
    expect(registered.filter((r) => r.type === TYPES.workersKvNamespace).map((r) => r.inputs.title).sort()).toEqual(["edgefleet-llm-proxy-tenants", "edgefleet-sites"]);
    expect(registered.some((r) => r.type === TYPES.workersRoute && r.inputs.pattern === "api.llm-gateway.example/*" && r.inputs.script === "edgefleet-llm-proxy")).toBe(true);
  });

  it("covers the metering pipeline: the ledger Worker, D1, the usage Queue and its DLQ (kept 14 days, read by an HTTP pull consumer), the consumer, the archive bucket's lifecycle, the cron trigger", () => {
    const got = (type: string) => registered.filter((r) => r.type === type);
    const only = (type: string) => {
      expect(got(type), type).toHaveLength(1);
      return got(type)[0]!.inputs;
    };
    expect(only(TYPES.d1Database)).toEqual({ accountId: ACCOUNT, name: "edgefleet-usage" });
    expect(got(TYPES.queue).map((r) => r.inputs).sort((a, b) => String(a.queueName).localeCompare(String(b.queueName)))).toEqual([
      { accountId: ACCOUNT, queueName: "edgefleet-usage" },
      { accountId: ACCOUNT, queueName: "edgefleet-usage-dlq", settings: { messageRetentionPeriod: 14 * 86_400 } },
    ]);
    const consumers = Object.fromEntries(got(TYPES.queueConsumer).map((r) => [r.name, r.inputs]));
    expect(consumers).toEqual({
      "edgefleet-usage-ledger/consumer/edgefleet-usage": {
        accountId: ACCOUNT,
        queueId: mockId("queue/edgefleet-usage"),
        scriptName: "edgefleet-usage-ledger",
        type: "worker",
        settings: { batchSize: 100, maxWaitTimeMs: 5000, maxRetries: 10, retryDelay: 30, maxConcurrency: 5 },
        deadLetterQueue: "edgefleet-usage-dlq",
      },
      "queue/edgefleet-usage-dlq/pull-consumer": {
        accountId: ACCOUNT,
        queueId: mockId("queue/edgefleet-usage-dlq"),
        type: "http_pull",
        settings: { maxRetries: 100, visibilityTimeoutMs: 600_000 },
      },
    });
    expect(only(TYPES.r2Bucket)).toEqual({ accountId: ACCOUNT, name: "edgefleet-archive" });
    expect(only(TYPES.r2BucketLifecycle)).toMatchObject({ bucketName: "edgefleet-archive", rules: [{ enabled: true, conditions: { prefix: "" }, deleteObjectsTransition: { condition: { type: "Age", maxAge: 30 * 86_400 } } }] });
    expect(only(TYPES.workersCronTrigger)).toEqual({ accountId: ACCOUNT, scriptName: "edgefleet-usage-ledger", schedules: [{ cron: "17 * * * *" }] });
    // The ledger binds the database by the id the engine gave it, and gets the inventory's vars.
    const ledger = registered.find((r) => r.type === TYPES.workersScript && r.inputs.scriptName === "edgefleet-usage-ledger")!;
    const bindings = Object.fromEntries((ledger.inputs.bindings as { name: string }[]).map((b) => [b.name, b]));
    expect(bindings.DB).toEqual({ type: "d1", name: "DB", id: mockId("d1/edgefleet-usage") });
    expect(bindings.DEAD_LETTERS).toEqual({ type: "queue", name: "DEAD_LETTERS", queueName: "edgefleet-usage-dlq" });
    expect(bindings.PRICES).toMatchObject({ type: "plain_text" });
    expect(bindings.CALL_RETENTION_DAYS).toEqual({ type: "plain_text", name: "CALL_RETENTION_DAYS", text: "90" });
    // Each proxy sends to that same queue and archives to that same bucket.
    for (const p of registered.filter((r) => r.type === TYPES.workersScript && String(r.inputs.scriptName).startsWith("edgefleet-llm-proxy"))) {
      const b = Object.fromEntries((p.inputs.bindings as { name: string }[]).map((x) => [x.name, x]));
      expect(b.USAGE_EVENTS).toEqual({ type: "queue", name: "USAGE_EVENTS", queueName: "edgefleet-usage" });
      expect(b.ARCHIVE).toEqual({ type: "r2_bucket", name: "ARCHIVE", bucketName: "edgefleet-archive" });
      expect(b.PRICES).toEqual(bindings.PRICES);
    }
  });

  it("exports the ids operator scripts need: the content map, the tenant store, the D1 databases", async () => {
    const value = <T>(o: pulumi.Output<T> | undefined) => new Promise<T | undefined>((res) => (o ? o.apply((v) => res(v)) : res(undefined)));
    expect(await value(outputs.sitesNamespaceId)).toBe(mockId("kv/edgefleet-sites"));
    expect(await value(outputs.tenantsNamespaceId)).toBe(mockId("kv/edgefleet-llm-proxy-tenants"));
    expect(await value(outputs.d1DatabaseIds)).toEqual({ "edgefleet-usage": mockId("d1/edgefleet-usage") });
    expect(outputs.workers).toEqual(desired.workers.map((w) => w.script));
  });

  it("keeps the provider key and operator token secret end to end: the engine receives the bindings as a secret", () => {
    for (const r of registered.filter((x) => x.type === TYPES.workersScript)) {
      const bindings = r.inputs.bindings as { type: string; name: string; text?: string }[];
      const secretText = bindings.filter((b) => b.type === "secret_text");
      if (secretText.length > 0) {
        expect(r.secretFields, String(r.inputs.scriptName)).toContain("bindings");
        expect(secretText.map((b) => b.name).sort()).toEqual(["ANTHROPIC_API_KEY", "OPERATOR_TOKEN"]);
      }
      // Nothing secret-looking travels as plain text.
      for (const b of bindings.filter((x) => x.type === "plain_text")) {
        for (const v of Object.values(SECRETS)) expect(b.text).not.toContain(v);
      }
    }
    // And nowhere else in any input.
    const clear = JSON.stringify(registered.filter((r) => !r.secretFields.length).map((r) => r.inputs));
    for (const v of Object.values(SECRETS)) expect(clear).not.toContain(v);
  });

  it("parents each Worker's resources under its Worker component, and the router's shards under the Router", () => {
    const workerChildren = urns.filter((u) =>
      [TYPES.workersScript, TYPES.workersRoute, TYPES.workersKvNamespace, TYPES.d1Database, TYPES.queue, TYPES.queueConsumer, TYPES.r2Bucket, TYPES.r2BucketLifecycle, TYPES.workersCronTrigger].some((t) => u.includes(`$${t}::`)),
    );
    expect(workerChildren.length).toBeGreaterThan(0);
    for (const urn of workerChildren) expect(urn).toContain(`${TYPES.worker}$`);
    // (A URN names its parent's type, not the whole chain.)
    expect(urns).toContain(`urn:pulumi:test::edgefleet::${TYPES.router}$${TYPES.worker}::edgefleet-router`);
    expect(urns).toContain(`urn:pulumi:test::edgefleet::${TYPES.worker}$${TYPES.workersScript}::edgefleet-router/script`);
  });

  it("makes each proxy's script depend on the usage ledger's (the consumer of its queue); the components keep the inventory's order", () => {
    const script = (name: string) => registered.find((r) => r.type === TYPES.workersScript && r.inputs.scriptName === name)!;
    const ledgerUrn = `urn:pulumi:test::edgefleet::${TYPES.worker}$${TYPES.workersScript}::edgefleet-usage-ledger/script`;
    expect(urns).toContain(ledgerUrn);
    for (const p of ["edgefleet-llm-proxy-canary", "edgefleet-llm-proxy-eu", "edgefleet-llm-proxy"]) expect(script(p).dependencies, p).toContain(ledgerUrn);
    // The ledger's script waits for no proxy, the router's for nobody's script.
    expect(script("edgefleet-usage-ledger").dependencies.filter((u) => u.includes(`$${TYPES.workersScript}::`))).toEqual([]);
    expect(script("edgefleet-router").dependencies.filter((u) => u.includes(`$${TYPES.workersScript}::`))).toEqual([]);
    // The inventory lists the proxies first: their components (and the usage queue the first
    // of them declares) are still registered first, so no URN moves.
    const components = registered.filter((r) => r.type === TYPES.worker).map((r) => r.name);
    expect(components.indexOf("edgefleet-llm-proxy-canary")).toBeLessThan(components.indexOf("edgefleet-usage-ledger"));
    expect(urns).toContain(`urn:pulumi:test::edgefleet::${TYPES.worker}$${TYPES.queue}::queue/edgefleet-usage`);
    const queueParent = urns.filter((u) => u.endsWith("::queue/edgefleet-usage"));
    expect(queueParent).toHaveLength(1);
  });

  it("makes each script wait for the R2 buckets and queues it binds by name (an upload bound to a bucket not yet created is refused)", () => {
    const script = (name: string) => registered.find((r) => r.type === TYPES.workersScript && r.inputs.scriptName === name)!;
    const urn = (type: string, name: string) => urns.find((u) => u.includes(`$${type}::`) && u.endsWith(`::${name}`))!;
    const usageQueue = urn(TYPES.queue, "queue/edgefleet-usage");
    const dlq = urn(TYPES.queue, "queue/edgefleet-usage-dlq");
    const archive = urn(TYPES.r2Bucket, "r2/edgefleet-archive");
    for (const u of [usageQueue, dlq, archive]) expect(u).toBeDefined();
    for (const p of ["edgefleet-llm-proxy-canary", "edgefleet-llm-proxy-eu", "edgefleet-llm-proxy"]) {
      expect(script(p).dependencies, p).toEqual(expect.arrayContaining([usageQueue, archive]));
    }
    // The ledger sends what it cannot record to the DLQ (its DEAD_LETTERS producer).
    expect(script("edgefleet-usage-ledger").dependencies).toContain(dlq);
  });

  it("has the URNs that docs/metering.md tells an operator to target before the first deploy", () => {
    // `pulumi up --target '<urn>'` (docs/metering.md, "The first deploy"): the stack there is
    // prod, here test; a URN that no longer matches the program would target nothing.
    const doc = readFileSync(new URL("../docs/metering.md", import.meta.url), "utf8");
    const targets = [...doc.matchAll(/--target '(urn:pulumi:prod::[^']+)'/g)].map((m) => m[1]!.replace("urn:pulumi:prod::", "urn:pulumi:test::"));
    expect(targets).toHaveLength(2);
    for (const t of targets) expect(urns).toContain(t);
  });

  it("registers no two resources under one URN", () => {
    expect(new Set(urns).size).toBe(urns.length);
    expect(urns.length).toBeGreaterThanOrEqual(desired.resources.length);
  });
});

describe("the program's entry point", () => {
  it("runs under plain Node (type stripping, ESM), as Pulumi.yaml has the CLI run it", async () => {
    // Outside the CLI there is no engine: the SDK drops registrations, but the program
    // still reads the config and the inventory and declares every resource.
    const dir = mkdtempSync(join(tmpdir(), "edgefleet-inv-"));
    writeFileSync(join(dir, "fleet.yaml"), FLEET);
    writeFileSync(join(dir, "profiles.yaml"), PROFILES);
    writeFileSync(join(dir, "zones.yaml"), ZONES);
    writeFileSync(join(dir, "metering.yaml"), METERING);
    // Asynchronously: the fake Cloudflare API answers from this process meanwhile.
    const child = spawn(process.execPath, ["stacks/index.ts"], {
      env: { ...process.env, PULUMI_CONFIG: JSON.stringify({ "edgefleet:accountId": ACCOUNT, "edgefleet:inventory": dir, ...cloudflareConfig() }) },
    });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const status = await new Promise<number | null>((res) => child.on("close", res));
    expect(stderr).toBe("");
    expect(status).toBe(0);
  });

  it("stops on an invalid inventory with its located problems (a RunError, which the CLI prints without a stack)", () => {
    const r = spawnSync(process.execPath, ["stacks/index.ts"], {
      encoding: "utf8",
      env: { ...process.env, PULUMI_CONFIG: JSON.stringify({ "edgefleet:accountId": ACCOUNT, "edgefleet:inventory": "test/no-such-inventory" }) },
    });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain("RunError: the inventory has 1 problem(s):\ntest/no-such-inventory/fleet.yaml:1:1: cannot read the file (ENOENT)");
  });
});
