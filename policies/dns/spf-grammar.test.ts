import { describe, expect, it } from "vitest";
import { changed, compliantZones, named } from "../../test/fixtures/policies.ts";
import { runPolicies } from "../run.ts";
import { spfGrammar } from "./spf-grammar.ts";

const withSpf = (content: string) => changed(compliantZones(), named("site.example/TXT/@/spf"), (p) => ({ ...p, content }));
const run = async (content: string) => (await runPolicies(withSpf(content), [spfGrammar])).map((v) => v.message);

describe("spf-grammar-and-all", () => {
  it("passes the derived posture", async () => {
    expect(await runPolicies(compliantZones(), [spfGrammar])).toEqual([]);
  });
  it("flags +all, a bare all and ?all", async () => {
    expect(await run("v=spf1 +all")).toEqual(["site.example: SPF '+all' lets anyone send"]);
    expect(await run("v=spf1 all")).toEqual(["site.example: SPF '+all' lets anyone send"]);
    expect(await run("v=spf1 ?all")).toEqual(["site.example: SPF '?all' lets anyone send"]);
  });
  it("flags ~all in a zone that receives no mail", async () => {
    expect(await run("v=spf1 ~all")).toEqual(["site.example: SPF '~all' in a zone that sends no mail"]);
  });
  it("flags a record with no all and no redirect", async () => {
    expect(await run("v=spf1 ip4:192.0.2.1")).toEqual(["site.example: SPF has neither 'all' nor 'redirect=' (neutral for everyone)"]);
  });
  it("flags a grammar error, quoted content included", async () => {
    expect(await run('"v=spf1 ip4:192.0.2.0/33 -all"')).toEqual(["site.example: SPF is invalid: ip4:192.0.2.0/33: CIDR length '/33' must be 0-32"]);
  });
});
