// The legitimate edge of issue 15: inventories the new checks must still accept (SRV
// target '.', '~all' where a zone sends mail, SPF includes inside the fleet, a stricter
// subdomain DMARC, allowlisted report mailboxes, TXT at Cloudflare's byte limit, valid
// punycode, a hostile glob on a name edgefleet does not manage), and the zone files of
// all of them, plus CAA values a careless writer would break, loaded by a real knot.
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KNOTD, startKnot, type Knot } from "../../../test/support/knot.ts";
import { FLEET, parseTexts, withZone } from "../../../test/support/inventory.ts";
import { zoneFile, zoneFiles } from "../bind.ts";
import { deriveDesiredState } from "../desired.ts";
import { formatProblem } from "../load.ts";
import type { DnsRec } from "../posture.ts";
import { ignoreMatches } from "../validate.ts";
import { globMatch } from "./glob.ts";

const ASCII_4080 = "k".repeat(4080); // 4,080 bytes + 16 length octets = 4,096 bytes of RDATA
const UTF8_4080 = "\u00e9".repeat(2040); // 2,040 characters, 4,080 bytes
const HOSTILE_GLOB = "*e*e*e*e*e*Q";

const texts = {
  fleet: `${FLEET.replace("iodef: mailto:security@ops.example", "iodef: https://ops.example/caa?report=1&kind=refused")}`.replace(
    "  rua: mailto:dmarc@ops.example\n",
    "  rua: mailto:dmarc@ops.example\n  reportAllowlist: [vendor-reports.example]\n",
  ),
  zones: withZone(
    [
      "  - name: mail-ok.example",
      "    profile: mail-fastmail",
      "    overrides:",
      "      dmarc: { rua: [mailto:agg@eu.vendor-reports.example] }",
      "    records:",
      '      - { type: TXT, name: news, content: "v=spf1 include:_spf.mail-ok.example ~all" }',
      '      - { type: TXT, name: _spf, content: "v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 a:relay.mail-ok.example/24//64 redirect=_spf2.mail-ok.example" }',
      '      - { type: TXT, name: _spf2, content: "v=spf1 mx:mail-ok.example -all" }',
      "      - { type: A, name: relay, content: 192.0.2.10 }",
      '      - { type: SRV, name: _imap._tcp, priority: 0, weight: 0, port: 0, target: "." }',
      '      - { type: TXT, name: _dmarc.news, content: "v=DMARC1; p=reject; sp=reject; adkim=s; aspf=s; rua=mailto:dmarc@ops.example,mailto:agg@vendor-reports.example!10m" }',
      `      - { type: TXT, name: blob, content: "${ASCII_4080}" }`,
      `      - { type: TXT, name: blob-utf8, content: "${UTF8_4080}" }`,
      '      - { type: CAA, name: shop, tag: issue, value: "letsencrypt.org; validationmethods=dns-01" }',
      "  - name: xn--bcher-kva.example",
      "    profile: parked",
      "    records:",
      '      - { type: TXT, name: s1._domainkey, content: "v=DKIM1; p=" }',
      "      - { type: CNAME, name: www, content: xn--bcher-kva.example }",
      `      - { type: TXT, name: legacy, content: "${"e".repeat(3000)}" }`,
      "    ignore:",
      "      - { type: TXT, name: _acme-challenge }",
      `      - { type: "*", name: legacy-api, content: "${HOSTILE_GLOB}" }`,
      "",
    ].join("\n"),
  ),
};

