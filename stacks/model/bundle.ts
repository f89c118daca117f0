// Bundles a Worker (its wrangler.jsonc `main`) into one ES module with esbuild, the way
// Pulumi uploads it. Deterministic: no source maps, no banners, no absolute paths, a
// fixed target, so the bytes (and their SHA-256, which the plan shows) change only when
// the code does and an unchanged Worker is never re-uploaded.
import { createHash } from "node:crypto";
import { join } from "node:path";
import { buildSync } from "esbuild";
import type { WorkerConfig } from "./wrangler.ts";

/** The module name every bundle is uploaded under (WorkersScript.mainModule). */
export const MAIN_MODULE = "index.js";

export interface WorkerBundle {
  content: string;
  /** "sha256:<hex>" of the content. */
  sha256: string;
  bytes: number;
}

const cache = new Map<string, WorkerBundle>();

/** `minify: false` only for reading the code in a profiler (bench:proxy-profile); what
 *  Pulumi uploads is minified. */
export function bundleWorker(config: Pick<WorkerConfig, "dir" | "main" | "compatibilityFlags">, o: { minify?: boolean } = {}): WorkerBundle {
  const minify = o.minify ?? true;
  const entry = join(config.dir, config.main);
  const key = minify ? entry : `${entry} (not minified)`;
  const hit = cache.get(key);
  if (hit) return hit;
  const nodeCompat = config.compatibilityFlags.some((f) => f === "nodejs_compat" || f === "nodejs_compat_v2");
  let result;
  try {
    result = buildSync({
    entryPoints: [entry],
    absWorkingDir: config.dir,
    bundle: true,
    write: false,
    format: "esm",
    platform: "neutral",
    target: "es2022",
    conditions: ["workerd", "worker", "browser"],
    // The runtime provides these; with nodejs_compat, node:* modules too.
    external: nodeCompat ? ["cloudflare:*", "node:*"] : ["cloudflare:*"],
    minify,
    legalComments: "none",
    charset: "utf8",
    logLevel: "silent",
    });
  } catch (e) {
    // esbuild names the file, line and column relative to the Worker's folder.
    const errors = (e as { errors?: { text: string; location?: { file: string; line: number; column: number } | null }[] }).errors ?? [];
    const where = (x: (typeof errors)[number]) => (x.location ? `${join(config.dir, x.location.file)}:${x.location.line}:${x.location.column + 1}: ` : "");
    throw new Error(`cannot bundle the Worker in ${config.dir}:\n${errors.map((x) => `  ${where(x)}${x.text}`).join("\n") || String(e)}`);
  }
  const content = result.outputFiles[0]!.text;
  const bundle = { content, sha256: `sha256:${createHash("sha256").update(content).digest("hex")}`, bytes: Buffer.byteLength(content) };
  cache.set(key, bundle);
  return bundle;
}
