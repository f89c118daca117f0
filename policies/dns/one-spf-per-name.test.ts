import { describe, expect, it } from "vitest";
import { compliantZones } from "../../test/fixtures/policies.ts";
import { runPolicies } from "../run.ts";
import { oneSpfPerName } from "./one-spf-per-name.ts";

describe("one-spf-per-name", () => {
  it("passes one SPF record per name", async () => {
    expect(await runPolicies(compliantZones(), [oneSpfPerName])).toEqual([]);
  });
  it("flags a second SPF record at a name", async () => {
    const rs = compliantZones();
    const spf = rs.find((r) => r.name === "site.example/TXT/@/spf")!;
    rs.push({ ...spf, name: "site.example/TXT/@/t-1", props: { ...spf.props, content: "v=spf1 include:_spf.example.net -all" } });
    const v = await runPolicies(rs, [oneSpfPerName]);
    expect(v).toEqual([{ policy: "one-spf-per-name", message: "site.example has 2 SPF records", resource: "site.example/TXT/@/t-1" }]);
  });
  it("counts the wildcard and the address names' SPF separately from the apex's", async () => {
    const rs = compliantZones();
    for (const n of ["site.example/TXT/*/spf", "site.example/TXT/www/spf", "site.example/TXT/@/spf"]) expect(rs.some((r) => r.name === n), n).toBe(true);
    expect(await runPolicies(rs, [oneSpfPerName])).toEqual([]);
    const www = rs.find((r) => r.name === "site.example/TXT/www/spf")!;
    rs.push({ ...www, name: "site.example/TXT/www/t-2", props: { ...www.props, content: "v=spf1 a -all" } });
    expect((await runPolicies(rs, [oneSpfPerName])).map((x) => x.message)).toEqual(["www.site.example has 2 SPF records"]);
  });
});
