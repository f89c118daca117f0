import { describe, expect, it } from "vitest";
import { compliantZones } from "../../test/fixtures/policies.ts";
import { TYPE } from "../lib/resources.ts";
import { runPolicies } from "../run.ts";
import { nullMxAlone } from "./null-mx-alone.ts";

describe("null-mx-alone", () => {
  it("passes a lone null MX", async () => {
    expect(await runPolicies(compliantZones(), [nullMxAlone])).toEqual([]);
  });
  it("flags another MX beside the null MX", async () => {
    const rs = compliantZones();
    const nullMx = rs.find((r) => r.name === "parked-one.example/MX/@/null")!;
    rs.push({ type: TYPE.dnsRecord, name: "parked-one.example/MX/@/mx", parent: nullMx.parent, props: { ...nullMx.props, content: "mx.example.net", priority: 10 } });
    const v = await runPolicies(rs, [nullMxAlone]);
    expect(v.map((x) => x.message)).toEqual(["parked-one.example has a null MX beside 1 other MX record(s)"]);
  });
  it("judges each name on its own: the wildcard's null MX and the apex's are both alone", async () => {
    const rs = compliantZones();
    expect(rs.some((r) => r.name === "parked-one.example/MX/*/null")).toBe(true);
    const wild = rs.find((r) => r.name === "parked-one.example/MX/*/null")!;
    rs.push({ ...wild, name: "parked-one.example/MX/*/catchall", props: { ...wild.props, content: "mx.example.net", priority: 10 } });
    const v = await runPolicies(rs, [nullMxAlone]);
    expect(v.map((x) => x.message)).toEqual(["*.parked-one.example has a null MX beside 1 other MX record(s)"]);
  });
});
