// `npm run import` against a stateful fake of the Cloudflare API on loopback
// (test/fakes/cloudflare-dns-api.ts), seeded from the example fleet's desired
// state plus records edgefleet does not manage and one zone that matches no profile.
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { deriveDesiredState } from "../../../stacks/model/desired.ts";
import { fqdn } from "../../../stacks/model/dns.ts";
import { loadInventory, loadInventoryOrThrow } from "../../../stacks/model/load.ts";
import { TYPES } from "../../../stacks/model/names.ts";
import { rdata, type DnsRec } from "../../../stacks/model/posture.ts";
import { startFakeCloudflare, type FakeCloudflare } from "../../../test/fakes/cloudflare-dns-api.ts";
import { EXIT } from "../exit-codes.ts";
import { IMPORT_EXIT, runImport } from "./cli.ts";
import { ACCOUNT, LEGACY, seed, TOKEN } from "../../../test/fakes/cloudflare-dns-account.ts";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
const inventory = loadInventoryOrThrow(join(ROOT, "fleet"));
const desired = deriveDesiredState(inventory, { accountId: ACCOUNT });

let fake: FakeCloudflare | undefined;
afterEach(async () => {
  await fake?.close();
  fake = undefined;
});

async function run(...argv: string[]) {
  let out = "";
  let err = "";
  const code = await runImport(argv, { out: (s) => (out += s), err: (s) => (err += s), root: ROOT, env: { CLOUDFLARE_API_TOKEN: TOKEN } });
  return { code, out, err };
}

const key = (r: { type: string; name: string; value: string }) => `${r.type} ${r.name} ${r.value}`;

