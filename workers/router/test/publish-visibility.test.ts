// The router in workerd across a publish, with KV as Cloudflare documents it: eventually
// consistent per location, misses cached too (test/fakes/cloudflare-kv-api.ts cites the
// contract). Each location is its own router (Miniflare) whose SITES binding reads through
// that location of the fake (test/fakes/kv-location-binding.ts). The publisher is the real
// one (scripts/lib/sites/publish.ts) through the real `cloudflare` SDK. Time at the fake is
// virtual: the publisher's waits and the test's steps move it, so a 60 s propagation bound
// and 60 s caches are exercised without sleeping.
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Cloudflare from "cloudflare";
import { Miniflare } from "miniflare";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { buildSites, type SitesBuild } from "../../../scripts/lib/sites/build.ts";
import { applyPlan, planFromRemote, type KvTarget } from "../../../scripts/lib/sites/publish.ts";
import { loadInventoryOrThrow } from "../../../stacks/model/load.ts";
import { routerHosts } from "../../../stacks/model/router-shards.ts";
import { FakeKvApi } from "../../../test/fakes/cloudflare-kv-api.ts";
import { kvLocationBinding, kvLocationWorker } from "../../../test/fakes/kv-location-binding.ts";
import { routerWorkerOptions } from "../local/miniflare.ts";
import { CONTENT_PREFIX } from "../src/table.ts";

const allowedHosts = routerHosts(loadInventoryOrThrow("fleet"));
const B = 60_000; // KV's documented propagation bound
const GRACE = 10 * 60_000;

let fake: FakeKvApi;
let target: KvTarget;
let offset = 0; // virtual time at the fake, on top of the real clock
let routers: Miniflare[] = [];
let dir: string;
let script: string;

beforeAll(() => {
  // Bundle once: every router in this file runs the same bytes Pulumi uploads.
  script = (routerWorkerOptions().modules as { contents: string }[])[0]!.contents;
});
beforeEach(async () => {
  fake = new FakeKvApi();
  offset = 0;
  fake.now = () => Date.now() + offset;
  const baseURL = await fake.start();
  target = { client: new Cloudflare({ apiToken: fake.token, baseURL, maxRetries: 2 }), accountId: fake.accountId, namespaceId: fake.namespaceId };
  dir = mkdtempSync(join(tmpdir(), "edgefleet-sites-"));
  cpSync("fleet/sites", dir, { recursive: true });
});
afterEach(async () => {
  await Promise.all(routers.map((r) => r.dispose()));
  routers = [];
  await fake.stop();
  rmSync(dir, { recursive: true, force: true });
});
afterAll(() => undefined);

/** A router whose KV reads are those of one location (lag per key, in virtual ms). */
async function routerAt(location: string, lagMs: number | ((key: string) => number)): Promise<Miniflare> {
  fake.location(location, lagMs);
  const { kvNamespaces: _local, ...worker } = routerWorkerOptions({ script, vars: { ROUTER_CACHE_TTL_MS: "50" } }) as ReturnType<typeof routerWorkerOptions> & { kvNamespaces?: unknown };
  const mf = new Miniflare({
    cf: false,
    workers: [{ ...worker, wrappedBindings: { SITES: kvLocationBinding(fake.locationUrl(location)) } }, kvLocationWorker()],
  });
  await mf.ready;
  routers.push(mf);
  return mf;
}

/** Every GET-able page of a build: host -> path -> body. */
function pages(build: SitesBuild): Map<string, string> {
  const out = new Map<string, string>();
  const bytes = new Map(build.entries.map((e) => [e.key, e.value]));
  for (const h of build.manifest.hosts) {
    for (const f of h.files) out.set(`http://${h.host}${f.path}`, Buffer.from(bytes.get(`${CONTENT_PREFIX}${f.hash}`)!).toString("latin1"));
  }
  return out;
}

