// The Pulumi program's body: stack config -> inventory -> desired state -> resources.
// stacks/index.ts calls it; tests call it under Pulumi's mocks.
import * as pulumi from "@pulumi/pulumi";
import { declareFleet } from "./fleet.ts";
import { cloudflareMigrationTags } from "./live-migration-tags.ts";
import { deriveDesiredState } from "./model/desired.ts";
import { InventoryError, loadInventoryOrThrow } from "./model/load.ts";
import { selectShard, ShardError } from "./model/shards.ts";
import { TYPES } from "./model/names.ts";
import { names } from "./model/workers.ts";

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
  // Durable Object migrations depend on the live script's tag, read from the same API
  // and with the same token the provider uses (docs/deploys.md).
  const provider = new pulumi.Config("cloudflare");
  const token = provider.getSecret("apiToken");
  const migrationTag = cloudflareMigrationTags({
    accountId,
    apiToken: () => (token ? new Promise((res) => token.apply((t) => res(t))) : Promise.resolve(process.env.CLOUDFLARE_API_TOKEN)),
    baseURL: provider.get("baseUrl") ?? process.env.CLOUDFLARE_BASE_URL,
  });
  const fleet = declareFleet(state, undefined, { migrationTag });
  // Ids operator scripts need: npm run sites publish (the content map) and npm run
  // tenants --remote (the LLM proxies' tenant store), read with `pulumi stack output`.
  const kvId = (title: string) => fleet.declared.get(names.kv(title))?.outputs.id;
  const tenants = state.workers.find((w) => w.source === "llm-proxy");
  // D1 database ids by name, for `npm run d1-migrations` (CI applies migrations with
  // wrangler, which needs the id): only in the stack that holds the databases.
  const databases = state.resources.filter((r) => r.type === TYPES.d1Database && fleet.declared.has(r.name));
  const d1DatabaseIds = databases.length > 0 ? pulumi.output(Object.fromEntries(databases.map((r) => [String(r.inputs.name), fleet.declared.get(r.name)!.outputs.uuid!]))) : undefined;
  return {
    zoneCount: fleet.zones.size,
    recordCount: state.resources.filter((r) => r.record).length,
    workers: state.workers.map((w) => w.script),
    sitesNamespaceId: fleet.router?.namespaceId,
    tenantsNamespaceId: tenants ? kvId("edgefleet-llm-proxy-tenants") : undefined,
    d1DatabaseIds,
  };
}
