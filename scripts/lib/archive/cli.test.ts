// `npm run archive --remote` against a loopback fake of the R2 object endpoints of
// Cloudflare's API, through the official SDK (the local side is tested end to end in
// test/metering-pipeline.test.ts). The fake pages by 20 unless asked; the command asks for
// R2's most, 1,000, and still has to follow cursors.
import Cloudflare from "cloudflare";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { archiveKey } from "../../../workers/shared/archive-key.ts";
import { FakeR2ObjectsApi } from "../../../test/fakes/cloudflare-r2-objects-api.ts";
import { ARCHIVE_EXIT, daysToSearch, runArchive, terminalSafe, type Io } from "./cli.ts";
import { archiveBucketName } from "./local.ts";
import { mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { FakeD1Api } from "../../../test/fakes/cloudflare-d1-api.ts";
import { oneApiHost } from "../../../test/support/api-host.ts";
import { MIGRATIONS_DIR } from "../../../workers/usage-ledger/local/miniflare.ts";
import { splitStatements } from "../../../workers/usage-ledger/local/migrations.ts";
import { tmpdir } from "node:os";
import { join } from "node:path";

const TOKEN = "r2-read-token-do-not-print";
const ACCOUNT = "acct1";
const fake = new FakeR2ObjectsApi({ token: TOKEN, accountId: ACCOUNT });
const NOW = new Date("2026-11-28T10:00:00Z");
const rid = (n: number) => "req_ef_" + n.toString(16).padStart(32, "0");
const BUCKET = archiveBucketName();

function put(tenant: string, at: string, n: number, o: { request?: string; response?: string; meta?: Record<string, string> } = {}) {
  const t = Date.parse(at);
  const request = o.request ?? `{"model":"m","max_tokens":10,"n":${n}}`;
  const response = o.response ?? `{"id":"msg_${n}"}`;
  fake.put(BUCKET, archiveKey(tenant, t, rid(n), "request"), request, { contentType: "application/json", customMetadata: { request_id: rid(n), tenant, bytes: String(Buffer.byteLength(request)), truncated: "false" } });
  fake.put(BUCKET, archiveKey(tenant, t, rid(n), "response"), response, {
    contentType: "application/json",
    customMetadata: { request_id: rid(n), tenant, bytes: String(Buffer.byteLength(response)), truncated: "false", status: "200", complete: "true", ...o.meta },
  });
}

async function run(argv: string[], env: NodeJS.ProcessEnv = { CLOUDFLARE_API_TOKEN: TOKEN, CLOUDFLARE_ACCOUNT_ID: ACCOUNT, CLOUDFLARE_API_BASE_URL: fake.baseURL }, more: Partial<Io> = {}) {
  let out = "";
  let err = "";
  const code = await runArchive(argv, { out: (s) => (out += s), err: (s) => (err += s), env, root: "/", ...more }, NOW);
  return { code, out, err };
}

// A test that sets how the shared fake answers puts it back.
afterEach(() => {
  if (fake) fake.bareNotFound = false;
});
beforeAll(async () => {
  await fake.start();
  // 30 calls of t_a on the 27th (more than one default page), 1 on the 28th; t_b beside it.
  for (let i = 1; i <= 30; i++) put("t_a", "2026-11-27T12:00:00Z", i);
  put("t_a", "2026-11-28T09:00:00Z", 100, { response: "event: message_start\n\n", meta: { complete: "false", ended: "client_closed" } });
  put("t_b", "2026-11-27T12:00:00Z", 200);
  put("t_a", "2026-10-01T12:00:00Z", 300);
});
afterAll(() => fake.stop());

describe("npm run archive --remote", () => {
  it("lists a tenant's calls day by day, newest first, following the API's cursor pages", async () => {
    const r = await run(["list", "--remote", "--tenant", "t_a", "--days", "2", "--json"]);
    expect(r.err).toBe("");
    expect(r.code).toBe(ARCHIVE_EXIT.ok);
    const j = JSON.parse(r.out) as { days: { from: string; to: string }; calls: { day: string; requestId: string; response: { complete: boolean; ended?: string } }[] };
    expect(j.days).toEqual({ from: "2026-11-27", to: "2026-11-28" });
    expect(j.calls).toHaveLength(31);
    expect(j.calls[0]).toMatchObject({ day: "2026-11-28", requestId: rid(100), response: { complete: false, ended: "client_closed" } });
    expect(new Set(j.calls.slice(1).map((c) => c.requestId))).toEqual(new Set(Array.from({ length: 30 }, (_, i) => rid(i + 1))));
    // Asked per day under the tenant's own prefix, R2's page size, never another tenant's keys.
    const lists = fake.requests.filter((q) => q.action === "list");
    expect(lists.every((q) => q.query.per_page === "1000" && q.bucket === BUCKET && /^t_a\/2026-11-2[78]\/$/.test(q.query.prefix!))).toBe(true);
    const table = await run(["list", "--remote", "--tenant", "t_a", "--day", "2026-11-28"]);
    expect(table.out).toMatch(/2026-11-28\s+req_ef_0+64\s+\d+\s+\d+\s+200\s+cut: client_closed/);
    expect(table.out).toContain("1 call(s)");
  });

  it("escapes what the bucket holds (a request id in a key, a stream's end in metadata) in the table and in --json: a bucket written by something else cannot drive the terminal", async () => {
    const evil = "req_\u001b]52;c;cHduZWQ=\u0007\u202e";
    const t = Date.parse("2026-11-20T12:00:00Z");
    fake.put(BUCKET, archiveKey("t_c", t, evil, "response"), "x", { contentType: "text/event-stream", customMetadata: { request_id: evil, tenant: "t_c", bytes: "1", truncated: "false", status: "200", complete: "false", ended: "\u001b[2Jgone" } });
    for (const json of [false, true]) {
      const r = await run(["list", "--remote", "--tenant", "t_c", "--day", "2026-11-20", ...(json ? ["--json"] : [])]);
      expect(r.code).toBe(ARCHIVE_EXIT.ok);
      expect(r.out).not.toMatch(/[\u0000-\u0008\u000b-\u001f\u0080-\u009f\u202e]/);
      expect(r.out).toContain("\\u001b]52;c;cHduZWQ=\\u0007\\u202e");
      expect(r.out).toContain("\\u001b[2Jgone");
      if (json) expect((JSON.parse(r.out) as { calls: { requestId: string }[] }).calls[0]!.requestId).toBe(evil);
    }
  });

  it("pages past 1,000 objects", async () => {
    for (let i = 0; i < 520; i++) put("t_many", "2026-11-26T01:00:00Z", 10_000 + i);
    const r = await run(["list", "--remote", "--tenant", "t_many", "--day", "2026-11-26", "--json"]);
    expect((JSON.parse(r.out) as { calls: unknown[] }).calls).toHaveLength(520);
  });

  it("gets one call's body as stored, or both with --json; without --day it looks back --days days", async () => {
    const body = await run(["get", rid(7), "--remote", "--tenant", "t_a", "--part", "request"]);
    expect(body.code).toBe(ARCHIVE_EXIT.ok);
    expect(body.out).toBe('{"model":"m","max_tokens":10,"n":7}');
    const both = await run(["get", rid(7), "--remote", "--tenant", "t_a", "--day", "2026-11-27", "--json"]);
    expect(JSON.parse(both.out)).toMatchObject({ tenant: "t_a", day: "2026-11-27", requestId: rid(7), request: { body: '{"model":"m","max_tokens":10,"n":7}', contentType: "application/json" }, response: { body: '{"id":"msg_7"}', status: 200 } });
    // Older than the days searched: not found (3), and the message says where it looked.
    const old = await run(["get", rid(300), "--remote", "--tenant", "t_a"]);
    expect(old.code).toBe(ARCHIVE_EXIT.usage); // no --part and no --json
    const missing = await run(["get", rid(300), "--remote", "--tenant", "t_a", "--part", "response"]);
    expect(missing.code).toBe(ARCHIVE_EXIT.notFound);
    expect(missing.err).toContain("from 2026-11-22 to 2026-11-28");
    const found = await run(["get", rid(300), "--remote", "--tenant", "t_a", "--part", "response", "--days", "60"]);
    expect(found.out).toBe('{"id":"msg_300"}');
    // Another tenant's call is not found under this tenant.
    expect((await run(["get", rid(200), "--remote", "--tenant", "t_a", "--part", "request"])).code).toBe(ARCHIVE_EXIT.notFound);
  });

  it.each([
    ["with NoSuchKey (10007)", false],
    // The REST endpoint's 404 body is not documented: one without an error code is "gone" too (as wrangler reads any 404).
    ["with no error code", true],
  ])("a body listed and then gone (the lifecycle rule between the list and the read), its 404 %s: --json says which, and exits 3, never a whole-looking call", async (_, bare) => {
    fake.bareNotFound = bare;
    put("t_gone", "2026-11-27T12:00:00Z", 600);
    fake.onceAfterList(() => fake.remove(BUCKET, archiveKey("t_gone", Date.parse("2026-11-27T12:00:00Z"), rid(600), "response")));
    const r = await run(["get", rid(600), "--remote", "--tenant", "t_gone", "--day", "2026-11-27", "--json"]);
    expect(r.code).toBe(ARCHIVE_EXIT.notFound);
    const j = JSON.parse(r.out) as Record<string, unknown>;
    expect(j).toMatchObject({ requestId: rid(600), request: { body: '{"model":"m","max_tokens":10,"n":600}' }, gone: ["response"] });
    expect(j).not.toHaveProperty("response");
    expect(r.err).toBe(`archive: the response body of ${rid(600)} is gone (listed, then not found: deleted by the bucket's lifecycle rule meanwhile?)\n`);
  });

  it("writes --out, and refuses a folder that does not exist before reading anything", async () => {
    const dir = mkdtempSync(join(tmpdir(), "archive-"));
    const file = join(dir, "resp.json");
    const r = await run(["get", rid(3), "--remote", "--tenant", "t_a", "--part", "response", "--out", file]);
    expect(r.code).toBe(ARCHIVE_EXIT.ok);
    expect(readFileSync(file, "utf8")).toBe('{"id":"msg_3"}');
    const before = fake.requests.length;
    expect((await run(["get", rid(3), "--remote", "--tenant", "t_a", "--part", "response", "--out", join(dir, "no/such/file")])).code).toBe(ARCHIVE_EXIT.usage);
    expect(fake.requests.length).toBe(before);
  });

  it("bad input is exit 2 and reads nothing; a refused token is exit 1 and never printed", async () => {
    const before = fake.requests.length;
    for (const argv of [
      ["list", "--remote"], // no --tenant
      ["list", "--remote", "--tenant", "t_a/../t_b"],
      ["list", "--remote", "--tenant", "t_a", "--day", "2026-02-30"],
      ["list", "--remote", "--tenant", "t_a", "--days", "0"],
      ["get", "msg_1", "--remote", "--tenant", "t_a", "--part", "request"],
      ["get", rid(1), "--remote", "--tenant", "t_a", "--part", "body"],
      ["list", "--local", "--remote", "--tenant", "t_a"],
      // Not R2 bucket names: `..` would normalise the API path to another endpoint.
      ["list", "--remote", "--tenant", "t_a", "--bucket", ".."],
      ["get", rid(1), "--remote", "--tenant", "t_a", "--part", "request", "--bucket", ".."],
      ["list", "--remote", "--tenant", "t_a", "--bucket", "a/b"],
      ["list", "--remote", "--tenant", "t_a", "--bucket", "Archive"],
      ["list", "--remote", "--tenant", "t_a", "--bucket", "-archive"],
      ["list", "--remote", "--tenant", "t_a", "--bucket", "ab"],
      ["list", "--remote", "--tenant", "t_a", "--bucket", "a".repeat(64)],
      [],
    ]) {
      expect((await run(argv)).code, argv.join(" ")).toBe(ARCHIVE_EXIT.usage);
    }
    const noToken = await run(["list", "--remote", "--tenant", "t_a"], { CLOUDFLARE_ACCOUNT_ID: ACCOUNT, CLOUDFLARE_API_BASE_URL: fake.baseURL });
    expect(noToken.code).toBe(ARCHIVE_EXIT.usage);
    expect(noToken.err).toContain("CLOUDFLARE_API_TOKEN");
    expect(fake.requests.length).toBe(before);
    const wrong = await run(["list", "--remote", "--tenant", "t_a", "--account-id", "other"]);
    expect(wrong.code).toBe(ARCHIVE_EXIT.failed);
    expect(wrong.err).toContain("403");
    expect(wrong.err + wrong.out).not.toContain(TOKEN);
    const noBucket = await run(["list", "--remote", "--tenant", "t_a", "--bucket", "nope"]);
    expect(noBucket.code).toBe(ARCHIVE_EXIT.failed);
    expect(noBucket.err).toContain("10006");
  });

  it("get --part to a terminal refuses a body a terminal would run (exit 4, nothing printed); to a pipe or --out it goes byte for byte", async () => {
    const at = "2026-11-27T12:00:00Z";
    const t = Date.parse(at);
    // OSC 52 (writes the operator's clipboard), a C1 CSI (U+009B), and bytes that are not UTF-8.
    const osc = "\x1b]52;c;ZWNobyBwd25lZA==\x07";
    fake.put(BUCKET, archiveKey("t_tty", t, rid(700), "response"), `{"text":"${osc}"}`, { customMetadata: { bytes: "1", truncated: "false" } });
    fake.put(BUCKET, archiveKey("t_tty", t, rid(701), "response"), '{"text":"\u009b31m"}', { customMetadata: { bytes: "1", truncated: "false" } });
    const notUtf8 = new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]);
    fake.put(BUCKET, archiveKey("t_tty", t, rid(702), "response"), notUtf8, { customMetadata: { bytes: "4", truncated: "false" } });
    const plain = '{"text":"héllo\tworld\r\n"}\n';
    fake.put(BUCKET, archiveKey("t_tty", t, rid(703), "response"), plain, { customMetadata: { bytes: "1", truncated: "false" } });
    const get = (n: number, more: Partial<Io>, extra: string[] = []) => run(["get", rid(n), "--remote", "--tenant", "t_tty", "--day", "2026-11-27", "--part", "response", ...extra], undefined, more);
    let raw: Buffer[] = [];
    const bytes = (b: Uint8Array) => void raw.push(Buffer.from(b));

    for (const n of [700, 701, 702]) {
      raw = [];
      const r = await get(n, { outIsTTY: true, outBytes: bytes });
      expect(r.code, String(n)).toBe(ARCHIVE_EXIT.refused);
      expect(r.out + Buffer.concat(raw).toString("latin1")).toBe("");
      expect(r.err).toContain("use --out <file>, or a pipe");
    }
    // Plain text (tabs, newlines, non-ASCII) prints as it is.
    raw = [];
    expect((await get(703, { outIsTTY: true, outBytes: bytes })).code).toBe(ARCHIVE_EXIT.ok);
    expect(Buffer.concat(raw).toString("utf8")).toBe(plain);
    // To a pipe: exact bytes, whatever they are.
    raw = [];
    expect((await get(700, { outIsTTY: false, outBytes: bytes })).code).toBe(ARCHIVE_EXIT.ok);
    expect(Buffer.concat(raw).toString("utf8")).toBe(`{"text":"${osc}"}`);
    raw = [];
    expect((await get(702, { outBytes: bytes })).code).toBe(ARCHIVE_EXIT.ok);
    expect(new Uint8Array(Buffer.concat(raw))).toEqual(notUtf8);
    // --out from a terminal: the file holds the bytes.
    const file = join(mkdtempSync(join(tmpdir(), "archive-tty-")), "body.bin");
    expect((await get(702, { outIsTTY: true, outBytes: bytes }, ["--out", file])).code).toBe(ARCHIVE_EXIT.ok);
    expect(new Uint8Array(readFileSync(file))).toEqual(notUtf8);
    // --json escapes what JSON.stringify leaves raw (C1 controls): still the same JSON.
    const json = await run(["get", rid(701), "--remote", "--tenant", "t_tty", "--day", "2026-11-27", "--json"], undefined, { outIsTTY: true });
    expect(json.code).toBe(ARCHIVE_EXIT.ok);
    expect(json.out).not.toMatch(/[\u0080-\u009f]/);
    expect(json.out).toContain("\\u009b31m");
    expect((JSON.parse(json.out) as { response: { body: string } }).response.body).toBe('{"text":"\u009b31m"}');
  });

  it("terminalSafe: UTF-8 without C0 (but tab, newline, carriage return) or C1 controls", () => {
    const enc = (s: string) => new TextEncoder().encode(s);
    expect(terminalSafe(enc("plain\ttext\r\n é ✓ 😀"))).toBe(true);
    for (const bad of ["\x1b[2J", "\x00", "\x07", "\x0b", "\x0c", "\x1f", "\u0080", "\u009b", "\u009d52;c;x\u009c"]) expect(terminalSafe(enc(`a${bad}b`)), JSON.stringify(bad)).toBe(false);
    expect(terminalSafe(new Uint8Array([0xc3]))).toBe(false); // a cut UTF-8 sequence
  });

  it("a local archive that does not exist is exit 1 with where it looked", async () => {
    const r = await run(["list", "--tenant", "t_a", "--persist", join(tmpdir(), "no-such-state")]);
    expect(r.code).toBe(ARCHIVE_EXIT.failed);
    expect(r.err).toMatch(/no archive in local state .*no-such-state/);
  });

  it("days to search: --day alone, or the last n UTC days newest first", () => {
    expect(daysToSearch({ day: "2026-01-02", days: 7 }, NOW)).toEqual(["2026-01-02"]);
    expect(daysToSearch({ days: 3 }, new Date("2026-03-01T00:30:00Z"))).toEqual(["2026-03-01", "2026-02-28", "2026-02-27"]);
  });
});

