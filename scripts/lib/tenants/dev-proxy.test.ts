// `npm run dev:proxy` in-process: starts the Worker on a free port with a seeded dev
// tenant, proxies to a fake upstream, and prints the same key on the next start; the
// calls made through it reach the local ledger, where the `npm run usage` it prints
// reports them while it runs.
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { FakeAnthropic } from "../../../workers/llm-proxy/test/fake-anthropic.ts";
import { runUsage } from "../usage/cli.ts";
import { LOCK_FILE, readDevVars, runDevProxy } from "./dev-proxy.ts";

const root = resolve(import.meta.dirname, "../../..");
const dir = mkdtempSync(join(tmpdir(), "efp-dev-"));
const fake = new FakeAnthropic();
beforeAll(() => fake.start());
afterAll(async () => {
  await fake.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function start(extra: string[] = []) {
  let out = "";
  const r = await runDevProxy(["--port", "0", "--upstream", fake.url, "--persist", dir, "--ledger-persist", join(dir, "ledger"), "--json", "--quiet", ...extra], {
    out: (s) => (out += s),
    err: (s) => (out += s),
    env: { ANTHROPIC_API_KEY: "sk-dev-test" },
    root,
  });
  return { ...r, info: r.code === 0 ? (JSON.parse(out) as { url: string; devTenantKey: string; usage: string }) : undefined, out };
}

it("serves the proxy with a seeded dev tenant whose key survives restarts", async () => {
  const first = await start();
  expect(first.code).toBe(0);
  const res = await fetch(`${first.info!.url}/v1/messages`, { method: "POST", headers: { "x-api-key": first.info!.devTenantKey, "anthropic-version": "2023-06-01" }, body: '{"model":"m","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}' });
  expect(res.status).toBe(200);
  expect((await res.json()) as unknown).toMatchObject({ type: "message" });
  expect(fake.received.at(-1)!.headers["x-api-key"]).toBe("sk-dev-test");
  // The usage command it prints reports the call, read while dev:proxy runs.
  // As ./edgefleet commands (a fresh machine's system Node cannot run `npm run usage`),
  // with the tenants' state too, so budget used is read from this run's tenants.
  expect(first.info!.usage).toBe(`./edgefleet usage --persist ${join(dir, "ledger")} --tenants-persist ${dir}`);
  let report = { lines: [] as { calls: number; model: string; costMicros: number }[] };
  // The ledger writes a batch within wrangler.jsonc's max_batch_timeout (5 s).
  for (let i = 0; i < 100 && report.lines.length === 0; i++) {
    let out = "";
    const code = await runUsage(["--persist", join(dir, "ledger"), "--days", "1", "--json"], { out: (s) => (out += s), err: () => {}, env: {} });
    if (code === 0) report = JSON.parse(out);
    if (report.lines.length === 0) await new Promise((r) => setTimeout(r, 250));
  }
  expect(report.lines).toMatchObject([{ calls: 1, model: "claude-sonnet-5-5" }]);
  await first.stop!();
  const second = await start();
  expect(second.info!.devTenantKey).toBe(first.info!.devTenantKey);
  await second.stop!();
});

it("rejects a bad port or upstream with exit code 2, and a port in use with one line", async () => {
  expect((await start(["--port", "http"])).code).toBe(2);
  expect((await start(["--upstream", "ftp://x"])).code).toBe(2);
  expect((await start(["--fake-upstream"])).code).toBe(2); // with --upstream: give one
  const busy = await start();
  const port = new URL(busy.info!.url).port;
  // Its own state, so only the port is in the way.
  const other = mkdtempSync(join(tmpdir(), "efp-dev-port-"));
  try {
    const again = await start(["--port", port, "--persist", other, "--ledger-persist", join(other, "ledger")]);
    expect(again.code).toBe(2);
    expect(again.out).toContain(`127.0.0.1:${port} is in use (another dev:proxy?)`);
    // It let go of its state: a dev:proxy on it starts.
    const then = await start(["--persist", other, "--ledger-persist", join(other, "ledger")]);
    expect(then.code).toBe(0);
    await then.stop!();
  } finally {
    rmSync(other, { recursive: true, force: true });
  }
  await busy.stop!();
});

it("refuses a second dev:proxy on the same state (either directory), takes over a dead one's lock, and lets go on stop", async () => {
  const d = mkdtempSync(join(tmpdir(), "efp-dev-lock-"));
  const opts = (persist: string, ledger: string) => ["--port", "0", "--upstream", fake.url, "--persist", persist, "--ledger-persist", ledger, "--json", "--quiet"];
  const run = async (args: string[]) => {
    let out = "";
    let err = "";
    const r = await runDevProxy(args, { out: (s) => (out += s), err: (s) => (err += s), env: {}, root });
    return { ...r, out, err };
  };
  try {
    const a = await run(opts(join(d, "p"), join(d, "l")));
    expect(a.code).toBe(0);
    // The lock names this process and the workerd it started (which a SIGKILL of this
    // process would leave serving the state).
    const held = JSON.parse(readFileSync(join(d, "p", LOCK_FILE), "utf8")) as { pid: number; also: number[] };
    expect(held.pid).toBe(process.pid);
    expect(held.also).toHaveLength(1);
    expect(readFileSync(`/proc/${held.also[0]}/comm`, "utf8").trim()).toBe("workerd");
    const same = await run(opts(join(d, "p"), join(d, "l2")));
    expect(same.code).toBe(2);
    expect(same.err).toBe(`dev-proxy: another dev:proxy (or the workerd it started: process ${process.pid}) is using the state in ${join(d, "p")}: stop it, or give this one another --persist / --ledger-persist (if no such process runs, remove ${join(d, "p", LOCK_FILE)})\n`);
    // Refused whole: it kept no lock on the ledger directory it did get to.
    expect(existsSync(join(d, "l2", LOCK_FILE))).toBe(false);
    const ledger = await run(opts(join(d, "p2"), join(d, "l")));
    expect(ledger.code).toBe(2);
    expect(ledger.err).toContain(`is using the state in ${join(d, "l")}:`);
    expect(existsSync(join(d, "p2", LOCK_FILE))).toBe(false);
    await a.stop!();
    expect(existsSync(join(d, "p", LOCK_FILE))).toBe(false);
    expect(existsSync(join(d, "l", LOCK_FILE))).toBe(false);
    // A lock left by a process that died (no such pid) is taken over, unless a workerd it
    // started still runs (here: one this process started, still alive).
    const orphan = (await run(opts(join(d, "o"), join(d, "o", "ledger")))) as Awaited<ReturnType<typeof run>>;
    const orphanWorkerd = (JSON.parse(readFileSync(join(d, "o", LOCK_FILE), "utf8")) as { also: number[] }).also[0]!;
    writeFileSync(join(d, "p", LOCK_FILE), JSON.stringify({ pid: 2 ** 22 + 1, nonce: "dead", also: [orphanWorkerd] }));
    const blocked = await run(opts(join(d, "p"), join(d, "l")));
    expect(blocked.code).toBe(2);
    expect(blocked.err).toContain(`(or the workerd it started: process ${orphanWorkerd}) is using the state in ${join(d, "p")}`);
    await orphan.stop!();
    writeFileSync(join(d, "p", LOCK_FILE), JSON.stringify({ pid: 2 ** 22 + 1, nonce: "dead", also: [orphanWorkerd] }));
    const b = await run(opts(join(d, "p"), join(d, "l")));
    expect(b.code).toBe(0);
    await b.stop!();
    // One folder under two names (a symlink) is one state: locked once, not refused by itself.
    symlinkSync(join(d, "p"), join(d, "p-link"));
    const c = await run(opts(join(d, "p"), join(d, "p-link")));
    expect(c.code).toBe(0);
    await c.stop!();
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
});

it("--json without --quiet prints only JSON lines: the startup details, then logs and data points", async () => {
  const d = mkdtempSync(join(tmpdir(), "efp-dev-json-"));
  let out = "";
  const r = await runDevProxy(["--port", "0", "--upstream", fake.url, "--persist", d, "--ledger-persist", join(d, "ledger"), "--json"], { out: (s) => (out += s), err: () => {}, env: {}, root });
  try {
    expect(r.code).toBe(0);
    const first = out.split("\n").map((l) => (l.startsWith("{") ? (JSON.parse(l) as Record<string, unknown>) : l)).find((l) => typeof l === "object" && "url" in l) as { url: string; devTenantKey: string };
    const res = await fetch(`${first.url}/v1/messages`, { method: "POST", headers: { "x-api-key": first.devTenantKey, "anthropic-version": "2023-06-01" }, body: '{"model":"m","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}' });
    expect(res.status).toBe(200);
    await res.arrayBuffer();
    for (let i = 0; i < 40 && !out.includes('"metric"'); i++) await new Promise((ok) => setTimeout(ok, 50));
  } finally {
    await r.stop?.();
    rmSync(d, { recursive: true, force: true });
  }
  const lines = out.split("\n").filter((l) => l !== "");
  // Every line is a JSON object (a line that is not would throw here).
  const objects = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  expect(objects.some((o) => "url" in o)).toBe(true);
  expect(objects.find((o) => "metric" in o)).toMatchObject({ metric: { blobs: expect.arrayContaining(["/v1/messages", "200"]) } });
});

it("--fake-upstream needs no key; a call made just before stopping still reaches the ledger; a dev key KV no longer has is replaced", async () => {
  const d = mkdtempSync(join(tmpdir(), "efp-dev2-"));
  const run = async () => {
    let out = "";
    const r = await runDevProxy(["--port", "0", "--fake-upstream", "--persist", d, "--ledger-persist", join(d, "ledger"), "--json", "--quiet"], { out: (s) => (out += s), err: () => {}, env: {}, root });
    return { ...r, info: JSON.parse(out.split("\n")[0]!) as { url: string; devTenantKey: string; upstream: string } };
  };
  try {
    const a = await run();
    expect(a.info.upstream).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const res = await fetch(`${a.info.url}/v1/messages`, { method: "POST", headers: { "x-api-key": a.info.devTenantKey, "anthropic-version": "2023-06-01" }, body: '{"model":"claude-sonnet-4-6","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}' });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ type: "message", model: "claude-sonnet-4-6", usage: { output_tokens: 12 } });
    // Streamed through the proxy: the canned events end with message_stop.
    const sse = await fetch(`${a.info.url}/v1/messages`, { method: "POST", headers: { "x-api-key": a.info.devTenantKey, "anthropic-version": "2023-06-01" }, body: '{"model":"claude-sonnet-4-6","max_tokens":8,"stream":true,"messages":[{"role":"user","content":"hi"}]}' });
    expect(await sse.text()).toMatch(/event: message_start[\s\S]*event: message_delta[\s\S]*event: message_stop/);
    // The canned upstream refuses what the API refuses for its shape (here: no max_tokens).
    const bad = await fetch(`${a.info.url}/v1/messages`, { method: "POST", headers: { "x-api-key": a.info.devTenantKey, "anthropic-version": "2023-06-01" }, body: '{"model":"claude-sonnet-4-6","messages":[{"role":"user","content":"hi"}]}' });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { message: string } }).error.message).toBe("max_tokens: Field required");
    // Stopped at once: the stop waits out the queue's batch window, so the call is recorded.
    await a.stop!();
    let out = "";
    expect(await runUsage(["--persist", join(d, "ledger"), "--days", "1", "--json"], { out: (s) => (out += s), err: () => {}, env: {} })).toBe(0);
    // Both calls, priced as the model they asked for (it is in the table: no unknown-model flag).
    expect((JSON.parse(out) as { lines: { calls: number; model: string; unknownModelCalls: number }[] }).lines).toMatchObject([{ calls: 2, model: "claude-sonnet-4-6", unknownModelCalls: 0 }]);
    // The tenants' KV state deleted: the kept key would 401; a new dev tenant is made.
    rmSync(join(d, "kv"), { recursive: true, force: true });
    const b = await run();
    expect(b.info.devTenantKey).not.toBe(a.info.devTenantKey);
    const res2 = await fetch(`${b.info.url}/v1/messages`, { method: "POST", headers: { "x-api-key": b.info.devTenantKey, "anthropic-version": "2023-06-01" }, body: '{"model":"claude-sonnet-4-6","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}' });
    expect(res2.status).toBe(200);
    await b.stop!();
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
});

it(".dev.vars is read as wrangler reads it (dotenv): quotes, export, comments", () => {
  const f = join(dir, ".dev.vars");
  writeFileSync(f, ["# a comment", "ANTHROPIC_API_KEY='sk-ant-single'  # the key", 'OPERATOR_TOKEN="tok en"', "export PLAIN=value # inline comment", "HASHED=a#b", "EMPTY=", "not a line"].join("\n"));
  expect(readDevVars(f)).toEqual({ ANTHROPIC_API_KEY: "sk-ant-single", OPERATOR_TOKEN: "tok en", PLAIN: "value", HASHED: "a#b", EMPTY: "" });
});
