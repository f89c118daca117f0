// Splitting the DNS posture across several Pulumi stacks (shards) when one stack
// grows too large. Zones are assigned by rendezvous hashing of their names, so adding
// a zone never moves another, and adding a shard moves only the zones that now hash
// to it (about 1/n of them); a zone may also be pinned with `shard:`.
import { rendezvousWeight } from "./rendezvous.ts";
import type { DesiredState } from "./desired.ts";
import { TYPES } from "./names.ts";
import type { Inventory } from "./schema.ts";
import { ACCOUNT_SCOPE } from "./workers.ts";


/** The shard of one zone among `shards` (highest random weight). */
export function shardOf(zone: string, shards: readonly string[]): string {
  let best = shards[0]!;
  let bestWeight = -1n;
  for (const s of shards) {
    const w = rendezvousWeight(s, zone);
    if (w > bestWeight || (w === bestWeight && s < best)) {
      best = s;
      bestWeight = w;
    }
  }
  return best;
}

/** Zone name -> shard, or undefined when the inventory is not sharded. */
export function assignShards(inv: Inventory): Map<string, string> | undefined {
  const shards = inv.fleet.stacks?.shards;
  if (!shards) return undefined;
  return new Map(inv.zones.map((z) => [z.name, z.shard ?? shardOf(z.name, shards)]));
}

/** The part of a desired state one shard's stack declares. */
export function stateOfShard(state: DesiredState, shardOfZone: ReadonlyMap<string, string>, shard: string, first: string): DesiredState {
  const zones = new Set(state.zones.filter((z) => shardOfZone.get(z.name) === shard).map((z) => z.name));
  // Account-wide resources (Worker scripts, their storage) live in the first shard's
  // stack; routes and custom domains go with their zone. A stack that holds any of a
  // component's children declares the component (and its parents) too.
  const mine = state.resources.filter((r) => (r.zone === ACCOUNT_SCOPE ? shard === first && !isComponent(r) : zones.has(r.zone)));
  const byName = new Map(state.resources.filter(isComponent).map((r) => [r.name, r]));
  const needed = new Set<string>();
  for (const r of mine) for (let p = r.parent; p && byName.has(p) && !needed.has(p); p = byName.get(p)!.parent) needed.add(p);
  const keep = new Set(mine);
  return { ...state, zones: state.zones.filter((z) => zones.has(z.name)), resources: state.resources.filter((r) => keep.has(r) || (isComponent(r) && r.zone === ACCOUNT_SCOPE && needed.has(r.name))) };
}

function isComponent(r: DesiredState["resources"][number]): boolean {
  return r.type === TYPES.worker || r.type === TYPES.router;
}

export class ShardError extends Error {}

/** The state one stack declares: all of it, or one shard's part when `shard` is given. */
export function selectShard(inv: Inventory, state: DesiredState, shard: string | undefined): DesiredState {
  if (shard === undefined) return state;
  const assigned = assignShards(inv);
  const shards = inv.fleet.stacks?.shards;
  if (!assigned || !shards) throw new ShardError(`shard '${shard}' was asked for, but fleet.yaml defines no stacks.shards`);
  if (!shards.includes(shard)) throw new ShardError(`shard '${shard}' is not one of fleet.yaml's stacks.shards (${shards.join(", ")})`);
  return stateOfShard(state, assigned, shard, shards[0]!);
}

/** Zones and resources per shard, for the plan. */
export function shardSummary(inv: Inventory, state: DesiredState): Record<string, { zones: number; resources: number }> | undefined {
  const assigned = assignShards(inv);
  if (!assigned) return undefined;
  const shards = inv.fleet.stacks!.shards;
  return Object.fromEntries(
    shards.map((s) => {
      const part = stateOfShard(state, assigned, s, shards[0]!);
      return [s, { zones: part.zones.length, resources: part.resources.length }];
    }),
  );
}
