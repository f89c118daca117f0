// The router Worker as Pulumi uploads it: the tests, `npm run dev:router` and the
// benchmark run exactly these bytes (stacks/model/bundle.ts: esbuild, deterministic).
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { bundleWorker, MAIN_MODULE } from "../../stacks/model/bundle.ts";
import { readWorkerConfigOrThrow } from "../../stacks/model/wrangler.ts";

export const ROUTER_DIR = dirname(fileURLToPath(import.meta.url));
export const ROUTER_WRANGLER_CONFIG = join(ROUTER_DIR, "wrangler.jsonc");
/** The module name the bundle is uploaded and loaded under (WorkersScript.mainModule). */
export const ROUTER_MAIN_MODULE = MAIN_MODULE;

export function bundleRouter(): string {
  return bundleWorker(readWorkerConfigOrThrow("router", dirname(ROUTER_DIR))).content;
}
