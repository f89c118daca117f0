// `npm run usage` against the local ledger state (written by the real ledger in workerd)
// and tenant records (Miniflare KV, as `npm run tenants` writes them), and against
// loopback fakes of the Cloudflare D1 query and KV APIs read by the real SDK: the same
// numbers and budgets either way, in table, JSON, CSV and HTML; errors exit with meaning
// and never print the token.
import { spawn } from "node:child_process";
import * as nodeFs from "node:fs";
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FakeD1Api } from "../../../test/fakes/cloudflare-d1-api.ts";
import { AccountRateLimit } from "../../../test/support/account-rate-limit.ts";
import { FakeCloudflare } from "../../../test/fakes/cloudflare-kv-tenants-api.ts";
import { oneApiHost } from "../../../test/support/api-host.ts";
import { kvKeyFor } from "../../../workers/llm-proxy/src/tenant-record.ts";
import { openLocalStore } from "../tenants/local.ts";
import { MIGRATIONS_DIR, startLocalLedger, WORKER_NAME } from "../../../workers/usage-ledger/local/miniflare.ts";
import { splitStatements } from "../../../workers/usage-ledger/local/migrations.ts";
import { runUsage, USAGE_EXIT, writeWhole, type OutFs } from "./cli.ts";

const DAY = 86_400_000;
const NOW = new Date();
const today = NOW.toISOString().slice(0, 10);
const yesterday = new Date(NOW.getTime() - DAY).toISOString().slice(0, 10);

