// The plan diff and its safety guard.
import { describe, expect, it } from "vitest";
import { inventory, withZone, ZONES } from "../../test/support/inventory.ts";
import { deriveDesiredState } from "./desired.ts";
import { applyGuard, diffStates } from "./diff.ts";

const state = (zones: string) => deriveDesiredState(inventory({ zones }), { accountId: "acct" });
const loose = { maxZoneChangeShare: 1, maxFleetShare: 1 };
const strict = { maxZoneChangeShare: 0.3, maxFleetShare: 0.2 };

describe("diffStates", () => {
  it("finds nothing between equal states", () => {
    const d = diffStates(state(ZONES), state(ZONES));
    expect(d.changes).toEqual([]);
    expect(d.totals).toEqual({ added: 0, changed: 0, removed: 0, zonesTouched: 0, zonesBefore: 3 });
  });

  it("reports records added, changed and removed per zone, with the changed fields", () => {
    const before = state(withZone("  - name: x.example\n    profile: parked\n    records:\n      - { type: A, name: www, content: 192.0.2.1 }\n"));
    const after = state(withZone("  - name: x.example\n    profile: parked\n    overrides: { ttl: 600 }\n    records:\n      - { type: A, name: api, content: 192.0.2.1 }\n"));
    const d = diffStates(before, after);
    const x = d.zones.find((z) => z.zone === "x.example")!;
    // 7 apex posture records, the 2 wildcard ones, and www's A with its null MX and SPF (issue 15.5).
    expect(x).toMatchObject({ added: 3, removed: 3, status: "changed", recordsBefore: 12 });
    // Every posture record changed TTL; the address record, named by its content, moved names with its MX and SPF.
    expect(x.changed).toBe(9);
    const change = d.changes.find((c) => c.name === "x.example/TXT/_dmarc/dmarc")!;
    expect(change).toMatchObject({ kind: "change", fields: ["ttl"] });
    expect(d.changes.filter((c) => c.kind === "add").map((c) => c.name).sort()).toEqual(["x.example/A/api/192.0.2.1", "x.example/MX/api/null", "x.example/TXT/api/spf"]);
  });

  it("marks new and removed zones", () => {
    const d = diffStates(state(ZONES), state(withZone("  - name: n.example\n    profile: parked\n")));
    expect(d.zones.map((z) => [z.zone, z.status])).toEqual([
      ["n.example", "new"],
      ["ops.example", "changed"], // its report authorisation for n.example
    ]);
    const back = diffStates(state(withZone("  - name: n.example\n    profile: parked\n")), state(ZONES));
    expect(back.zones.find((z) => z.zone === "n.example")).toMatchObject({ status: "removed", removed: 9, recordsBefore: 9 });
  });
});

describe("the safety guard", () => {
  const big = withZone(
    "  - name: big.example\n    profile: parked\n    records:\n" +
      Array.from({ length: 13 }, (_, i) => `      - { type: TXT, name: h${i}, content: "t${i + 1}" }\n`).join(""),
  );
  const bigAfter = (n: number) =>
    withZone(
      "  - name: big.example\n    profile: parked\n    records:\n" +
        Array.from({ length: 13 }, (_, i) => `      - { type: TXT, name: h${i}, content: "t${i < n ? i + 101 : i + 1}" }\n`).join(""),
    );

  it("accepts a change of at most 30% of a zone's records", () => {
    // big.example has 22 managed records: 7 apex posture + 2 wildcard + 13 extra TXT. Rewriting 6 is 27%.
    const v = applyGuard(diffStates(state(big), state(bigAfter(6))), [{ ...strict, maxFleetShare: 1 }]);
    expect(v).toMatchObject({ ok: true, violations: [] });
  });

  it("refuses a change of more than 30% of a zone's records, saying which zone and how much", () => {
    const v = applyGuard(diffStates(state(big), state(bigAfter(7))), [{ ...strict, maxFleetShare: 1 }]);
    expect(v.ok).toBe(false);
    expect(v.violations).toEqual(["big.example: changes 0 and removes 7 of the 22 managed records (31.8% > 30% allowed per zone)"]);
  });

  it("refuses removing a zone, which removes all its records", () => {
    const v = applyGuard(diffStates(state(withZone("  - name: n.example\n    profile: parked\n")), state(ZONES)), [{ ...strict, maxFleetShare: 1 }]);
    expect(v.violations).toEqual(["n.example: removes the zone and all 9 managed records (100% > 30% allowed per zone)"]);
  });

  it("accepts adding zones, which rewrites nothing", () => {
    const v = applyGuard(diffStates(state(ZONES), state(withZone("  - name: n.example\n    profile: parked\n"))), [{ ...loose, maxZoneChangeShare: 0.3 }]);
    expect(v.ok).toBe(true);
  });

  it("refuses touching more than the allowed share of the fleet", () => {
    // Adding one zone touches it and the mailbox zone: 2 of 3 zones.
    const v = applyGuard(diffStates(state(ZONES), state(withZone("  - name: n.example\n    profile: parked\n"))), [{ ...loose, maxFleetShare: 0.5 }]);
    expect(v.violations).toEqual(["the change touches 2 of 3 zones (66.7% > 50% of the fleet allowed)"]);
  });

  it("judges by the stricter of the base's and the change's limits", () => {
    const d = diffStates(state(big), state(bigAfter(7)));
    expect(applyGuard(d, [loose, { ...strict, maxFleetShare: 1 }]).ok).toBe(false);
    expect(applyGuard(d, [{ ...strict, maxFleetShare: 1 }, loose]).ok).toBe(false);
    expect(applyGuard(d, [loose, loose]).ok).toBe(true);
  });
});
