// Router sharding: every zone in one shard, no shard over Cloudflare's 1,000 zones per
// Worker, and stable assignment as zones come and go.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { loadInventoryOrThrow } from "./load.ts";
import { assignShards, routerHosts, routerZones, shardCount, shardScriptName, ZONES_PER_WORKER_LIMIT } from "./router-shards.ts";

const zoneNames = (n: number, prefix = "z") => Array.from({ length: n }, (_, i) => `${prefix}${i}.example`);
const loads = (a: Map<string, number>, shards: number) => {
  const l = new Array<number>(shards).fill(0);
  for (const s of a.values()) l[s]!++;
  return l;
};

describe("router zones", () => {
  const inv = loadInventoryOrThrow("fleet");
  it("are the zones whose effective web posture is proxied (profile or override)", () => {
    const names = routerZones(inv).map((z) => z.name);
    expect(names).toContain("llm-gateway.example"); // profile web
    expect(names).toContain("northwind-traders.example"); // mail-google: web proxied
    expect(names).toContain("fabrikam-studio.example"); // mail-m365 with overrides.web: proxied
    expect(names).not.toContain("ops-mail.example"); // mail-fastmail: web none
    for (const z of routerZones(inv)) expect(z.overrides.web ?? inv.profiles.profiles[z.profile]!.web).toBe("proxied");
  });
  it("give each zone and its www. host as a site host", () => {
    const hosts = routerHosts(inv);
    expect(hosts.has("llm-gateway.example")).toBe(true);
    expect(hosts.has("www.llm-gateway.example")).toBe(true);
    expect(hosts.has("ops-mail.example")).toBe(false);
    expect(hosts.size).toBe(routerZones(inv).length * 2);
  });
});

describe("shard assignment", () => {
  it("uses one shard up to 800 zones, then one per 800 (20% headroom under 1,000)", () => {
    expect([0, 1, 800, 801, 1000, 1600, 1601, 5000].map((n) => shardCount(n))).toEqual([1, 1, 1, 2, 2, 2, 3, 7]);
  });

  it("puts every zone in exactly one shard and no shard over 1,000 zones", () => {
    for (const n of [1, 799, 800, 801, 2500, 5000]) {
      const a = assignShards(zoneNames(n));
      expect(a.size).toBe(n);
      const shards = shardCount(n);
      for (const s of a.values()) expect(s >= 0 && s < shards).toBe(true);
      expect(Math.max(...loads(a, shards))).toBeLessThanOrEqual(ZONES_PER_WORKER_LIMIT);
    }
  });

  it("never exceeds a shard's capacity, spilling to the next best shard", () => {
    const a = assignShards(zoneNames(30), { shards: 3, capacity: 10 });
    expect(loads(a, 3)).toEqual([10, 10, 10]);
    expect(() => assignShards(zoneNames(31), { shards: 3, capacity: 10 })).toThrow(/31 zones do not fit in 3 shard\(s\) of 10 zones/);
  });

  it("does not depend on the order zones are listed in", () => {
    const zones = zoneNames(1200);
    const a = assignShards(zones);
    const b = assignShards([...zones].reverse());
    expect([...b.entries()].sort()).toEqual([...a.entries()].sort());
  });

  it("is stable when a zone is added or removed: no other zone moves", () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.stringMatching(/^[a-z]{3,12}$/), { minLength: 2, maxLength: 300 }),
        fc.integer({ min: 1, max: 6 }),
        (names, shards) => {
          const zones = names.map((n) => `${n}.example`);
          const [extra, ...rest] = zones;
          const before = assignShards(rest, { shards });
          const after = assignShards(zones, { shards });
          for (const z of rest) expect(after.get(z)).toBe(before.get(z));
        },
      ),
      { numRuns: 100 },
    );
  });

  it("adds a zone to a full fleet of 1,600 without moving another (real sizes, default capacity)", () => {
    const zones = zoneNames(1600);
    const before = assignShards(zones);
    const after = assignShards([...zones, "newcomer.example"]);
    expect(shardCount(1601)).toBe(3); // crossing 1,600 adds a shard ...
    const moved = zones.filter((z) => after.get(z) !== before.get(z));
    // ... and the zones that move go to the new shard only, about a third of them.
    for (const z of moved) expect(after.get(z)).toBe(2);
    expect(moved.length).toBeGreaterThan(400);
    expect(moved.length).toBeLessThan(700);
    // Below the boundary, adding a zone moves nothing.
    const b2 = assignShards(zoneNames(1500));
    const a2 = assignShards([...zoneNames(1500), "newcomer.example"]);
    for (const z of zoneNames(1500)) expect(a2.get(z)).toBe(b2.get(z));
  });

  it("names shard 0 by the base script name and others with a suffix", () => {
    expect(shardScriptName("edgefleet-router", 0)).toBe("edgefleet-router");
    expect(shardScriptName("edgefleet-router", 2)).toBe("edgefleet-router-2");
  });
});
