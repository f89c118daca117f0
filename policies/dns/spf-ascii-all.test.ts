import { describe, expect, it } from "vitest";
import { changed, compliantZones, named } from "../../test/fixtures/policies.ts";
import { runPolicies } from "../run.ts";
import { spfAsciiAll } from "./spf-ascii-all.ts";

describe("spf-ascii-dash", () => {
  it("passes an ASCII -all", async () => {
    expect(await runPolicies(compliantZones(), [spfAsciiAll])).toEqual([]);
  });
  it("flags an en dash in -all", async () => {
    const rs = changed(compliantZones(), named("site.example/TXT/@/spf"), (p) => ({ ...p, content: "v=spf1 \u2013all" }));
    const v = await runPolicies(rs, [spfAsciiAll]);
    expect(v.map((x) => x.message)).toEqual(["site.example: SPF contains a typographic dash (U+2013); '-all' must use ASCII '-'"]);
  });
});
