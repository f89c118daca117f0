// `npm run d1-migrations` with the real wrangler (`d1 migrations apply --remote`) against
// the loopback fake of D1's query API (real SQLite), the stack's ids from a stand-in
// `pulumi stack output`: the first deploy (no id yet) is skipped or refused, an apply
// creates the ledger's tables and records the file, a second apply changes nothing, a
// wrong id fails without the token in any message, and the copy of wrangler.jsonc that
// carries the real id never outlives the call.
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { unstable_readConfig } from "wrangler";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FakeD1Api } from "../../test/fakes/cloudflare-d1-api.ts";
import { D1_EXIT, runD1Migrations, spawnExec, withDatabaseId, type Exec } from "./d1-migrations.ts";

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const LEDGER = join(REPO, "workers", "usage-ledger");
const ACCOUNT = "0123456789abcdef0123456789abcdef";
const TOKEN = "cf-token-d1-migrations-test-0001";
const ID = "11111111-2222-4333-8444-555555555555";

const api = new FakeD1Api({ token: TOKEN, accountId: ACCOUNT });
const home = mkdtempSync(join(tmpdir(), "edgefleet-d1m-"));
beforeAll(() => api.start());
afterAll(() => api.stop());

/** Runs the command; `pulumi` answers `stack output` with `ids` (or as a stack without the output). */
async function run(argv: string[], o: { ids?: Record<string, string>; token?: string; pulumiStderr?: string } = {}) {
  const calls: string[][] = [];
  const exec: Exec = async (command, args, env) => {
    calls.push([command, ...args]);
    if (command === "pulumi") {
      return o.ids ? { status: 0, stdout: JSON.stringify(o.ids), stderr: "" } : { status: 255, stdout: "", stderr: o.pulumiStderr ?? 'error: current stack does not have output property "d1DatabaseIds"' };
    }
    // wrangler itself, asynchronously: the fake API answers from this process meanwhile.
    return spawnExec(command, args, env);
  };
  let out = "";
  let err = "";
  const env = {
    PATH: process.env.PATH,
    HOME: home,
    XDG_CONFIG_HOME: home,
    CLOUDFLARE_API_BASE_URL: api.baseURL,
    ...(o.token !== "" ? { CLOUDFLARE_API_TOKEN: o.token ?? TOKEN } : {}),
  };
  const code = await runD1Migrations(argv, { out: (s) => (out += s), err: (s) => (err += s), root: REPO, env, exec });
  return { code, out, err, calls };
}

const leftovers = () => readdirSync(LEDGER).filter((f) => f.startsWith(".wrangler-d1-"));

describe("withDatabaseId", () => {
  it("gives wrangler the stack's id for that database, and keeps the rest of wrangler.jsonc as written", () => {
    const text = readFileSync(join(LEDGER, "wrangler.jsonc"), "utf8");
    const copy = withDatabaseId(text, "edgefleet-usage", ID);
    expect(copy).toContain("// Migrations: `wrangler d1 migrations apply edgefleet-usage --remote`");
    const dir = mkdtempSync(join(tmpdir(), "edgefleet-d1c-"));
    writeFileSync(join(dir, "wrangler.jsonc"), copy);
    const read = unstable_readConfig({ config: join(dir, "wrangler.jsonc") });
    expect(read.d1_databases).toEqual([expect.objectContaining({ binding: "DB", database_name: "edgefleet-usage", database_id: ID, migrations_dir: "migrations" })]);
    expect(() => withDatabaseId(text, "nope", ID)).toThrow(/no d1_databases entry named 'nope'/);
  });
});

