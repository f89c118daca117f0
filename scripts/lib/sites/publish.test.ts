// The publisher against a stateful FAKE of Cloudflare's KV API on loopback
// (test/fakes/cloudflare-kv-api.ts), through the real `cloudflare` SDK with a configurable base URL.
import { createHash } from "node:crypto";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Cloudflare from "cloudflare";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { HostTable } from "../../../workers/router/src/table.ts";
import { loadInventoryOrThrow } from "../../../stacks/model/load.ts";
import { routerHosts } from "../../../stacks/model/router-shards.ts";
import { buildSites, type KvEntry, type SitesBuild } from "./build.ts";
import { FakeKvApi } from "../../../test/fakes/cloudflare-kv-api.ts";
import { applyPlan, compareTables, DEFAULT_PROPAGATION_MS, ORPHANS_KEY, planFromRemote, planPublish, PublishError, rateLimitedFetch, type KvTarget } from "./publish.ts";

const allowedHosts = routerHosts(loadInventoryOrThrow("fleet"));
let fake: FakeKvApi;
let target: KvTarget;
let dirs: string[] = [];
/** The API server's clock (the fake's Date header); this machine's clock plays no part. */
let serverClock: number;

beforeEach(async () => {
  fake = new FakeKvApi();
  serverClock = 1_800_000_000_000;
  fake.now = () => serverClock;
  const baseURL = await fake.start();
  target = {
    client: new Cloudflare({ apiToken: fake.token, baseURL, maxRetries: 3 }),
    accountId: fake.accountId,
    namespaceId: fake.namespaceId,
  };
});
afterEach(async () => {
  await fake.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  dirs = [];
});

function copySites(): string {
  const dir = mkdtempSync(join(tmpdir(), "edgefleet-sites-"));
  dirs.push(dir);
  cpSync("fleet/sites", dir, { recursive: true });
  return dir;
}

/**
 * Publishes as the CLI does (without the lease; cli.test.ts covers it); unreferenced
 * content is deleted at once unless a grace is given. The server's clock moves on 2 s
 * after each publish (KV allows one write a second to a key).
 */
async function publish(build: SitesBuild, opts: { maxPairs?: number; graceMs?: number } = {}) {
  const plan = await planFromRemote(target, build, { graceMs: opts.graceMs ?? 0 });
  const waits: number[] = [];
  const result = await applyPlan(target, plan, { ...opts, sleep: async (ms) => void waits.push(ms) });
  serverClock += 2000;
  return { plan, result, waits };
}

const bulkRequests = () => fake.requests.filter((r) => r.path.endsWith("/bulk") || r.path.endsWith("/bulk/delete"));

/** The fake namespace holds exactly the build's entries, byte for byte, with metadata. */
function expectStoreEquals(build: SitesBuild) {
  expect([...fake.store.keys()].filter((k) => k !== ORPHANS_KEY).sort()).toEqual(build.entries.map((e) => e.key).sort());
  for (const e of build.entries) {
    const stored = fake.store.get(e.key)!;
    expect(stored.value.equals(Buffer.from(e.value))).toBe(true);
    expect(stored.metadata).toEqual(e.metadata);
  }
}

