// The inventory's workers: section: validation against the zones and each Worker's
// wrangler.jsonc (located by file, line and field), the deployments it yields, and the
// order key rotation reads.
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { FLEET, inventory, METERING, parseTexts, withZone } from "../../test/support/inventory.ts";
import { DEAD_LETTER_PULL } from "./dead-letters.ts";
import { meteringVars } from "./metering.ts";
import { deriveDesiredState } from "./desired.ts";
import { TYPES } from "./names.ts";
import { queueWaits, validateWorkers, workersBindingSecret, type DesiredWorker } from "./workers.ts";
import { WORKERS_DIR } from "./wrangler.ts";

const ZONES = withZone(`  - name: api.example
    id: a0000000000000000000000000000009
    profile: parked
    records:
      - { type: AAAA, name: llm, content: "100::", proxied: true }
      - { type: A, name: plain, content: 192.0.2.1 }
`);

const proxy = (extra = "") => `
workers:
  - script: proxy-main
    source: llm-proxy
    routes: [llm.api.example/*]
    secrets: { ANTHROPIC_API_KEY: anthropicApiKey, OPERATOR_TOKEN: operatorToken }
${extra}`;

describe("workers: in fleet.yaml", () => {
  it("derives each Worker with its routes, secrets and status URL", () => {
    const state = deriveDesiredState(inventory({ fleet: FLEET + proxy(), zones: ZONES }), { accountId: "acct" });
    const w = state.workers.find((x) => x.script === "proxy-main")!;
    expect(w).toMatchObject({
      source: "llm-proxy",
      canary: false,
      hostnames: ["llm.api.example"],
      zones: ["api.example"],
      statusUrl: "https://llm.api.example/_edgefleet/status",
      secrets: [
        { binding: "ANTHROPIC_API_KEY", config: "anthropicApiKey" },
        { binding: "OPERATOR_TOKEN", config: "operatorToken" },
      ],
    });
    expect(w.bundle).toMatch(/^sha256:[0-9a-f]{64}$/);
    const route = state.resources.find((r) => r.type === TYPES.workersRoute && r.name === "route/llm.api.example/*")!;
    expect(route.zone).toBe("api.example");
    expect(route.inputs).toEqual({ zoneId: "a0000000000000000000000000000009", pattern: "llm.api.example/*", script: "proxy-main" });
    // The router serves the web zone of the fixture, and the MTA-STS policy host of the
    // zone that receives mail (issue 15.6); it binds no secret.
    const router = state.workers.find((x) => x.script === "edgefleet-router")!;
    expect(router).toMatchObject({ secrets: [], statusUrl: null, zones: ["ops.example", "site.example"] });
    expect(router.hostnames.sort()).toEqual(["mta-sts.ops.example", "site.example", "www.site.example"]);
    const domain = state.resources.find((r) => r.type === TYPES.workersCustomDomain && r.name === "domain/mta-sts.ops.example")!;
    expect(domain).toMatchObject({ zone: "ops.example", parent: "edgefleet-router" });
    expect(domain.inputs).toEqual({ accountId: "acct", hostname: "mta-sts.ops.example", service: "edgefleet-router", zoneId: "a0000000000000000000000000000001" });
    // No route on the mail zone's apex or www: only its policy host is the router's.
    expect(state.resources.filter((r) => r.type === TYPES.workersRoute && r.zone === "ops.example")).toEqual([]);
  });

  it("reports every problem of the section with its line and field", () => {
    const bad = `
workers:
  - script: proxy-main
    source: llm-proxy
    routes: [llm.nowhere.example/*, plain.api.example/*, site.example/*]
    secrets: { ANTHROPIC_API_KEY: anthropicApiKey, EXTRA_KEY: extraKey }
    vars: { NO_SUCH_VAR: "1" }
  - script: proxy-main
    source: no-such-worker
  - script: edgefleet-router
    source: llm-proxy
    secrets: { ANTHROPIC_API_KEY: anthropicApiKey, OPERATOR_TOKEN: operatorToken }
`;
    const r = parseTexts({ fleet: FLEET + bad, zones: ZONES });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    const lines = r.problems.map((p) => `${p.file}:${p.line}: ${p.path}: ${p.message}`);
    expect(lines).toEqual(
      expect.arrayContaining([
        "fleet.yaml:9: workers[0].routes[0]: 'llm.nowhere.example' is in no zone of the inventory",
        expect.stringMatching(/^fleet\.yaml:9: workers\[0\]\.routes\[1\]: 'plain\.api\.example' has no proxied A, AAAA or CNAME record/),
        expect.stringMatching(/^fleet\.yaml:9: workers\[0\]\.routes\[2\]: 'site\.example' is served by the router/),
        expect.stringMatching(/^fleet\.yaml:10: workers\[0\]\.secrets: llm-proxy needs secrets OPERATOR_TOKEN/),
        expect.stringMatching(/^fleet\.yaml:10: workers\[0\]\.secrets\.EXTRA_KEY: llm-proxy does not use a secret 'EXTRA_KEY'/),
        expect.stringMatching(/^fleet\.yaml:11: workers\[0\]\.vars\.NO_SUCH_VAR: 'NO_SUCH_VAR' is not a var of .*workers\/llm-proxy\/wrangler\.jsonc/),
        "fleet.yaml:12: workers[1].script: script 'proxy-main' is declared twice (first at workers[0])",
        expect.stringMatching(/workers\/no-such-worker\/wrangler\.jsonc:1: : cannot read the file \(ENOENT\)$/),
        "fleet.yaml:14: workers[2].script: script 'edgefleet-router' is a router shard's name (edgefleet-router)",
      ]),
    );
  });

  it("refuses a secret name that is not UPPER_SNAKE_CASE or a config key that Pulumi cannot hold", () => {
    const r = parseTexts({ fleet: FLEET + proxy().replace("OPERATOR_TOKEN: operatorToken", "operator-token: operator.token"), zones: ZONES });
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.problems.map((p) => p.message).join("\n")).toMatch(/UPPER_SNAKE_CASE|camelCase/);
  });
});

