// Shard assignment of the DNS posture across stacks: stable, balanced, pinnable.
import fc from "fast-check";
import { TYPES } from "./names.ts";
import { describe, expect, it } from "vitest";
import { inventory, withZone } from "../../test/support/inventory.ts";
import { FLEET } from "../../test/support/inventory.ts";
import { deriveDesiredState } from "./desired.ts";
import { assignShards, selectShard, ShardError, shardOf, shardSummary } from "./shards.ts";

const names = (n: number) => Array.from({ length: n }, (_, i) => `zone-${i}.example`);

describe("shardOf", () => {
  it("never moves a zone when zones are added or removed (it depends on the zone alone)", () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.stringMatching(/^[a-z]{3,10}$/), { minLength: 1, maxLength: 50 }), (labels) => {
        const shards = ["dns-a", "dns-b", "dns-c"];
        for (const l of labels) expect(shardOf(`${l}.example`, shards)).toBe(shardOf(`${l}.example`, [...shards].reverse()));
      }),
    );
  });

  it("moves only zones that go to a new shard when one is added, about 1/n of them", () => {
    const zones = names(3000);
    const before = zones.map((z) => shardOf(z, ["a", "b", "c"]));
    const after = zones.map((z) => shardOf(z, ["a", "b", "c", "d"]));
    const moved = zones.filter((_, i) => before[i] !== after[i]);
    expect(moved.every((z) => shardOf(z, ["a", "b", "c", "d"]) === "d")).toBe(true);
    expect(moved.length).toBeGreaterThan(3000 * 0.2);
    expect(moved.length).toBeLessThan(3000 * 0.3);
  });

  it("balances zones across shards", () => {
    const counts = new Map<string, number>();
    for (const z of names(3000)) counts.set(shardOf(z, ["a", "b", "c"]), (counts.get(shardOf(z, ["a", "b", "c"])) ?? 0) + 1);
    for (const n of counts.values()) expect(Math.abs(n - 1000)).toBeLessThan(150);
  });
});

describe("a sharded inventory", () => {
  const sharded = (zones?: string) => inventory({ fleet: `${FLEET}stacks:\n  shards: [dns-a, dns-b]\n`, zones });

  it("assigns every zone, honouring pins", () => {
    const inv = sharded(withZone("  - name: pinned.example\n    profile: parked\n    shard: dns-b\n"));
    const assigned = assignShards(inv)!;
    expect(assigned.size).toBe(inv.zones.length);
    expect(assigned.get("pinned.example")).toBe("dns-b");
    expect(assignShards(inventory())).toBeUndefined();
  });

  it("splits the desired state by zone; the shards together are the whole", () => {
    const inv = sharded();
    const state = deriveDesiredState(inv, { accountId: "acct" });
    const a = selectShard(inv, state, "dns-a");
    const b = selectShard(inv, state, "dns-b");
    // Every resource is in a shard; only components (no cloud resource) may be in both,
    // to hold the routes each shard's zones have.
    const key = (r: (typeof state.resources)[number]) => `${r.type}::${r.name}`;
    expect(new Set([...a.resources, ...b.resources].map(key)).size).toBe(state.resources.length);
    const inB = new Set(b.resources.map(key));
    const both = a.resources.filter((r) => inB.has(key(r)));
    expect(both.every((r) => r.type === TYPES.worker || r.type === TYPES.router)).toBe(true);
    // Scripts and storage live in the first shard's stack.
    expect(b.resources.some((r) => r.type === TYPES.workersScript)).toBe(false);
    expect(a.resources.some((r) => r.type === TYPES.workersScript)).toBe(true);
    expect(new Set([...a.zones, ...b.zones].map((z) => z.name)).size).toBe(state.zones.length);
    expect(shardSummary(inv, state)).toEqual({
      "dns-a": { zones: a.zones.length, resources: a.resources.length },
      "dns-b": { zones: b.zones.length, resources: b.resources.length },
    });
  });

  it("refuses an unknown shard, and a shard on an unsharded inventory", () => {
    const inv = sharded();
    const state = deriveDesiredState(inv, { accountId: "acct" });
    expect(() => selectShard(inv, state, "dns-z")).toThrow(ShardError);
    expect(() => selectShard(inventory(), state, "dns-a")).toThrow(/no stacks.shards/);
  });
});
