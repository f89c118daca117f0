// The plan diff and its safety guard.
import { describe, expect, it } from "vitest";
import { inventory, withZone, ZONES } from "../../test/support/inventory.ts";
import { deriveDesiredState } from "./desired.ts";
import { addsPostureRisk, applyGuard, diffStates, postureSensitive } from "./diff.ts";
import type { DnsRec } from "./posture.ts";

const state = (zones: string) => deriveDesiredState(inventory({ zones }), { accountId: "acct" });
const loose = { maxZoneChangeShare: 1, maxFleetShare: 1 };
const strict = { maxZoneChangeShare: 0.3, maxFleetShare: 0.2 };

describe("diffStates", () => {
  it("finds nothing between equal states", () => {
    const d = diffStates(state(ZONES), state(ZONES));
    expect(d.changes).toEqual([]);
    expect(d.totals).toEqual({ added: 0, changed: 0, removed: 0, zonesTouched: 0, zonesBefore: 3 });
  });

  it("reports records added, changed and removed per zone, with the changed fields", () => {
    const before = state(withZone("  - name: x.example\n    profile: parked\n    records:\n      - { type: A, name: www, content: 192.0.2.1 }\n"));
    const after = state(withZone("  - name: x.example\n    profile: parked\n    overrides: { ttl: 600 }\n    records:\n      - { type: A, name: api, content: 192.0.2.1 }\n"));
    const d = diffStates(before, after);
    const x = d.zones.find((z) => z.zone === "x.example")!;
    // 7 apex posture records, the 2 wildcard ones, and www's A with its null MX and SPF (issue 15.5).
    expect(x).toMatchObject({ added: 3, removed: 3, status: "changed", recordsBefore: 12 });
    // Every posture record changed TTL; the address record, named by its content, moved names with its MX and SPF.
    expect(x.changed).toBe(9);
    const change = d.changes.find((c) => c.name === "x.example/TXT/_dmarc/dmarc")!;
    expect(change).toMatchObject({ kind: "change", fields: ["ttl"] });
    expect(d.changes.filter((c) => c.kind === "add").map((c) => c.name).sort()).toEqual(["x.example/A/api/192.0.2.1", "x.example/MX/api/null", "x.example/TXT/api/spf"]);
  });

  it("marks new and removed zones", () => {
    const d = diffStates(state(ZONES), state(withZone("  - name: n.example\n    profile: parked\n")));
    expect(d.zones.map((z) => [z.zone, z.status])).toEqual([
      ["n.example", "new"],
      ["ops.example", "changed"], // its report authorisation for n.example
    ]);
    const back = diffStates(state(withZone("  - name: n.example\n    profile: parked\n")), state(ZONES));
    expect(back.zones.find((z) => z.zone === "n.example")).toMatchObject({ status: "removed", removed: 9, recordsBefore: 9 });
  });
});

