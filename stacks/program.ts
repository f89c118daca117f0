// The Pulumi program's body: stack config -> inventory -> desired state -> resources.
// stacks/index.ts calls it; tests call it under Pulumi's mocks.
import * as pulumi from "@pulumi/pulumi";
import { declareFleet } from "./fleet.ts";
import { deriveDesiredState } from "./model/desired.ts";
import { InventoryError, loadInventoryOrThrow } from "./model/load.ts";
import { selectShard, ShardError } from "./model/shards.ts";

export const DEFAULT_INVENTORY = "fleet";

export function main() {
  const config = new pulumi.Config("edgefleet");
  const dir = config.get("inventory") ?? DEFAULT_INVENTORY;
  const accountId = config.require("accountId");
  let inventory;
  try {
    inventory = loadInventoryOrThrow(dir);
  } catch (e) {
    // A RunError prints its message without a stack trace: the problems are the message.
    if (e instanceof InventoryError) throw new pulumi.RunError(e.message);
    throw e;
  }
  // A sharded fleet: each stack declares only its shard's zones (edgefleet:shard).
  const shard = config.get("shard");
  if (inventory.fleet.stacks && !shard) {
    throw new pulumi.RunError(`the inventory is split into shards (${inventory.fleet.stacks.shards.join(", ")}): set edgefleet:shard for this stack`);
  }
  let state;
  try {
    state = selectShard(inventory, deriveDesiredState(inventory, { accountId }), shard);
  } catch (e) {
    if (e instanceof ShardError) throw new pulumi.RunError(`edgefleet:shard: ${e.message}`);
    throw e;
  }
  const fleet = declareFleet(state);
  return {
    zoneCount: fleet.zones.size,
    recordCount: state.resources.filter((r) => r.record).length,
  };
}
