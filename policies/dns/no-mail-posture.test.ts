import { describe, expect, it } from "vitest";
import { changed, compliantZones, named } from "../../test/fixtures/policies.ts";
import { runPolicies } from "../run.ts";
import { noMailPosture } from "./no-mail-posture.ts";

const run = (rs: Parameters<typeof runPolicies>[0]) => runPolicies(rs, [noMailPosture]);

describe("no-mail-zone-posture", () => {
  it("passes the derived posture of no-mail zones", async () => {
    expect(await run(compliantZones())).toEqual([]);
  });
  it("flags a missing null MX", async () => {
    const v = await run(compliantZones().filter((r) => !named("parked-one.example/MX/@/null")(r)));
    expect(v.map((x) => x.message)).toEqual(["parked-one.example sends no mail but lacks a null MX ('0 .') at the apex"]);
  });
  it("flags SPF that is not -all", async () => {
    const v = await run(changed(compliantZones(), named("site.example/TXT/@/spf"), (p) => ({ ...p, content: "v=spf1 ~all" })));
    expect(v.map((x) => x.message)).toEqual(["site.example sends no mail but lacks SPF 'v=spf1 -all' at the apex"]);
  });
  it("flags DMARC that does not reject", async () => {
    const v = await run(changed(compliantZones(), named("parked-one.example/TXT/_dmarc/dmarc"), (p) => ({ ...p, content: String(p.content).replace("p=reject", "p=none") })));
    expect(v.map((x) => x.message)).toEqual(["parked-one.example sends no mail but lacks DMARC with p=reject at _dmarc"]);
  });
  it("flags a missing empty DKIM wildcard", async () => {
    const v = await run(changed(compliantZones(), named("parked-one.example/TXT/*._domainkey/dkim"), (p) => ({ ...p, content: "v=DKIM1; p=MIIB" })));
    expect(v.map((x) => x.message)).toEqual(["parked-one.example sends no mail but lacks the empty DKIM wildcard '*._domainkey' 'v=DKIM1; p='"]);
  });
  it("leaves zones that receive mail to their provider", async () => {
    const v = await run(changed(compliantZones(), named("parked-one.example/MX/@/null"), (p) => ({ ...p, content: "mx.example.net", priority: 10 })));
    expect(v).toEqual([]);
  });
});
