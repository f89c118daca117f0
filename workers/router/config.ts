// The router's wrangler.jsonc as the local harness, `npm run dev:router` and the benchmark
// need it: script name, compatibility settings, the content map's KV binding and the vars.
// Read by the same reader the Pulumi side uses (stacks/model/wrangler.ts), so the two
// cannot disagree; wrangler.jsonc stays the single source of the Worker's bindings.
import { dirname } from "node:path";
import { readWorkerConfigOrThrow } from "../../stacks/model/wrangler.ts";
import { ROUTER_DIR } from "./bundle.ts";

export interface RouterConfig {
  name: string;
  compatibilityDate: string;
  compatibilityFlags: string[];
  /** The binding name of the content map's KV namespace. */
  kvBinding: string;
  vars: Record<string, string>;
}

export function readRouterConfig(): RouterConfig {
  const config = readWorkerConfigOrThrow("router", dirname(ROUTER_DIR));
  if (config.kv.length !== 1) throw new Error(`${config.file}: the router needs exactly one kv_namespaces entry (the content map), found ${config.kv.length}`);
  return {
    name: config.name,
    compatibilityDate: config.compatibilityDate,
    compatibilityFlags: config.compatibilityFlags,
    kvBinding: config.kv[0]!.binding,
    vars: config.vars,
  };
}
