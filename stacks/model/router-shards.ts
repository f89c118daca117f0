// Which zones the router Worker serves, and which router shard serves each zone.
// Pure; used by the Router component, the sites build (allowed hosts) and the plan.
//
// Cloudflare allows at most 1,000 zones per Worker (routes), last verified 2026-11.
// Zones are spread over ceil(n / 800) shards (20% headroom) by rendezvous
// (highest-random-weight) hashing of the zone name: adding or removing a zone moves no
// other zone while the shard count stays the same, and when the count grows by one
// the only zones that move are those that move to the new shard (about 1/N of them).
import { rendezvousWeight } from "./rendezvous.ts";
import type { Inventory, ZoneSpec } from "./schema.ts";

export const ZONES_PER_WORKER_LIMIT = 1000;
/** Shards are sized for this many zones, so a shard is full only after unusual skew. */
export const ZONES_PER_SHARD_TARGET = 800;

/** Zones whose effective web posture is proxied: the router's zones. */
export function routerZones(inv: Pick<Inventory, "zones" | "profiles">): ZoneSpec[] {
  return inv.zones.filter((z) => (z.overrides.web ?? inv.profiles.profiles[z.profile]?.web) === "proxied");
}

/** Hostnames that may have a site: every router zone and its www. host. */
export function routerHosts(inv: Pick<Inventory, "zones" | "profiles">): Set<string> {
  return new Set(routerZones(inv).flatMap((z) => [z.name, `www.${z.name}`]));
}

export function shardCount(zoneCount: number, target = ZONES_PER_SHARD_TARGET): number {
  return Math.max(1, Math.ceil(zoneCount / target));
}


/** The shards of a zone, best first. */
function preference(zone: string, shards: number): number[] {
  const ws = Array.from({ length: shards }, (_, s) => ({ s, w: rendezvousWeight(String(s), zone) }));
  ws.sort((a, b) => (a.w === b.w ? a.s - b.s : a.w > b.w ? -1 : 1));
  return ws.map((x) => x.s);
}

export interface ShardOptions {
  /** Fix the shard count (e.g. to keep it while shrinking); default shardCount(zones). */
  shards?: number;
  /** Hard capacity of a shard; default Cloudflare's 1,000 zones per Worker. */
  capacity?: number;
}

/**
 * Assigns every zone a shard in [0, shards). Each zone takes its highest-weight shard;
 * only if that shard is at capacity does it take its next best (zones are placed in
 * name order, so the result depends on the set of zones, never on their order).
 */
export function assignShards(zones: readonly string[], opts: ShardOptions = {}): Map<string, number> {
  const unique = [...new Set(zones)].sort();
  const shards = opts.shards ?? shardCount(unique.length);
  const capacity = opts.capacity ?? ZONES_PER_WORKER_LIMIT;
  if (!Number.isInteger(shards) || shards < 1) throw new Error(`shard count must be a positive integer, got ${shards}`);
  if (unique.length > shards * capacity) {
    throw new Error(`${unique.length} zones do not fit in ${shards} shard(s) of ${capacity} zones`);
  }
  const load = new Array<number>(shards).fill(0);
  const out = new Map<string, number>();
  for (const zone of unique) {
    const shard = preference(zone, shards).find((s) => load[s]! < capacity)!;
    load[shard]!++;
    out.set(zone, shard);
  }
  return out;
}

/** The Worker script name of a shard: shard 0 keeps the plain name. */
export function shardScriptName(base: string, shard: number): string {
  return shard === 0 ? base : `${base}-${shard}`;
}