const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Requests every page present in both builds; each must be 200 with one of the two bodies. */
async function checkAll(mf: Miniflare, before: Map<string, string>, after: Map<string, string>, label: string): Promise<{ old: number; new: number }> {
  const seen = { old: 0, new: 0 };
  for (const [url, oldBody] of before) {
    const newBody = after.get(url);
    if (newBody === undefined) continue;
    const res = await mf.dispatchFetch(url, { redirect: "manual" });
    const body = Buffer.from(await res.arrayBuffer()).toString("latin1");
    expect(res.status, `${label}: ${url}`).toBe(200);
    expect([oldBody, newBody], `${label}: ${url}`).toContain(body);
    if (body === newBody && body !== oldBody) seen.new++;
    else if (body === oldBody && body !== newBody) seen.old++;
  }
  return seen;
}

async function publish(build: SitesBuild, opts: { propagationMs?: number; onWait?: () => Promise<void> } = {}) {
  const plan = await planFromRemote(target, build, { graceMs: GRACE });
  const sleep = async (ms: number) => {
    // Walk the wait in 10 s steps, letting the test look at the locations in between.
    for (let left = ms; left > 0; left -= 10_000) {
      offset += Math.min(10_000, left);
      await opts.onWait?.();
    }
  };
  const result = await applyPlan(target, plan, { propagationMs: opts.propagationMs ?? B, sleep });
  offset += 2000; // one write a second per key
  return { plan, result };
}

/** Changes three pages of two hosts and adds one: the v2 of the example sites. */
function changeSites(): SitesBuild {
  writeFileSync(join(dir, "amber-home.example/rooms/index.html"), "<h1>Rooms, second edition</h1>\n");
  writeFileSync(join(dir, "amber-home.example/index.html"), "<h1>Amber Home, second edition</h1>\n");
  writeFileSync(join(dir, "arctic-music.example/tour/index.html"), "<h1>Tour dates 2027</h1>\n");
  writeFileSync(join(dir, "arctic-music.example/press.html"), "<h1>Press</h1>\n");
  return buildSites(dir, { allowedHosts });
}

