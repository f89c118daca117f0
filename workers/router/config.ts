// Reads the router's wrangler.jsonc (through wrangler's own config reader) into what
// the Router Pulumi component and the local harness need: script name, compatibility
// settings, the content map's KV binding and the vars. wrangler.jsonc stays the single
// source of the Worker's bindings.
import { unstable_readConfig } from "wrangler";
import { ROUTER_WRANGLER_CONFIG } from "./bundle.ts";

export interface RouterConfig {
  name: string;
  compatibilityDate: string;
  compatibilityFlags: string[];
  /** The binding name of the content map's KV namespace. */
  kvBinding: string;
  vars: Record<string, string>;
}

export function readRouterConfig(path = ROUTER_WRANGLER_CONFIG): RouterConfig {
  const config = unstable_readConfig({ config: path });
  const kv = config.kv_namespaces;
  if (kv.length !== 1) throw new Error(`${path}: the router needs exactly one kv_namespaces entry (the content map), found ${kv.length}`);
  if (!config.compatibility_date) throw new Error(`${path}: compatibility_date is required`);
  const vars: Record<string, string> = {};
  for (const [k, v] of Object.entries(config.vars ?? {})) {
    if (typeof v !== "string") throw new Error(`${path}: vars.${k} must be a string`);
    vars[k] = v;
  }
  return {
    name: config.name ?? "edgefleet-router",
    compatibilityDate: config.compatibility_date,
    compatibilityFlags: config.compatibility_flags ?? [],
    kvBinding: kv[0]!.binding,
    vars,
  };
}
