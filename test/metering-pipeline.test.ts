// Issue 16's "done when", end to end in one workerd (Miniflare): a call through the LLM
// proxy (against the fake Anthropic upstream) becomes a usage event on the real Queue, a
// call row and a daily rollup written by the usage-ledger consumer into D1, an archived
// request and response in R2 for the opted-in tenant, and a line of `npm run usage` read
// from the persisted local state, its cost computed from fleet/metering.yaml's prices.
import type { R2Bucket } from "@cloudflare/workers-types";
import type { Miniflare } from "miniflare";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { miniflareKv } from "../scripts/lib/tenants/local.ts";
import { createTenant, setArchive } from "../scripts/lib/tenants/store.ts";
import { ARCHIVE_EXIT, runArchive } from "../scripts/lib/archive/cli.ts";
import { runUsage, USAGE_EXIT } from "../scripts/lib/usage/cli.ts";
import { loadMeteringOrThrow } from "../stacks/model/metering.ts";
import { costMicros, lookupPrice, tokensOf } from "../workers/shared/pricing.ts";
import { startLocalPipeline } from "../workers/llm-proxy/local/pipeline.ts";
import { FakeAnthropic, message, messageEvents } from "../workers/llm-proxy/test/fake-anthropic.ts";
import type { D1Database } from "@cloudflare/workers-types";

const dir = mkdtempSync(join(tmpdir(), "ef-pipeline-"));
const ledgerDir = join(dir, "ledger");
const fake = new FakeAnthropic();
let mf: Miniflare;
let url: URL;
let db: D1Database;
let disposed = false;
const logs: string[] = [];
/** The runtime is closed by the test (before reading the persisted state) or after it. */
async function stop(): Promise<void> {
  if (disposed || mf === undefined) return;
  disposed = true;
  await mf.dispose();
}

beforeAll(async () => {
  await fake.start();
  ({ mf, url, db } = await startLocalPipeline({
    vars: { UPSTREAM_BASE_URL: fake.url },
    secrets: { ANTHROPIC_API_KEY: "sk-ant-e2e-placeholder" },
    persistDir: join(dir, "proxy"),
    ledgerPersistDir: ledgerDir,
    // A write D1 refuses in passing (Miniflare's D1 under a loaded CI machine) comes back
    // after 1 s instead of the deployed 30: the rows below are awaited for ~10 s.
    ledger: { consumer: { maxBatchTimeout: 0.05, retryDelay: 0 }, vars: { WRITE_RETRY_SECONDS: "0" } },
    onLog: (l) => logs.push(l),
  }));
});
afterAll(async () => {
  await stop();
  await fake.stop();
  rmSync(dir, { recursive: true, force: true });
});

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
async function until<T>(probe: () => Promise<T>, done: (v: T) => boolean): Promise<T> {
  let v = await probe();
  for (let i = 0; i < 1000 && !done(v); i++) {
    await sleep(10);
    v = await probe();
  }
  return v;
}

