// The archive in the local R2 state of `npm run dev:proxy` (Miniflare, `<persist>/r2`),
// opened with the proxy's own ARCHIVE binding (workers/llm-proxy/wrangler.jsonc), whose
// bucket name keys the persisted data. Read-only.
import "../no-telemetry.ts";
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import type { Readable } from "node:stream";
import { Miniflare } from "miniflare";
import { wranglerWorkerOptions } from "../../../workers/llm-proxy/local/miniflare.ts";
import type { ArchivedObject, ArchiveSource } from "./source.ts";

export class NoArchiveError extends Error {}

/** The proxy's ARCHIVE bucket name (wrangler.jsonc r2_buckets). */
export function archiveBucketName(): string {
  const r2 = wranglerWorkerOptions().options.r2Buckets;
  const b = r2 !== undefined && !Array.isArray(r2) ? r2.ARCHIVE : undefined;
  const name = typeof b === "string" ? b : b?.id;
  if (name === undefined) throw new Error("workers/llm-proxy/wrangler.jsonc: r2_buckets has no ARCHIVE binding");
  return name;
}

export async function openLocalArchive(root: string, persistDir: string): Promise<ArchiveSource> {
  const dir = resolve(root, persistDir, "r2");
  // Checked first: Miniflare would create the folder and an empty bucket in it.
  if (!existsSync(dir)) throw new NoArchiveError(`no archive in local state ${persistDir} (no r2 folder): run \`npm run dev:proxy\` and make a call as a tenant with archive on, or give --persist`);
  const mf = new Miniflare({
    modules: true,
    script: "export default { fetch() { return new Response(null, { status: 404 }) } }",
    compatibilityDate: wranglerWorkerOptions().options.compatibilityDate,
    r2Buckets: { ARCHIVE: archiveBucketName() },
    r2Persist: dir,
    cf: false,
    // workerd's own output goes to standard error: `get` writes a body to standard output
    // byte for byte, and nothing else may land in it.
    handleRuntimeStdio(stdout: Readable, stderr: Readable) {
      stdout.pipe(process.stderr);
      stderr.pipe(process.stderr);
    },
  });
  const bucket = await mf.getR2Bucket("ARCHIVE");
  return {
    where: `local state ${persistDir}`,
    async list(prefix) {
      const out: ArchivedObject[] = [];
      let cursor: string | undefined;
      for (;;) {
        const page = await bucket.list({ prefix, include: ["customMetadata"], ...(cursor !== undefined ? { cursor } : {}) });
        for (const o of page.objects) out.push({ key: o.key, size: o.size, customMetadata: o.customMetadata ?? {} });
        if (!page.truncated) return out;
        cursor = page.cursor;
      }
    },
    async get(key) {
      const o = await bucket.get(key);
      if (o === null) return undefined;
      return { bytes: new Uint8Array(await o.arrayBuffer()), contentType: o.httpMetadata?.contentType ?? null };
    },
    close: () => mf.dispose(),
  };
}
