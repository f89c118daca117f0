// The SPF grammar (RFC 7208 section 12) on records seen in the wild (accepted) and on
// the mistakes it must catch, and the fleet-following lookup count.
import { describe, expect, it } from "vitest";
import { allQualifier, evaluateSpf, parseSpf, type FleetView } from "./spf.ts";

describe("parseSpf", () => {
  it.each([
    "v=spf1 -all",
    "v=spf1 include:_spf.google.com ~all",
    "V=SPF1 INCLUDE:_spf.google.com -ALL",
    "v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 ip6:::1 a mx ptr -all",
    "v=spf1 a:mail.example.com/24//64 mx//96 -all",
    "v=spf1 exists:%{i}._spf.%{d} -all",
    "v=spf1 include:%{ir}.%{v}._spf.%{d2} -all",
    "v=spf1 redirect=_spf.example.com",
    "v=spf1 mx exp=explain._spf.%{d} -all",
    "v=spf1 mx foo=bar -all",
    "v=spf1 -ip4:198.51.100.1 ?mx ~a -all ",
    "v=spf1 include:example.com.  -all",
  ])("accepts %s", (record) => {
    expect(parseSpf(record).problem).toBeUndefined();
  });

  it.each([
    ["v=spf2 -all", /starts with 'v=spf1'/],
    ["v=spf1 include -all", /needs a domain/],
    ["v=spf1 include: -all", /empty domain-spec/],
    ["v=spf1 ip4:300.1.1.1 -all", /needs an IPv4 address/],
    ["v=spf1 ip4:192.0.2.0/24/1 -all", /one CIDR length/],
    ["v=spf1 a/33 -all", /0-32/],
    ["v=spf1 a//129 -all", /0-128/],
    ["v=spf1 exists:%{x}.example.com -all", /invalid macro/],
    ["v=spf1 exists:%{c}.example.com -all", /only allowed in exp=/],
    ["v=spf1 include:a%b.example.com -all", /must start a macro/],
    ["v=spf1 all:example.com", /takes no argument/],
    ["v=spf1 include:example.c_m -all", /top-level label/],
    ["v=spf1 exp=a.example exp=b.example -all", /appears twice/],
    ["v=spf1\t-all", /ASCII: found a control/],
    ["v=spf1 \u00e9 -all", /non-ASCII/],
    [`v=spf1 include:${Array(4).fill("a".repeat(63)).join(".")}.example -all`, /longer than a domain name may be/],
  ])("refuses %s", (record, message) => {
    expect(parseSpf(record).problem).toMatch(message);
  });

  it("reads the all qualifier", () => {
    expect(allQualifier(parseSpf("v=spf1 all"))).toBe("+");
    expect(allQualifier(parseSpf("v=spf1 ~all"))).toBe("~");
    expect(allQualifier(parseSpf("v=spf1 mx"))).toBeUndefined();
  });
});

describe("evaluateSpf", () => {
  const records: Record<string, { spf?: string[]; a?: boolean; mx?: boolean }> = {
    "a.example": { spf: ["v=spf1 include:_spf.a.example include:out.example -all"], mx: true },
    "_spf.a.example": { spf: ["v=spf1 a:relay.a.example mx:a.example redirect=_spf2.a.example"] },
    "_spf2.a.example": { spf: ["v=spf1 ip4:192.0.2.1 -all"] },
    "relay.a.example": { a: true },
  };
  const view: FleetView = {
    inFleet: (n) => n === "a.example" || n.endsWith(".a.example"),
    spfAt: (n) => records[n]?.spf ?? [],
    has: (n, t) => (t === "A" ? !!records[n]?.a : !!records[n]?.mx),
  };
  it("follows includes and redirects inside the fleet and counts every lookup", () => {
    // include(1) + include out(1) + a(1) + mx(1) + redirect(1)
    expect(evaluateSpf("a.example", records["a.example"]!.spf![0]!, view)).toEqual({ lookups: 5, voids: 0 });
  });
  it("counts void lookups at names of the fleet with no answer", () => {
    expect(evaluateSpf("a.example", "v=spf1 a:x.a.example mx:y.a.example exists:z.a.example -all", view)).toEqual({ lookups: 3, voids: 3 });
  });
  it("does not follow names outside the fleet", () => {
    expect(evaluateSpf("a.example", "v=spf1 a:x.other.example include:y.other.example -all", view)).toEqual({ lookups: 2, voids: 0 });
  });
  it("stays cheap on a hostile include tree (each name includes the next two: 2^40 paths)", () => {
    const tree: FleetView = {
      inFleet: () => true,
      spfAt: (n) => {
        const i = Number(/^n(\d+)\./.exec(n)?.[1] ?? 99);
        return i < 40 ? [`v=spf1 include:n${i + 1}.t.example include:n${i + 2}.t.example -all`] : ["v=spf1 -all"];
      },
      has: () => true,
    };
    const ev = evaluateSpf("n0.t.example", tree.spfAt("n0.t.example")[0]!, tree);
    expect(ev.lookups).toBeGreaterThan(10);
    expect(ev.lookups).toBeLessThan(30);
  });
});
