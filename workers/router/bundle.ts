// Bundles the router Worker (src/index.ts) into one ES module with esbuild, the same
// way for the Pulumi component (the uploaded script), the tests, `npm run dev:router`
// and the benchmark. Deterministic: same sources -> same bytes (no source maps, no
// banners, no absolute paths), so an unchanged Worker is never re-uploaded.
import { buildSync } from "esbuild";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const ROUTER_DIR = dirname(fileURLToPath(import.meta.url));
export const ROUTER_WRANGLER_CONFIG = join(ROUTER_DIR, "wrangler.jsonc");
/** The module name the bundle is uploaded and loaded under (WorkersScript.mainModule). */
export const ROUTER_MAIN_MODULE = "index.js";

export function bundleRouter(entry = join(ROUTER_DIR, "src/index.ts")): string {
  const result = buildSync({
    entryPoints: [entry],
    absWorkingDir: ROUTER_DIR,
    bundle: true,
    write: false,
    format: "esm",
    platform: "neutral",
    target: "es2022",
    minify: true,
    legalComments: "none",
    logLevel: "silent",
  });
  return result.outputFiles[0]!.text;
}
