// Entry point of `npm run dev:router`: serves fleet/sites locally through the router
// Worker in workerd (Miniflare), with the content map built and loaded into its local
// KV namespace exactly as `npm run sites publish` would write it to Cloudflare.
//   npm run dev:router -- --port 8787
//   curl -H 'Host: llm-gateway.example' http://127.0.0.1:8787/
import { isAbsolute, join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { Command, CommanderError } from "commander";
import { buildSites, formatBuildProblem, SitesBuildError } from "./lib/sites/build.ts";
import { EXIT } from "./lib/exit-codes.ts";
import { InventoryError, loadInventoryOrThrow } from "../stacks/model/load.ts";
import { routerHosts } from "../stacks/model/router-shards.ts";
import { loadEntries, startRouter } from "../workers/router/local/miniflare.ts";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const program = new Command("dev:router")
  .description("Serve fleet/sites locally through the router Worker (workerd, via Miniflare).")
  .option("--port <n>", "port on 127.0.0.1 (0: any free port)", "8787")
  .option("--inventory <dir>", "the inventory directory", "fleet")
  .option("--sites <dir>", "the sites directory (default: <inventory>/sites)")
  .option("--host <name>", "serve this site for every request, whatever its Host header (handy in a browser)")
  .option("--cache-ttl <ms>", "ROUTER_CACHE_TTL_MS for the local Worker (default: wrangler.jsonc's)")
  .addHelpText("after", "\nWithout --host the Host header picks the site: curl -H 'Host: llm-gateway.example' http://127.0.0.1:8787/\n")
  .exitOverride();

let opts: { port: string; inventory: string; sites?: string; host?: string; cacheTtl?: string };
try {
  opts = program.parse(process.argv.slice(2), { from: "user" }).opts();
} catch (e) {
  process.exit(e instanceof CommanderError && e.exitCode === 0 ? EXIT.ok : EXIT.usage);
}
const port = Number(opts.port);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`dev:router: --port must be a port number, got '${opts.port}'`);
  process.exit(EXIT.usage);
}
const abs = (p: string) => (isAbsolute(p) ? p : join(root, p));

let build;
try {
  const inventory = loadInventoryOrThrow(abs(opts.inventory));
  build = buildSites(abs(opts.sites ?? join(opts.inventory, "sites")), { allowedHosts: routerHosts(inventory), inventory, base: root });
} catch (e) {
  if (e instanceof SitesBuildError) console.error(e.problems.map(formatBuildProblem).join("\n"));
  else if (e instanceof InventoryError) console.error(e.message);
  else throw e;
  process.exit(EXIT.invalid);
}

const mf = await startRouter({
  port,
  ...(opts.cacheTtl !== undefined ? { vars: { ROUTER_CACHE_TTL_MS: opts.cacheTtl } } : {}),
  ...(opts.host ? { upstream: `http://${opts.host}` } : {}),
});
await loadEntries(mf, build.entries);
const url = await mf.ready;
const hosts = build.manifest.hosts.map((h) => h.host);
console.log(`router on ${url.origin}: ${hosts.length} host(s), ${build.entries.length} KV entries (build ${build.hash.slice(0, 16)})`);
console.log(opts.host ? `every request is served as ${opts.host}` : `try: curl -H 'Host: ${hosts[0]}' ${url.origin}/`);
console.log("Ctrl-C to stop");
const stop = async () => {
  await mf.dispose();
  process.exit(0);
};
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