describe("import from a Cloudflare account", () => {
  it("writes an inventory that validates, whose plan equals the account, and an import file naming every adopted record", async () => {
    const s = seed(desired);
    fake = await startFakeCloudflare({ token: TOKEN, maxPerPage: { zones: 50, records: 7 }, rateLimitAt: [{ request: 3, retryAfter: 1 }] }, s.zones, s.records);
    const out = join(mkdtempSync(join(tmpdir(), "edgefleet-import-")), "imported");
    const r = await run("--api-url", fake.baseURL, "--account", ACCOUNT, "--out", out, "--json");
    expect(r.err).toBe("");
    expect(r.code).toBe(IMPORT_EXIT.ok);

    // The generated inventory validates with the real loader.
    const loaded = loadInventory(out);
    if (!loaded.ok) throw new Error(loaded.problems.map((p) => `${p.file}:${p.line} ${p.path} ${p.message}`).join("\n"));
    const gen = loaded.inventory;

    // Every zone the fleet had is adopted with the profile the fleet gave it; the hand-made zone is not.
    const report = JSON.parse(r.out) as { zones: { zone: string; profile?: string; reason?: string }[]; unmanaged: { zone: string; type: string; name: string; value: string; why: string }[] };
    for (const z of inventory.zones.filter((x) => x.id)) {
      expect(gen.zones.find((g) => g.name === z.name)?.profile, z.name).toBe(z.profile);
    }
    expect(gen.zones.map((z) => z.name)).not.toContain(LEGACY.name);
    expect(report.zones.find((z) => z.zone === LEGACY.name)!.reason).toMatch(/match no profile/);
    const gw = gen.zones.find((z) => z.name === "llm-gateway.example")!;
    expect(gw.overrides.caa?.issue).toEqual(["digicert.com"]);
    expect(gen.zones.find((z) => z.name === "llm-gateway-eu.example")!.overrides.ttl).toBe(300);
    expect(gen.zones.find((z) => z.name === "fabrikam-studio.example")!.overrides.web).toBe("proxied");
    expect(gen.zones.find((z) => z.name === "contoso-legal.example")!.vars).toEqual({
      m365Mx: "contosolegal-example01c.mail.protection.outlook.com",
      m365Dkim1: "selector1-contosolegal-example01c._domainkey.contosolegal.onmicrosoft.com",
      m365Dkim2: "selector2-contosolegal-example01c._domainkey.contosolegal.onmicrosoft.com",
    });
    // The MTA-STS mode is read back from the policy id the zone publishes.
    expect(gen.zones.find((z) => z.name === "fabrikam-studio.example")!.overrides.mtaSts).toBe("enforce");
    expect(gen.zones.find((z) => z.name === "contoso-legal.example")!.overrides.mtaSts).toBeUndefined();
    expect(gen.zones.find((z) => z.name === "alpine-bikes.example")!.records).toEqual([{ type: "A", name: "legacy", content: "192.0.2.55", ttl: 600 }]);

    // Records edgefleet must not manage are listed as such, and left alone by ignore rules.
    const unmanaged = report.unmanaged.map(key).sort();
    expect(unmanaged).toEqual(
      [
        "CNAME legacy-api old-stack.hosting.example.",
        "HTTPS svc 1 . alpn=h2",
        "NS @ ns1.cloudflare.example",
        "NS dev ns1.dev-dns.example",
        "TXT _acme-challenge certbot-token-1",
      ].sort(),
    );
    expect(gw.ignore).toEqual(expect.arrayContaining([{ type: "NS", name: "dev" }, { type: "HTTPS", name: "svc" }]));

    // The plan of the generated inventory has exactly the account's records (less the unmanaged), zone by zone.
    const plan = deriveDesiredState(gen, { accountId: ACCOUNT });
    const leave = new Set(report.unmanaged.map((u) => `${u.zone} ${key(u)}`));
    for (const z of gen.zones) {
      const planned = plan.resources.filter((x) => x.zone === z.name && x.record).map((x) => `${x.record!.type} ${x.record!.name} ${rdata(x.record!)}`).sort();
      const acct = s.records.get(z.id!)!.map((x) => {
        const name = x.name === z.name ? "@" : x.name.slice(0, -z.name.length - 1);
        const rec = { zone: z.name, type: x.type, name, content: x.type === "TXT" ? JSON.parse(x.content!) : x.content, priority: x.priority, caa: x.type === "CAA" ? x.data : undefined, srv: x.type === "SRV" ? x.data : undefined } as DnsRec;
        return `${x.type} ${name} ${rdata(rec)}`;
      }).filter((k) => !leave.has(`${z.name} ${k}`)).sort();
      expect(planned, z.name).toEqual(acct);
    }

    // The import file names every adopted record with <zone_id>/<record_id> and its logical name.
    const file = JSON.parse(readFileSync(join(out, "pulumi-import.json"), "utf8")) as { resources: { type: string; name: string; id?: string; parent?: string; component?: boolean }[] };
    const imported = new Map(file.resources.filter((x) => x.type === TYPES.dnsRecord).map((x) => [x.name, x]));
    const planRecords = plan.resources.filter((x) => x.record);
    expect(imported.size).toBe(planRecords.length);
    const byId = new Map([...s.records.values()].flat().map((x) => [`${x.zone_id}/${x.id}`, x]));
    for (const res of planRecords) {
      const entry = imported.get(res.name);
      expect(entry, res.name).toBeDefined();
      const api = byId.get(entry!.id!);
      expect(api, res.name).toBeDefined();
      expect([api!.type, api!.name], res.name).toEqual([res.record!.type, fqdn(res.record!.name, res.zone)]);
      expect(entry!.parent).toBe(res.zone);
    }
    expect(file.resources.filter((x) => x.component).map((x) => x.name).sort()).toEqual(gen.zones.map((z) => z.name).sort());
    // Components come before the records they parent.
    const firstRecord = file.resources.findIndex((x) => x.type === TYPES.dnsRecord);
    expect(file.resources.findIndex((x) => x.component && x.name === "zzz-not-there")).toBe(-1);
    expect(file.resources[0]!.component).toBe(true);
    expect(firstRecord).toBeGreaterThan(0);

    // The API was read page by page, the 429 was retried, and only GETs were sent with the token.
    expect(fake.requests.every((q) => q.method === "GET")).toBe(true);
    expect(fake.requests.filter((q) => q.status === 429)).toHaveLength(1);
    // The limited request was sent again, not before its retry-after (1 s) had passed, and then served.
    const limited = fake.requests.findIndex((q) => q.status === 429);
    const same = (q: { path: string; query: Record<string, string> }) => q.path === fake!.requests[limited]!.path && JSON.stringify(q.query) === JSON.stringify(fake!.requests[limited]!.query);
    const retry = fake.requests.slice(limited + 1).find(same)!;
    expect(retry.status).toBe(200);
    expect(retry.at - fake.requests[limited]!.at).toBeGreaterThanOrEqual(1000);
    expect(fake.requests.some((q) => q.path.endsWith("/dns_records") && q.query.page === "3")).toBe(true);
    expect(fake.requests.filter((q) => q.path === "/client/v4/zones" && q.status === 200).length).toBe(Math.ceil(s.zones.length / 50));
    expect(r.out + r.err + readFileSync(join(out, "zones.yaml"), "utf8")).not.toContain(TOKEN);
  }, 60_000);

  it("stays within the request budget per window", async () => {
    const s = seed(desired);
    fake = await startFakeCloudflare({ token: TOKEN, maxPerPage: { zones: 50, records: 4 } }, s.zones, s.records);
    const out = join(mkdtempSync(join(tmpdir(), "edgefleet-import-")), "imported");
    // fleet.yaml's Workers route on both llm-gateway zones, and its DMARC reports go to
    // ops-mail.example (reports may not leave the fleet): the written inventory must hold them to validate.
    const zones = ["tailspin-travel.example", "alpine-bikes.example", "llm-gateway.example", "llm-gateway-eu.example", "ops-mail.example"];
    const r = await run("--api-url", fake.baseURL, "--out", out, "--max-requests", "5", "--rate-window-ms", "800", "--concurrency", "3", ...zones.flatMap((z) => ["--zone", z]));
    expect(r.code).toBe(IMPORT_EXIT.ok);
    expect(fake.requests.length).toBeGreaterThan(15);
    // Any 500 ms of the server's log (well under the 800 ms window: a loaded machine delays
    // requests on their way) holds at most 5 requests.
    const at = fake.requests.map((q) => q.at);
    for (const t of at) expect(at.filter((u) => u >= t && u < t + 500).length).toBeLessThanOrEqual(5);
    // Without the limiter the same reads come in one burst: the check above would catch it.
    expect(at.filter((u) => u < at[0]! + 500).length).toBe(5);
  }, 30_000);

  it("says so, with file and line, when the written inventory does not validate (exit 1)", async () => {
    const s = seed(desired);
    fake = await startFakeCloudflare({ token: TOKEN }, s.zones, s.records);
    const out = join(mkdtempSync(join(tmpdir(), "edgefleet-import-")), "imported");
    // The example fleet.yaml routes Workers on the llm-gateway zones; importing only another zone
    // leaves those routes pointing at zones the written inventory does not have.
    expect(readFileSync(join(ROOT, "fleet", "fleet.yaml"), "utf8")).toMatch(/^workers:[\s\S]*llm-gateway(-eu)?\.example/m);
    const r = await run("--api-url", fake.baseURL, "--out", out, "--zone", "alpine-bikes.example");
    expect(r.code).toBe(IMPORT_EXIT.invalid);
    expect(r.err).toMatch(/the generated inventory does not validate, so nothing was written to .*imported/);
    // Nothing was written: a failed import leaves --out as it was.
    expect(existsSync(out)).toBe(false);
    expect(r.err).toMatch(/imported\/fleet\.yaml:\d+:\d+: workers\[\d+\]\.(routes|domains)\[\d+\]: '[a-z.-]*llm-gateway(-eu)?\.example' is in no zone of the inventory/);
  });

  it("refuses to write into the inventory it reads (exit 2), before calling the API", async () => {
    const r = await run("--api-url", "http://127.0.0.1:9", "--out", "fleet", "--force");
    expect(r.code).toBe(EXIT.usage);
    expect(r.err).toMatch(/--out fleet is the inventory being read/);
  });

  it("refuses a bad token with the API's error, exit 6, and never prints the token", async () => {
    fake = await startFakeCloudflare({ token: "another-token" });
    const r = await run("--api-url", fake.baseURL, "--out", join(mkdtempSync(join(tmpdir(), "edgefleet-import-")), "x"));
    expect(r.code).toBe(IMPORT_EXIT.api);
    expect(r.err).toMatch(/403.*Authentication error/);
    expect(r.err).not.toContain(TOKEN);
  });

  it("prints help with every option and the exit codes (exit 0)", async () => {
    const r = await run("--help");
    expect(r.code).toBe(IMPORT_EXIT.ok);
    for (const flag of ["--inventory", "--account", "--token-env", "--api-url", "--out", "--zone", "--drift", "--json", "--force", "--max-requests", "--concurrency"]) expect(r.out).toContain(flag);
    expect(r.out).toMatch(/--max-requests <n>[\s\S]*\(default: 1000\)/);
    expect(r.out).toMatch(/4 drift \(--drift\), 6 Cloudflare API error/);
  });

  it("refuses an --api-url that would carry the token in the clear (exit 2)", async () => {
    const r = await run("--api-url", "http://192.0.2.9/client/v4", "--out", join(mkdtempSync(join(tmpdir(), "edgefleet-import-")), "x"));
    expect(r.code).toBe(EXIT.usage);
    expect(r.err).toMatch(/^import: --api-url: http:\/\/ is refused/);
  });

  it("asks for a token when none is set (exit 2)", async () => {
    const code = await runImport([], { out: () => {}, err: () => {}, root: ROOT, env: {} });
    expect(code).toBe(IMPORT_EXIT.usage);
  });
});

