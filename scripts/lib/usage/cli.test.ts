// `npm run usage` against the local ledger state (written by the real ledger in workerd)
// and against a loopback fake of the Cloudflare D1 query API read by the real SDK: the
// same numbers either way, in table, JSON and CSV; errors exit with meaning and never
// print the token.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FakeD1Api } from "../../../test/fakes/cloudflare-d1-api.ts";
import { MIGRATIONS_DIR, startLocalLedger, WORKER_NAME } from "../../../workers/usage-ledger/local/miniflare.ts";
import { splitStatements } from "../../../workers/usage-ledger/local/migrations.ts";
import { runUsage, USAGE_EXIT } from "./cli.ts";

const DAY = 86_400_000;
const NOW = new Date();
const today = NOW.toISOString().slice(0, 10);
const yesterday = new Date(NOW.getTime() - DAY).toISOString().slice(0, 10);

async function run(argv: string[], env: NodeJS.ProcessEnv = {}) {
  let out = "";
  let err = "";
  const code = await runUsage(argv, { out: (s) => (out += s), err: (s) => (err += s), env }, NOW);
  return { code, out, err };
}

const usage = (input: number, output: number, read = 0, w5 = 0, w1 = 0) => ({
  input_tokens: input,
  output_tokens: output,
  cache_read_input_tokens: read,
  cache_creation_input_tokens: w5 + w1,
  cache_creation: { ephemeral_5m_input_tokens: w5, ephemeral_1h_input_tokens: w1 },
});

let persist: string;
let rollups: Record<string, unknown>[];

beforeAll(async () => {
  persist = mkdtempSync(join(tmpdir(), "usage-cli-"));
  const { mf, db } = await startLocalLedger({ persistDir: persist, onLog: () => {} });
  const w = await mf.getWorker(WORKER_NAME);
  const ev = (i: number, tenant: string, model: string, ts: number, u: object) => ({
    id: `m${i}`,
    timestamp: new Date(),
    attempts: 1,
    body: { v: 1, request_id: `r${i}`, tenant, model, ts, status: 200, usage: u },
  });
  // Start of today (UTC): deterministic days whatever the hour the test runs.
  const t0 = Date.parse(`${today}T00:00:00.000Z`);
  await w.queue("edgefleet-usage", [
    ev(1, "acme", "claude-sonnet-4-5", t0, usage(1000, 500, 9000, 1000)),
    ev(2, "acme", "claude-sonnet-4-5", t0, usage(1000, 500, 9000, 0, 1000)),
    ev(3, "globex", "claude-haiku-4-5", t0 - DAY, usage(200, 100)),
    ev(4, "acme", "claude-nonesuch-9", t0 - DAY, usage(10, 10)),
  ]);
  rollups = (await db.prepare("SELECT * FROM usage_daily ORDER BY day, tenant, model").all<Record<string, unknown>>()).results;
  await mf.dispose();
});
afterAll(() => rmSync(persist, { recursive: true, force: true }));