describe("the fake R2 object endpoints keep the API's contract", () => {
  it("refuses per_page over 1,000, answers NoSuchKey (10007) for a missing key, and a global API key like a bad token", async () => {
    const cf = new Cloudflare({ apiToken: TOKEN, baseURL: fake.baseURL, maxRetries: 0 });
    const code = (p: Promise<unknown>) => p.then(() => 200, (e: { status?: number; errors?: { code: number }[] }) => `${e.status} ${e.errors?.[0]?.code}`);
    expect(await code(cf.r2.buckets.objects.list(BUCKET, { account_id: ACCOUNT, per_page: 1001 }))).toBe("400 10029");
    const withKey = new Cloudflare({ apiToken: TOKEN, apiKey: "global", apiEmail: "a@b.example", baseURL: fake.baseURL, maxRetries: 0 });
    expect(await code(withKey.r2.buckets.objects.list(BUCKET, { account_id: ACCOUNT }).then((p) => p.result))).toBe("403 10000");
    // A key's slashes as they are (wrangler's form, and what the API reference requires)
    // find the object; the SDK's objects.get sends them as %2F, which the reference says
    // must not be sent, and the fake does not decode: not found.
    const key = archiveKey("t_a", Date.parse("2026-11-27T12:00:00Z"), rid(1), "response");
    const raw = await fetch(`${fake.baseURL}/accounts/${ACCOUNT}/r2/buckets/${BUCKET}/objects/${key}`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(await raw.text()).toBe('{"id":"msg_1"}');
    expect(await code(cf.r2.buckets.objects.get(key, { account_id: ACCOUNT, bucket_name: BUCKET }))).toBe("404 10007");
    // A listed etag is raw hex in JSON; the GET's ETag header is quoted (RFC 7232).
    const listed = (await cf.r2.buckets.objects.list(BUCKET, { account_id: ACCOUNT, prefix: key })).result;
    expect(listed.map((o) => o.etag)).toEqual([expect.stringMatching(/^[0-9a-f]+$/)]);
    expect(raw.headers.get("etag")).toBe(`"${listed[0]!.etag}"`);
  });
});

describe("npm run archive --remote: buckets and objects the proxy did not write as expected", () => {
  it("an EU bucket is found with --jurisdiction eu, and without it is an error (10006, exit 1), not 'not found'", async () => {
    fake.addBucket("eu-archive", "eu");
    const t = Date.parse("2026-11-28T08:00:00Z");
    fake.put("eu-archive", archiveKey("t_eu", t, rid(400), "request"), '{"eu":true}', { customMetadata: { bytes: "11", truncated: "false" } });
    const without = await run(["get", rid(400), "--remote", "--tenant", "t_eu", "--bucket", "eu-archive", "--part", "request", "--day", "2026-11-28"]);
    expect(without.code).toBe(ARCHIVE_EXIT.failed);
    expect(without.err).toContain("10006");
    const withJ = await run(["get", rid(400), "--remote", "--tenant", "t_eu", "--bucket", "eu-archive", "--jurisdiction", "eu", "--part", "request", "--day", "2026-11-28"]);
    expect(withJ.code).toBe(ARCHIVE_EXIT.ok);
    expect(withJ.out).toBe('{"eu":true}');
    expect(fake.requests.at(-1)).toMatchObject({ action: "get", key: archiveKey("t_eu", t, rid(400), "request") });
  });

  it("an object without the proxy's metadata shows its size as stored/? and null in JSON, never a guess", async () => {
    fake.put(BUCKET, archiveKey("t_odd", Date.parse("2026-11-28T01:00:00Z"), rid(500), "response"), "abc");
    const table = await run(["list", "--remote", "--tenant", "t_odd", "--day", "2026-11-28"]);
    expect(table.out).toMatch(/req_ef_0+1f4\s+-\s+3\/\?/);
    const json = await run(["list", "--remote", "--tenant", "t_odd", "--day", "2026-11-28", "--json"]);
    expect((JSON.parse(json.out) as { calls: { response: unknown }[] }).calls[0]!.response).toEqual({ bytes: null, stored: 3, truncated: null });
  });

  it("--out is relative to where npm was started (INIT_CWD), not the package root", async () => {
    const dir = mkdtempSync(join(tmpdir(), "archive-cwd-"));
    const env = { CLOUDFLARE_API_TOKEN: TOKEN, CLOUDFLARE_ACCOUNT_ID: ACCOUNT, CLOUDFLARE_API_BASE_URL: fake.baseURL, INIT_CWD: dir };
    const r = await run(["get", rid(5), "--remote", "--tenant", "t_a", "--part", "request", "--out", "req.json"], env);
    expect(r.code).toBe(ARCHIVE_EXIT.ok);
    expect(readFileSync(join(dir, "req.json"), "utf8")).toBe('{"model":"m","max_tokens":10,"n":5}');
  });
});

describe("npm run archive --remote get without --tenant: the usage ledger (D1) says whose call it is", () => {
  const d1 = new FakeD1Api({ token: TOKEN, accountId: ACCOUNT });
  // One API host, as api.cloudflare.com is one: D1 paths to the D1 fake, the rest to R2's.
  const api = oneApiHost([
    { when: (p) => p.includes("/d1/database/"), origin: () => d1.url },
    { when: () => true, origin: () => fake.baseURL.replace(/\/client\/v4$/, "") },
  ]);
  const env = () => ({ CLOUDFLARE_API_TOKEN: TOKEN, CLOUDFLARE_ACCOUNT_ID: ACCOUNT, CLOUDFLARE_API_BASE_URL: `${api.url}/client/v4`, EDGEFLEET_USAGE_DATABASE_ID: "ledger-db" });
  const row = (n: number, tenant: string, endedAt: string) =>
    ledger.prepare("INSERT INTO calls (request_id, ts, day, tenant, model, status, input_tokens, cache_write_5m_tokens, cache_write_1h_tokens, cache_read_tokens, output_tokens, cost_micros, priced_as, price_as_of, ingest_id, ingested_at) VALUES (?, ?, ?, ?, 'm', 200, 1, 0, 0, 0, 1, 6, 'm', '2026-11-01', 'i', 0)").run(rid(n), Date.parse(endedAt), endedAt.slice(0, 10), tenant);
  let ledger: ReturnType<FakeD1Api["addDatabase"]>;

  beforeAll(async () => {
    await d1.start();
    await api.start();
    ledger = d1.addDatabase("ledger-db");
    for (const f of readdirSync(MIGRATIONS_DIR).filter((x) => x.endsWith(".sql")).sort()) for (const st of splitStatements(readFileSync(join(MIGRATIONS_DIR, f), "utf8"))) ledger.exec(st);
    // t_a's call 100 started and ended on the 28th; t_b's call 400 started before midnight
    // and ended after it (archived under the 27th, in the ledger under the 28th); call 500
    // is in the ledger but its tenant never archived it.
    row(100, "t_a", "2026-11-28T09:00:05Z");
    put("t_b", "2026-11-27T23:59:58Z", 400);
    row(400, "t_b", "2026-11-28T00:00:40Z");
    row(500, "t_c", "2026-11-28T08:00:00Z");
  });
  afterAll(async () => {
    await api.stop();
    await d1.stop();
  });

  it("finds the tenant and day in the ledger, the day before too, and gets the body", async () => {
    const a = await run(["get", rid(100), "--remote", "--part", "response"], env());
    expect(a.err).toBe("");
    expect(a.code).toBe(ARCHIVE_EXIT.ok);
    expect(a.out).toBe("event: message_start\n\n");
    const b = await run(["get", rid(400), "--remote", "--json"], env());
    expect(b.code).toBe(ARCHIVE_EXIT.ok);
    expect(JSON.parse(b.out)).toMatchObject({ tenant: "t_b", day: "2026-11-27", requestId: rid(400) });
    // The ledger was asked with the id as a bound parameter, never spliced into the SQL.
    expect(d1.requests.at(-1)?.body).toMatchObject({ sql: "SELECT tenant, ts FROM calls WHERE request_id = ?", params: [rid(400)] });
  });

  it("not in the ledger, or in it and not archived: exit 3 saying why and what to do", async () => {
    const missing = await run(["get", rid(999), "--remote", "--part", "request"], env());
    expect(missing.code).toBe(ARCHIVE_EXIT.notFound);
    expect(missing.err).toMatch(/the usage ledger \(D1 database ledger-db .*\) has no call req_ef_0+3e7: .*give --tenant/);
    const notArchived = await run(["get", rid(500), "--remote", "--part", "request"], env());
    expect(notArchived.code).toBe(ARCHIVE_EXIT.notFound);
    expect(notArchived.err).toMatch(/no archived call req_ef_0+1f4 of tenant t_c on 2026-11-27 or 2026-11-28 \(the ledger's row of the call\)/);
  });

  it("without --tenant, --remote needs the ledger's database (exit 2, nothing asked); a ledger that cannot be read is exit 1", async () => {
    const before = d1.requests.length;
    const { EDGEFLEET_USAGE_DATABASE_ID: _, ...noDb } = env();
    const r = await run(["get", rid(100), "--remote", "--part", "request"], noDb);
    expect(r.code).toBe(ARCHIVE_EXIT.usage);
    expect(r.err).toMatch(/--database-id or EDGEFLEET_USAGE_DATABASE_ID/);
    expect(d1.requests.length).toBe(before);
    const unknown = await run(["get", rid(100), "--remote", "--part", "request", "--database-id", "nope"], env());
    expect(unknown.code).toBe(ARCHIVE_EXIT.failed);
    expect(unknown.err).toMatch(/cannot read D1 database nope/);
    expect(unknown.err + unknown.out).not.toContain(TOKEN);
    // list still needs --tenant.
    expect((await run(["list", "--remote"], env())).code).toBe(ARCHIVE_EXIT.usage);
  });
});