describe("workers: metering (issue 16)", () => {
  const ledger = `  - script: ledger
    source: usage-ledger
`;
  const both = () => deriveDesiredState(inventory({ fleet: FLEET + proxy() + ledger, zones: ZONES }), { accountId: "acct" });
  const script = (state: ReturnType<typeof both>, name: string) => state.resources.find((r) => r.type === TYPES.workersScript && r.name === `${name}/script`)!.inputs as { bindings: { type: string; name: string; text?: string; queueName?: string; bucketName?: string }[] };
  const plain = (state: ReturnType<typeof both>, name: string) => Object.fromEntries(script(state, name).bindings.filter((b) => b.type === "plain_text").map((b) => [b.name, b.text]));

  it("gives the proxy PRICES and the ledger PRICES and CALL_RETENTION_DAYS from metering.yaml, as plain text", () => {
    const state = both();
    const m = meteringVars(inventory().metering!);
    expect(plain(state, "proxy-main")).toMatchObject({ PRICES: m.PRICES });
    expect(plain(state, "proxy-main")).not.toHaveProperty("CALL_RETENTION_DAYS");
    expect(plain(state, "ledger")).toEqual({ PRICES: m.PRICES, CALL_RETENTION_DAYS: "30" });
    // The router's code reads neither.
    expect(plain(state, "edgefleet-router")).not.toHaveProperty("PRICES");
  });

  it("declares one usage Queue for the proxy's producer and the ledger's consumer, the DLQ, and the archive bucket's lifecycle rule from archive.retention_days", () => {
    const state = both();
    const of = (type: string) => state.resources.filter((r) => r.type === type).map((r) => r.name).sort();
    expect(of(TYPES.queue)).toEqual(["queue/edgefleet-usage", "queue/edgefleet-usage-dlq"]);
    expect(of(TYPES.r2Bucket)).toEqual(["r2/edgefleet-archive"]);
    expect(of(TYPES.d1Database)).toEqual(["d1/edgefleet-usage"]);
    const producer = script(state, "proxy-main").bindings.find((b) => b.name === "USAGE_EVENTS")!;
    const consumer = state.resources.find((r) => r.type === TYPES.queueConsumer)!;
    expect(producer.queueName).toBe("edgefleet-usage");
    expect(consumer.inputs.queueId).toEqual({ $ref: "queue/edgefleet-usage", $output: "queueId" });
    expect(consumer.options?.dependsOn).toEqual(["ledger/script", "queue/edgefleet-usage-dlq"]);
    const lifecycle = state.resources.find((r) => r.type === TYPES.r2BucketLifecycle)!;
    expect(lifecycle.inputs.bucketName).toBe("edgefleet-archive");
    expect((lifecycle.inputs.rules as { deleteObjectsTransition: unknown }[])[0]!.deleteObjectsTransition).toEqual({ condition: { type: "Age", maxAge: 7 * 86_400 } });
    // As the provider reads the rule back (an empty list, not absent): no diff after a refresh.
    expect((lifecycle.inputs.rules as { storageClassTransitions?: unknown }[])[0]!.storageClassTransitions).toEqual([]);
    expect(state.resources.find((r) => r.type === TYPES.workersCronTrigger)!.inputs).toEqual({ accountId: "acct", scriptName: "ledger", schedules: [{ cron: "17 * * * *" }] });
    // Stores are retained when removed from the inventory: they hold data.
    for (const t of [TYPES.queue, TYPES.r2Bucket, TYPES.d1Database]) for (const r of state.resources.filter((x) => x.type === t)) expect(r.options, r.name).toMatchObject({ retainOnDelete: true, protect: true });
  });

  it("makes the proxy's script wait for the ledger's, which consumes its queue (the Pulumi program passes it on)", () => {
    const state = both();
    const res = (name: string) => state.resources.find((r) => r.type === TYPES.workersScript && r.name === `${name}/script`)!;
    // The stores it binds by name first (its bucket, the queue it sends to), then the ledger.
    expect(res("proxy-main").options?.dependsOn).toEqual(["queue/edgefleet-usage", "r2/edgefleet-archive", "ledger/script"]);
    expect(res("ledger").options?.dependsOn).toEqual(["queue/edgefleet-usage-dlq"]);
    expect(res("edgefleet-router").options?.dependsOn).toBeUndefined();
    // The inventory's order stays: the proxy, listed first, is still derived first.
    const scripts = state.workers.map((w) => w.script);
    expect(scripts.indexOf("proxy-main")).toBeLessThan(scripts.indexOf("ledger"));
  });

  it("queueWaits: a producer waits for every other consumer of its queues, never for itself", () => {
    const cfg = (produces: string[], consumes: string[]) => ({ queueProducers: produces.map((queue) => ({ binding: "Q", queue })), queueConsumers: consumes.map((queue) => ({ queue })) });
    const waits = (ws: [string, ReturnType<typeof cfg>][]) => {
      const m = new Map(ws);
      return Object.fromEntries(queueWaits(ws.map(([script]) => ({ script })), (d) => m.get(d.script)!));
    };
    expect(waits([["p", cfg(["q1", "q2"], [])], ["c2", cfg([], ["q2"])], ["c1", cfg(["q3"], ["q1"])], ["other", cfg([], ["q9"])]])).toEqual({ p: ["c1", "c2"] });
    expect(waits([["self", cfg(["q"], ["q"])]])).toEqual({});
    // A cycle: the first in the inventory waits, the wait that would close it is left out
    // (Pulumi cannot order a cycle; the program would wait forever). Also through a third.
    expect(waits([["x", cfg(["qy"], ["qx"])], ["y", cfg(["qx"], ["qy"])]])).toEqual({ x: ["y"] });
    expect(waits([["a", cfg(["qb"], ["qa"])], ["b", cfg(["qc"], ["qb"])], ["c", cfg(["qa"], ["qc"])]])).toEqual({ a: ["b"], b: ["c"] });
  });

  it("keeps the ledger's dead-letter queue ledger.dead_letter_retention_days (default 14) and gives it an HTTP pull consumer, and nothing else", () => {
    const queue = (state: ReturnType<typeof both>, name: string) => state.resources.find((r) => r.type === TYPES.queue && r.name === `queue/${name}`)!;
    const state = both();
    // metering.yaml without the field: 14 days, the most a Queue keeps a message.
    expect(queue(state, "edgefleet-usage-dlq").inputs).toEqual({ accountId: "acct", queueName: "edgefleet-usage-dlq", settings: { messageRetentionPeriod: 14 * 86_400 } });
    // The usage queue keeps Queues' own default: only what the replay reads is kept longer.
    expect(queue(state, "edgefleet-usage").inputs).toEqual({ accountId: "acct", queueName: "edgefleet-usage" });
    const consumers = state.resources.filter((r) => r.type === TYPES.queueConsumer);
    expect(consumers.map((r) => r.name).sort()).toEqual(["ledger/consumer/edgefleet-usage", "queue/edgefleet-usage-dlq/pull-consumer"]);
    const pull = consumers.find((r) => r.name === "queue/edgefleet-usage-dlq/pull-consumer")!;
    // No script (nothing is pushed to a Worker), no DLQ of its own, Queues' most retries.
    expect(pull.inputs).toEqual({
      accountId: "acct",
      queueId: { $ref: "queue/edgefleet-usage-dlq", $output: "queueId" },
      type: "http_pull",
      settings: { maxRetries: 100, visibilityTimeoutMs: 600_000 },
    });
    expect(DEAD_LETTER_PULL).toEqual({ maxRetries: 100, visibilityTimeoutMs: 600_000 });
    expect(pull.parent).toBe("ledger");
    expect(pull.options?.dependsOn).toEqual(["queue/edgefleet-usage-dlq"]);
    // A shorter retention from the inventory.
    const short = deriveDesiredState(inventory({ fleet: FLEET + proxy() + ledger, zones: ZONES, metering: METERING.replace("call_retention_days: 30", "call_retention_days: 30\n  dead_letter_retention_days: 3") }), { accountId: "acct" });
    expect(queue(short, "edgefleet-usage-dlq").inputs.settings).toEqual({ messageRetentionPeriod: 3 * 86_400 });
    // A proxy alone declares no pull consumer (it has no consumer, so no DLQ).
    const alone = deriveDesiredState(inventory({ fleet: FLEET + proxy(), zones: ZONES }), { accountId: "acct" });
    expect(alone.resources.filter((r) => r.type === TYPES.queueConsumer)).toEqual([]);
  });

  it("refuses a Worker that consumes the ledger's dead-letter queue: Cloudflare allows a Worker or a pull consumer on a queue, not both", () => {
    const dir = mkdtempSync(join(tmpdir(), "dlq-workers-"));
    try {
      cpSync(join(WORKERS_DIR, "usage-ledger"), join(dir, "usage-ledger"), { recursive: true });
      mkdirSync(join(dir, "dlq-reader"));
      writeFileSync(
        join(dir, "dlq-reader", "wrangler.jsonc"),
        JSON.stringify({ name: "dlq-reader", main: "src/index.ts", compatibility_date: "2026-07-30", queues: { consumers: [{ queue: "edgefleet-usage-dlq", dead_letter_queue: "dlq-of-dlq" }] } }),
      );
      // The inventory as loaded (validated against the repository's Workers), plus a Worker
      // of the temporary folder that consumes the ledger's DLQ.
      const inv = inventory({ fleet: `${FLEET}workers:\n${ledger}`, zones: ZONES });
      const reader = { ...inv.fleet.workers[0]!, script: "reader", source: "dlq-reader" };
      inv.fleet.workers.push(reader);
      const { problems } = validateWorkers(inv, { workersDir: dir });
      expect(problems.map((p) => `${p.path.join(".")}: ${p.message}`)).toEqual([
        "workers.1.source: dlq-reader consumes queue 'edgefleet-usage-dlq', the dead-letter queue of ledger, which is read over HTTP (npm run dead-letters); Cloudflare allows a Worker consumer or a pull consumer on a queue, not both",
      ]);
      // Without the ledger, nobody pulls that queue: no problem.
      inv.fleet.workers.shift();
      expect(validateWorkers(inv, { workersDir: dir }).problems).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("refuses, located, a second Worker consuming the same queue: Cloudflare allows one Worker consumer per queue", () => {
    const twice = `${ledger}  - script: ledger-eu
    source: usage-ledger
`;
    const r = parseTexts({ fleet: FLEET + proxy() + twice, zones: ZONES });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.problems.map((p) => `${p.file}:${p.line}: ${p.path}: ${p.message}`)).toEqual([
      "fleet.yaml:14: workers[2].source: usage-ledger (script ledger-eu) consumes queue 'edgefleet-usage', which workers[1] (ledger) already consumes; Cloudflare allows one Worker consumer per queue (its deploy would fail with error 11004, consumer_exists)",
    ]);
    // One ledger: accepted.
    expect(parseTexts({ fleet: FLEET + proxy() + ledger, zones: ZONES }).ok).toBe(true);
  });

  it("refuses, located, a Worker that needs metering.yaml in an inventory without one", () => {
    const r = parseTexts({ fleet: FLEET + proxy() + ledger, zones: ZONES, metering: null });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.problems.map((p) => `${p.file}:${p.line}: ${p.path}: ${p.message}`)).toEqual([
      "fleet.yaml:8: workers[0].source: llm-proxy needs PRICES, the retention of its archive bucket 'edgefleet-archive' (archive.retention_days) from metering.yaml, which this inventory does not have",
      "fleet.yaml:12: workers[1].source: usage-ledger needs PRICES, CALL_RETENTION_DAYS from metering.yaml, which this inventory does not have",
    ]);
    // Without such a Worker, the inventory needs no metering.yaml.
    expect(parseTexts({ metering: null }).ok).toBe(true);
  });

  it("reports an invalid metering.yaml's own problems, located, and nothing else", () => {
    const r = parseTexts({ fleet: `${FLEET}workers:\n${ledger}`, metering: METERING.replace("retention_days: 7", "retention_days: 0") });
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.problems.map((p) => `${p.file}:${p.line}: ${p.path}: ${p.message}`)).toEqual(["metering.yaml:10: archive.retention_days: at least 1 day"]);
  });
});

describe("workersBindingSecret", () => {
  const w = (script: string, canary: boolean, secrets: string[]): DesiredWorker =>
    ({ script, canary, secrets: secrets.map((binding) => ({ binding, config: "k" })) }) as DesiredWorker;
  it("lists the Workers that bind a secret, canary first, then by script name", () => {
    const all = [w("b", false, ["KEY"]), w("a", false, ["KEY"]), w("z-canary", true, ["KEY"]), w("router", false, []), w("c", false, ["OTHER"])];
    expect(workersBindingSecret(all, "KEY").map((x) => x.script)).toEqual(["z-canary", "a", "b"]);
    expect(workersBindingSecret(all, "NOPE")).toEqual([]);
  });
});