describe("npm run d1-migrations", { timeout: 120_000 }, () => {
  it("on the first deploy (no id in the stack yet): skips with --skip-missing, fails without it; calls no API", async () => {
    const skip = await run(["--skip-missing"]);
    expect(skip.code).toBe(D1_EXIT.ok);
    expect(skip.out).toContain("edgefleet-usage: not-created (stack prod has no id for it yet (pulumi up creates it))");
    expect(skip.calls.map((c) => c[0])).toEqual(["pulumi"]);
    const strict = await run(["--json"]);
    expect(strict.code).toBe(D1_EXIT.failed);
    expect(JSON.parse(strict.out).databases).toEqual([{ database: "edgefleet-usage", status: "failed", detail: "stack prod has no id for it yet (pulumi up creates it)" }]);
    expect(api.requests).toHaveLength(0);
    // Any other failure of `pulumi stack output` is one, even with --skip-missing (a
    // backend's 404 is not "no id yet": skipping would leave a deployed ledger unmigrated).
    const backend = await run(["--skip-missing"], { pulumiStderr: "error: [404] Not found: the state backend did not answer for stack prod" });
    expect(backend.code).toBe(D1_EXIT.usage);
    expect(backend.err).toContain("pulumi stack output d1DatabaseIds failed (exit 255): error: [404] Not found");
  });

  it("applies the ledger's migrations with wrangler, by the stack's id, once", async () => {
    const db = api.addDatabase(ID);
    const first = await run([], { ids: { "edgefleet-usage": ID } });
    expect(first.err).toBe("");
    expect(first.code).toBe(D1_EXIT.ok);
    expect(first.calls[0]).toEqual(["pulumi", "stack", "output", "d1DatabaseIds", "--json", "--stack", "prod", "--non-interactive"]);
    expect(first.calls[1]!.slice(2, 7)).toEqual(["d1", "migrations", "apply", "edgefleet-usage", "--remote"]);
    expect(first.out).toContain("edgefleet-usage: applied (workers/usage-ledger/migrations)");
    const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all().map((r) => r.name);
    expect(tables).toEqual(expect.arrayContaining(["calls", "d1_migrations", "usage_daily"]));
    const applied = () => db.prepare("SELECT name FROM d1_migrations ORDER BY id").all().map((r) => r.name);
    const files = readdirSync(join(LEDGER, "migrations")).filter((f) => f.endsWith(".sql")).sort();
    expect(files.length).toBeGreaterThanOrEqual(2);
    expect(applied()).toEqual(files);
    // Every file's columns are there (0002 adds calls.ended and usage_daily.cut_calls).
    expect(db.prepare("SELECT name FROM pragma_table_info('usage_daily')").all().map((r) => r.name)).toContain("cut_calls");
    // Again: wrangler finds nothing left to apply.
    const second = await run(["--skip-missing"], { ids: { "edgefleet-usage": ID } });
    expect(second.code).toBe(D1_EXIT.ok);
    expect(second.out).toContain("No migrations to apply");
    expect(applied()).toEqual(files);
    expect(leftovers()).toEqual([]);
  });

  it("a migration that fails part-way applies none of its statements, and the failure says D1's own error (not where wrangler's log went)", async () => {
    const id = "22222222-2222-4333-8444-555555555555";
    const db = api.addDatabase(id);
    // usage_daily made by hand: 0001's third statement (CREATE TABLE usage_daily) fails.
    db.exec("CREATE TABLE usage_daily (day TEXT)");
    const r = await run([], { ids: { "edgefleet-usage": id } });
    expect(r.code).toBe(D1_EXIT.failed);
    expect(r.err).toMatch(/^d1-migrations: edgefleet-usage: failed \(wrangler exited 1: .*table usage_daily already exists/);
    expect(r.err).not.toMatch(/Logs were written/);
    // All or nothing: the file's first statement (CREATE TABLE calls) was rolled back too,
    // and the file is not recorded, so a rerun after the fix applies it whole.
    const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all().map((x) => x.name);
    expect(tables).not.toContain("calls");
    expect(db.prepare("SELECT count(*) AS n FROM d1_migrations").get()).toEqual({ n: 0 });
    expect(r.out + r.err).not.toContain(TOKEN);
  });

  it("fails for a database the API does not know, naming it, never the token; refuses without a token", async () => {
    const wrong = await run([], { ids: { "edgefleet-usage": "99999999-2222-4333-8444-555555555555" } });
    expect(wrong.code).toBe(D1_EXIT.failed);
    expect(wrong.err).toMatch(/^d1-migrations: edgefleet-usage: failed \(wrangler exited 1: /);
    expect(wrong.out + wrong.err).not.toContain(TOKEN);
    expect(leftovers()).toEqual([]);
    const bad = await run([], { ids: { "edgefleet-usage": "not-an-id" } });
    expect(bad.code).toBe(D1_EXIT.failed);
    expect(bad.err).toContain("the stack's id for it is not a D1 id");
    const none = await run([], { token: "" });
    expect(none.code).toBe(D1_EXIT.usage);
    expect(none.err).toContain("CLOUDFLARE_API_TOKEN is not set");
  });
});