describe("a publish seen from locations with delayed visibility", () => {
  it("never answers 404 or 503 for a page that exists, in any location, before, during or after the publish", async () => {
    const v1 = buildSites(dir, { allowedHosts });
    await publish(v1);
    offset += 2 * B;
    // Three locations: one sees writes at once, one 45 s late, one sees tables at once but
    // content 55 s late (replication is per key): all within the 60 s bound.
    const near = await routerAt("near", 0);
    const far = await routerAt("far", 45_000);
    const skew = await routerAt("skew", (key) => (key.startsWith(CONTENT_PREFIX) ? 55_000 : 0));
    const locations = { near, far, skew };
    const p1 = pages(v1);
    for (const [name, mf] of Object.entries(locations)) await checkAll(mf, p1, p1, `${name} before`);

    const v2 = changeSites();
    const p2 = pages(v2);
    const look = async (when: string) => {
      await wait(60); // past the isolates' 50 ms table TTL: every look reads KV again
      for (const [name, mf] of Object.entries(locations)) await checkAll(mf, p1, p2, `${name} ${when}`);
    };
    const { plan } = await publish(v2, { onWait: () => look("while the publish waits out the propagation bound") });
    expect(plan.content.length).toBeGreaterThan(0);
    expect(plan.deletes).toEqual([]); // the old content stays for the grace period
    // A location whose isolate starts only now (no table in memory to fall back on) and
    // that sees tables at once but content 55 s late: only the publisher's wait keeps it
    // from a table naming content it cannot see.
    const cold = await routerAt("cold", (key) => (key.startsWith(CONTENT_PREFIX) ? 55_000 : 0));
    Object.assign(locations, { cold });
    // After the tables are written: walk three minutes in 20 s steps.
    const served = { near: { old: 0, new: 0 }, far: { old: 0, new: 0 }, skew: { old: 0, new: 0 }, cold: { old: 0, new: 0 } };
    for (let t = 0; t <= 180_000; t += 20_000) {
      await wait(60);
      for (const [name, mf] of Object.entries(locations)) {
        const s = await checkAll(mf, p1, p2, `${name} ${t / 1000} s after the tables`);
        served[name as keyof typeof served] = s;
      }
      offset += 20_000;
    }
    // By the end every location serves the new pages (the transition really happened) ...
    for (const s of Object.values(served)) expect(s).toEqual({ old: 0, new: 3 });
    // ... and the page that is new in v2 is served everywhere too.
    for (const mf of Object.values(locations)) {
      const res = await mf.dispatchFetch("http://arctic-music.example/press.html");
      expect([res.status, await res.text()]).toEqual([200, "<h1>Press</h1>\n"]);
    }
  }, 120_000);

  it("without the publisher's wait, a location that sees a table before its content serves the previous table, and never caches the miss for a day", async () => {
    const v1 = buildSites(dir, { allowedHosts });
    await publish(v1);
    offset += 2 * B;
    // Content reaches this location 90 s after the tables do: past the documented bound.
    const skew = await routerAt("skew", (key) => (key.startsWith(CONTENT_PREFIX) ? 90_000 : 0));
    const p1 = pages(v1);
    await checkAll(skew, p1, p1, "before");
    const v2 = changeSites();
    const p2 = pages(v2);
    // The bound violated: tables right after content (as a publish run with
    // --propagation-seconds 0 would, or KV slower than its documented bound).
    await publish(v2, { propagationMs: 0 });
    offset += B + 1000; // the location's cached table (cacheTtl 60) expires: it reads v2's
    await wait(60);
    // The warm isolate falls back to the table it served before: old pages, no 503.
    const during = await checkAll(skew, p1, p2, "content not yet visible");
    expect(during).toEqual({ old: 3, new: 0 });
    const reads = fake.location("skew").reads;
    const newContent = v2.entries.find((e) => e.key.startsWith(CONTENT_PREFIX) && !v1.entries.some((o) => o.key === e.key))!.key;
    // The Worker asked for the new content with a day-long cacheTtl, got a miss (now cached
    // at this location), and asked again with the minimum.
    expect(reads.filter((r) => r.key === newContent).map((r) => [r.cacheTtl, r.found])).toEqual(
      expect.arrayContaining([
        [86400, false],
        [60, false],
      ]),
    );
    // Past the content's arrival (90 s) and the 60 s minimum: the cached miss is re-checked
    // and the new pages are served, not a day later.
    offset += 61_000;
    await wait(60);
    expect(await checkAll(skew, p1, p2, "after the content arrived")).toEqual({ old: 0, new: 3 });
  }, 120_000);

  it("a fresh isolate with no previous table answers 503 in that case: why the publisher waits", async () => {
    const v1 = buildSites(dir, { allowedHosts });
    await publish(v1);
    offset += 2 * B;
    const v2 = changeSites();
    await publish(v2, { propagationMs: 0 });
    const cold = await routerAt("cold", (key) => (key.startsWith(CONTENT_PREFIX) ? 50_000 : 0));
    const res = await cold.dispatchFetch("http://amber-home.example/rooms/");
    expect(res.status).toBe(503);
    await res.arrayBuffer();
    // The same publish with the wait: content is visible everywhere before any table names it.
    const dir2 = readFileSync(join(dir, "amber-home.example/rooms/index.html"), "utf8");
    writeFileSync(join(dir, "amber-home.example/rooms/index.html"), `${dir2}<p>third</p>\n`);
    await publish(buildSites(dir, { allowedHosts }));
    offset += B;
    const cold2 = await routerAt("cold-2", (key) => (key.startsWith(CONTENT_PREFIX) ? 50_000 : 0));
    const ok = await cold2.dispatchFetch("http://amber-home.example/rooms/");
    expect([ok.status, await ok.text()]).toEqual([200, `${dir2}<p>third</p>\n`]);
  }, 120_000);
});
