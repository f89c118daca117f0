// FAKE: a KV binding for a Worker in workerd that reads Workers KV as one Cloudflare
// location sees it: every get() goes to FakeKvApi's /__location/<name>/ endpoint
// (test/fakes/cloudflare-kv-api.ts), which applies that location's replication lag and
// its cache of hits AND misses under the read's cacheTtl. Installed as a Miniflare
// wrapped binding in place of the Worker's local KV namespace, so the router's own code
// (env.SITES.get(key, { type, cacheTtl })) runs unchanged. The binding's contract
// (kv/api/read-key-value-pairs.mdx, checked 2026-11-27): get() resolves null for a
// missing key, `type` is text (default), json, arrayBuffer or stream, cacheTtl is in
// seconds (the fake refuses < 60 with an error, as KV refuses an invalid cache_ttl).
import type { WorkerOptions } from "miniflare";

const MODULE = `
export default function (env) {
  const base = env.LOCATION_URL;
  async function read(key, arg) {
    const opts = typeof arg === "string" ? { type: arg } : (arg ?? {});
    const type = opts.type ?? "text";
    const q = opts.cacheTtl === undefined ? "" : "?cacheTtl=" + encodeURIComponent(String(opts.cacheTtl));
    const res = await fetch(base + "/values/" + encodeURIComponent(key) + q);
    if (res.status === 404) return null;
    if (!res.ok) throw new Error("KV GET failed: " + res.status + " " + (await res.text()));
    if (type === "arrayBuffer") return await res.arrayBuffer();
    if (type === "json") return JSON.parse(await res.text());
    if (type === "stream") return res.body;
    return await res.text();
  }
  return {
    get: read,
    async getWithMetadata() { throw new Error("fake location binding: getWithMetadata is not modelled"); },
    async put() { throw new Error("fake location binding is read-only: publish through the REST API"); },
    async delete() { throw new Error("fake location binding is read-only: publish through the REST API"); },
    async list() { throw new Error("fake location binding: list is not modelled"); },
  };
}
`;

export const KV_LOCATION_SCRIPT = "fake-kv-location";

/** The worker that implements the wrapped binding (add it to Miniflare's `workers`). */
export function kvLocationWorker(): WorkerOptions {
  return { name: KV_LOCATION_SCRIPT, modules: [{ type: "ESModule", path: "fake-kv-location.mjs", contents: MODULE }] } as WorkerOptions;
}

/** The wrapped binding for one location (a Worker's `wrappedBindings` entry). */
export function kvLocationBinding(locationUrl: string): { scriptName: string; bindings: Record<string, string> } {
  return { scriptName: KV_LOCATION_SCRIPT, bindings: { LOCATION_URL: locationUrl } };
}