it("a call through the proxy becomes a D1 row, a rollup, an archived body and a line of `npm run usage`, priced from fleet/metering.yaml", async () => {
  const { key, record } = await createTenant(miniflareKv(await mf.getKVNamespace("TENANTS")), { name: "acme", ratePerMinute: 600, burst: 60, dailyBudgetMicros: 10_000_000 });
  await setArchive(miniflareKv(await mf.getKVNamespace("TENANTS")), record.id, true, false);
  const tenant = record.id;

  // A JSON call of a dated Sonnet 4.5 id with the cache-write split, and a streamed Haiku call.
  const usage = { input_tokens: 1200, output_tokens: 800, cache_creation_input_tokens: 3000, cache_read_input_tokens: 50000, cache_creation: { ephemeral_5m_input_tokens: 1000, ephemeral_1h_input_tokens: 2000 } };
  fake.enqueue({ kind: "json", body: { ...message("Hello"), model: "claude-sonnet-4-5-20250929", usage } });
  const events = messageEvents(["Hi", " there"], { input_tokens: 40, output_tokens: 12, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 });
  (events[0]!.data as { message: { model: string } }).message.model = "claude-haiku-4-5-20251001";
  fake.enqueue({ kind: "sse", events });
  const headers = { "x-api-key": key, "anthropic-version": "2023-06-01", "content-type": "application/json" };
  const body = JSON.stringify({ model: "claude-sonnet-4-5-20250929", max_tokens: 900, messages: [{ role: "user", content: "Hello" }] });
  const json = await fetch(new URL("/v1/messages", url), { method: "POST", headers, body });
  const jsonText = await json.text();
  const sse = await fetch(new URL("/v1/messages", url), { method: "POST", headers, body: '{"model":"claude-haiku-4-5","max_tokens":100,"stream":true,"messages":[{"role":"user","content":"Hi"}]}' });
  const sseText = await sse.text();
  expect([json.status, sse.status]).toEqual([200, 200]);
  const ids = [json.headers.get("edgefleet-request-id")!, sse.headers.get("edgefleet-request-id")!];

  // A streamed Opus call the client abandons after the first text: its event says so, the
  // ledger keeps why, and the report marks its line (its output count is a lower bound).
  const long = messageEvents(Array.from({ length: 40 }, (_, i) => `w${i} `), { input_tokens: 40, output_tokens: 400, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 });
  (long[0]!.data as { message: { model: string } }).message.model = "claude-opus-4-5";
  fake.enqueue({ kind: "sse", events: long, before: (i) => (i < 4 ? Promise.resolve() : sleep(50)) });
  const leave = new AbortController();
  const cut = await fetch(new URL("/v1/messages", url), { method: "POST", headers, body: '{"model":"claude-opus-4-5","max_tokens":500,"stream":true,"messages":[{"role":"user","content":"Hi"}]}', signal: leave.signal });
  const reader = cut.body!.getReader();
  let cutText = "";
  for (const dec = new TextDecoder(); !cutText.includes("content_block_delta"); ) {
    const r = await reader.read();
    if (r.done) break;
    cutText += dec.decode(r.value, { stream: true });
  }
  leave.abort();
  expect(cutText).toContain("content_block_delta");
  ids.push(cut.headers.get("edgefleet-request-id")!);

  // A call whose connection is lost before any answer: the upstream may have billed it, so
  // the budget keeps its whole reservation and the proxy does not retry it (502); the
  // ledger gets it with no usage, under the model the body asked for.
  fake.enqueue({ kind: "reset" });
  const lostBody = JSON.stringify({ model: "claude-haiku-4-5", max_tokens: 300, messages: [{ role: "user", content: "Hello" }] });
  const lost = await fetch(new URL("/v1/messages", url), { method: "POST", headers, body: lostBody });
  expect(lost.status).toBe(502);
  await lost.text();
  const reservation = Number(lost.headers.get("edgefleet-estimated-cost-micros"));
  expect(reservation).toBeGreaterThan(0);
  ids.push(lost.headers.get("request-id")!);

  // D1: one row per call, priced by the table (the dated ids fall back to their base model).
  const rows = await until(
    async () => (await db.prepare("SELECT * FROM calls ORDER BY model").all<Record<string, unknown>>()).results,
    (r) => r.length >= 4,
  );
  // Once a CI run (b3923e9) missed the cut stream's row here: say what the Workers logged.
  expect(rows.length, `rows: ${JSON.stringify(rows.map((r) => r.request_id))}; ids: ${JSON.stringify(ids)}\n${logs.join("\n")}`).toBe(4);
  // A write the ledger had to retry is no failure of this test, but is shown, not hidden.
  const retried = logs.filter((l) => /usage-ledger: .*(again in|one by one|failed)/.test(l));
  if (retried.length > 0) console.warn(`metering-pipeline: the ledger retried writes:\n${retried.join("\n")}`);
  const prices = loadMeteringOrThrow("fleet").prices;
  const sonnetCost = costMicros(tokensOf(usage), lookupPrice(prices, "claude-sonnet-4-5-20250929").price);
  const haikuCost = costMicros(tokensOf({ input_tokens: 40, output_tokens: 12 }), lookupPrice(prices, "claude-haiku-4-5").price);
  // 1200x3 + 1000x3.75 + 2000x6 + 50000x0.30 + 800x15 dollars per million tokens.
  expect(sonnetCost).toBe(46_350);
  // 40x1 + 12x5.
  expect(haikuCost).toBe(100);
  // 40x5 + 1x25: message_start's output count, all that was reported before the cut.
  const opusCost = 225;
  // The budget charged the cut stream its whole max_tokens: 40x5 + 500x25.
  const opusCharged = 12_700;
  expect(rows).toMatchObject([
    { request_id: ids[3], tenant, model: "claude-haiku-4-5", status: 502, input_tokens: 0, output_tokens: 0, cost_micros: 0, no_answer: "unreachable", budget_micros: reservation, ended: null },
    { request_id: ids[1], tenant, model: "claude-haiku-4-5-20251001", status: 200, input_tokens: 40, output_tokens: 12, cost_micros: haikuCost, priced_as: "claude-haiku-4-5", ended: null, no_answer: null, budget_micros: haikuCost },
    { request_id: ids[2], tenant, model: "claude-opus-4-5", status: 200, input_tokens: 40, output_tokens: 1, cost_micros: opusCost, ended: "client_closed", budget_micros: opusCharged },
    {
      request_id: ids[0],
      tenant,
      model: "claude-sonnet-4-5-20250929",
      input_tokens: 1200,
      cache_write_5m_tokens: 1000,
      cache_write_1h_tokens: 2000,
      cache_read_tokens: 50000,
      output_tokens: 800,
      cost_micros: sonnetCost,
      priced_as: "claude-sonnet-4-5",
      price_as_of: prices.asOf,
      ended: null,
      budget_micros: sonnetCost,
    },
  ]);
  const daily = (await db.prepare("SELECT * FROM usage_daily ORDER BY model").all<Record<string, unknown>>()).results;
  const today = new Date().toISOString().slice(0, 10);
  expect(daily).toMatchObject([
    { day: today, tenant, model: "claude-haiku-4-5", calls: 1, cost_micros: 0, unknown_model_calls: 0, no_answer_calls: 1, held_micros: reservation },
    { day: today, tenant, model: "claude-haiku-4-5-20251001", calls: 1, cost_micros: haikuCost, unknown_model_calls: 0, cut_calls: 0, no_answer_calls: 0, held_micros: 0 },
    { day: today, tenant, model: "claude-opus-4-5", calls: 1, cost_micros: opusCost, cut_calls: 1, held_micros: opusCharged - opusCost },
    { day: today, tenant, model: "claude-sonnet-4-5-20250929", calls: 1, cost_micros: sonnetCost, cache_read_tokens: 50000, unknown_model_calls: 0, cut_calls: 0, held_micros: 0 },
  ]);

  // The tenant's budget counter (its Durable Object) spent what the ledger now says the
  // budget charged: the cost of every call plus what it held beyond it.
  const ns = await mf.getDurableObjectNamespace("RATE_LIMITER", "llm-proxy");
  const limiter = ns.get(ns.idFromName(tenant)) as unknown as { budgetState(): Promise<Record<string, { spent: number; reserved: number }>> };
  const state = await until(() => limiter.budgetState(), (b) => b.daily?.reserved === 0);
  const heldByLedger = daily.reduce((n, d) => n + Number(d.held_micros), 0);
  expect(state.daily).toMatchObject({ spent: sonnetCost + haikuCost + opusCost + heldByLedger, reserved: 0 });

  // R2: both bodies of both calls, as sent and as received.
  const archive = (await mf.getR2Bucket("ARCHIVE", "llm-proxy")) as unknown as R2Bucket;
  const text = async (k: string) => {
    const o = await until(() => archive.get(k), (x) => x !== null);
    return o === null ? null : o.text();
  };
  expect(await text(`${tenant}/${today}/${ids[0]}/request`)).toBe(body);
  expect(await text(`${tenant}/${today}/${ids[0]}/response`)).toBe(jsonText);
  expect(await text(`${tenant}/${today}/${ids[1]}/response`)).toBe(sseText);

  // `npm run usage` on the persisted local state (the runtime closed first, as after dev:proxy).
  await stop();
  let out = "";
  let err = "";
  const io = { out: (s: string) => (out += s), err: (s: string) => (err += s), env: {} };
  // Budgets are read from the same run's tenant state (the proxy's persisted KV).
  expect(await runUsage(["--persist", ledgerDir, "--tenants-persist", join(dir, "proxy"), "--days", "1", "--json"], io)).toBe(USAGE_EXIT.ok);
  expect(err).toBe("");
  const report = JSON.parse(out) as { lines: Record<string, unknown>[]; total: Record<string, unknown> };
  expect(report.lines).toMatchObject([
    { day: today, tenant, model: "claude-haiku-4-5", calls: 1, costMicros: 0, noAnswerCalls: 1, heldMicros: reservation },
    { day: today, tenant, model: "claude-haiku-4-5-20251001", calls: 1, costMicros: haikuCost, costUsd: "0.000100", cutCalls: 0 },
    { day: today, tenant, model: "claude-opus-4-5", calls: 1, outputTokens: 1, costMicros: opusCost, cutCalls: 1 },
    { day: today, tenant, model: "claude-sonnet-4-5-20250929", calls: 1, inputTokens: 1200, cacheWrite5mTokens: 1000, cacheWrite1hTokens: 2000, cacheReadTokens: 50000, outputTokens: 800, costMicros: sonnetCost, costUsd: "0.046350" },
  ]);
  const dayCost = sonnetCost + haikuCost + opusCost;
  const held = opusCharged - opusCost + reservation;
  expect(report.total).toMatchObject({ calls: 4, costMicros: dayCost, cutCalls: 1, noAnswerCalls: 1, heldMicros: held });
  // Budget used: what the budget charged the tenant that day (its cost, plus the cut
  // stream's max_tokens and the lost call's reservation) over its daily budget, on each of
  // its lines; the same sum as the budget's own counter.
  for (const l of report.lines) expect(l).toMatchObject({ tenantDayCostMicros: dayCost, tenantDayHeldMicros: held, dailyBudgetMicros: 10_000_000, dailyBudgetUsed: (dayCost + held) / 10_000_000 });
  out = "";
  expect(await runUsage(["--persist", ledgerDir, "--tenants-persist", join(dir, "proxy"), "--days", "1"], io)).toBe(USAGE_EXIT.ok);
  expect(out).toContain(tenant);
  expect(out).toContain("0.046350");
  expect(out).toContain("claude-opus-4-5 (*)");
  expect(out).toMatch(/\(\*\) 1 call\(s\) were streams cut short/);
  expect(out).toContain("claude-haiku-4-5 (?)");
  expect(out).toMatch(/\(\?\) 1 call\(s\) got no answer/);
  expect(logs.filter((l) => l.includes("usage_event_not_sent") || l.includes("archive_write_failed"))).toEqual([]);

  // `npm run archive` on the same persisted state: the tenant's three calls, the cut stream
  // marked, and each body as it was sent or received.
  out = "";
  const archiveIo = { ...io, root: "/" };
  const proxyState = join(dir, "proxy");
  expect(await runArchive(["list", "--tenant", tenant, "--persist", proxyState, "--days", "1", "--json"], archiveIo)).toBe(ARCHIVE_EXIT.ok);
  const listed = JSON.parse(out) as { calls: { requestId: string; request?: { bytes: number }; response?: { status?: number; complete?: boolean; ended?: string } }[] };
  expect(listed.calls.map((c) => c.requestId).sort()).toEqual([...ids].sort());
  expect(listed.calls.find((c) => c.requestId === ids[0])).toMatchObject({ request: { bytes: Buffer.byteLength(body) }, response: { status: 200, complete: true } });
  expect(listed.calls.find((c) => c.requestId === ids[2])!.response).toMatchObject({ complete: false, ended: "client_closed" });
  out = "";
  expect(await runArchive(["get", ids[0]!, "--tenant", tenant, "--persist", proxyState, "--part", "request"], archiveIo)).toBe(ARCHIVE_EXIT.ok);
  expect(out).toBe(body);
  out = "";
  expect(await runArchive(["get", ids[1]!, "--tenant", tenant, "--persist", proxyState, "--json"], archiveIo)).toBe(ARCHIVE_EXIT.ok);
  expect(JSON.parse(out)).toMatchObject({ requestId: ids[1], day: today, response: { body: sseText, status: 200, contentType: "text/event-stream; charset=utf-8" } });
  // Without --tenant: the same run's usage ledger says whose call it is and when it ended,
  // for a call with an answer and for the lost one (its request only: no answer came).
  out = "";
  expect(await runArchive(["get", ids[0]!, "--persist", proxyState, "--ledger-persist", ledgerDir, "--part", "request"], archiveIo)).toBe(ARCHIVE_EXIT.ok);
  expect(out).toBe(body);
  out = "";
  expect(await runArchive(["get", ids[3]!, "--persist", proxyState, "--ledger-persist", ledgerDir, "--json"], archiveIo)).toBe(ARCHIVE_EXIT.ok);
  const lostJson = JSON.parse(out) as Record<string, unknown>;
  expect(lostJson).toMatchObject({ tenant, day: today, requestId: ids[3], request: { body: lostBody } });
  expect(lostJson).not.toHaveProperty("response");
  expect(err).toBe("");
  // An id the ledger does not have: exit 3, and the way out (--tenant) named.
  expect(await runArchive(["get", "req_ef_" + "0".repeat(32), "--persist", proxyState, "--ledger-persist", ledgerDir, "--json"], archiveIo)).toBe(ARCHIVE_EXIT.notFound);
  expect(err).toMatch(/has no call req_ef_0{32}: .*give --tenant/);
});