async function run(argv: string[], env: NodeJS.ProcessEnv = {}) {
  if (!argv.includes("--tenants-persist") && !argv.includes("--remote")) argv = [...argv, "--tenants-persist", tenants];
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
let tenants: string;
let rollups: Record<string, unknown>[];

// Tenant records as KV holds them (key -> value and listing metadata). acme: an enabled
// key with budgets, and a newer disabled key whose budget must not be the one read.
// globex: only a value (no listing metadata) and a monthly budget that is not a number:
// a record the proxy refuses (its keys fail closed), so the report shows no budget and says why.
const record = (id: string, key: string, createdAt: string, enabled: boolean, extra: object) => ({ id, name: `${id} <Inc>`, ratePerMinute: 60, burst: 10, enabled, keyHash: key, createdAt, ...extra });
const TENANT_RECORDS: { key: string; value: object; metadata: boolean }[] = [
  { key: kvKeyFor("a1"), value: record("acme", "a1", "2026-01-01T00:00:00Z", true, { dailyBudgetMicros: 50_000, monthlyBudgetMicros: 1_000_000 }), metadata: true },
  { key: kvKeyFor("a2"), value: record("acme", "a2", "2026-02-01T00:00:00Z", false, { dailyBudgetMicros: 1, monthlyBudgetMicros: 1 }), metadata: true },
  { key: kvKeyFor("g1"), value: record("globex", "g1", "2026-01-01T00:00:00Z", true, { dailyBudgetMicros: 0, monthlyBudgetMicros: "lots" }), metadata: false },
];

beforeAll(async () => {
  persist = mkdtempSync(join(tmpdir(), "usage-cli-"));
  tenants = join(persist, "tenants");
  const store = await openLocalStore("/", tenants);
  for (const t of TENANT_RECORDS) await store.kv.put(t.key, JSON.stringify(t.value), t.metadata ? t.value : undefined);
  await store.close();
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
    // Budget used: acme's day is 36,150 of 50,000; its month to date adds yesterday's 600
    // when yesterday is in the same UTC month.
    const mtd = 36_150 + (yesterday.slice(0, 7) === today.slice(0, 7) ? 600 : 0);
    expect(sonnet).toMatchObject({ tenantDayCostMicros: 36_150, dailyBudgetMicros: 50_000, dailyBudgetUsed: 36_150 / 50_000, monthToDateCostMicros: mtd, monthlyBudgetMicros: 1_000_000, monthlyBudgetUsed: mtd / 1_000_000 });
    expect(j.lines[1]).toMatchObject({ tenant: "globex", dailyBudgetUsed: null, monthlyBudgetUsed: null });
    expect(j.budgets).toEqual({
      source: `local tenant state ${tenants}`,
      available: true,
      tenants: [
        { tenant: "acme", name: "acme <Inc>", dailyBudgetMicros: 50_000, monthlyBudgetMicros: 1_000_000 },
        { tenant: "globex", name: "globex <Inc>", dailyBudgetMicros: null, monthlyBudgetMicros: null, note: "tenant record malformed: the proxy refuses this tenant's keys" },
      ],
    });
  });

  it("says which key it skipped when a tenant value is not JSON, and reads the others' budgets", async () => {
    const other = join(persist, "tenants-with-junk");
    const store = await openLocalStore("/", other);
    await store.kv.put(TENANT_RECORDS[0]!.key, JSON.stringify(TENANT_RECORDS[0]!.value), TENANT_RECORDS[0]!.value);
    await store.kv.put(kvKeyFor("zz"), "not json\u001b[2J", undefined);
    await store.close();
    const r = await run(["--persist", persist, "--days", "2", "--json", "--tenants-persist", other]);
    expect(r.code).toBe(USAGE_EXIT.ok);
    expect(r.err).toBe(`usage: warning: ${kvKeyFor("zz")} skipped: its value is not JSON, so not a tenant record (local tenant state ${other})\n`);
    expect(JSON.parse(r.out).budgets.tenants[0]).toEqual({ tenant: "acme", name: "acme <Inc>", dailyBudgetMicros: 50_000, monthlyBudgetMicros: 1_000_000 });
  });

  it("shows budget used as - and says why when the tenant state is missing or not wanted, without creating it", async () => {
    const missing = join(persist, "no-such-tenants");
    const r = await run(["--persist", persist, "--days", "2", "--json", "--tenants-persist", missing]);
    expect(r.code).toBe(USAGE_EXIT.ok);
    expect(r.err).toMatch(/budget used shows "-": no tenant records in local tenant state .*no-such-tenants/);
    const j = JSON.parse(r.out);
    expect(j.budgets).toMatchObject({ available: false, source: null, reason: expect.stringMatching(/^no tenant records in local tenant state/) });
    expect(j.lines.every((l: { dailyBudgetUsed: unknown }) => l.dailyBudgetUsed === null)).toBe(true);
    expect(existsSync(missing)).toBe(false);
    const off = await run(["--persist", persist, "--json", "--no-budgets"]);
    expect(off.err).toBe("");
    expect(JSON.parse(off.out).budgets).toMatchObject({ available: false, reason: "not read (--no-budgets)" });
  });

  it("writes a self-contained HTML page with --html --out, and refuses an --out folder that does not exist", async () => {
    const file = join(persist, "usage.html");
    const r = await run(["--persist", persist, "--days", "2", "--html", "--out", file]);
    expect(r.err).toBe("");
    expect(r.code).toBe(USAGE_EXIT.ok);
    expect(r.out).toBe(`wrote ${file}\n`);
    const html = readFileSync(file, "utf8");
    expect(html).toMatch(/^<!doctype html>/);
    expect(html.match(/<rect class="bar"/g)).toHaveLength(3); // acme today; acme and globex yesterday
    expect(html).toContain("acme (acme &lt;Inc&gt;)");
    expect(html).not.toMatch(/<(script|link|img|iframe)\b|https?:\/\//);
    const json = await run(["--persist", persist, "--days", "2", "--json", "--out", join(persist, "usage.json")]);
    expect(JSON.parse(readFileSync(join(persist, "usage.json"), "utf8")).lines).toHaveLength(3);
    expect(json.out).toMatch(/^wrote /);
    const bad = await run(["--persist", persist, "--html", "--out", join(persist, "nope", "x.html")]);
    expect(bad.code).toBe(USAGE_EXIT.usage);
    expect(bad.err).toMatch(/--out .*folder .*nope does not exist/);
    // A relative --out is where the user ran `npm run usage` (npm's INIT_CWD), not the
    // package root npm runs the script from.
    const here = await run(["--persist", persist, "--days", "2", "--csv", "--out", "rel.csv"], { INIT_CWD: persist });
    expect(here.code).toBe(USAGE_EXIT.ok);
    expect(here.out).toBe(`wrote ${join(persist, "rel.csv")}\n`);
    expect(readFileSync(join(persist, "rel.csv"), "utf8")).toMatch(/^day,tenant,model,/);
    const dir = await run(["--persist", persist, "--html", "--out", persist]);
    expect(dir.code).toBe(USAGE_EXIT.usage);
    // A file that cannot be written (/dev/full answers every write with ENOSPC, even to
    // root): exit 1 after the read, nothing on standard output.
    const denied = await run(["--persist", persist, "--html", "--out", "/dev/full"]);
    expect(denied.code).toBe(USAGE_EXIT.failed);
    expect(denied.err).toMatch(/cannot write --out \/dev\/full: ENOSPC/);
    expect(denied.out).toBe("");
  });

  it("--out replaces the file whole or not at all: a failed write keeps the previous report and leaves no temporary file", async () => {
    const file = join(persist, "kept.csv");
    writeFileSync(file, "the previous report\n");
    // A folder where the temporary file would go: the write fails before the file is touched.
    const tmp = `${file}.tmp-${process.pid}`;
    mkdirSync(tmp);
    try {
      const r = await run(["--persist", persist, "--days", "2", "--csv", "--out", file]);
      expect(r.code).toBe(USAGE_EXIT.failed);
      expect(r.err).toMatch(/^usage: cannot write --out .*kept\.csv: EEXIST/);
      expect(readFileSync(file, "utf8")).toBe("the previous report\n");
    } finally {
      rmSync(tmp, { recursive: true });
    }
    const ok = await run(["--persist", persist, "--days", "2", "--csv", "--out", file]);
    expect(ok.code).toBe(USAGE_EXIT.ok);
    expect(readFileSync(file, "utf8")).toMatch(/^day,tenant,model,/);
    expect(readdirSync(persist).filter((f) => f.startsWith("kept.csv"))).toEqual(["kept.csv"]);
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
    expect(lines[0]).toBe(
      "day,tenant,model,calls,input_tokens,cache_write_5m_tokens,cache_write_1h_tokens,cache_read_tokens,output_tokens,cache_hit_rate,cost_micros,cost_usd,unknown_model_calls," +
        "tenant_day_cost_micros,daily_budget_micros,daily_budget_used,month_to_date_cost_micros,monthly_budget_micros,monthly_budget_used,cut_calls," +
        "no_answer_calls,held_micros,tenant_day_held_micros,month_to_date_held_micros,maybe_billed_attempts",
    );
    const mtd = 36_150 + (yesterday.slice(0, 7) === today.slice(0, 7) ? 600 : 0);
    expect(lines[1]).toBe(`${today},acme,claude-sonnet-4-5,2,2000,1000,1000,18000,1000,0.818182,36150,0.036150,0,36150,50000,0.723000,${mtd},1000000,${(mtd / 1e6).toFixed(6)},0,0,0,0,0,0`);
    expect(lines.slice(2)).toEqual([""]);
  });

  it("exits 1 with a clear message when the folder holds no ledger", async () => {
    const empty = mkdtempSync(join(tmpdir(), "usage-empty-"));
    try {
      const r = await run(["--persist", empty]);
      expect(r.code).toBe(USAGE_EXIT.failed);
      expect(r.err).toMatch(/no usage ledger in local state .*no D1 state in it/);
      expect(existsSync(join(empty, "v3"))).toBe(false); // a report creates no state
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });

  it("refuses bad command lines with exit 2 and answers --help with 0", async () => {
    for (const argv of [["--from", "2026-02-30"], ["--from", "2026-11-27", "--to", "2026-11-01"], ["--tenant", "a b"], ["--json", "--csv"], ["--json", "--html"], ["--csv", "--html"], ["--out"], ["--days", "0"], ["--local", "--remote"], ["stray"], ["--from", "2026-13-01"], ["--to", "2026-00-10"], ["--days", "1000000000"], ["--from", "2026-11-01", "--days", "3"], ["--from", "0001-01-01", "--to", "9999-12-31"], ["--to", "0001-01-05", "--days", "3660"]]) {
      const r = await run(["--persist", persist, ...argv]);
      expect({ argv, code: r.code }).toEqual({ argv, code: USAGE_EXIT.usage });
    }
    const help = await run(["--help"]);
    expect(help.code).toBe(USAGE_EXIT.ok);
    expect(help.out).toMatch(/--remote/);
    for (const flag of ["--html", "--out <file>", "--no-budgets", "--tenants-persist", "--tenants-namespace-id", "cache hit = cache read /", "budget day = "]) expect(help.out).toContain(flag);
  });
});

describe("writeWhole (--out)", () => {
  it("a write that fails midway (disk full) leaves the previous file as it was and removes its temporary file", () => {
    const dir = mkdtempSync(join(tmpdir(), "usage-out-"));
    try {
      const file = join(dir, "usage.html");
      writeFileSync(file, "<p>previous</p>");
      // Writes the first 10 characters, then the disk is full.
      const full: OutFs = {
        ...nodeFs,
        writeFileSync: ((f: nodeFs.PathOrFileDescriptor, data: string) => {
          nodeFs.writeFileSync(f, data.slice(0, 10));
          throw Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC" });
        }) as OutFs["writeFileSync"],
      };
      expect(() => writeWhole(file, "<!doctype html><p>new</p>", full)).toThrow(/ENOSPC/);
      expect(readFileSync(file, "utf8")).toBe("<p>previous</p>");
      expect(readdirSync(dir)).toEqual(["usage.html"]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("replaces the file a link points to, not the link", () => {
    const dir = mkdtempSync(join(tmpdir(), "usage-out-"));
    try {
      writeFileSync(join(dir, "real.csv"), "old");
      symlinkSync("real.csv", join(dir, "link.csv"));
      writeWhole(join(dir, "link.csv"), "new");
      expect(lstatSync(join(dir, "link.csv")).isSymbolicLink()).toBe(true);
      expect(readFileSync(join(dir, "real.csv"), "utf8")).toBe("new");
      expect(readdirSync(dir).sort()).toEqual(["link.csv", "real.csv"]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("scripts/usage.ts with a closed pipe", () => {
  it("exits 0 without a stack trace when the reader leaves early, as `npm run usage -- --csv | head -1` (it died of an unhandled EPIPE)", async () => {
    const root = resolve(import.meta.dirname, "../../..");
    const r = await new Promise<{ code: number | null; err: string }>((done) => {
      const child = spawn(process.execPath, [join(root, "scripts/usage.ts"), "--persist", persist, "--days", "2", "--csv", "--tenants-persist", tenants], { cwd: root, stdio: ["ignore", "pipe", "pipe"] });
      child.stdout.destroy();
      let err = "";
      child.stderr.on("data", (d: Buffer) => (err += d));
      child.on("close", (code) => done({ code, err }));
    });
    expect(r).toEqual({ code: 0, err: "" });
  });
});

describe("npm run usage --remote (Cloudflare D1 and KV APIs)", () => {
  const token = `cf-${Math.random().toString(36).slice(2)}-secret`;
  const fake = new FakeD1Api({ token, accountId: "acct1" });
  const NS = "0123456789abcdef0123456789abcdef";
  const kvFake = new FakeCloudflare(token, "acct1", NS);
  // One base URL for the SDK, as api.cloudflare.com is one host: D1 paths go to the D1
  // fake, KV paths to the KV fake.
  const api = oneApiHost([
    { when: (p) => p.includes("/storage/kv/"), origin: () => kvFake.url.replace(/\/client\/v4$/, "") },
    { when: () => true, origin: () => fake.url },
  ]);
  const env = () => ({ CLOUDFLARE_API_TOKEN: token, CLOUDFLARE_ACCOUNT_ID: "acct1", EDGEFLEET_USAGE_DATABASE_ID: "db-uuid", EDGEFLEET_TENANTS_NAMESPACE_ID: NS, CLOUDFLARE_API_BASE_URL: `${api.url}/client/v4` });

  beforeAll(async () => {
    await fake.start();
    await kvFake.start();
    await api.start();
    for (const t of TENANT_RECORDS) kvFake.store.set(t.key, { value: JSON.stringify(t.value), metadata: t.metadata ? t.value : null });
    const db = fake.addDatabase("db-uuid");
    for (const f of readdirSync(MIGRATIONS_DIR).filter((f) => f.endsWith(".sql")).sort()) {
      for (const s of splitStatements(readFileSync(join(MIGRATIONS_DIR, f), "utf8"))) db.exec(s);
    }
    // A database migrated only to 0001 (before cut_calls).
    const old = fake.addDatabase("db-old");
    for (const s of splitStatements(readFileSync(join(MIGRATIONS_DIR, "0001_calls_and_daily_usage.sql"), "utf8"))) old.exec(s);
    const cols = Object.keys(rollups[0]!);
    const ins = db.prepare(`INSERT INTO usage_daily (${cols.join(",")}) VALUES (${cols.map(() => "?").join(",")})`);
    for (const r of rollups) ins.run(...(cols.map((c) => r[c]) as (string | number)[]));
  });
  afterAll(async () => {
    await api.stop();
    await kvFake.stop();
    await fake.stop();
  });

  it("reads the same report and budgets as the local state, through the real SDK", async () => {
    const local = JSON.parse((await run(["--persist", persist, "--days", "2", "--json"])).out);
    const r = await run(["--remote", "--days", "2", "--json"], env());
    expect(r.err).toBe("");
    expect(r.code).toBe(USAGE_EXIT.ok);
    const remote = JSON.parse(r.out);
    expect(remote.source).toBe("D1 database db-uuid (account acct1)");
    expect(remote.budgets.source).toBe(`KV namespace ${NS} (account acct1)`);
    const strip = (j: { budgets: object }) => ({ ...j, source: "", budgets: { ...j.budgets, source: "" } });
    expect(strip(remote)).toEqual(strip(local));
    expect(local.budgets.available).toBe(true);
    // The range's rollups, then (unless --from is the 1st) the month's days before it.
    const first = `${yesterday.slice(0, 8)}01`;
    const [rollupQuery, dayQuery] = first === yesterday ? [fake.requests.at(-1), undefined] : fake.requests.slice(-2);
    expect(rollupQuery!.path).toBe("/client/v4/accounts/acct1/d1/database/db-uuid/query");
    expect(rollupQuery!.body).toMatchObject({ params: [yesterday, today] });
    if (dayQuery !== undefined) expect(dayQuery.body).toMatchObject({ params: [first, yesterday] });
  });

  it("shows budget used as - with the reason when the tenant namespace is not given or cannot be read", async () => {
    const { EDGEFLEET_TENANTS_NAMESPACE_ID: _ns, ...noNs } = env();
    const r = await run(["--remote", "--json"], noNs);
    expect(r.code).toBe(USAGE_EXIT.ok);
    expect(JSON.parse(r.out).budgets.reason).toMatch(/--tenants-namespace-id or EDGEFLEET_TENANTS_NAMESPACE_ID/);
    expect(r.err).toMatch(/budget used shows "-"/);
    const wrong = await run(["--remote", "--json", "--tenants-namespace-id", "f".repeat(32)], env());
    expect(wrong.code).toBe(USAGE_EXIT.ok);
    expect(JSON.parse(wrong.out).budgets).toMatchObject({ available: false, reason: "cannot read the tenant records: the Cloudflare API answered 404: 10013 namespace not found" });
    expect(wrong.out + wrong.err).not.toContain(token);
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

  it("fails at once, naming the 429 and its wait, when the account-wide API limit blocks it (it does not sit out five minutes)", async () => {
    const was = fake.account;
    try {
      // One request left in the window: the report's first query passes, its second is the
      // one that crosses the limit, and Cloudflare then blocks the account for five minutes.
      fake.account = new AccountRateLimit({ limit: 1 });
      const before = fake.requests.length;
      const r = await run(["--remote", "--json", "--no-budgets"], env());
      expect(r.code).toBe(USAGE_EXIT.failed);
      expect(r.out).toBe("");
      expect(r.err).toMatch(/429: 971 Please wait/);
      expect(r.err).toMatch(/it asked to wait (29\d|300) s before trying again: the account.s API rate limit/);
      // No retries of a 5-minute wait: two queries reached the API, then it stopped.
      expect(fake.requests.length - before).toBe(2);
      expect(r.out + r.err).not.toContain(token);
    } finally {
      fake.account = was;
    }
  });

  it("says to apply the migrations when the deployed ledger's schema is older than the report", async () => {
    const r = await run(["--remote", "--database-id", "db-old"], env());
    expect(r.code).toBe(USAGE_EXIT.failed);
    expect(r.err).toMatch(/no such column: cut_calls.*the ledger's schema is older than this report: apply its migrations, `npm run d1-migrations`/);
    expect(r.out + r.err).not.toContain(token);
  });

  it("refuses an API base that would send the token in the clear, or an empty --api-base (it sent the call to the real API past CLOUDFLARE_API_BASE_URL), with exit 2 before any request", async () => {
    const cleartext = await run(["--remote", "--api-base", "http://192.0.2.2:18475/client/v4"], env());
    expect(cleartext.code).toBe(USAGE_EXIT.usage);
    expect(cleartext.err).toMatch(/^usage: --api-base: http:\/\/ is refused: https:\/\/ only/);
    const empty = await run(["--remote", "--api-base", ""], env());
    expect(empty.code).toBe(USAGE_EXIT.usage);
    expect(empty.err).toMatch(/--api-base is empty/);
    expect(empty.err).not.toContain(token);
  });

  it("exits 2 naming what --remote is missing", async () => {
    const r = await run(["--remote"], { CLOUDFLARE_API_BASE_URL: fake.baseURL });
    expect(r.code).toBe(USAGE_EXIT.usage);
    expect(r.err).toMatch(/CLOUDFLARE_API_TOKEN.*--account-id.*--database-id/);
  });
});
