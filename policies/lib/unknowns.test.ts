// Inputs unknown in a preview behave here as in the Pulumi policy server: reading one
// throws, and a policy that does so is reported (the engine would turn it into an advisory
// "can't run during preview" and check nothing more of it).
import { createRequire } from "node:module";
import { UnknownValueError, unknownCheckingProxy, type StackValidationPolicy } from "@pulumi/policy";
import { describe, expect, it } from "vitest";
import { runPolicies } from "../run.ts";
import { PROXY_TARGET, UNKNOWN_SENTINELS, UNKNOWN_STRING } from "./unknown.ts";
import { known, TYPE, type PlainResource } from "./resources.ts";

const sdkProxy = createRequire(import.meta.url)("@pulumi/policy/proxy.js") as Record<string, string>;

describe("unknown inputs in a preview", () => {
  const route: PlainResource = { type: TYPE.workersRoute, name: "r", parent: "zone.example", props: { zoneId: UNKNOWN_STRING, script: "router" }, unknowns: "top" };

  it("the desired state's references are the SDK's own unknown-string sentinel; known() knows all seven and its proxy key", () => {
    expect(UNKNOWN_STRING).toBe(sdkProxy.unknownStringValue);
    const kinds = ["Boolean", "Number", "String", "Array", "Asset", "Archive", "Object"].map((k) => sdkProxy[`unknown${k}Value`]);
    expect([...UNKNOWN_SENTINELS]).toEqual(kinds);
    expect(PROXY_TARGET).toBe(sdkProxy.getSpecialProxyTarget);
    // Through the SDK's own proxy, as in the policy server: unknown, without a throw.
    const wrapped = unknownCheckingProxy({ zoneId: sdkProxy.unknownStringValue, queueId: "q1", n: sdkProxy.unknownNumberValue });
    expect([known(wrapped, "zoneId"), known(wrapped, "queueId"), known(wrapped, "n")]).toEqual([undefined, "q1", undefined]);
    expect(() => wrapped.zoneId).toThrow(UnknownValueError);
  });

  it("a policy that reads an unknown input directly is reported as stopped; known() reads it as undefined", async () => {
    const direct: StackValidationPolicy = {
      name: "reads-directly",
      description: "reads zoneId",
      enforcementLevel: "mandatory",
      validateStack: (args) => void args.resources.map((r) => String(r.props.zoneId)),
    };
    const careful: StackValidationPolicy = {
      name: "reads-with-known",
      description: "reads zoneId with known()",
      enforcementLevel: "mandatory",
      validateStack: (args, report) => args.resources.forEach((r) => known(r.props, "zoneId") === undefined && report("zone id not known yet", r.urn)),
    };
    const v = await runPolicies([route], [direct, careful]);
    expect(v).toEqual([
      { policy: "reads-directly", message: expect.stringMatching(/^can't run during preview: string value at \.zoneId can't be known during preview/), resource: undefined },
      { policy: "reads-with-known", message: "zone id not known yet", resource: "r" },
    ]);
  });
});
