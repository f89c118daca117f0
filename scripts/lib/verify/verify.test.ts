// `npm run verify` end to end against a real DNS server: knot serves the plan's
// BIND export of the example fleet on 127.0.0.1, with drifts written into chosen
// zones; a UDP socket that never answers stands in for a dead resolver.
import { createSocket, type Socket } from "node:dgram";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHash } from "node:crypto";
import { txtRdata } from "../../../stacks/model/bind.ts";
import { contentKey } from "../../../workers/router/src/table.ts";
import type { KvEntry } from "../sites/build.ts";
import { loadInventoryOrThrow } from "../../../stacks/model/load.ts";
import { KNOTD, type Knot } from "../../../test/support/knot.ts";
import type { CheckName, ZoneResult } from "./checks.ts";
import { runVerify, VERIFY_EXIT } from "./cli.ts";
import { sample } from "./sample.ts";
import { serveFleet, servePolicies, type Drifts, type PolicyDrifts } from "../../../test/fakes/knot-fleet.ts";
import type { Miniflare } from "miniflare";
import { errorResponse, RCODE, startFakeResolver, type FakeResolver } from "../../../test/fakes/dns-resolver.ts";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
const inventory = loadInventoryOrThrow(join(ROOT, "fleet"));

/** Where MTA-STS policies come from: never the network (port 9 refuses), the router once it runs. */
let policyOrigin = "http://127.0.0.1:9";

async function verify(...argv: string[]) {
  let out = "";
  let err = "";
  if (!argv.includes("--mta-sts-origin") && !argv.includes("--help")) argv = [...argv, "--mta-sts-origin", policyOrigin];
  const code = await runVerify(argv, { out: (s) => (out += s), err: (s) => (err += s), root: ROOT });
  return { code, out, err };
}

interface JsonRun {
  seed?: number;
  summary: { zones: number; byResult: Record<string, number>; byCheck: Record<CheckName, { drift: number; error: number }>; queries: number };
  zones: ZoneResult[];
}

/** The apex SPF line of a zone file (the wildcard's and the address names' come first in sort order). */
const apexSpf = (t: string, to: string) => t.replace(`@\t3600\tIN\tTXT\t${txtRdata("v=spf1 -all")}`, `@\t3600\tIN\tTXT\t${txtRdata(to)}`);

/** The drifts the issue lists, one per zone, each a plain edit of the zone file's text. */
export const DRIFTS: Drifts = {
  "alpine-bikes.example": (t) => `${t}@\t3600\tIN\tTXT\t"v=spf1 include:_spf.google.com -all"\n`,
  "alpine-books.example": (t) => apexSpf(t, "v=spf1 \u2013all"),
  "alpine-cafe.example": (t) => t.replace(/^_dmarc\t.*\n/m, ""),
  "alpine-craft.example": (t) => t.replace("; p=reject;", "; p=none;"),
  "alpine-design.example": (t) => `${t}@\t3600\tIN\tMX\t10 mail.alpine-design.example.\n`,
  "amber-home.example": (t) => `${t.replace(/^@\t\d+\tIN\tCAA\t0 issue(wild)? .*\n/gm, "")}@\t3600\tIN\tCAA\t0 issue "digicert.com"\n`,
  "ops-mail.example": (t) => t.replace(/^alpine-fitness\.example\._report\._dmarc\t.*\n/m, ""),
  // Beyond the list, the limits RFC 7208 4.6.4 sets on an evaluation:
  // 11 DNS-querying terms (10 allowed), and 3 names that do not exist (2 void lookups allowed).
  "alpine-garden.example": (t) => apexSpf(t, `v=spf1 ${"include:spf.messagingengine.com ".repeat(11)}-all`),
  "alpine-supply.example": (t) => apexSpf(t, "v=spf1 a:nx1.alpine-supply.example a:nx2.alpine-supply.example a:nx3.alpine-supply.example -all"),
  // Issue 15.6: the policy changed but its id did not (or the other way round); no TLS-RPT.
  "contoso-legal.example": (t) => t.replace(/(_mta-sts\t.*id=)[0-9a-f]+/, "$1stale2026"),
  "northwind-traders.example": (t) => t.replace(/^_smtp\._tls\t.*\n/m, ""),
};

