// `npm run sites` end to end: the command line, the build and the publisher, against
// the FAKE KV API on loopback (test/fakes/cloudflare-kv-api.ts).
import { cpSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { runSites, SITES_EXIT } from "./cli.ts";
import { FakeKvApi } from "../../../test/fakes/cloudflare-kv-api.ts";

let fake: FakeKvApi;
let baseURL: string;
let sites: string;
/** The waits the CLI asked for (propagation bound, lease); they move the fake's clock instead of sleeping. */
let waits: number[];
let serverClock = 0;
let duringWait: (() => Promise<void>) | undefined;

beforeEach(async () => {
  fake = new FakeKvApi({ token: "cli-test-token-s3cret" });
  waits = [];
  duringWait = undefined;
  serverClock = 1_800_000_000_000;
  fake.now = () => serverClock;
  baseURL = await fake.start();
  sites = mkdtempSync(join(tmpdir(), "edgefleet-sites-"));
  cpSync("fleet/sites", sites, { recursive: true });
});
afterEach(async () => {
  await fake.stop();
  rmSync(sites, { recursive: true, force: true });
});

const run = (...args: string[]) => runWith({ CLOUDFLARE_API_TOKEN: fake.token }, ...args);

async function runWith(env: Record<string, string>, ...args: string[]) {
  let out = "";
  let err = "";
  const code = await runSites(args, {
    out: (s) => (out += s),
    err: (s) => (err += s),
    root: process.cwd(),
    env,
    sleep: async (ms) => {
      waits.push(ms);
      serverClock += ms;
      const hook = duringWait;
      duringWait = undefined;
      await hook?.();
    },
  });
  serverClock += 2000; // KV allows one write a second to a key
  return { code, out, err };
}

const publish = (...extra: string[]) =>
  run("publish", "--sites", sites, "--account-id", fake.accountId, "--namespace-id", fake.namespaceId, "--api-base-url", baseURL, ...extra);

describe("sites build", () => {
  it("prints the manifest as JSON", async () => {
    const { code, out } = await run("build", "--sites", sites, "--json");
    expect(code).toBe(0);
    const json = JSON.parse(out) as { hash: string; entries: number; manifest: { hosts: { host: string }[] } };
    expect(json.hash).toMatch(/^[0-9a-f]{64}$/);
    expect(json.manifest.hosts.map((h) => h.host)).toContain("llm-gateway.example");
    expect(json.entries).toBeGreaterThan(json.manifest.hosts.length);
  });

  it("exits 1 naming the directory of an unknown host", async () => {
    mkdirSync(join(sites, "stranger.example"));
    writeFileSync(join(sites, "stranger.example/index.html"), "x");
    const { code, out, err } = await run("build", "--sites", sites);
    expect(code).toBe(SITES_EXIT.invalid);
    expect(out).toBe("");
    expect(err).toContain(`${join(sites, "stranger.example")}: unknown host 'stranger.example'`);
  });
});

describe("sites publish", () => {
  it("--dry-run lists what would change and writes nothing", async () => {
    const { code, out } = await publish("--dry-run", "--json");
    expect(code).toBe(0);
    const plan = JSON.parse(out) as { dryRun: boolean; write: number; writeHosts: string[]; delete: string[] };
    expect(plan.dryRun).toBe(true);
    expect(plan.write).toBeGreaterThan(0);
    expect(plan.writeHosts).toContain("host:llm-gateway.example");
    expect(fake.store.size).toBe(0);
    expect(fake.requests.every((r) => r.method === "GET")).toBe(true);
  });

  it("publishes, then has nothing to do", async () => {
    const first = await publish();
    expect(first.code).toBe(0);
    expect(first.out).toMatch(/^published build [0-9a-f]{16}: \d+ written, 0 deleted, 0 unchanged/);
    const second = await publish();
    expect(second.out).toMatch(/: 0 written, 0 deleted, \d+ unchanged, 0 kept for the grace period \(0 request\(s\)\)/);
    expect(first.out + first.err + second.out + second.err).not.toContain(fake.token);
  });

  it("refuses to delete many published hosts without --force, and changes nothing", async () => {
    await publish();
    const before = new Map(fake.store);
    for (const host of ["amber-home.example", "arctic-music.example", "aurora-press.example"]) rmSync(join(sites, host), { recursive: true });
    const refused = await publish();
    expect(refused.code).toBe(SITES_EXIT.refused);
    // 3 sites and their www. redirects, of the 12 site hosts. The 17 MTA-STS policy hosts
    // of the zones that receive mail (issue 15.6) are published too, but judged apart.
    expect(refused.err).toMatch(/refused: it would remove 6 of 12 published site hosts \(amber-home\.example, arctic-music\.example/);
    expect(refused.err).not.toContain("MTA-STS");
    expect(new Map(fake.store)).toEqual(before);
    const forced = await publish("--force");
    expect(forced.code).toBe(0);
    expect([...fake.store.keys()].filter((k) => k.startsWith("host:"))).toHaveLength(23);
    expect([...fake.store.keys()].filter((k) => k.startsWith("host:mta-sts."))).toHaveLength(17);
  });

  it("refuses a wrong --sites directory: the same hosts with other pages (rewritten), and changes nothing", async () => {
    await publish();
    const before = new Map(fake.store);
    // An old checkout, say: every HTML page of every site differs.
    for (const f of readdirSync(sites, { recursive: true, encoding: "utf8" })) {
      if (f.endsWith(".html")) writeFileSync(join(sites, f), `<p>stale copy of ${f}</p>\n`);
    }
    const refused = await publish();
    expect(refused.code).toBe(SITES_EXIT.refused);
    expect(refused.err).toMatch(/refused: it would rewrite 7 of 12 published site hosts .*is --sites the right directory\?/);
    expect(new Map(fake.store)).toEqual(before);
    const dry = JSON.parse((await publish("--dry-run", "--json")).out) as { hostsRewritten: string[]; refused?: boolean; guard: unknown };
    expect(dry.refused).toBe(true);
    expect(dry.hostsRewritten).toContain("amber-home.example");
    // The policy hosts come from the inventory, which did not change: untouched.
    expect(dry.guard).toEqual([
      { group: "sites", before: 12, touched: 7 },
      { group: "mta-sts", before: 17, touched: 0 },
    ]);
  });

  it("refuses emptying hosts (a directory whose pages are gone) like deleting them", async () => {
    await publish();
    for (const host of ["amber-home.example", "aurora-press.example", "fabrikam-studio.example"]) {
      for (const f of readdirSync(join(sites, host), { recursive: true, encoding: "utf8" })) {
        if (f !== "_redirects" && !statSync(join(sites, host, f)).isDirectory()) rmSync(join(sites, host, f));
      }
    }
    // 3 of 12 site hosts is 25%. Counted among all 29 published hosts (with the 17
    // MTA-STS policy hosts) it would be 10% and pass: the policies must not dilute the share.
    const refused = await publish();
    expect(refused.code).toBe(SITES_EXIT.refused);
    expect(refused.err).toMatch(/refused: it would empty 3 of 12 published site hosts \(amber-home\.example, aurora-press\.example, fabrikam-studio\.example\)/);
  });

  it("judges the MTA-STS policy hosts on their own: dropping many at once is refused", async () => {
    await publish();
    // As if the last publish ran with an inventory of more zones that receive mail: policy
    // hosts this build no longer has (classed by their name, mta-sts.<zone>) are deleted.
    const policy = [...fake.store.entries()].find(([k]) => k.startsWith("host:mta-sts."))!;
    const seed = (n: number) => {
      for (let i = 0; i < n; i++) fake.seed(`host:mta-sts.former-${i}.example`, policy[1]);
    };
    seed(5);
    const before = new Map(fake.store);
    const refused = await publish();
    expect(refused.code).toBe(SITES_EXIT.refused);
    // 5 of 22 is 22.7%; among all 34 published hosts it would be 14.7% and pass.
    expect(refused.err).toMatch(/^sites publish: refused: it would remove 5 of 22 published MTA-STS policy hosts \(mta-sts\.former-0\.example, mta-sts\.former-1\.example, .*mta-sts\.former-4\.example\); they come from the inventory/);
    expect(refused.err).not.toContain("site hosts");
    expect(new Map(fake.store)).toEqual(before);
    const dry = JSON.parse((await publish("--dry-run", "--json")).out) as { guard: unknown };
    expect(dry.guard).toEqual([
      { group: "sites", before: 12, touched: 0 },
      { group: "mta-sts", before: 22, touched: 5 },
    ]);
    // 4 of 21 (19%) is an ordinary change: they are deleted.
    fake.seed("host:mta-sts.former-4.example", undefined);
    const ok = await publish();
    expect(ok.code, ok.err).toBe(0);
    expect([...fake.store.keys()].filter((k) => k.startsWith("host:mta-sts."))).toHaveLength(17);
  });

  it("does not count a one-page change on every site as a rewrite", async () => {
    await publish();
    for (const host of ["amber-home.example", "arctic-music.example", "aurora-press.example", "fabrikam-studio.example", "llm-gateway.example", "northwind-traders.example"]) {
      writeFileSync(join(sites, host, "index.html"), `<h1>${host}, new front page</h1>\n`);
    }
    const res = await publish();
    expect(res.code).toBe(0);
    expect(res.out).toMatch(/: 12 written/);
  });

  it("exits 4 on an API failure and names the way to resume", async () => {
    const { code, err } = await run(
      "publish", "--sites", sites, "--account-id", fake.accountId, "--namespace-id", "0000", "--api-base-url", baseURL,
    );
    expect(code).toBe(SITES_EXIT.api);
    expect(err).toContain("listing the namespace's keys failed: HTTP 404 (10013");
    expect(err).not.toContain(fake.token);
  });

  it("exits 4 when a write fails halfway, and a re-run finishes the publish", async () => {
    // The first bulk writes (the lease, then all content) go through; the host tables' write fails.
    fake.failBulkWritesFrom = 3;
    fake.failureRetryAfter = "0"; // the CLI's SDK retries 5 times; do not sit out its back-off
    const failed = await publish();
    expect(failed.code).toBe(SITES_EXIT.api);
    expect(failed.err).toMatch(/sites publish: writing \d+ hosts key\(s\) failed after \d+ written: HTTP 500 .*run publish again to resume/);
    expect([...fake.store.keys()].some((k) => k.startsWith("host:"))).toBe(false);
    const contentKeys = fake.store.size;
    fake.failBulkWritesFrom = undefined;
    const dry = await publish("--dry-run", "--json");
    const plan = JSON.parse(dry.out) as { writeContent: string[]; writeHosts: string[]; unchanged: number };
    expect(plan.writeContent).toEqual([]);
    expect(plan.unchanged).toBe(contentKeys);
    const rerun = await publish();
    expect(rerun.code).toBe(0);
    expect(rerun.out).toMatch(new RegExp(`: ${plan.writeHosts.length} written, 0 deleted, ${contentKeys} unchanged`));
    const again = await publish();
    expect(again.out).toMatch(/: 0 written, 0 deleted/);
  });

  it("exits 2 when the API base would carry the token in the clear, before any request", async () => {
    const { code, err } = await runWith({ CLOUDFLARE_API_TOKEN: "t0ken-secret", CLOUDFLARE_ACCOUNT_ID: "a".repeat(32) }, "publish", "--sites", sites, "--namespace-id", "x", "--api-base-url", "http://192.0.2.9/client/v4");
    expect(code).toBe(SITES_EXIT.usage);
    expect(err).toContain("--api-base-url: http:// is refused");
    expect(fake.requests).toEqual([]);
  });

  it("exits 2 when the token or ids are missing", async () => {
    const { code, err } = await runWith({}, "publish", "--sites", sites, "--namespace-id", "x");
    expect(code).toBe(SITES_EXIT.usage);
    expect(err).toContain("CLOUDFLARE_API_TOKEN");
    expect(fake.requests).toEqual([]);
  });
});
