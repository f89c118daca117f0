import { describe, expect, it } from "vitest";
import { compliantZones } from "../../test/fixtures/policies.ts";
import type { PlainResource } from "../lib/resources.ts";
import { runPolicies } from "../run.ts";
import { noMailPosture } from "./no-mail-posture.ts";
import { dmarcSubdomainNotWeaker } from "./dmarc-subdomain-not-weaker.ts";

/** Adds a DMARC record at `name` in parked-one.example, before or after the zone's own. */
function withDmarc(name: string, content: string, first: boolean): PlainResource[] {
  const rs = compliantZones();
  const own = rs.find((r) => r.name === "parked-one.example/TXT/_dmarc/dmarc")!;
  const extra = { ...own, name: `parked-one.example/TXT/${name}/t-x`, props: { ...own.props, name: `${name}.parked-one.example`, content } };
  return first ? [extra, ...rs] : [...rs, extra];
}

describe("dmarc-one-per-name-none-weaker", () => {
  it("passes the derived posture", async () => {
    expect(await runPolicies(compliantZones(), [dmarcSubdomainNotWeaker])).toEqual([]);
  });
  it.each([true, false])("flags a second DMARC record at _dmarc whatever its position (first: %s)", async (first) => {
    const v = await runPolicies(withDmarc("_dmarc", "v=DMARC1; p=none", first), [dmarcSubdomainNotWeaker, noMailPosture]);
    expect(v.map((x) => x.message).sort()).toEqual([
      "_dmarc.parked-one.example has 2 DMARC records; receivers ignore DMARC when there is more than one",
      "parked-one.example sends no mail but lacks exactly one DMARC record at _dmarc (it has 2)",
    ]);
  });
  it.each([true, false])("flags a weaker subdomain DMARC whatever its position (first: %s)", async (first) => {
    const v = await runPolicies(withDmarc("_dmarc.news", "v=DMARC1; p=none", first), [dmarcSubdomainNotWeaker, noMailPosture]);
    expect(v.map((x) => x.message)).toEqual([
      "_dmarc.news.parked-one.example is weaker than _dmarc.parked-one.example: p=none is weaker than the zone's own p=reject",
    ]);
  });
  it("accepts a subdomain DMARC as strict as the zone's", async () => {
    const v = await runPolicies(withDmarc("_dmarc.news", "v=DMARC1; p=reject; sp=reject; adkim=s; aspf=s", true), [dmarcSubdomainNotWeaker, noMailPosture]);
    expect(v).toEqual([]);
  });
});