describe("publishing the content map", () => {
  it("writes every entry to an empty namespace, binary content intact", async () => {
    const build = buildSites("fleet/sites", { allowedHosts });
    const { result } = await publish(build);
    expect(result.written).toBe(build.entries.length);
    expect(result.deleted).toBe(0);
    expectStoreEquals(build);
  });

  it("writes nothing when nothing changed (idempotent)", async () => {
    const build = buildSites("fleet/sites", { allowedHosts });
    await publish(build);
    fake.requests.length = 0;
    const { plan, result, waits } = await publish(build);
    expect(waits).toEqual([]);
    expect(plan.unchanged).toBe(build.entries.length);
    expect(result).toEqual({ written: 0, deleted: 0, requests: 0 });
    expect(bulkRequests()).toEqual([]);
    expectStoreEquals(build);
  });

  it("writes only the diff: the changed file's content and its host table, and deletes the old content", async () => {
    const dir = copySites();
    const before = buildSites(dir, { allowedHosts });
    await publish(before);
    writeFileSync(join(dir, "amber-home.example/rooms/index.html"), "<h1>New rooms</h1>\n");
    const after = buildSites(dir, { allowedHosts });
    fake.requests.length = 0;
    const { plan, result, waits } = await publish(after);
    // KV's propagation bound is waited out between the content and the table naming it.
    expect(waits).toEqual([DEFAULT_PROPAGATION_MS]);
    expect(plan.content.map((e) => e.key)).toEqual([`sha256:${createHash("sha256").update("<h1>New rooms</h1>\n").digest("hex")}`]);
    expect(plan.hosts.map((e) => e.key)).toEqual(["host:amber-home.example"]);
    expect(plan.deletes).toHaveLength(1);
    expect(plan.deletes[0]).toMatch(/^sha256:/);
    expect(result).toEqual({ written: 2, deleted: 1, requests: 3 });
    // Content is written before the table that names it, deletions come last.
    expect(bulkRequests().map((r) => `${r.method} ${r.path.split("/").slice(-2).join("/")} ${r.keys}`)).toEqual([
      `PUT ${fake.namespaceId}/bulk 1`,
      `PUT ${fake.namespaceId}/bulk 1`,
      "POST bulk/delete 1",
    ]);
    expectStoreEquals(after);
  });

  it("keeps content no table names for the grace period, then deletes it", async () => {
    const dir = copySites();
    const v1 = buildSites(dir, { allowedHosts });
    await publish(v1);
    writeFileSync(join(dir, "amber-home.example/rooms/index.html"), "<h1>Rooms v2</h1>\n");
    const v2 = buildSites(dir, { allowedHosts });
    const [old] = planPublish(v2, new Map(v1.entries.map((e) => [e.key, e.metadata.sha256])), { graceMs: 0, now: serverClock }).deletes;
    const GRACE = 10 * 60_000;
    const t0 = serverClock;

    const first = await publish(v2, { graceMs: GRACE });
    expect(first.plan.deletes).toEqual([]);
    expect(first.plan.deferred).toEqual([old]);
    expect(fake.store.has(old!)).toBe(true);
    expect(JSON.parse(fake.store.get(ORPHANS_KEY)!.value.toString())).toEqual({ [old!]: t0 });

    // Within the grace period (by the server's clock): nothing to do, not even a request.
    fake.requests.length = 0;
    serverClock = t0 + GRACE - 1000;
    const again = await publish(v2, { graceMs: GRACE });
    expect(again.result).toEqual({ written: 0, deleted: 0, requests: 0 });
    expect(fake.store.has(old!)).toBe(true);

    // After it: deleted, and the record emptied.
    serverClock = t0 + GRACE;
    const later = await publish(v2, { graceMs: GRACE });
    expect(later.plan.deletes).toEqual([old]);
    expect(fake.store.has(old!)).toBe(false);
    expect(JSON.parse(fake.store.get(ORPHANS_KEY)!.value.toString())).toEqual({});
    expectStoreEquals(v2);
  });

  it("forgets an orphan that a later build names again, so it is never deleted", async () => {
    const dir = copySites();
    const v1 = buildSites(dir, { allowedHosts });
    await publish(v1);
    const page = join(dir, "amber-home.example/rooms/index.html");
    const original = readFileSync(page);
    writeFileSync(page, "<h1>Rooms v2</h1>\n");
    await publish(buildSites(dir, { allowedHosts }), { graceMs: 600_000 });
    writeFileSync(page, original);
    const backAt = serverClock;
    const back = await publish(v1, { graceMs: 600_000 });
    expect(back.plan.deletes).toEqual([]);
    expect(back.plan.deferred).toHaveLength(1); // v2's page, now the orphan
    const record = JSON.parse(fake.store.get(ORPHANS_KEY)!.value.toString()) as Record<string, number>;
    expect(Object.values(record)).toEqual([backAt]);
    serverClock += 600_000;
    const late = await publish(v1, { graceMs: 600_000 });
    expect(late.plan.deletes).toHaveLength(1);
    expectStoreEquals(v1);
  });

  it("deletes a removed host's table and content, and leaves keys that are not its own alone", async () => {
    const dir = copySites();
    await publish(buildSites(dir, { allowedHosts }));
    fake.store.set("config:other-tool", { value: Buffer.from("keep me") });
    rmSync(join(dir, "arctic-music.example"), { recursive: true });
    const after = buildSites(dir, { allowedHosts });
    const { plan } = await publish(after);
    expect(plan.hostsRemoved).toEqual(["arctic-music.example", "www.arctic-music.example"]);
    expect(fake.store.get("config:other-tool")?.value.toString()).toBe("keep me");
    fake.store.delete("config:other-tool");
    expectStoreEquals(after);
  });

  it("rewrites a key of its own whose metadata does not match (written by something else)", async () => {
    const build = buildSites("fleet/sites", { allowedHosts });
    await publish(build);
    const key = "host:amber-home.example";
    fake.store.set(key, { value: Buffer.from("{}") });
    const { plan } = await publish(build);
    expect(plan.hosts.map((e) => e.key)).toEqual([key]);
    expectStoreEquals(build);
  });

  it("resumes after a failure halfway: the re-run writes only what the failed run did not", async () => {
    const build = buildSites("fleet/sites", { allowedHosts });
    // Content batches of 5: the third request and every one after it fail (the SDK's
    // retries included), as in an outage.
    fake.failBulkWritesFrom = 3;
    fake.failureRetryAfter = "0";
    const err = await publish(build, { maxPairs: 5 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PublishError);
    expect((err as Error).message).toMatch(/failed after 10 written: HTTP 500 \(10001 Internal error\); run publish again to resume/);
    expect(fake.store.size).toBe(10);
    // No host table was written: the live site never names content that is missing.
    expect([...fake.store.keys()].some((k) => k.startsWith("host:"))).toBe(false);
    fake.failBulkWritesFrom = undefined;
    const { plan, result } = await publish(build, { maxPairs: 5 });
    expect(plan.unchanged).toBe(10);
    expect(result.written).toBe(build.entries.length - 10);
    expectStoreEquals(build);
  });

  it("resumes after a failure halfway through the deletions", async () => {
    const dir = copySites();
    await publish(buildSites(dir, { allowedHosts }));
    for (const host of ["arctic-music.example", "aurora-press.example"]) rmSync(join(dir, host), { recursive: true });
    const after = buildSites(dir, { allowedHosts });
    fake.failBulkDeletesFrom = 2;
    fake.failureRetryAfter = "0";
    // 4 host tables (they sort first) and 9 content keys to delete, 5 a request: only the
    // first request goes through.
    const err = await publish(after, { maxPairs: 5 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PublishError);
    expect((err as Error).message).toMatch(/^deleting 5 key\(s\) failed after 5 deleted: HTTP 500/);
    // Host tables go first, so the removed hosts are gone before their content is.
    expect([...fake.store.keys()].filter((k) => k.startsWith("host:")).sort()).toEqual(after.entries.filter((e) => e.key.startsWith("host:")).map((e) => e.key));
    fake.failBulkDeletesFrom = undefined;
    fake.requests.length = 0;
    const { plan, result } = await publish(after, { maxPairs: 5 });
    expect(plan.content).toEqual([]);
    expect(plan.hosts).toEqual([]);
    expect(plan.deletes).toHaveLength(8);
    expect(result).toEqual({ written: 0, deleted: 8, requests: 2 });
    expectStoreEquals(after);
  });

  it("resumes a publish of 15,000 keys that failed after its first 10,000-pair request", async () => {
    const entries: KvEntry[] = Array.from({ length: 15_000 }, (_, i) => {
      const value = new TextEncoder().encode(`file ${i}`);
      const hash = createHash("sha256").update(value).digest("hex");
      return { key: `sha256:${hash}`, value, metadata: { sha256: hash } };
    });
    const build: SitesBuild = { manifest: { version: 1, hosts: [] }, entries, hash: "x" };
    // No SDK retries: the fake fails every write from the second request on.
    const once: KvTarget = { ...target, client: new Cloudflare({ apiToken: fake.token, baseURL: target.client.baseURL, maxRetries: 0 }) };
    fake.failBulkWritesFrom = 2;
    const err = await applyPlan(once, await planFromRemote(once, build, { graceMs: 0 }), { propagationMs: 0 }).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/^writing 5000 content key\(s\) failed after 10000 written/);
    expect(fake.store.size).toBe(10_000);
    fake.failBulkWritesFrom = undefined;
    fake.requests.length = 0;
    const plan = await planFromRemote(once, build, { graceMs: 0 });
    expect([plan.unchanged, plan.content.length]).toEqual([10_000, 5_000]);
    expect(await applyPlan(once, plan, { propagationMs: 0 })).toEqual({ written: 5_000, deleted: 0, requests: 1 });
    expect(bulkRequests().map((r) => r.keys)).toEqual([5_000]);
    expect(fake.store.size).toBe(15_000);
  }, 60_000);

  it("splits writes into requests of at most 10,000 pairs", async () => {
    const entries: KvEntry[] = Array.from({ length: 10_001 }, (_, i) => {
      const value = new TextEncoder().encode(`file ${i}`);
      const hash = createHash("sha256").update(value).digest("hex");
      return { key: `sha256:${hash}`, value, metadata: { sha256: hash } };
    });
    const { result } = await publish({ manifest: { version: 1, hosts: [] }, entries, hash: "x" });
    expect(result).toEqual({ written: 10_001, deleted: 0, requests: 2 });
    expect(bulkRequests().map((r) => r.keys)).toEqual([10_000, 1]);
    expect(fake.store.size).toBe(10_001);
  }, 60_000);

  it("waits out a 429 as retry-after says, then goes on", async () => {
    const build = buildSites("fleet/sites", { allowedHosts });
    fake.rateLimit = { count: 2, retryAfter: "0" };
    const { result } = await publish(build);
    expect(result.written).toBe(build.entries.length);
    // The first request (the lease read) was answered 429 twice, then went through.
    expect(new Set(fake.requests.slice(0, 3).map((r) => r.path)).size).toBe(1);
    expectStoreEquals(build);
  });

  it("reports an authentication failure without the token", async () => {
    const client = new Cloudflare({ apiToken: "wrong-token-value-123", baseURL: target.client.baseURL, maxRetries: 0 });
    const build = buildSites("fleet/sites", { allowedHosts });
    const plan = planPublish(build, new Map(), { now: serverClock });
    const err = (await applyPlan({ ...target, client }, plan).catch((e: unknown) => e)) as Error;
    expect(err).toBeInstanceOf(PublishError);
    expect(err.message).toContain("HTTP 401 (10000 Authentication error)");
    expect(err.message).not.toContain("wrong-token-value-123");
    expect(fake.store.size).toBe(0);
  });
});

describe("time is the API server's", () => {
  it("deletes nothing early when this machine's clock runs a day ahead", async () => {
    const dir = copySites();
    await publish(buildSites(dir, { allowedHosts }));
    writeFileSync(join(dir, "amber-home.example/rooms/index.html"), "<h1>Rooms v2</h1>\n");
    const v2 = buildSites(dir, { allowedHosts });
    const first = await publish(v2, { graceMs: 600_000 });
    const local = vi.spyOn(Date, "now").mockReturnValue(Date.now() + 24 * 3600_000);
    try {
      const again = await publish(v2, { graceMs: 600_000 });
      expect(again.plan.deletes).toEqual([]);
      expect(again.plan.deferred).toEqual(first.plan.deferred);
    } finally {
      local.mockRestore();
    }
    serverClock += 600_000;
    expect((await publish(v2, { graceMs: 600_000 })).plan.deletes).toEqual(first.plan.deferred);
  });
});

describe("the guard's view of a host", () => {
  const file = (h: string) => ({ h, t: "text/html", c: "no-store", s: 1 });
  const table = (files: Record<string, string>, extra: Partial<HostTable> = {}): HostTable => ({
    v: 1,
    files: Object.fromEntries(Object.entries(files).map(([p, h]) => [p, file(h)])),
    redirects: {},
    patterns: [],
    ...extra,
  });
  it("counts half or more of the paths removed or changed as rewritten, less as a change", () => {
    const old = table({ "/a": "1", "/b": "2", "/c": "3", "/d": "4" });
    expect(compareTables(old, table({ "/a": "x", "/b": "2", "/c": "3", "/d": "4" }))).toBeUndefined();
    expect(compareTables(old, table({ "/a": "x", "/b": "y", "/c": "3", "/d": "4" }))).toBe("rewritten");
    expect(compareTables(old, table({ "/c": "3", "/d": "4", "/e": "5" }))).toBe("rewritten");
  });
  it("counts a host left serving nothing as emptied, and a switch to or from a www redirect as rewritten", () => {
    expect(compareTables(table({ "/a": "1" }), table({}, { redirects: { "/x": { to: "/y", status: 301 } } }))).toBe("emptied");
    expect(compareTables(table({}, { canonical: "a.example" }), table({ "/a": "1" }))).toBe("rewritten");
    expect(compareTables(table({}, { canonical: "a.example" }), table({}, { canonical: "a.example" }))).toBeUndefined();
  });
});

describe("the rate limit", () => {
  it("holds a request until the oldest of the last `limit` leaves the window", async () => {
    let clock = 1_000;
    const slept: number[] = [];
    const calls: string[] = [];
    const limited = rateLimitedFetch({
      limit: 2,
      windowMs: 300,
      now: () => clock,
      sleep: async (ms) => {
        slept.push(ms);
        clock += ms;
      },
      fetch: (async (input: string) => {
        calls.push(`${input}@${clock}`);
        return new Response("ok");
      }) as typeof fetch,
    });
    await limited("a");
    clock += 100;
    await limited("b");
    await limited("c");
    expect(slept).toEqual([200]);
    expect(calls).toEqual(["a@1000", "b@1100", "c@1300"]);
  });
});
