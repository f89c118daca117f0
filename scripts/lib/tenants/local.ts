// The local tenant store: the TENANTS KV namespace of the Miniflare state that
// `npm run dev:proxy` persists (default .wrangler/llm-proxy-state), opened with the
// bindings of workers/llm-proxy/wrangler.jsonc.
import { Miniflare } from "miniflare";
import { resolve } from "node:path";
import type { TenantKv } from "./store.ts";
import { wranglerWorkerOptions } from "../../../workers/llm-proxy/local/miniflare.ts";

type MfKv = Awaited<ReturnType<Miniflare["getKVNamespace"]>>;

/** TenantKv over a Miniflare KV namespace (also used by the Worker's tests). */
export function miniflareKv(ns: MfKv): TenantKv {
  return {
    get: (key) => ns.get(key, "text"),
    put: async (key, value, metadata) => {
      await ns.put(key, value, { metadata });
    },
    list: async (prefix) => {
      const out: { name: string; metadata: unknown }[] = [];
      let cursor: string | undefined;
      for (;;) {
        const page = await ns.list({ prefix, cursor });
        for (const k of page.keys) out.push({ name: k.name, metadata: k.metadata });
        if (page.list_complete) break;
        cursor = page.cursor;
      }
      return out;
    },
  };
}

function kvNamespaceId(): string {
  const kv = wranglerWorkerOptions().options.kvNamespaces;
  const ns = kv !== undefined && !Array.isArray(kv) ? kv.TENANTS : undefined;
  const id = typeof ns === "string" ? ns : ns?.id;
  if (id === undefined) throw new Error("workers/llm-proxy/wrangler.jsonc: kv_namespaces has no TENANTS binding");
  return id;
}

export const DEFAULT_PERSIST = ".wrangler/llm-proxy-state";

export async function openLocalStore(root: string, persistDir: string): Promise<{ kv: TenantKv; close: () => Promise<void> }> {
  const mf = new Miniflare({
    modules: true,
    script: "export default { fetch() { return new Response(null, { status: 404 }) } }",
    // The namespace id must be the Worker's (wrangler.jsonc): persisted data is keyed by it.
    kvNamespaces: { TENANTS: kvNamespaceId() },
    kvPersist: resolve(root, persistDir, "kv"),
    cf: false,
  });
  const kv = miniflareKv(await mf.getKVNamespace("TENANTS"));
  return { kv, close: () => mf.dispose() };
}