describe("the safety guard", () => {
  const big = withZone(
    "  - name: big.example\n    profile: parked\n    records:\n" +
      Array.from({ length: 13 }, (_, i) => `      - { type: TXT, name: h${i}, content: "t${i + 1}" }\n`).join(""),
  );
  const bigAfter = (n: number) =>
    withZone(
      "  - name: big.example\n    profile: parked\n    records:\n" +
        Array.from({ length: 13 }, (_, i) => `      - { type: TXT, name: h${i}, content: "t${i < n ? i + 101 : i + 1}" }\n`).join(""),
    );

  it("accepts a change of at most 30% of a zone's records", () => {
    // big.example has 22 managed records: 7 apex posture + 2 wildcard (`* MX 0 .`, `* TXT
    // "v=spf1 -all"; no address records, so none below) + 13 extra TXT. Rewriting 6 is 27.3%.
    const v = applyGuard(diffStates(state(big), state(bigAfter(6))), { ...strict, maxFleetShare: 1 });
    expect(v).toMatchObject({ ok: true, violations: [] });
  });

  it("refuses a change of more than 30% of a zone's records, saying which zone and how much", () => {
    // A TXT record's logical name is keyed by its content, so a new value is a removal and
    // an addition (the additions are at plain names and do not count): 7 of 22 is 31.8%.
    const v = applyGuard(diffStates(state(big), state(bigAfter(7))), { ...strict, maxFleetShare: 1 });
    expect(v.ok).toBe(false);
    expect(v.violations).toEqual([
      "big.example: rewrites 7 of its 22 managed records (0 changed, 7 removed, 0 added at posture-sensitive names; 31.8% > 30% allowed per zone)",
    ]);
  });

  it("refuses removing a zone, which removes all its records", () => {
    const v = applyGuard(diffStates(state(withZone("  - name: n.example\n    profile: parked\n")), state(ZONES)), { ...strict, maxFleetShare: 1 });
    expect(v.violations).toEqual(["n.example: removes the zone and all 9 managed records (100% > 30% allowed per zone)"]);
  });

  it("accepts adding zones, which rewrites nothing", () => {
    const v = applyGuard(diffStates(state(ZONES), state(withZone("  - name: n.example\n    profile: parked\n"))), { ...loose, maxZoneChangeShare: 0.3 });
    expect(v.ok).toBe(true);
  });

  it("refuses touching more than the allowed share of the fleet", () => {
    // Adding one zone touches it and the mailbox zone: 2 of 3 zones.
    const v = applyGuard(diffStates(state(ZONES), state(withZone("  - name: n.example\n    profile: parked\n"))), { ...loose, maxFleetShare: 0.5 });
    expect(v.violations).toEqual(["the change touches 2 of 3 zones (66.7% > 50% of the fleet allowed)"]);
  });

  it("judges by the stricter of the base's and the change's limits", () => {
    const d = diffStates(state(big), state(bigAfter(7)));
    // The change tightens the limits: judged (and refused) by its own stricter ones.
    expect(applyGuard(d, loose, { ...strict, maxFleetShare: 1 })).toMatchObject({ ok: false, limits: { maxZoneChangeShare: 0.3 } });
    expect(applyGuard(d, loose, loose).ok).toBe(true);
  });

  it("refuses a change that loosens the guard's own limits, even when nothing else changes", () => {
    // Today's defect: a commit that only loosens the limits passed, and the next change
    // was judged by the loosened base.
    const same = diffStates(state(ZONES), state(ZONES));
    const v = applyGuard(same, strict, { maxZoneChangeShare: 0.9, maxFleetShare: 0.2 });
    expect(v.ok).toBe(false);
    expect(v.violations).toEqual([
      "the change loosens the guard: fleet.yaml guard.maxZoneChangeShare 30% -> 90% (loosening the guard needs --force and its own review)",
    ]);
    expect(applyGuard(same, strict, { maxZoneChangeShare: 0.3, maxFleetShare: 0.21 }).violations).toHaveLength(1);
    // Loosening plus a big rewrite: both reasons, and the rewrite is judged by the base's limits.
    const both = applyGuard(diffStates(state(big), state(bigAfter(7))), { ...strict, maxFleetShare: 1 }, loose);
    expect(both.violations).toHaveLength(2);
    expect(both.violations[1]).toMatch(/^big\.example: rewrites 7 of its 22 .*31\.8% > 30% allowed/);
    // Tightening is always fine.
    expect(applyGuard(same, strict, { maxZoneChangeShare: 0.1, maxFleetShare: 0.1 }).ok).toBe(true);
  });
});

