// Starts the router Worker in workerd through Miniflare, with the bindings and
// compatibility settings read from its wrangler.jsonc (the single source), and
// loads a sites build into its KV namespace. Local-run code, not test code (operator
// commands may import it): used by the router's tests, `npm run dev:router` and the benchmark.
// First, before wrangler and miniflare load: no telemetry wherever the router is started.
import "../../../scripts/lib/no-telemetry.ts";
import { Miniflare, type MiniflareOptions, type WorkerOptions } from "miniflare";
import { unstable_getMiniflareWorkerOptions } from "wrangler";
import { bundleRouter, ROUTER_MAIN_MODULE, ROUTER_WRANGLER_CONFIG } from "../bundle.ts";
import { readRouterConfig } from "../config.ts";
import type { KvEntry } from "../../../scripts/lib/sites/build.ts";
import { CONTENT_PREFIX } from "../src/table.ts";

export interface RouterOptions {
  /** Override wrangler.jsonc vars (e.g. a tiny cache TTL for a test). */
  vars?: Record<string, string>;
  /** Serve on this port (0 = any) instead of only through dispatchFetch. */
  port?: number;
  /** The Worker's source bundle; default: the router. */
  script?: string;
  /** Rewrite every request's URL to this origin (Miniflare's upstream), e.g. to pick a site. */
  upstream?: string;
}

/** The binding name of the content map's KV namespace, as wrangler.jsonc declares it. */
export function routerKvBinding(): string {
  return readRouterConfig().kvBinding;
}

/** The router's own worker options (bindings from wrangler.jsonc, the bundled source). */
export function routerWorkerOptions(opts: Pick<RouterOptions, "vars" | "script"> = {}): WorkerOptions {
  const { workerOptions } = unstable_getMiniflareWorkerOptions(ROUTER_WRANGLER_CONFIG);
  const bindings = { ...(workerOptions.bindings as Record<string, unknown> | undefined), ...opts.vars };
  return {
    ...workerOptions,
    bindings,
    modules: [{ type: "ESModule", path: ROUTER_MAIN_MODULE, contents: opts.script ?? bundleRouter() }],
  } as WorkerOptions;
}

export function routerMiniflareOptions(opts: RouterOptions = {}): MiniflareOptions {
  return {
    ...routerWorkerOptions(opts),
    cf: false,
    ...(opts.port !== undefined ? { host: "127.0.0.1", port: opts.port } : {}),
    ...(opts.upstream ? { upstream: opts.upstream } : {}),
  } as MiniflareOptions;
}

export async function startRouter(opts: RouterOptions = {}): Promise<Miniflare> {
  const mf = new Miniflare(routerMiniflareOptions(opts));
  await mf.ready;
  return mf;
}

/**
 * Writes a build's entries into the local namespace in publish's order: all content
 * first, then the host tables that name it, so a request never sees a half-loaded site.
 */
export async function loadEntries(mf: Miniflare, entries: readonly KvEntry[]): Promise<void> {
  const kv = await mf.getKVNamespace(routerKvBinding());
  const put = async (list: KvEntry[]) => {
    // A few writes at a time: each is a round trip into workerd's local KV.
    for (let i = 0; i < list.length; i += 16) {
      await Promise.all(list.slice(i, i + 16).map((e) => kv.put(e.key, e.value, { metadata: e.metadata })));
    }
  };
  await put(entries.filter((e) => e.key.startsWith(CONTENT_PREFIX)));
  await put(entries.filter((e) => !e.key.startsWith(CONTENT_PREFIX)));
}