describe("npm run usage --local", () => {
  it("reports per day, tenant and model from the persisted ledger, as JSON", async () => {
    const r = await run(["--persist", persist, "--days", "2", "--json"]);
    expect(r.err).toBe("");
    expect(r.code).toBe(USAGE_EXIT.ok);
    const j = JSON.parse(r.out);
    expect(j.filter).toEqual({ from: yesterday, to: today });
    expect(j.lines.map((l: { day: string; tenant: string; model: string }) => `${l.day} ${l.tenant} ${l.model}`)).toEqual([
      `${yesterday} acme claude-nonesuch-9`,
      `${yesterday} globex claude-haiku-4-5`,
      `${today} acme claude-sonnet-4-5`,
    ]);
    const sonnet = j.lines[2];
    // 2 calls: input 2000, 5m writes 1000, 1h writes 1000, reads 18000, output 1000.
    // cost: 2000x3 + 1000x3.75 + 1000x6 + 18000x0.30 + 1000x15 = 36,150 micros
    expect(sonnet).toMatchObject({ calls: 2, inputTokens: 2000, cacheWrite5mTokens: 1000, cacheWrite1hTokens: 1000, cacheReadTokens: 18000, outputTokens: 1000, costMicros: 36_150, costUsd: "0.036150", unknownModelCalls: 0 });
    expect(sonnet.cacheHitRate).toBeCloseTo(18000 / 22000, 10);
    expect(j.lines[0]).toMatchObject({ unknownModelCalls: 1, costMicros: 10 * 10 + 10 * 50 });
    expect(j.total).toMatchObject({ calls: 4, costMicros: 36_150 + (200 + 100 * 5) + 600 });
  });

  it("filters by tenant and day, and prints a table with totals and the unknown-model flag", async () => {
    const r = await run(["--persist", persist, "--from", yesterday, "--to", yesterday, "--tenant", "acme"]);
    expect(r.code).toBe(USAGE_EXIT.ok);
    expect(r.out).toContain("claude-nonesuch-9 (!)");
    expect(r.out).not.toContain("globex");
    expect(r.out).toMatch(/total/);
    expect(r.out).toMatch(/1 call\(s\) used a model missing from fleet\/metering\.yaml/);
  });

  it("prints CSV with a header, integer micro-dollars and CRLF line ends", async () => {
    const r = await run(["--persist", persist, "--days", "2", "--csv", "--model", "claude-sonnet-4-5"]);
    expect(r.code).toBe(USAGE_EXIT.ok);
    const lines = r.out.split("\r\n");
    expect(lines[0]).toBe("day,tenant,model,calls,input_tokens,cache_write_5m_tokens,cache_write_1h_tokens,cache_read_tokens,output_tokens,cache_hit_rate,cost_micros,cost_usd,unknown_model_calls");
    expect(lines[1]).toBe(`${today},acme,claude-sonnet-4-5,2,2000,1000,1000,18000,1000,0.818182,36150,0.036150,0`);
    expect(lines.slice(2)).toEqual([""]);
  });

  it("exits 1 with a clear message when the folder holds no ledger", async () => {
    const empty = mkdtempSync(join(tmpdir(), "usage-empty-"));
    try {
      const r = await run(["--persist", empty]);
      expect(r.code).toBe(USAGE_EXIT.failed);
      expect(r.err).toMatch(/no usage ledger in local state/);
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });

  it("refuses bad command lines with exit 2 and answers --help with 0", async () => {
    for (const argv of [["--from", "2026-02-30"], ["--from", "2026-11-27", "--to", "2026-11-01"], ["--tenant", "a b"], ["--json", "--csv"], ["--days", "0"], ["--local", "--remote"], ["stray"]]) {
      const r = await run(["--persist", persist, ...argv]);
      expect({ argv, code: r.code }).toEqual({ argv, code: USAGE_EXIT.usage });
    }
    const help = await run(["--help"]);
    expect(help.code).toBe(USAGE_EXIT.ok);
    expect(help.out).toMatch(/--remote/);
  });
});

describe("npm run usage --remote (Cloudflare D1 API)", () => {
  const token = `cf-${Math.random().toString(36).slice(2)}-secret`;
  const fake = new FakeD1Api({ token, accountId: "acct1" });
  const env = () => ({ CLOUDFLARE_API_TOKEN: token, CLOUDFLARE_ACCOUNT_ID: "acct1", EDGEFLEET_USAGE_DATABASE_ID: "db-uuid", CLOUDFLARE_API_BASE_URL: fake.baseURL });

  beforeAll(async () => {
    await fake.start();
    const db = fake.addDatabase("db-uuid");
    for (const s of splitStatements(readFileSync(join(MIGRATIONS_DIR, "0001_calls_and_daily_usage.sql"), "utf8"))) db.exec(s);
    const cols = Object.keys(rollups[0]!);
    const ins = db.prepare(`INSERT INTO usage_daily (${cols.join(",")}) VALUES (${cols.map(() => "?").join(",")})`);
    for (const r of rollups) ins.run(...(cols.map((c) => r[c]) as (string | number)[]));
  });
  afterAll(() => fake.stop());

  it("reads the same report as the local state, through the real SDK", async () => {
    const local = JSON.parse((await run(["--persist", persist, "--days", "2", "--json"])).out);
    const r = await run(["--remote", "--days", "2", "--json"], env());
    expect(r.err).toBe("");
    expect(r.code).toBe(USAGE_EXIT.ok);
    const remote = JSON.parse(r.out);
    expect(remote.source).toBe("D1 database db-uuid (account acct1)");
    expect({ ...remote, source: "" }).toEqual({ ...local, source: "" });
    const req = fake.requests.at(-1)!;
    expect(req.path).toBe("/client/v4/accounts/acct1/d1/database/db-uuid/query");
    expect(req.body).toMatchObject({ params: [yesterday, today] });
  });

  it("survives one 5xx (the SDK retries) and reports API errors without the token", async () => {
    fake.failNext(503, 10001, "service unavailable");
    expect((await run(["--remote", "--json"], env())).code).toBe(USAGE_EXIT.ok);

    const bad = await run(["--remote"], { ...env(), CLOUDFLARE_API_TOKEN: `${token}x` });
    expect(bad.code).toBe(USAGE_EXIT.failed);
    expect(bad.err).toMatch(/403: 10000 Authentication error/);
    const missing = await run(["--remote", "--database-id", "nope"], env());
    expect(missing.code).toBe(USAGE_EXIT.failed);
    expect(missing.err).toMatch(/404: 7404/);
    for (const r of [bad, missing]) expect(r.out + r.err).not.toContain(token);
  });

  it("exits 2 naming what --remote is missing", async () => {
    const r = await run(["--remote"], { CLOUDFLARE_API_BASE_URL: fake.baseURL });
    expect(r.code).toBe(USAGE_EXIT.usage);
    expect(r.err).toMatch(/CLOUDFLARE_API_TOKEN.*--account-id.*--database-id/);
  });
});
