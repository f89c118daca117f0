// Runs the LLM proxy Worker locally in workerd (Miniflare), for the tests, `npm run
// dev:proxy` and the benchmark. Bindings come from wrangler.jsonc through wrangler's
// own reader, never restated here; the source is bundled as Pulumi bundles it. The METRICS
// binding is replaced by a recording one (Analytics Engine is a no-op locally). PRICES
// (for budgets) comes from fleet/metering.yaml through meteringVars(), as for the ledger.
import "../../../scripts/lib/no-telemetry.ts";
import { bundleWorker as bundleModelWorker } from "../../../stacks/model/bundle.ts";
import { loadMeteringOrThrow, meteringVars } from "../../../stacks/model/metering.ts";
import { readWorkerConfigOrThrow } from "../../../stacks/model/wrangler.ts";
import { Log, LogLevel, Miniflare, Response, type Request as MfRequest, type WorkerOptions } from "miniflare";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { unstable_getMiniflareWorkerOptions } from "wrangler";

export const WORKER_DIR = resolve(dirname(fileURLToPath(import.meta.url)), "..");
export const WRANGLER_CONFIG = resolve(WORKER_DIR, "wrangler.jsonc");
/** The repository's inventory (fleet/), whatever the current directory. */
export const INVENTORY_DIR = resolve(WORKER_DIR, "../../fleet");

/** The proxy's vars that come from the inventory, not from wrangler.jsonc: the price
 *  table its budgets are priced with (the same JSON the usage ledger receives). */
export function inventoryVars(inventoryDir: string = INVENTORY_DIR): { PRICES: string } {
  return { PRICES: meteringVars(loadMeteringOrThrow(inventoryDir)).PRICES };
}

/** The Worker bundled as one ES module: the very bytes Pulumi uploads (stacks/model/bundle.ts),
 *  or the same unminified (`minify: false`, for a profiler). */
export function bundleWorker(o: { minify?: boolean } = {}): Promise<string> {
  return Promise.resolve().then(() => bundleModelWorker(readWorkerConfigOrThrow("llm-proxy", dirname(WORKER_DIR)), o).content);
}

/** wrangler.jsonc as Miniflare worker options (bindings, DOs, compatibility). */
export function wranglerWorkerOptions(): { options: WorkerOptions; vars: Record<string, string>; name: string } {
  const { workerOptions } = unstable_getMiniflareWorkerOptions(WRANGLER_CONFIG);
  const vars = (workerOptions.bindings ?? {}) as Record<string, string>;
  return { options: workerOptions as WorkerOptions, vars, name: "llm-proxy" };
}

// Stands in for the Analytics Engine binding: every writeDataPoint goes to a Node
// function through a service binding; the Worker awaits it inside ctx.waitUntil.
const RECORDER = `
class RecordingDataset {
  constructor(env) { this.env = env; }
  writeDataPoint(point) {
    return this.env.SINK.fetch("http://metrics.sink/", { method: "POST", body: JSON.stringify(point) }).then((r) => r.arrayBuffer());
  }
}
export default function (env) { return new RecordingDataset(env); }
`;

export interface DataPoint {
  indexes: string[];
  blobs: string[];
  doubles: number[];
}

export interface LocalProxyOptions {
  /** Vars overriding wrangler.jsonc's (e.g. UPSTREAM_BASE_URL). */
  vars?: Record<string, string>;
  secrets: { ANTHROPIC_API_KEY?: string; OPERATOR_TOKEN?: string };
  /** Persist KV, Durable Object and R2 (the archive) state here (dev-proxy); in memory
   *  when absent. */
  persistDir?: string;
  /** Persist D1 here (wrangler's `<dir>/v3/d1` layout: the usage ledger's database, read by
   *  `npm run usage`); in memory when absent. */
  d1PersistDir?: string;
  /** More Workers in the same runtime: the usage ledger (local/pipeline.ts), a usage-event
   *  recorder (tests). */
  extraWorkers?: WorkerOptions[];
  /** Options over the proxy Worker's own (tests: a USAGE_EVENTS binding that fails). */
  override?: Partial<WorkerOptions>;
  port?: number;
  host?: string;
  /** workerd's V8 inspector on this port (CPU profiles of the proxy: `npm run bench:proxy-profile`). */
  inspectorPort?: number;
  /** Receives each metrics data point (else METRICS is Miniflare's no-op simulator). */
  onDataPoint?: (p: DataPoint) => void;
  /** Receives each log line of the Worker (console output) and of Miniflare. */
  onLog?: (line: string) => void;
  /** Inventory folder for PRICES (default: the repository's fleet/). */
  inventoryDir?: string;
  /** The proxy's bundle, when not this tree's (`npm run bench:proxy-ab`: a build of another
   *  revision). */
  script?: string;
}

