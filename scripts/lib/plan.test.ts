// `npm run plan` end to end, in-process: options, outputs, exit codes, the git
// base diff with its guard, and zone files. Each test works in a scratch git repo.
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { beforeEach, describe, expect, it } from "vitest";
import { FLEET, METERING, PROFILES, withZone, ZONES } from "../../test/support/inventory.ts";
import { EXIT } from "./exit-codes.ts";
import { runPlan } from "./plan.ts";

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

let root: string;

function write(zones: string) {
  writeFileSync(join(root, "fleet", "zones.yaml"), zones);
}

function git(...args: string[]) {
  execFileSync("git", args, { cwd: root, stdio: "ignore" });
}

async function plan(...argv: string[]) {
  let out = "";
  let err = "";
  const code = await runPlan(argv, { out: (s) => (out += s), err: (s) => (err += s), root });
  return { code, out, err };
}

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), "edgefleet-plan-"));
  mkdirSync(join(root, "fleet"));
  // A fleet of three zones: any change touches a third of it, so allow up to 70%.
  writeFileSync(join(root, "fleet", "fleet.yaml"), `${FLEET}guard:\n  maxFleetShare: 0.7\n`);
  writeFileSync(join(root, "fleet", "profiles.yaml"), PROFILES);
  writeFileSync(join(root, "fleet", "metering.yaml"), METERING);
  write(ZONES);
  writeFileSync(join(root, "Pulumi.prod.yaml"), "config:\n  edgefleet:accountId: feedfacefeedfacefeedfacefeedface\n  edgefleet:inventory: fleet\n");
  git("init", "-q", "-b", "main");
  git("-c", "user.name=t", "-c", "user.email=t@t.example", "add", ".");
  git("-c", "user.name=t", "-c", "user.email=t@t.example", "commit", "-q", "-m", "base");
});