describe("import --drift", () => {
  it("reports missing, changed and extra records per zone, and exits 4", async () => {
    const s = seed(desired);
    const recs = (zone: string) => s.records.get(desired.zones.find((z) => z.name === zone)!.id!)!;
    const cafe = recs("alpine-cafe.example");
    cafe.splice(cafe.findIndex((x) => x.name === "_dmarc.alpine-cafe.example"), 1);
    const craft = recs("alpine-craft.example").find((x) => x.name === "_dmarc.alpine-craft.example")!;
    craft.content = craft.content!.replace("p=reject;", "p=none;");
    recs("amber-garden.example").find((x) => x.type === "CAA" && x.data?.tag === "issue")!.ttl = 300;
    fake = await startFakeCloudflare({ token: TOKEN }, s.zones, s.records);
    const r = await run("--api-url", fake.baseURL, "--drift", "--json");
    expect(r.code).toBe(IMPORT_EXIT.drift);
    const zones = (JSON.parse(r.out) as { zones: { zone: string; status: string; records: { kind: string; type: string; name: string; want?: string; have?: string }[] }[] }).zones;
    const z = (n: string) => zones.find((x) => x.zone === n)!;
    expect(z("alpine-cafe.example").records).toEqual([expect.objectContaining({ kind: "missing", type: "TXT", name: "_dmarc" })]);
    expect(z("alpine-craft.example").records).toEqual([expect.objectContaining({ kind: "changed", type: "TXT", name: "_dmarc", have: expect.stringContaining("p=none") })]);
    expect(z("amber-garden.example").records).toEqual([expect.objectContaining({ kind: "changed", type: "CAA", have: expect.stringContaining("ttl 300"), want: expect.stringContaining("ttl 3600") })]);
    // Added by hand: an A record nobody declared; records under ignore rules are not drift.
    // (with the null MX and SPF -all a name with an address gets once it is declared, issue 15.5).
    expect(z("alpine-bikes.example").records.map((x) => `${x.kind} ${x.type} ${x.name}`).sort()).toEqual(["extra A legacy", "extra MX legacy", "extra TXT legacy"]);
    expect(z("ops-mail.example").status).toBe("in sync");
    expect(z("llm-gateway.example").records.map((x) => `${x.kind} ${x.type} ${x.name}`).sort()).toEqual(["extra HTTPS svc", "extra NS dev"]);
    expect(z("wingtip-toys.example").status).toBe("not in account");
    expect(z(LEGACY.name).status).toBe("not in inventory");
    expect(z("tailspin-travel.example").status).toBe("in sync");
  });
});