/** Miniflare's log, sent line by line to a sink (tests read it; dev commands print it). */
export class CapturingLog extends Log {
  private readonly sink: (line: string) => void;
  constructor(sink: (line: string) => void) {
    super(LogLevel.WARN);
    this.sink = sink;
  }
  override log(message: string): void {
    this.sink(message);
  }
}

/**
 * The proxy Worker's Miniflare options: wrangler.jsonc's bindings and compatibility, the
 * inventory's vars, then `vars` and `secrets`. Named `name` (more than one proxy can run in
 * one Miniflare: `npm run bench:proxy` runs its variants side by side in one workerd).
 * METRICS is Miniflare's own no-op Analytics Engine simulator; `override` comes last.
 */
export function proxyWorkerOptions(
  script: string,
  o: { name?: string; vars?: Record<string, string>; secrets: LocalProxyOptions["secrets"]; inventoryDir?: string; override?: Partial<WorkerOptions> },
): WorkerOptions {
  const { options, vars } = wranglerWorkerOptions();
  const { rootPath: _root, ...rest } = options as WorkerOptions & { rootPath?: string };
  return {
    ...rest,
    name: o.name ?? "llm-proxy",
    modules: true,
    script,
    scriptPath: resolve(WORKER_DIR, "src/index.js"),
    // Module names are scriptPath relative to modulesRoot, which defaults to the working
    // directory: run from elsewhere, the name began with "../" and workerd refused to start
    // ("Uncaught Error: internal error"). Rooted at the Worker's folder, any cwd works.
    modulesRoot: WORKER_DIR,
    bindings: { ...vars, ...inventoryVars(o.inventoryDir), ...o.vars, ...o.secrets },
    ...o.override,
  } as WorkerOptions;
}

export async function startLocalProxy(o: LocalProxyOptions): Promise<{ mf: Miniflare; url: URL }> {
  const script = o.script ?? (await bundleWorker());
  const onDataPoint = o.onDataPoint;
  // Without a receiver, keep Miniflare's own (no-op) Analytics Engine simulator.
  const metrics: Partial<WorkerOptions> = onDataPoint === undefined ? {} : { analyticsEngineDatasets: {}, wrappedBindings: { METRICS: { scriptName: "metrics-recorder" } } };
  const onLog = o.onLog ?? ((line: string) => process.stdout.write(line + "\n"));
  const recorder: WorkerOptions[] =
    onDataPoint === undefined
      ? []
      : [
      {
        name: "metrics-recorder",
        modules: true,
        script: RECORDER,
        serviceBindings: {
          SINK: async (req: MfRequest) => {
            onDataPoint((await req.json()) as DataPoint);
            return new Response("ok");
          },
        },
      },
        ];
  const mf = new Miniflare({
    host: o.host ?? "127.0.0.1",
    port: o.port ?? 0,
    cf: false,
    log: new CapturingLog(onLog),
    handleStructuredLogs: ({ message }: { message: string }) => {
      onLog(message);
    },
    ...(o.persistDir
      ? { kvPersist: resolve(o.persistDir, "kv"), durableObjectsPersist: resolve(o.persistDir, "do"), r2Persist: resolve(o.persistDir, "r2") }
      : {}),
    ...(o.d1PersistDir ? { d1Persist: o.d1PersistDir } : {}),
    ...(o.inspectorPort !== undefined ? { inspectorPort: o.inspectorPort } : {}),
    workers: [
      proxyWorkerOptions(script, { vars: o.vars, secrets: o.secrets, inventoryDir: o.inventoryDir, override: { ...metrics, ...o.override } }),
      ...recorder,
      ...(o.extraWorkers ?? []),
    ],
  });
  const url = await mf.ready;
  return { mf, url };
}
