// Reads the settings the plan shares with `pulumi preview` from Pulumi.<stack>.yaml,
// so that both describe the same stack: the inventory path and the account id.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";

export interface StackSettings {
  stack: string;
  /** The stack file read, or undefined when there is none. */
  file?: string;
  inventory?: string;
  accountId?: string;
  /** The DNS shard this stack declares (edgefleet:shard), when the fleet is sharded. */
  shard?: string;
}

export function readStackSettings(root: string, stack: string): StackSettings {
  const file = join(root, `Pulumi.${stack}.yaml`);
  if (!existsSync(file)) return { stack };
  const doc = (parse(readFileSync(file, "utf8")) ?? {}) as { config?: Record<string, unknown> };
  const config = doc.config ?? {};
  const str = (k: string) => (typeof config[k] === "string" ? (config[k] as string) : undefined);
  return { stack, file, inventory: str("edgefleet:inventory"), accountId: str("edgefleet:accountId"), shard: str("edgefleet:shard") };
}