describe("accepted edge cases", () => {
  const r = parseTexts(texts);
  it("validates", () => {
    expect(r.ok ? [] : r.problems.map(formatProblem)).toEqual([]);
  });

  it("matches ignore globs in linear time (the old RegExp backtracked for minutes)", () => {
    // A hang here shows as the test's timeout; no timing is asserted.
    const value = "e".repeat(3000);
    expect(ignoreMatches({ type: "TXT", name: "x", content: HOSTILE_GLOB }, { type: "TXT", name: "x", value })).toBe(false);
    expect(globMatch(`${"*a".repeat(200)}*b`, "a".repeat(100_000))).toBe(false);
  });

  it("matches globs exactly as an anchored '.*' RegExp would", () => {
    const escape = (s: string) => s.replace(/[.+?^${}()|[\]\\]/g, "\\$&");
    fc.assert(
      fc.property(fc.stringMatching(/^[ab*]{0,8}$/), fc.stringMatching(/^[ab]{0,12}$/), (pattern, text) => {
        const re = new RegExp(`^${pattern.split("*").map(escape).join(".*")}$`, "s");
        expect(globMatch(pattern, text)).toBe(re.test(text));
      }),
      { numRuns: 2000 },
    );
  });
});

describe.skipIf(!KNOTD && !process.env.CI)("zone files of accepted edge cases, served by knot", () => {
  let knot: Knot;
  const r = parseTexts(texts);
  if (!r.ok) throw new Error(r.problems.map(formatProblem).join("\n"));
  const state = deriveDesiredState(r.inventory, { accountId: "a".repeat(32) });
  const files = zoneFiles(state, r.inventory.fleet.defaults.ttl);
  // CAA values validation refuses, written anyway: the writer must keep the file loadable.
  const hostileCaa = 'https://ops.example/r"x\\y;z\u00e9\n ; $ORIGIN evil.';
  const rec = (tag: string, value: string): DnsRec => ({ zone: "writer.example", type: "CAA", name: "@", ttl: 300, caa: { flags: 0, tag, value }, source: "extra", what: "test" });
  files.set("writer.example.zone", zoneFile("writer.example", [rec("iodef", hostileCaa), rec("issue", "ca.example; account=\"1\"")], 3600));

  beforeAll(async () => {
    const dir = mkdtempSync(join(tmpdir(), "edgefleet-hostile-"));
    for (const [name, text] of files) writeFileSync(join(dir, name), text);
    knot = await startKnot(dir, [...files.keys()].map((f) => f.replace(/\.zone$/, "")));
  });
  afterAll(async () => knot?.stop());

  it("loads every zone with semantic checks on", () => {
    expect(files.size).toBe(6);
    expect(knot.log()).not.toMatch(/semantic check|failed to load|error/i);
  });

  it("serves SRV target '.' as the root (service not available)", async () => {
    const srv = await knot.resolver.resolveSrv("_imap._tcp.mail-ok.example");
    expect(srv.map(({ name, port, priority, weight }) => ({ name, port, priority, weight }))).toEqual([{ name: "", port: 0, priority: 0, weight: 0 }]);
  });

  it("serves TXT at Cloudflare's byte limit whole", async () => {
    expect((await knot.resolver.resolveTxt("blob.mail-ok.example")).map((c) => c.join(""))).toEqual([ASCII_4080]);
    const utf8 = await knot.resolver.resolveTxt("blob-utf8.mail-ok.example");
    // Node hands TXT octets back as latin1 characters: re-encode to compare bytes.
    expect(utf8[0]!.map((c) => c.length)).toEqual(Array(16).fill(255));
    expect(Buffer.concat(utf8[0]!.map((c) => Buffer.from(c, "latin1"))).toString("utf8")).toBe(UTF8_4080);
  });

  it("serves CAA values with quotes, backslashes and newlines byte for byte", async () => {
    const caa = await knot.resolver.resolveCaa("writer.example");
    expect(caa.find((c) => c.issue !== undefined)?.issue).toBe('ca.example; account="1"');
    const iodef = caa.find((c) => c.iodef !== undefined)?.iodef;
    expect(Buffer.from(iodef!, "latin1").toString("utf8")).toBe(hostileCaa);
    // Nothing after the value escaped into the file as a directive or another record.
    expect(await knot.resolver.resolveCaa("writer.example").then((c) => c.length)).toBe(2);
  });

  it("serves the punycode zone and its DKIM revocation", async () => {
    const dkim = await knot.resolver.resolveTxt("s1._domainkey.xn--bcher-kva.example");
    expect(dkim.map((c) => c.join(""))).toEqual(["v=DKIM1; p="]);
  });
});
