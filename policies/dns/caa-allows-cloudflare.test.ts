import { describe, expect, it } from "vitest";
import { changed, compliantZones, named } from "../../test/fixtures/policies.ts";
import { runPolicies } from "../run.ts";
import { caaAllowsCloudflare } from "./caa-allows-cloudflare.ts";

describe("caa-allows-cloudflare-cas", () => {
  it("passes a proxied zone whose CAA lists Cloudflare's CAs, and a parked zone that allows none", async () => {
    expect(await runPolicies(compliantZones(), [caaAllowsCloudflare])).toEqual([]);
  });
  it("flags a proxied zone whose CAA leaves out one of Cloudflare's CAs", async () => {
    const rs = changed(compliantZones(), named("site.example/CAA/@/0-issue-pki.goog"), (p) => ({ ...p, data: { flags: 0, tag: "issue", value: "digicert.com" } }));
    const v = await runPolicies(rs, [caaAllowsCloudflare]);
    expect(v.map((x) => x.message)).toEqual(["site.example is proxied but its CAA does not allow pki.goog"]);
  });
  it("flags a parked zone that becomes proxied while its CAA allows no CA", async () => {
    const rs = compliantZones();
    const web = rs.find((r) => r.name === "site.example/AAAA/@/web")!;
    rs.push({ ...web, name: "parked-one.example/AAAA/@/web", parent: "parked-one.example", props: { ...web.props, zoneId: "a0000000000000000000000000000002", name: "parked-one.example" } });
    const v = await runPolicies(rs, [caaAllowsCloudflare]);
    expect(v.map((x) => x.message)).toEqual(["parked-one.example is proxied but its CAA does not allow letsencrypt.org, pki.goog, ssl.com, sectigo.com"]);
  });
});
