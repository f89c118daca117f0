// The zone files of every inventory the mail tests accept (issue 15.5-15.6), loaded by
// a real DNS server (knot, semantic checks on), and the wildcard answers RFC 4592 gives:
// a wildcard covers only names that do not exist, never a name with records of its own,
// nor an empty non-terminal, nor the names below one.
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { inventory, withZone } from "../../test/support/inventory.ts";
import { KNOTD, startKnot, type Knot } from "../../test/support/knot.ts";
import { zoneFiles } from "./bind.ts";
import { deriveDesiredState } from "./desired.ts";

const M365_VARS = "{ m365Mx: m-ex01.mail.protection.outlook.com, m365Dkim1: s1.m.onmicrosoft.com, m365Dkim2: s2.m.onmicrosoft.com }";

/** One zone per accepted case of mail.test.ts, in one inventory. */
const ZONES = withZone(
  [
    "  - name: p.example",
    "    profile: parked",
    "    records:",
    "      - { type: A, name: legacy, content: 192.0.2.5 }",
    '      - { type: AAAA, name: a.b, content: "2001:db8::1" }',
    "      - { type: CNAME, name: status, content: status.vendor.example }",
    "      - { type: TXT, name: notes, content: hello }",
    "  - name: w.example",
    "    profile: web",
    "    records:",
    '      - { type: TXT, name: www, content: "google-site-verification=abc" }',
    "  - name: wild-caa.example",
    "    profile: parked",
    "    records:",
    '      - { type: CAA, name: "*", tag: issue, value: letsencrypt.org }',
    "  - name: wild-a.example",
    "    profile: parked",
    "    records:",
    '      - { type: A, name: "*", content: 192.0.2.9 }',
    "  - name: own.example",
    "    profile: parked",
    "    records:",
    "      - { type: A, name: app, content: 192.0.2.5 }",
    "      - { type: MX, name: app, priority: 10, content: mx.vendor.example }",
    '      - { type: TXT, name: app, content: "v=spf1 include:vendor.example -all" }',
    "  - name: m.example",
    "    profile: mail-m365",
    `    vars: ${M365_VARS}`,
    "    overrides: { mtaSts: enforce }",
    "  - name: f.example",
    "    profile: mail-fastmail",
    "    overrides: { web: proxied }",
    "",
  ].join("\n"),
);

describe.skipIf(!KNOTD && !process.env.CI)("mail posture zone files served by knot", () => {
  let knot: Knot;
  const inv = inventory({ zones: ZONES });
  const state = deriveDesiredState(inv, { accountId: "acct", workers: false });
  beforeAll(async () => {
    const dir = mkdtempSync(join(tmpdir(), "edgefleet-mail-zones-"));
    for (const [name, text] of zoneFiles(state, inv.fleet.defaults.ttl)) writeFileSync(join(dir, name), text);
    knot = await startKnot(dir, state.zones.map((z) => z.name));
  }, 90_000);
  afterAll(async () => knot?.stop());

  const mx = async (name: string) => (await knot.resolver.resolveMx(name)).map((m) => `${m.priority} ${m.exchange || "."}`).sort();
  const txt = async (name: string) => (await knot.resolver.resolveTxt(name)).map((c) => c.join("")).sort();
  const code = (p: Promise<unknown>) => p.then(() => "answer", (e: NodeJS.ErrnoException) => e.code);

  it("loads every zone with semantic checks on", () => {
    expect(knot.log()).not.toMatch(/semantic check|failed to load|error/i);
  });

  it("answers a name that does not exist from the wildcard: null MX, SPF -all", async () => {
    expect(await mx("nothing-here.p.example")).toEqual(["0 ."]);
    expect(await txt("nothing-here.p.example")).toEqual(["v=spf1 -all"]);
    // Several labels below the apex are covered too: the closest encloser is the apex.
    expect(await mx("x.y.p.example")).toEqual(["0 ."]);
  });

  it("answers a name that exists with its own records only (RFC 4592 2.2): hence the records at address names", async () => {
    expect(await mx("legacy.p.example")).toEqual(["0 ."]);
    expect(await txt("legacy.p.example")).toEqual(["v=spf1 -all"]);
    // A TXT-only name exists: the wildcard does not give it an MX (it has no address either).
    expect(await code(knot.resolver.resolveMx("notes.p.example"))).toBe("ENODATA");
    // The apex's own SPF, not the wildcard's: and _dmarc is not covered either.
    expect((await txt("_dmarc.p.example"))[0]).toMatch(/^v=DMARC1; p=reject/);
  });

  it("does not cover an empty non-terminal, nor the names below it", async () => {
    // a.b exists, so b is an empty non-terminal: it exists with no data (NODATA, not the wildcard's MX).
    expect(await code(knot.resolver.resolveMx("b.p.example"))).toBe("ENODATA");
    // Below it, *.p.example no longer applies (the closest encloser is b.p.example): NXDOMAIN.
    expect(await code(knot.resolver.resolveMx("c.b.p.example"))).toBe("ENOTFOUND");
    expect(await mx("a.b.p.example")).toEqual(["0 ."]);
  });

  it("keeps a zone's own wildcard beside the posture's and covers an address wildcard like any address name", async () => {
    // A wildcard CNAME, TXT or MX of the zone's own is refused in a zone that sends no
    // mail (checks/email.ts); any other record at '*' is served beside the denials.
    expect((await knot.resolver.resolveCaa("anything.wild-caa.example")).map((r) => r.issue)).toEqual(["letsencrypt.org"]);
    expect(await mx("anything.wild-caa.example")).toEqual(["0 ."]);
    expect(await txt("anything.wild-caa.example")).toEqual(["v=spf1 -all"]);
    expect(await mx("anything.wild-a.example")).toEqual(["0 ."]);
    expect(await txt("anything.wild-a.example")).toEqual(["v=spf1 -all"]);
    expect(await mx("app.own.example")).toEqual(["10 mx.vendor.example"]);
    expect(await txt("app.own.example")).toEqual(["v=spf1 include:vendor.example -all"]);
  });

  it("serves the MTA-STS and TLS-RPT records, and the CAA at mta-sts that overrides the apex's", async () => {
    expect(await txt("_mta-sts.m.example")).toEqual([expect.stringMatching(/^v=STSv1; id=[0-9a-f]{20}$/)]);
    expect(await txt("_smtp._tls.m.example")).toEqual(["v=TLSRPTv1; rua=mailto:dmarc@ops.example"]);
    const caa = (await knot.resolver.resolveCaa("mta-sts.m.example")).map((r) => r.issue ?? r.issuewild ?? r.iodef).sort();
    expect(caa).toEqual([";", "letsencrypt.org", "mailto:security@ops.example", "pki.goog", "sectigo.com", "ssl.com"]);
    expect((await knot.resolver.resolveCaa("m.example")).filter((r) => r.issue !== undefined).map((r) => r.issue)).toEqual([";"]);
    // A mail zone gets no wildcard.
    expect(await code(knot.resolver.resolveMx("nothing-here.m.example"))).toBe("ENOTFOUND");
  });
});
