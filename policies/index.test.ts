// The pack's list: every policy has a unique kebab-case name, a description and is
// mandatory; the example fleet's desired state passes them all.
import { describe, expect, it } from "vitest";
import { deriveDesiredState } from "../stacks/model/desired.ts";
import { loadInventoryOrThrow } from "../stacks/model/load.ts";
import { policies } from "./all.ts";
import { fromDesired } from "./lib/from-desired.ts";
import { runPolicies } from "./run.ts";

describe("the policy pack", () => {
  it("has uniquely named, described, mandatory policies", () => {
    const names = policies.map((p) => p.name);
    expect(new Set(names).size).toBe(names.length);
    for (const p of policies) {
      expect(p.name).toMatch(/^[a-z0-9]+(-[a-z0-9]+)*$/);
      expect(p.description.length).toBeGreaterThan(20);
      expect(p.enforcementLevel).toBe("mandatory");
    }
  });

  it("passes the example fleet", async () => {
    const state = deriveDesiredState(loadInventoryOrThrow("fleet"), { accountId: "acct" });
    expect(await runPolicies(fromDesired(state))).toEqual([]);
  });
});