describe("additions at posture-sensitive names", () => {
  // p.example is a parked zone with n managed records (9 today: 7 at the apex, `* MX 0 .`
  // and `* TXT "v=spf1 -all"`). The limit is set to
  // 2.5 records' worth, so 3 counted additions are refused and 2 pass, whatever n is.
  const parked = "  - name: p.example\n    profile: parked\n";
  const withRecords = (lines: string[]) => withZone(`${parked}    records:\n${lines.map((l) => `      - ${l}\n`).join("")}`);
  const n = state(withZone(parked)).resources.filter((r) => r.zone === "p.example" && r.record).length;
  const limit = { maxZoneChangeShare: 2.5 / n, maxFleetShare: 1 };
  const guard = (lines: string[]) => applyGuard(diffStates(state(withZone(parked)), state(withRecords(lines))), limit);

  // Each record is one the inventory's checks accept in a zone that sends no mail
  // (stacks/model/checks): the guard must count what validation lets through.
  it.each([
    ["the apex", ["{ type: A, name: \"@\", content: 192.0.2.1 }", "{ type: A, name: \"@\", content: 192.0.2.2 }", "{ type: TXT, name: \"@\", content: hello }"]],
    ["wildcards", ["{ type: A, name: \"*\", content: 192.0.2.1 }", "{ type: A, name: \"*.shop\", content: 192.0.2.2 }", "{ type: AAAA, name: \"*.x\", content: \"2001:db8::1\" }"]],
    ["DMARC names", ["{ type: TXT, name: _dmarc.shop, content: \"v=DMARC1; p=reject; sp=reject; adkim=s; aspf=s\" }", "{ type: TXT, name: _dmarc.x, content: \"v=DMARC1; p=reject; sp=reject; adkim=s; aspf=s\" }", "{ type: TXT, name: _dmarc.y, content: \"v=DMARC1; p=reject; sp=reject; adkim=s; aspf=s\" }"]],
    ["DKIM keys", ["{ type: TXT, name: s1._domainkey, content: \"v=DKIM1; p=\" }", "{ type: TXT, name: s2._domainkey, content: \"v=DKIM1; p=\" }", "{ type: TXT, name: s3._domainkey.shop, content: \"v=DKIM1; p=\" }"]],
    ["SPF at any name", ["{ type: TXT, name: shop, content: \"v=spf1 include:evil.example -all\" }", "{ type: TXT, name: a.b, content: \"v=spf1 -all\" }", "{ type: TXT, name: mail, content: \"v=spf1 ip4:192.0.2.0/24 -all\" }"]],
  ])("count as rewrites of the zone at %s", (_what, lines) => {
    const v = guard(lines);
    expect(v.ok, v.violations.join("\n")).toBe(false);
    expect(v.violations[0]).toContain(`p.example: rewrites 3 of its ${n} managed records (0 changed, 0 removed, 3 added at posture-sensitive names;`);
    expect(guard(lines.slice(0, 2)).ok).toBe(true);
  });

  it("do not count elsewhere: plain host names are additions, not rewrites", () => {
    const lines = ["{ type: A, name: shop, content: 192.0.2.1 }", "{ type: A, name: api, content: 192.0.2.2 }", "{ type: TXT, name: verify, content: token=1 }"];
    const d = diffStates(state(withZone(parked)), state(withRecords(lines)));
    // The 3 records, and the null MX and SPF -all the posture puts beside each address
    // record (a name with an address receives mail as an implicit MX, RFC 5321 5.1).
    expect(d.zones.find((z) => z.zone === "p.example")).toMatchObject({ added: 7, changed: 0, removed: 0, sensitiveAdded: 0 });
    expect(d.changes.map((c) => c.name).sort()).toEqual([
      "p.example/A/api/192.0.2.2",
      "p.example/A/shop/192.0.2.1",
      "p.example/MX/api/null",
      "p.example/MX/shop/null",
      "p.example/TXT/api/spf",
      "p.example/TXT/shop/spf",
      expect.stringMatching(/^p\.example\/TXT\/verify\//),
    ]);
    expect(applyGuard(d, limit).ok).toBe(true);
  });

  it("do not count the posture's own denials, but do count the same record from the operator", () => {
    // Wildcard address records bring the posture's `*.shop MX 0 .` and SPF -all: only the
    // operator's 3 records count (see the wildcard case above); the 4 derived ones do not.
    const d = diffStates(state(withZone(parked)), state(withRecords(["{ type: A, name: \"*.shop\", content: 192.0.2.1 }", "{ type: A, name: \"*.x\", content: 192.0.2.2 }"])));
    expect(d.zones.find((z) => z.zone === "p.example")).toMatchObject({ added: 6, sensitiveAdded: 2 });
    // An operator's own `v=spf1 -all` beside the A record replaces the derived one (the
    // posture never writes a second SPF) and counts: it is not the tool's record.
    const own = diffStates(state(withZone(parked)), state(withRecords(["{ type: A, name: shop, content: 192.0.2.1 }", "{ type: TXT, name: shop, content: \"v=spf1 -all\" }"])));
    expect(own.zones.find((z) => z.zone === "p.example")).toMatchObject({ added: 3, sensitiveAdded: 1 });
  });

  it("addsPostureRisk: the posture's denials are exempt, its records that allow something are not", () => {
    const rec = (r: Partial<DnsRec>): DnsRec => ({ zone: "p.example", ttl: 300, what: "t", source: "posture", name: "@", type: "TXT", ...r });
    const exempt = [
      rec({ name: "shop", type: "MX", content: ".", priority: 0 }),
      rec({ name: "*", type: "MX", content: ".", priority: 0 }),
      rec({ name: "shop", type: "TXT", content: "v=spf1 -all" }),
      rec({ name: "*", type: "TXT", content: "v=spf1 -all" }),
      rec({ name: "@", type: "TXT", content: "v=spf1 -all" }),
      rec({ name: "*._domainkey", type: "TXT", content: "v=DKIM1; p=" }),
    ];
    const counted = [
      // The same denials written by the operator.
      rec({ source: "extra", name: "shop", type: "TXT", content: "v=spf1 -all" }),
      rec({ source: "extra", name: "*", type: "MX", content: ".", priority: 0 }),
      // The posture's records that allow: a provider's MX and SPF, a DKIM key, the web placeholder.
      rec({ name: "@", type: "MX", content: "mx.provider.example", priority: 10 }),
      rec({ name: "@", type: "TXT", content: "v=spf1 include:spf.provider.example -all" }),
      rec({ name: "s1._domainkey", type: "CNAME", content: "s1.provider.example" }),
      rec({ name: "@", type: "AAAA", content: "100::", proxied: true }),
    ];
    for (const r of exempt) expect(addsPostureRisk(r), `${r.source} ${r.name} ${r.type} ${r.content}`).toBe(false);
    for (const r of counted) expect(addsPostureRisk(r), `${r.source} ${r.name} ${r.type} ${r.content}`).toBe(true);
    // Not sensitive at all: counted nowhere, whoever wrote it.
    expect(addsPostureRisk(rec({ source: "extra", name: "www", type: "A", content: "192.0.2.1" }))).toBe(false);
  });

  it("postureSensitive names exactly the issue's classes", () => {
    const yes = [
      { name: "@", type: "A" },
      { name: "*", type: "A" },
      { name: "*.shop", type: "AAAA" },
      { name: "_dmarc", type: "TXT", content: "v=DMARC1; p=none" },
      { name: "_dmarc.shop", type: "TXT", content: "v=DMARC1; p=none" },
      { name: "sel._domainkey", type: "TXT", content: "v=DKIM1; p=x" },
      { name: "sel._domainkey.shop", type: "CNAME", content: "x.example" },
      { name: "news", type: "TXT", content: "v=spf1 -all" },
      { name: "news", type: "TXT", content: "V=SPF1 include:x.example -all" },
    ] as const;
    const no = [
      { name: "www", type: "A" },
      { name: "shop._report._dmarc", type: "TXT", content: "v=DMARC1" },
      { name: "news", type: "TXT", content: "spf1 is not a prefix here" },
      { name: "x-domainkey", type: "TXT", content: "v=DKIM1; p=" },
    ] as const;
    for (const r of yes) expect(postureSensitive(r), r.name).toBe(true);
    for (const r of no) expect(postureSensitive(r), r.name).toBe(false);
  });
});
