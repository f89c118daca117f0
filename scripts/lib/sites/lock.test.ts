// The publish lease (lock.ts) and the CLI's use of it, against the KV fake
// (test/fakes/cloudflare-kv-api.ts) with the server's clock moved by the waits.
import { cpSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Cloudflare from "cloudflare";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { FakeKvApi } from "../../../test/fakes/cloudflare-kv-api.ts";
import { runSites, SITES_EXIT } from "./cli.ts";
import { acquireLock, checkLock, confirmLock, LOCK_KEY, LockedError, releaseLock, type LockOptions } from "./lock.ts";
import type { KvTarget } from "./publish.ts";

let fake: FakeKvApi;
let target: KvTarget;
let baseURL: string;
let clock: number;
let sites: string;
const B = 60_000;

beforeEach(async () => {
  fake = new FakeKvApi();
  clock = 1_800_000_000_000;
  fake.now = () => clock;
  baseURL = await fake.start();
  target = { client: new Cloudflare({ apiToken: fake.token, baseURL, maxRetries: 0 }), accountId: fake.accountId, namespaceId: fake.namespaceId };
  sites = mkdtempSync(join(tmpdir(), "edgefleet-sites-"));
  cpSync("fleet/sites", sites, { recursive: true });
});
afterEach(async () => {
  await fake.stop();
  rmSync(sites, { recursive: true, force: true });
});

/** Lease options whose waits move the server's clock; `monotonic` follows it too. */
const opts = (by: string, extra: Partial<LockOptions> = {}): LockOptions => ({
  propagationMs: B,
  by,
  monotonic: () => clock,
  sleep: async (ms) => void (clock += ms),
  ...extra,
});

describe("the lease", () => {
  it("refuses while another publish holds it, judged by the server's clock", async () => {
    await acquireLock(target, opts("ci"));
    clock += 2000;
    // This machine's clock says the lease lapsed long ago; the server's says it has not.
    const local = vi.spyOn(Date, "now").mockReturnValue(clock + 24 * 3600_000);
    try {
      const e = await acquireLock(target, opts("laptop")).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(LockedError);
      expect((e as Error).message).toMatch(/another publish holds the lease: ci, since .*until .*\(server time\)/);
    } finally {
      local.mockRestore();
    }
  });

  it("lets a lapsed lease (by server time) be taken over", async () => {
    await acquireLock(target, opts("crashed", { leaseMs: 60_000 }));
    clock += 60_000;
    const lease = await acquireLock(target, opts("next"));
    await confirmLock(target, lease, opts("next"));
    expect(JSON.parse(fake.store.get(LOCK_KEY)!.value.toString()).by).toBe("next");
  });

  it("two publishes that both saw no lease (stale reads within KV's bound): exactly one proceeds", async () => {
    // The REST reads lag a full bound behind: B does not see A's lease when it looks.
    fake.apiReadLagMs = B;
    const a = await acquireLock(target, opts("a"));
    clock += 10_000;
    const b = await acquireLock(target, opts("b"));
    const results = await Promise.all([
      confirmLock(target, a, opts("a")).then(() => "a won", (e: unknown) => (e instanceof LockedError ? "a lost" : String(e))),
      confirmLock(target, b, opts("b")).then(() => "b won", (e: unknown) => (e instanceof LockedError ? "b lost" : String(e))),
    ]);
    expect(results.sort()).toEqual(["a lost", "b won"]);
  });

  it("cannot hold if KV takes longer than the bound it was given (the documented limit)", async () => {
    // Slower than the bound it was given (115 s against B = 60 s): each contender reads
    // back its own token, and both proceed. CI's concurrency group is the second line.
    fake.apiReadLagMs = 2 * B - 5000;
    const a = await acquireLock(target, opts("a"));
    clock += 10_000;
    const b = await acquireLock(target, opts("b"));
    await confirmLock(target, a, opts("a"));
    await confirmLock(target, b, opts("b"));
  });

  it("stops a publish whose lease was taken over before it changes anything live", async () => {
    const a = await acquireLock(target, opts("a", { leaseMs: 60_000 }));
    clock += 61_000;
    await acquireLock(target, opts("b"));
    await expect(checkLock(target, a)).rejects.toThrow(/lost the publish lease: another publish holds the lease: b/);
    expect(await releaseLock(target, a)).toBe(false); // never deletes someone else's lease
    expect(fake.store.has(LOCK_KEY)).toBe(true);
  });
});

describe("sites publish with the lease", () => {
  const run = (args: string[], sleep: (ms: number) => Promise<void>) => {
    let out = "";
    let err = "";
    return runSites(["publish", "--sites", sites, "--account-id", fake.accountId, "--namespace-id", fake.namespaceId, "--api-base-url", baseURL, ...args], {
      out: (s) => (out += s),
      err: (s) => (err += s),
      root: process.cwd(),
      env: { CLOUDFLARE_API_TOKEN: fake.token },
      sleep,
    }).then((code) => ({ code, out, err }));
  };
  const moveClock = async (ms: number) => void (clock += ms);

  it("a second publish started while the first waits exits 5 and writes nothing live", async () => {
    let second: { code: number; out: string; err: string } | undefined;
    let waited = false;
    const first = await run([], async (ms) => {
      clock += ms;
      if (waited) return;
      waited = true;
      writeFileSync(join(sites, "amber-home.example/index.html"), "<h1>the second operator's edit</h1>\n");
      second = await run([], moveClock);
      clock += 2000;
    });
    expect(first.code).toBe(0);
    expect(second?.code).toBe(SITES_EXIT.locked);
    expect(second?.err).toMatch(/another publish holds the lease/);
    // The first publish's tables are live; the second's edit is not; the lease is released.
    expect(JSON.parse(fake.store.get("host:amber-home.example")!.value.toString()).files["/index.html"]).toBeDefined();
    expect(fake.store.has(LOCK_KEY)).toBe(false);
    // The first waited 2B for the lease; its content was written during that wait, so no
    // second wait was needed before the tables.
    expect(waited).toBe(true);
  });

  it("waits 2x the propagation bound for the lease, and writes tables only after", async () => {
    const waits: number[] = [];
    const order: string[] = [];
    fake.beforeBulkWrite = (keys) => void order.push(keys.some((k) => k.startsWith("host:")) ? "tables" : keys.includes(LOCK_KEY) ? "lease" : "content");
    const res = await run(["--propagation-seconds", "60"], async (ms) => {
      waits.push(ms);
      order.push(`wait ${Math.round(ms / 1000)} s`);
      clock += ms;
    });
    expect(res.code).toBe(0);
    expect(order).toEqual(["lease", "content", "wait 120 s", "tables"]);
  });

  it("waits B after the content's upload ends when the upload outlasts the lease's wait", async () => {
    const waits: number[] = [];
    // B = 0.6 s and a content upload that takes 1.5 s (real time): the lease's 2B has
    // passed when the upload ends, and (nearly all of) B is still owed to the content.
    fake.beforeBulkWrite = async (keys) => {
      if (keys.some((k) => k.startsWith("sha256:"))) await new Promise((r) => setTimeout(r, 1500));
    };
    const res = await run(["--propagation-seconds", "0.6"], async (ms) => {
      waits.push(ms);
      clock += ms;
    });
    expect(res.code).toBe(0);
    expect(waits).toHaveLength(1);
    expect(waits[0]).toBeGreaterThan(0);
    expect(waits[0]).toBeLessThanOrEqual(600);
  });
});
