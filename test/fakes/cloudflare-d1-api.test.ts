// The fake D1 query API refuses what the real one refuses, as the real SDK sees it.
import Cloudflare from "cloudflare";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AccountRateLimit } from "../support/account-rate-limit.ts";
import { FakeD1Api, splitStatements } from "./cloudflare-d1-api.ts";

describe("fake Cloudflare D1 query API", () => {
  const fake = new FakeD1Api({ token: "tok", accountId: "acct" });
  let cf: Cloudflare;
  beforeAll(async () => {
    await fake.start();
    fake.addDatabase("db").exec("CREATE TABLE t (k TEXT PRIMARY KEY, n INTEGER)");
    cf = new Cloudflare({ apiToken: "tok", baseURL: fake.baseURL, maxRetries: 0 });
  });
  afterAll(() => fake.stop());

  const status = (p: Promise<unknown>) => p.then(() => 200, (e: { status?: number; errors?: { code: number }[] }) => `${e.status} ${e.errors?.[0]?.code}`);

  it("answers a query in the v4 envelope the SDK reads (one result per statement)", async () => {
    await cf.d1.database.query("db", { account_id: "acct", sql: "INSERT INTO t VALUES (?, ?)", params: ["a", "1"] });
    const page = await cf.d1.database.query("db", { account_id: "acct", sql: "SELECT k, n FROM t WHERE k = ?", params: ["a"] });
    expect(page.result).toHaveLength(1);
    expect(page.result[0]).toMatchObject({ success: true, results: [{ k: "a", n: 1 }], meta: { changes: 0, rows_read: 1 } });
    const two = await cf.d1.database.query("db", { account_id: "acct", sql: "SELECT 1 AS x; SELECT 2 AS y" });
    expect(two.result.map((r) => r.results)).toEqual([[{ x: 1 }], [{ y: 2 }]]);
  });

  it("runs a whole migration file as one query: semicolons in comments, strings and quoted names do not end a statement", async () => {
    const sql = "-- a header; with a semicolon\nCREATE TABLE m (\"a;b\" TEXT, c TEXT); /* block; comment */\nINSERT INTO m VALUES ('x;y', 'it''s');\n-- trailing comment; only\n";
    expect(splitStatements(sql)).toEqual(['-- a header; with a semicolon\nCREATE TABLE m ("a;b" TEXT, c TEXT)', "/* block; comment */\nINSERT INTO m VALUES ('x;y', 'it''s')"]);
    const page = await cf.d1.database.query("db", { account_id: "acct", sql: `${sql}SELECT "a;b" AS a, c FROM m` });
    expect(page.result.map((r) => r.results)).toEqual([[], [], [{ a: "x;y", c: "it's" }]]);
    expect(await status(cf.d1.database.query("db", { account_id: "acct", sql: "-- only a comment;" }))).toBe("400 7400");
  });

  it("refuses what D1's limits refuse: over 100 bound parameters, a statement over 100 KB", async () => {
    const many = Array.from({ length: 101 }, (_, i) => String(i));
    expect(await status(cf.d1.database.query("db", { account_id: "acct", sql: `SELECT ${many.map(() => "?").join(", ")}`, params: many }))).toBe("400 7400");
    expect(await status(cf.d1.database.query("db", { account_id: "acct", sql: `SELECT ${many.slice(0, 100).map(() => "?").join(", ")}`, params: many.slice(0, 100) }))).toBe(200);
    expect(await status(cf.d1.database.query("db", { account_id: "acct", sql: `SELECT '${"x".repeat(100_001)}'` }))).toBe("400 7400");
  });

  it("refuses a bad token, another account, an unknown database, bad params and bad SQL", async () => {
    const other = new Cloudflare({ apiToken: "nope", baseURL: fake.baseURL, maxRetries: 0 });
    expect(await status(other.d1.database.query("db", { account_id: "acct", sql: "SELECT 1" }))).toBe("403 10000");
    expect(await status(cf.d1.database.query("db", { account_id: "other", sql: "SELECT 1" }))).toBe("403 10000");
    expect(await status(cf.d1.database.query("missing", { account_id: "acct", sql: "SELECT 1" }))).toBe("404 7404");
    expect(await status(cf.d1.database.query("db", { account_id: "acct", sql: "SELECT ?", params: [1 as unknown as string] }))).toBe("400 7400");
    expect(await status(cf.d1.database.query("db", { account_id: "acct", sql: "SELECT ?; SELECT ?", params: ["a", "b"] }))).toBe("400 7400");
    expect(await status(cf.d1.database.query("db", { account_id: "acct", sql: "SELECT * FROM nope" }))).toBe("400 7500");
  });

  it("runs a request's statements all or nothing, and refuses SQL that controls transactions (a COMMIT mid-file would have split it)", async () => {
    expect(await status(cf.d1.database.query("db", { account_id: "acct", sql: "CREATE TABLE x1 (a); INSERT INTO nosuch VALUES (1)" }))).toBe("400 7500");
    for (const sql of ["CREATE TABLE x2 (a); COMMIT; CREATE TABLE x3 (a)", "-- header\nBEGIN TRANSACTION; CREATE TABLE x4 (a)", "SAVEPOINT s1; CREATE TABLE x5 (a); RELEASE s1", "CREATE TABLE x6 (a); /* c */ ROLLBACK"]) {
      expect({ sql, status: await status(cf.d1.database.query("db", { account_id: "acct", sql })) }).toEqual({ sql, status: "400 7500" });
    }
    const tables = await cf.d1.database.query("db", { account_id: "acct", sql: "SELECT name FROM sqlite_master WHERE name LIKE 'x%'" });
    expect(tables.result[0]!.results).toEqual([]);
  });

  it("injects a fault once", async () => {
    fake.failNext(429, 971, "Please wait and consider throttling your request speed");
    expect(await status(cf.d1.database.query("db", { account_id: "acct", sql: "SELECT 1" }))).toBe("429 971");
    expect(await status(cf.d1.database.query("db", { account_id: "acct", sql: "SELECT 1" }))).toBe(200);
  });

  it("counts every request against the account-wide limit, a bad token's too, and then refuses all of them with 429 and retry-after", async () => {
    const was = fake.account;
    try {
      fake.account = new AccountRateLimit({ limit: 2, windowMs: 300_000 });
      const other = new Cloudflare({ apiToken: "nope", baseURL: fake.baseURL, maxRetries: 0 });
      expect(await status(other.d1.database.query("db", { account_id: "acct", sql: "SELECT 1" }))).toBe("403 10000");
      expect(await status(cf.d1.database.query("db", { account_id: "acct", sql: "SELECT 1" }))).toBe(200);
      const refused = await cf.d1.database.query("db", { account_id: "acct", sql: "SELECT 1" }).then(
        () => undefined,
        (e: { status?: number; errors?: { code: number }[]; headers?: Headers }) => e,
      );
      expect(refused?.status).toBe(429);
      expect(refused?.errors?.[0]?.code).toBe(971);
      expect(Number(refused?.headers?.get("retry-after"))).toBeGreaterThan(290);
      expect(fake.account.hits).toBe(1);
    } finally {
      fake.account = was;
    }
  });
});