/** Policy drifts at the router, by policy host: a redirect, HTML instead of text/plain. */
export const POLICY_DRIFTS: PolicyDrifts = {
  "mta-sts.tailspin-travel.example": (t) => ({ ...t, redirects: { "/.well-known/mta-sts.txt": { to: "https://tailspin-travel.example/mta-sts.txt", status: 301 } } }),
  "mta-sts.arctic-tech.example": (t) => ({ ...t, files: Object.fromEntries(Object.entries(t.files).map(([p, f]) => [p, { ...f, t: "text/html; charset=utf-8" }])) }),
};
/** A policy whose mode says testing while the inventory says enforce, served for fabrikam-studio. */
const TESTING_POLICY = "version: STSv1\r\nmode: testing\r\nmx: fabrikam-studio-example.v1-a.mx.microsoft\r\nmax_age: 604800\r\n";

/** The zone, the check that must fail, and words its explanation must contain. */
const EXPECTED: [zone: string, check: CheckName, explanation: RegExp][] = [
  ["alpine-bikes.example", "spf", /2 SPF records \(RFC 7208 3\.2 allows exactly one/],
  ["alpine-books.example", "spf", /typographic dash \(U\+2013\)/],
  ["alpine-cafe.example", "dmarc", /no DMARC record at _dmarc\.alpine-cafe\.example/],
  ["alpine-craft.example", "dmarc", /policy p=none: receivers take no action.*declared p=reject/],
  ["alpine-design.example", "mx", /null MX must be the only MX \(RFC 7505.*10 mail\.alpine-design\.example/],
  ["amber-home.example", "caa", /blocks Cloudflare's CAs \(letsencrypt\.org, pki\.goog, sectigo\.com, ssl\.com not allowed; only digicert\.com\)/],
  ["alpine-fitness.example", "report-auth", /missing report authorisation alpine-fitness\.example\._report\._dmarc\.ops-mail\.example/],
  ["alpine-garden.example", "spf", /permerror: more than 10 DNS lookups \(RFC 7208 4\.6\.4 allows 10/],
  ["alpine-supply.example", "spf", /permerror: more than 2 void lookups \(RFC 7208 4\.6\.4 allows 2/],
  ["contoso-legal.example", "mta-sts", /id=stale2026; declared id=[0-9a-f]{20}: the policy changed without its id/],
  ["northwind-traders.example", "tls-rpt", /no TLS-RPT record at _smtp\._tls\.northwind-traders\.example/],
  ["tailspin-travel.example", "mta-sts", /redirects \(301 to https:\/\/tailspin-travel\.example\/mta-sts\.txt\): senders never follow redirects \(RFC 8461 3\.3\)/],
  ["arctic-tech.example", "mta-sts", /served as 'text\/html; charset=utf-8'; RFC 8461 3\.2 requires text\/plain/],
  ["fabrikam-studio.example", "mta-sts", /the policy's mode is 'testing'; declared 'enforce'/],
];

describe("seeded sampling", () => {
  const names = Array.from({ length: 300 }, (_, i) => `z${i}.example`);
  it("gives the same sample for the same seed and a different one for another", () => {
    expect(sample(names, 20, 7)).toEqual(sample(names, 20, 7));
    expect(sample(names, 20, 7)).not.toEqual(sample(names, 20, 8));
  });
  it("draws distinct names in fleet order, all of them when asked for more", () => {
    const s = sample(names, 50, 1);
    expect(new Set(s).size).toBe(50);
    expect(s).toEqual([...s].sort((a, b) => names.indexOf(a) - names.indexOf(b)));
    expect(sample(names, 500, 1)).toEqual(names);
  });
});

describe.skipIf(!KNOTD && !process.env.CI)("verify against knot", () => {
  let clean: Knot;
  let drifted: Knot;
  // The MTA-STS policies, served by the real router Worker from the content map.
  let policies: { origin: string; mf: Miniflare };
  let badPolicies: { origin: string; mf: Miniflare };
  beforeAll(async () => {
    clean = (await serveFleet(inventory)).knot;
    drifted = (await serveFleet(inventory, DRIFTS)).knot;
    policies = await servePolicies(inventory);
    policyOrigin = policies.origin;
    const hash = createHash("sha256").update(TESTING_POLICY).digest("hex");
    const testing: KvEntry = { key: contentKey(hash), value: new TextEncoder().encode(TESTING_POLICY), metadata: { sha256: hash } };
    badPolicies = await servePolicies(
      inventory,
      {
        ...POLICY_DRIFTS,
        "mta-sts.fabrikam-studio.example": (t) => ({ ...t, files: { "/.well-known/mta-sts.txt": { ...t.files["/.well-known/mta-sts.txt"]!, h: hash, s: TESTING_POLICY.length } } }),
      },
      [testing],
    );
  }, 120_000);
  afterAll(async () => {
    await clean?.stop();
    await drifted?.stop();
    await policies?.mf.dispose();
    await badPolicies?.mf.dispose();
  });

  it("verifies the example fleet clean: every zone passes every check, exit 0", async () => {
    const r = await verify("--all", "--json", "--resolver", `127.0.0.1:${clean.port}`, "--mta-sts-origin", policies.origin);
    expect(r.code).toBe(VERIFY_EXIT.ok);
    const run = JSON.parse(r.out) as JsonRun;
    expect(run.summary.zones).toBe(inventory.zones.length);
    expect(run.summary.byResult).toEqual({ pass: inventory.zones.length, drift: 0, error: 0 });
    // The checks really ran: the SPF evaluation counted its lookups and failed the probe address.
    const ops = run.zones.find((z) => z.zone === "ops-mail.example")!;
    expect(ops.checks.find((c) => c.check === "spf")!.details.join("\n")).toMatch(/evaluation for 192\.0\.2\.1: fail; DNS lookups 1\/10, void lookups 0\/2/);
    expect(ops.checks.find((c) => c.check === "dkim")!.details).toHaveLength(3);
    const parked = run.zones.find((z) => z.zone === "alpine-bikes.example")!;
    expect(parked.checks.map((c) => c.status)).toEqual(["pass", "pass", "pass", "pass", "pass", "pass", "skip", "skip"]);
    // Zones that receive mail: the policy fetched through the router matches its id, and TLS-RPT is there.
    const sts = ops.checks.find((c) => c.check === "mta-sts")!;
    expect(sts.status).toBe("pass");
    expect(sts.details.join("\n")).toMatch(/_mta-sts\.ops-mail\.example: v=STSv1; id=[0-9a-f]{20}\nGET https:\/\/mta-sts\.ops-mail\.example\/\.well-known\/mta-sts\.txt: 200 text\/plain/);
    expect(ops.checks.find((c) => c.check === "tls-rpt")!.details).toEqual(["_smtp._tls.ops-mail.example: v=TLSRPTv1; rua=mailto:tls-reports@ops-mail.example"]);
    expect(run.summary.queries).toBeGreaterThan(inventory.zones.length * 6);
  });

  it("detects each injected drift in its zone with the right check and explanation, and nothing else", async () => {
    const r = await verify("--all", "--json", "--resolver", `127.0.0.1:${drifted.port}`, "--mta-sts-origin", badPolicies.origin);
    expect(r.code).toBe(VERIFY_EXIT.drift);
    const run = JSON.parse(r.out) as JsonRun;
    for (const [zone, check, explanation] of EXPECTED) {
      const z = run.zones.find((x) => x.zone === zone)!;
      expect(z.status, zone).toBe("drift");
      const failed = z.checks.filter((c) => c.status !== "pass" && c.status !== "skip");
      expect(failed.map((c) => c.check), zone).toEqual([check]);
      expect(failed[0]!.problems.join("\n"), zone).toMatch(explanation);
    }
    expect(run.summary.byResult.drift).toBe(EXPECTED.length);
    expect(run.summary.byResult.error).toBe(0);
    expect(run.summary.byCheck.spf.drift).toBe(4);
    // mailauth counted the lookups: the evaluation stopped at the 11th lookup, and at the 3rd void one.
    const details = (zone: string) => run.zones.find((x) => x.zone === zone)!.checks.find((c) => c.check === "spf")!.details.join("\n");
    expect(details("alpine-garden.example")).toMatch(/DNS lookups 11\/10, void lookups 0\/2/);
    expect(details("alpine-supply.example")).toMatch(/DNS lookups 3\/10, void lookups 3\/2/);
    expect(run.summary.byCheck.dmarc.drift).toBe(2);
    expect(run.summary.byCheck["mta-sts"].drift).toBe(4);
  });

  it("evaluates the SPF of a doubled record to permerror through mailauth", async () => {
    const r = await verify("--zone", "alpine-bikes.example", "--json", "--resolver", `127.0.0.1:${drifted.port}`);
    const spf = (JSON.parse(r.out) as JsonRun).zones[0]!.checks.find((c) => c.check === "spf")!;
    expect(spf.details.join("\n")).toMatch(/evaluation for 192\.0\.2\.1: permerror/);
  });

  it("prints a summary table and the failures, and writes the HTML report", async () => {
    const html = join(mkdtempSync(join(tmpdir(), "edgefleet-verify-html-")), "report.html");
    const r = await verify("--zone", "alpine-craft.example", "--zone", "ops-mail.example", "--resolver", `127.0.0.1:${drifted.port}`, "--html", html);
    expect(r.code).toBe(VERIFY_EXIT.drift);
    expect(r.out).toMatch(/│ pass +│ 1 +│/);
    expect(r.out).toMatch(/│ drift +│ 1 +│/);
    expect(r.out).toMatch(/│ dmarc +│ 1 +│ 0 +│/);
    expect(r.out).toContain("alpine-craft.example\n  dmarc: policy p=none");
    const page = readFileSync(html, "utf8");
    expect(page).toContain('data-zone="alpine-craft.example"');
    expect(page).not.toMatch(/(src|href)=["']?https?:/);
  });

  it("reproduces a sample from its seed", async () => {
    const a = JSON.parse((await verify("--sample", "5", "--seed", "42", "--json", "--resolver", `127.0.0.1:${clean.port}`)).out) as JsonRun;
    const b = JSON.parse((await verify("--sample", "5", "--seed", "42", "--json", "--resolver", `127.0.0.1:${clean.port}`)).out) as JsonRun;
    expect(a.seed).toBe(42);
    expect(a.zones.map((z) => z.zone)).toHaveLength(5);
    expect(a.zones.map((z) => z.zone)).toEqual(b.zones.map((z) => z.zone));
  });
});

describe("a resolver that does not answer", () => {
  let silent: Socket;
  let port: number;
  let received = 0;
  beforeAll(async () => {
    silent = createSocket("udp4");
    silent.on("message", () => received++); // read and never reply
    await new Promise<void>((r) => silent.bind(0, "127.0.0.1", r));
    port = silent.address().port;
  });
  afterAll(() => silent.close());

  it("reports a timeout (cannot verify, exit 5), never drift", async () => {
    const r = await verify("--zone", "alpine-bikes.example", "--zone", "ops-mail.example", "--json", "--timeout", "150", "--tries", "1", "--resolver", `127.0.0.1:${port}`);
    expect(r.code).toBe(VERIFY_EXIT.unverified);
    const run = JSON.parse(r.out) as JsonRun;
    expect(run.summary.byResult).toEqual({ pass: 0, drift: 0, error: 2 });
    for (const z of run.zones) {
      for (const c of z.checks.filter((x) => x.status !== "skip")) {
        expect(c.status, `${z.zone} ${c.check}`).toBe("error");
        expect(c.problems.join(" "), `${z.zone} ${c.check}`).toMatch(/timeout: the resolver did not answer/);
      }
    }
    expect(received).toBeGreaterThan(0);
  });
});

describe("a resolver that answers SERVFAIL", () => {
  let servfail: FakeResolver;
  beforeAll(async () => {
    servfail = await startFakeResolver({ rcode: RCODE.SERVFAIL });
  });
  afterAll(() => servfail.close());

  it("builds a well-formed SERVFAIL response to a query", () => {
    // id 0xbeef, RD, one question: example. TXT IN
    const q = Buffer.from("beef01000001000000000000076578616d706c650000100001", "hex");
    const r = errorResponse(q, RCODE.SERVFAIL)!;
    expect(r.toString("hex")).toBe("beef81820001000000000000076578616d706c650000100001");
  });

  it("reports SERVFAIL as such (cannot verify, exit 5), never drift", async () => {
    const r = await verify("--zone", "alpine-bikes.example", "--zone", "ops-mail.example", "--json", "--timeout", "500", "--tries", "1", "--resolver", `127.0.0.1:${servfail.port}`);
    expect(r.code).toBe(VERIFY_EXIT.unverified);
    const run = JSON.parse(r.out) as JsonRun;
    expect(run.summary.byResult).toEqual({ pass: 0, drift: 0, error: 2 });
    expect(run.summary.byCheck.mx).toEqual({ drift: 0, error: 2 });
    for (const z of run.zones) {
      for (const c of z.checks.filter((x) => x.status !== "skip")) {
        expect(c.status, `${z.zone} ${c.check}`).toBe("error");
        expect(c.problems.join(" "), `${z.zone} ${c.check}`).toMatch(/SERVFAIL: the resolver could not resolve the name/);
        expect(c.problems.join(" ")).not.toMatch(/timeout/);
      }
    }
    const text = await verify("--zone", "alpine-bikes.example", "--tries", "1", "--resolver", `127.0.0.1:${servfail.port}`);
    expect(text.out).toMatch(/│ cannot verify +│ 1 +│/);
    expect(text.out).toContain("cannot verify  alpine-bikes.example\n  mx: MX alpine-bikes.example: SERVFAIL");
  });
});

describe("bounded work", () => {
  let slow: FakeResolver;
  beforeAll(async () => {
    slow = await startFakeResolver({ rcode: RCODE.REFUSED, delayMs: 20 });
  });
  afterAll(() => slow.close());

  it("never has more than --max-queries DNS queries in flight, whatever --concurrency", async () => {
    const zones = inventory.zones.slice(0, 40).flatMap((z) => ["--zone", z.name]);
    const r = await verify(...zones, "--json", "--concurrency", "40", "--max-queries", "6", "--tries", "1", "--resolver", `127.0.0.1:${slow.port}`);
    expect(r.code).toBe(VERIFY_EXIT.unverified);
    const run = JSON.parse(r.out) as JsonRun;
    expect(run.summary.byResult.error).toBe(40);
    expect(run.zones[0]!.checks[0]!.problems.join(" ")).toMatch(/REFUSED/);
    expect(slow.received).toBeGreaterThanOrEqual(40 * 4);
    expect(slow.peakOutstanding).toBeLessThanOrEqual(6);
    expect(slow.peakOutstanding).toBeGreaterThan(1); // the queries did run in parallel
  });
});

describe("usage", () => {
  it("prints help with every option", async () => {
    const r = await verify("--help");
    expect(r.code).toBe(VERIFY_EXIT.ok);
    for (const flag of ["--sample", "--all", "--zone", "--seed", "--resolver", "--timeout", "--tries", "--concurrency", "--max-queries", "--json", "--html"]) expect(r.out).toContain(flag);
  });
  it("refuses an unknown zone and a malformed resolver with exit 2", async () => {
    expect((await verify("--zone", "nope.example")).code).toBe(VERIFY_EXIT.usage);
    const bad = await verify("--resolver", "dns.google");
    expect(bad.code).toBe(VERIFY_EXIT.usage);
    expect(bad.err).toContain("is not HOST:PORT");
  });
});