describe("npm run plan", () => {
  it("prints help and exits 0", async () => {
    const r = await plan("--help");
    expect(r.code).toBe(EXIT.ok);
    for (const flag of ["--inventory", "--json", "--zone", "--base", "--zone-files", "--force", "--stack"]) expect(r.out).toContain(flag);
  });

  it("refuses an unknown option with exit 2", async () => {
    const r = await plan("--frobnicate");
    expect(r.code).toBe(EXIT.usage);
    expect(r.err).toContain("unknown option '--frobnicate'");
  });

  it("summarises zones per profile, records per type and totals", async () => {
    const r = await plan();
    expect(r.code).toBe(EXIT.ok);
    expect(r.out).toContain("account feedfacefeedfacefeedfacefeedface");
    expect(r.out).toMatch(/│ parked\s+│ 1\s+│/);
    expect(r.out).toMatch(/│ CAA\s+│ \d+\s+│/);
    expect(r.out).toMatch(/Totals: 3 zones \(0 to create\), \d+ DNS records/);
  });

  it("prints JSON that matches the human summary", async () => {
    const r = await plan("--json");
    const j = JSON.parse(r.out);
    expect(j.accountId).toBe("feedfacefeedfacefeedfacefeedface");
    expect(j.summary.zones).toBe(3);
    expect(j.summary.zonesByProfile).toEqual({ "mail-fastmail": 1, parked: 1, web: 1 });
    expect(j.summary.records).toBe(Object.values(j.summary.recordsByType as Record<string, number>).reduce((a, b) => a + b, 0));
  });

  it("shows one zone in detail", async () => {
    const r = await plan("--zone", "site.example", "--json");
    const j = JSON.parse(r.out);
    expect(j.zone.name).toBe("site.example");
    expect(j.zone.resources.map((x: { name: string }) => x.name)).toContain("site.example/TXT/_dmarc/dmarc");
    const human = await plan("--zone", "site.example");
    expect(human.out).toContain("site.example/MX/@/null");
  });

  it("exits 2 for a zone that is not in the inventory", async () => {
    const r = await plan("--zone", "nope.example");
    expect(r.code).toBe(EXIT.usage);
    expect(r.err).toContain("no zone 'nope.example'");
  });

  it("exits 1 with located problems, and no stack trace, for an invalid inventory", async () => {
    write(withZone("  - name: bad.example\n    profile: parkd\n"));
    const r = await plan();
    expect(r.code).toBe(EXIT.invalid);
    expect(r.err).toContain("fleet/zones.yaml:13:14: zones[3].profile: unknown profile 'parkd'");
    expect(r.err).not.toMatch(/\n\s+at /);
    const j = JSON.parse((await plan("--json")).out);
    expect(j.problems[0]).toMatchObject({ file: "fleet/zones.yaml", line: 13, column: 14, path: "zones[3].profile" });
  });

  it("diffs against a git revision and accepts a small change", async () => {
    write(withZone("  - name: n.example\n    id: b0000000000000000000000000000004\n    profile: parked\n"));
    const r = await plan("--base", "HEAD", "--json");
    const j = JSON.parse(r.out);
    expect(r.code).toBe(EXIT.ok);
    // 9 records of a parked zone (7 at the apex, 2 at its wildcard) and its report authorisation.
    expect(j.diff.totals).toMatchObject({ added: 10, changed: 0, removed: 0, zonesTouched: 2 });
    expect(j.guard).toMatchObject({ ok: true, forced: false, violations: [] });
  });

  it("refuses with exit 3 what the guard refuses, and accepts it with --force", async () => {
    // Removing a zone removes all of its records.
    write(ZONES.split("  - name: site.example")[0]!);
    const r = await plan("--base", "HEAD");
    expect(r.code).toBe(EXIT.refused);
    expect(r.err).toContain("site.example: removes the zone and all");
    expect(r.err).toContain("--force");
    expect(r.out).toContain("Safety guard: refused");
    const forced = await plan("--base", "HEAD", "--force");
    expect(forced.code).toBe(EXIT.ok);
    expect(forced.out).toContain("Safety guard: forced");
  });

  it("refuses a commit that only loosens the guard, so the next change is still judged by the base's limits", async () => {
    writeFileSync(join(root, "fleet", "fleet.yaml"), `${FLEET}guard:\n  maxFleetShare: 1\n  maxZoneChangeShare: 1\n`);
    const loosen = await plan("--base", "HEAD");
    expect(loosen.code).toBe(EXIT.refused);
    expect(loosen.err).toContain("the change loosens the guard: fleet.yaml guard.maxZoneChangeShare 30% -> 100%");
    expect(loosen.err).toContain("guard.maxFleetShare 70% -> 100%");
    // Loosening and removing a zone in one change: the removal is judged by the base's 30%.
    write(ZONES.split("  - name: site.example")[0]!);
    const both = await plan("--base", "HEAD", "--json");
    expect(both.code).toBe(EXIT.refused);
    expect(JSON.parse(both.out).guard.violations).toEqual([
      expect.stringContaining("guard.maxZoneChangeShare"),
      expect.stringContaining("guard.maxFleetShare"),
      expect.stringMatching(/^site\.example: removes the zone and all \d+ managed records \(100% > 30% allowed per zone\)$/),
    ]);
    expect((await plan("--base", "HEAD", "--force")).code).toBe(EXIT.ok);
  });

  it("counts records added at posture-sensitive names against the guard, and says so", async () => {
    // parked-one.example has 9 managed records (7 at the apex, `* MX 0 .` and `* TXT
    // "v=spf1 -all"; a few more if its profile grows); four SPF, DMARC, wildcard and DKIM
    // additions are well over 30% of them. The `*` A record keeps the posture's null MX
    // and SPF -all at `*` (the same records, now beside an address), so nothing else moves.
    const extra = [
      "{ type: TXT, name: mail, content: \"v=spf1 include:x.example -all\" }",
      "{ type: TXT, name: _dmarc.mail, content: \"v=DMARC1; p=reject; sp=reject; adkim=s; aspf=s\" }",
      "{ type: A, name: \"*\", content: 192.0.2.7 }",
      "{ type: TXT, name: s1._domainkey, content: \"v=DKIM1; p=\" }",
    ];
    write(ZONES.replace(/(  - name: parked-one\.example\n(?:    .*\n)*?)(?=  - name:|$)/, (m) => `${m}    records:\n${extra.map((e) => `      - ${e}\n`).join("")}`));
    const r = await plan("--base", "HEAD");
    expect(r.code, r.err).toBe(EXIT.refused);
    expect(r.err).toMatch(/parked-one\.example: rewrites 4 of its \d+ managed records \(0 changed, 0 removed, 4 added at posture-sensitive names/);
    expect(r.out).toMatch(/parked-one\.example.*4 \(4 posture-sensitive\)/);
  });

  it("exits 2 for a git revision that does not exist", async () => {
    const r = await plan("--base", "no-such-branch");
    expect(r.code).toBe(EXIT.usage);
    expect(r.err).toContain("--base no-such-branch");
  });

  it("exits 1 when the inventory at the base revision is invalid", async () => {
    write(withZone("  - name: bad.example\n    profile: parkd\n"));
    git("-c", "user.name=t", "-c", "user.email=t@t.example", "commit", "-qam", "broken");
    write(ZONES);
    const r = await plan("--base", "HEAD");
    expect(r.code).toBe(EXIT.invalid);
    expect(r.err).toContain("HEAD:fleet/zones.yaml:13:14");
  });

  it("runs the policy pack over the desired state and exits 4 on a violation", async () => {
    // A parked zone lets no CA issue; a proxied record there would need Cloudflare's CAs.
    write(withZone("  - name: p.example\n    profile: parked\n    records:\n      - { type: A, name: shop, content: 192.0.2.9, proxied: true }\n"));
    const r = await plan("--json");
    expect(r.code).toBe(EXIT.policy);
    const j = JSON.parse(r.out);
    expect(j.findings[0]).toMatchObject({ level: "error", code: "caa-allows-cloudflare-cas" });
    expect(j.findings[0].message).toContain("p.example is proxied but its CAA does not allow letsencrypt.org");
    expect(r.err).toContain("1 policy violation(s)");
  });

  it("lists the Workers' stores and triggers: the usage Queue with its producers and consumer, the DLQ, D1, the archive bucket's retention, the cron", async () => {
    writeFileSync(
      join(root, "fleet", "fleet.yaml"),
      `${FLEET}workers:\n  - script: plan-proxy\n    source: llm-proxy\n    domains: [api.ops.example]\n    secrets: { ANTHROPIC_API_KEY: k, OPERATOR_TOKEN: t }\n  - script: plan-ledger\n    source: usage-ledger\n`,
    );
    const r = await plan("--json");
    expect(r.code).toBe(EXIT.ok);
    const stores = JSON.parse(r.out).stores as { kind: string; name: string; detail: string }[];
    const of = (kind: string, name: string) => stores.find((x) => x.kind === kind && x.name === name)?.detail;
    expect(of("Queue", "edgefleet-usage")).toBe("produced as USAGE_EVENTS by plan-proxy; consumed by plan-ledger");
    expect(of("Queue", "edgefleet-usage-dlq")).toBe("produced as DEAD_LETTERS by plan-ledger; consumed by HTTP pull (npm run dead-letters); dead-letter queue of plan-ledger; messages kept 14 days");
    expect(of("Queue consumer", "edgefleet-usage -> plan-ledger")).toBe("batch 100, wait 5 s, 10 retries, retry delay 30 s, concurrency 5, DLQ edgefleet-usage-dlq");
    expect(of("Queue consumer", "edgefleet-usage-dlq -> HTTP pull (npm run dead-letters)")).toBe("100 retries, visibility timeout 600 s, no DLQ");
    expect(of("R2 bucket", "edgefleet-archive")).toBe("bound as ARCHIVE by plan-proxy; lifecycle: objects deleted after 7 days");
    expect(of("D1 database", "edgefleet-usage")).toBe("bound as DB by plan-ledger; schema: npm run d1-migrations");
    expect(of("Cron trigger", "plan-ledger")).toBe("17 * * * *");
    expect((await plan()).out).toMatch(/Queue consumer\s+│ edgefleet-usage -> plan-ledger/);
  });

  it("shows each Worker's Durable Object migration tags (table, --zone and --json)", async () => {
    writeFileSync(join(root, "fleet", "fleet.yaml"), `${FLEET}workers:\n  - script: plan-proxy\n    source: llm-proxy\n    domains: [api.ops.example]\n    secrets: { ANTHROPIC_API_KEY: k, OPERATOR_TOKEN: t }\n`);
    const j = JSON.parse((await plan("--json")).out);
    const proxy = j.workers.find((w: { script: string }) => w.script === "plan-proxy");
    expect(proxy.migrations).toEqual({ tags: ["v1"], latest: "v1" });
    expect(j.workers.find((w: { source: string }) => w.source === "router").migrations).toEqual({ tags: [], latest: null });
    expect((await plan()).out).toMatch(/DO migrations/);
    const zone = await plan("--zone", "ops.example");
    expect(zone.out).toMatch(/plan-proxy\s+workers\/llm-proxy\s+migrations v1/);
    // ops.example receives mail, so the router serves it too: its MTA-STS policy host
    // (mta-sts.ops.example) is a custom domain of the router, which has no Durable Objects.
    expect(zone.out).toMatch(/edgefleet-router\s+workers\/router\s+migrations -/);
    expect(JSON.parse((await plan("--zone", "ops.example", "--json")).out).zone.workers.map((w: { script: string; migrations: unknown }) => [w.script, w.migrations])).toEqual([
      ["edgefleet-router", { tags: [], latest: null }],
      ["plan-proxy", { tags: ["v1"], latest: "v1" }],
    ]);
    // A zone no Worker serves lists none.
    expect(JSON.parse((await plan("--zone", "parked-one.example", "--json")).out).zone.workers).toEqual([]);
  });

  it("shows resources per DNS shard, and plans one shard's stack with --shard", async () => {
    writeFileSync(join(root, "fleet", "fleet.yaml"), `${FLEET}stacks:\n  shards: [dns-a, dns-b]\n`);
    const all = JSON.parse((await plan("--json")).out);
    expect(Object.keys(all.shards)).toEqual(["dns-a", "dns-b"]);
    expect(all.shards["dns-a"].zones + all.shards["dns-b"].zones).toBe(3);
    // Shards split the resources; Worker components (no cloud resource) may be declared in
    // both, to hold the routes of each shard's zones.
    const sum = all.shards["dns-a"].resources + all.shards["dns-b"].resources;
    expect(sum).toBeGreaterThanOrEqual(all.summary.resources);
    expect(sum - all.summary.resources).toBeLessThanOrEqual(2 * all.workers.length);
    const one = JSON.parse((await plan("--json", "--shard", "dns-a")).out);
    expect(one.summary.zones).toBe(all.shards["dns-a"].zones);
    expect(one.summary.resources).toBe(all.shards["dns-a"].resources);
    expect((await plan()).out).toMatch(/│ dns-a\s+│ \d+\s+│ \d+\s+│/);
    const bad = await plan("--shard", "dns-z");
    expect(bad.code).toBe(EXIT.usage);
    expect(bad.err).toContain("shard 'dns-z' is not one of fleet.yaml's stacks.shards (dns-a, dns-b)");
  });

  it("writes one BIND zone file per zone", async () => {
    const r = await plan("--zone-files", "out");
    expect(r.code).toBe(EXIT.ok);
    expect(readdirSync(join(root, "out")).sort()).toEqual(["ops.example.zone", "parked-one.example.zone", "site.example.zone"]);
    expect(readFileSync(join(root, "out", "parked-one.example.zone"), "utf8")).toContain("@\t3600\tIN\tMX\t0 .");
  });
});

describe("the plan of the bundled example fleet (the main job)", () => {
  it("plans at least 300 zones with every profile and exits 0", async () => {
    let out = "";
    const code = await runPlan(["--json"], { out: (s) => (out += s), err: () => {}, root: REPO });
    expect(code).toBe(EXIT.ok);
    const j = JSON.parse(out);
    expect(j.summary.zones).toBeGreaterThanOrEqual(300);
    expect(Object.keys(j.summary.zonesByProfile).sort()).toEqual(["mail-fastmail", "mail-google", "mail-m365", "parked", "web"]);
  });
});