it("the local pipeline (proxy and ledger in workerd) starts from any working directory", async () => {
  // Module names are relative to the working directory unless rooted: started from
  // elsewhere, workerd refused the proxy ("Uncaught Error: internal error").
  const cwd = mkdtempSync(join(tmpdir(), "ef-cwd-"));
  try {
    const pipeline = new URL("../workers/llm-proxy/local/pipeline.ts", import.meta.url).href;
    const code = `const { startLocalPipeline } = await import(${JSON.stringify(pipeline)});
const { mf, url, db } = await startLocalPipeline({ vars: { UPSTREAM_BASE_URL: "http://127.0.0.1:9" }, secrets: { ANTHROPIC_API_KEY: "sk-ant-cwd-placeholder" }, onLog: () => {} });
const r = await fetch(new URL("/v1/messages", url), { method: "POST", body: "{}" });
const tables = (await db.prepare("SELECT name FROM d1_migrations ORDER BY id").all()).results.map((x) => x.name);
console.log(JSON.stringify({ status: r.status, tables }));
await mf.dispose();`;
    const out = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      writeFileSync(join(cwd, "start.mjs"), code);
      const child = spawn(process.execPath, ["start.mjs"], { cwd, stdio: ["ignore", "pipe", "pipe"], env: { PATH: process.env.PATH ?? "", HOME: cwd, WRANGLER_SEND_METRICS: "false", DO_NOT_TRACK: "1" } });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (b) => (stdout += b));
      child.stderr.on("data", (b) => (stderr += b));
      child.on("close", (c) => resolve({ code: c, stdout, stderr }));
    });
    expect(out.stderr).not.toMatch(/internal error|failed to start/);
    expect(out.code).toBe(0);
    // A call without a key is refused by the proxy itself; the ledger's D1 is migrated.
    expect(JSON.parse(out.stdout.trim().split("\n").pop()!)).toEqual({ status: 401, tables: ["0001_calls_and_daily_usage.sql", "0002_cut_streams.sql", "0003_no_answer_and_budget_charges.sql"] });
  } finally {
    rmSync(cwd, { recursive: true, force: true });
  }
}, 120_000);
