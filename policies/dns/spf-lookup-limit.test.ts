import { describe, expect, it } from "vitest";
import { changed, compliantZones, named } from "../../test/fixtures/policies.ts";
import { runPolicies } from "../run.ts";
import { spfLookupLimit } from "./spf-lookup-limit.ts";

const includes = (n: number) => Array.from({ length: n }, (_, i) => `include:s${i}.example.net`).join(" ");

describe("spf-lookup-limit", () => {
  it("passes SPF with 10 lookup terms", async () => {
    const rs = changed(compliantZones(), named("site.example/TXT/@/spf"), (p) => ({ ...p, content: `v=spf1 ${includes(10)} -all` }));
    expect(await runPolicies(rs, [spfLookupLimit])).toEqual([]);
  });
  it("flags SPF with 11 lookup terms", async () => {
    const rs = changed(compliantZones(), named("site.example/TXT/@/spf"), (p) => ({ ...p, content: `v=spf1 ${includes(10)} mx -all` }));
    const v = await runPolicies(rs, [spfLookupLimit]);
    expect(v.map((x) => x.message)).toEqual(["site.example: SPF has 11 DNS-lookup terms, more than 10"]);
  });
});

describe("spf-lookup-limit through includes inside the stack", () => {
  it("follows an include to another name of the stack and counts its terms", async () => {
    let rs = changed(compliantZones(), named("site.example/TXT/@/spf"), (p) => ({ ...p, content: `v=spf1 ${includes(6)} include:parked-one.example -all` }));
    rs = changed(rs, named("parked-one.example/TXT/@/spf"), (p) => ({ ...p, content: `v=spf1 ${includes(5)} -all` }));
    const v = await runPolicies(rs, [spfLookupLimit]);
    expect(v.map((x) => x.message)).toEqual(["site.example: SPF has 12 DNS-lookup terms, more than 10"]);
  });
  it("flags an include loop inside the stack", async () => {
    let rs = changed(compliantZones(), named("site.example/TXT/@/spf"), (p) => ({ ...p, content: "v=spf1 include:parked-one.example -all" }));
    rs = changed(rs, named("parked-one.example/TXT/@/spf"), (p) => ({ ...p, content: "v=spf1 include:site.example -all" }));
    const v = await runPolicies(rs, [spfLookupLimit]);
    expect(v.map((x) => x.message)).toContain("site.example: SPF include loop: site.example -> parked-one.example -> site.example");
  });
});
