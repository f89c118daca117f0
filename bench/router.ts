// Benchmark of the router Worker in workerd (Miniflare), concurrency 16, side by side
// in one run with a minimal Worker that returns a constant response:
//   constant  - `new Response("ok")`, the ceiling for any Worker on this machine
//   cached    - the router with a warm in-isolate cache (no KV read per request)
//   kv        - the router with its cache off (ROUTER_CACHE_TTL_MS=0): two KV reads per request
// Rounds are interleaved (constant, cached, kv, constant, ...) so drift on a shared
// machine hits all three alike; each run is bounded (default 3 rounds x 3 x 3 s).
// Besides requests/s, p50 and p99 it reports the CPU time workerd spent per request
// (Linux /proc), which stays meaningful when other work shares the machine.
// Usage: npm run bench:router [-- --seconds 3 --rounds 3 --concurrency 16 --json]
// Shortest run (proves it works, numbers are not worth recording): -- --seconds 1 --rounds 1
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { parseArgs } from "node:util";
import { Miniflare } from "miniflare";
import { buildSites } from "../scripts/lib/sites/build.ts";
import { loadInventoryOrThrow } from "../stacks/model/load.ts";
import { routerHosts } from "../stacks/model/router-shards.ts";
import { readRouterConfig } from "../workers/router/config.ts";
import { loadEntries, startRouter } from "../workers/router/local/miniflare.ts";
import { cpuMs, withWorkerdPid } from "./lib/router/cpu.ts";
import { drive, type LoadResult } from "./lib/router/load.ts";

// wrangler's no-telemetry variables are set by the harness (workers/router/local/miniflare.ts).

const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "3" },
    rounds: { type: "string", default: "3" },
    concurrency: { type: "string", default: "16" },
    json: { type: "boolean" },
  },
});
const seconds = Number(values.seconds);
const rounds = Number(values.rounds);
const concurrency = Number(values.concurrency);
if (!(seconds > 0 && seconds <= 10 && rounds >= 1 && rounds <= 5 && concurrency >= 1 && concurrency <= 256)) {
  console.error("bench:router: --seconds must be in (0, 10], --rounds in [1, 5], --concurrency in [1, 256]");
  process.exit(2);
}
const HOST = "llm-gateway.example";
const PATH = "/";
const TARGET = 0.8;

const build = buildSites("fleet/sites", { allowedHosts: routerHosts(loadInventoryOrThrow("fleet")) });
const config = readRouterConfig();
const load0 = loadavg();
// One at a time, so each workerd process can be told apart for the CPU column.
const constant = await withWorkerdPid(async () => {
  const mf = new Miniflare({
    modules: true,
    script: 'export default { fetch() { return new Response("ok", { headers: { "content-type": "text/plain" } }); } };',
    compatibilityDate: config.compatibilityDate,
    cf: false,
    host: "127.0.0.1",
    port: 0,
  });
  await mf.ready;
  return mf;
});
const cached = await withWorkerdPid(() => startRouter({ port: 0, vars: { ROUTER_CACHE_TTL_MS: "600000" } }));
const kv = await withWorkerdPid(() => startRouter({ port: 0, vars: { ROUTER_CACHE_TTL_MS: "0" } }));
const targets: [string, Miniflare, string | undefined][] = [
  ["constant", constant.value, constant.pid],
  ["cached", cached.value, cached.pid],
  ["kv", kv.value, kv.pid],
];
type Round = LoadResult & { cpuUsPerRequest: number | null };
const results: Record<string, Round[]> = { constant: [], cached: [], kv: [] };
try {
  const [, cachedMf] = targets[1]!;
  const [, kvMf] = targets[2]!;
  await loadEntries(cachedMf, build.entries);
  await loadEntries(kvMf, build.entries);
  const ports = new Map<string, number>();
  for (const [name, mf] of targets) ports.set(name, Number((await mf.ready).port));
  // Warm-up: JIT, connections, and the cached router's in-isolate cache.
  for (const [name] of targets) await drive({ port: ports.get(name)!, host: HOST, path: PATH, concurrency, durationMs: 500 });
  for (let r = 0; r < rounds; r++) {
    for (const [name, , pid] of targets) {
      const before = cpuMs(pid);
      const round = await drive({ port: ports.get(name)!, host: HOST, path: PATH, concurrency, durationMs: seconds * 1000 });
      const after = cpuMs(pid);
      const cpu = before !== undefined && after !== undefined && round.requests > 0 ? Math.round(((after - before) * 1000) / round.requests) : null;
      results[name]!.push({ ...round, cpuUsPerRequest: cpu });
    }
  }
} finally {
  for (const [, mf] of targets) await mf.dispose();
}

// Per config: the median round by throughput, so one disturbed round does not decide;
// CPU per request is the median over the rounds on its own.
const median = (rs: Round[]) => [...rs].sort((a, b) => a.rps - b.rps)[Math.floor(rs.length / 2)]!;
const medianOf = (xs: number[]) => (xs.length ? [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]! : null);
const rows = targets.map(([name]) => {
  const rs = results[name]!;
  const m = median(rs);
  const cpu = medianOf(rs.flatMap((x) => (x.cpuUsPerRequest === null ? [] : [x.cpuUsPerRequest])));
  return { worker: name, rps: m.rps, p50Ms: m.p50Ms, p99Ms: m.p99Ms, cpuUsPerRequest: cpu, requests: rs.reduce((n, x) => n + x.requests, 0), errors: rs.reduce((n, x) => n + x.errors, 0), rounds: rs };
});
const load1 = loadavg();
const ratio = rows[1]!.rps / rows[0]!.rps;
const report = {
  date: new Date().toISOString(),
  command: `npm run bench:router -- --seconds ${seconds} --rounds ${rounds} --concurrency ${concurrency}`,
  // Load averages (1 min) before and after: other work on the machine shows up here.
  machine: { cpus: cpus().length, model: cpus()[0]?.model, node: process.version, loadAvgBefore: Math.round(load0[0]! * 100) / 100, loadAvgAfter: Math.round(load1[0]! * 100) / 100 },
  request: { host: HOST, path: PATH, bytes: build.manifest.hosts.find((h) => h.host === HOST)!.files.find((f) => f.path === "/index.html")!.size },
  concurrency,
  rows,
  cachedVsConstant: Math.round(ratio * 1000) / 1000,
  target: `cached >= ${TARGET * 100}% of constant`,
  met: ratio >= TARGET,
};
mkdirSync("bench/results", { recursive: true });
writeFileSync("bench/results/router.json", `${JSON.stringify(report, null, 2)}\n`);
if (values.json) {
  console.log(JSON.stringify(report, null, 2));
} else {
  const label: Record<string, string> = { constant: "constant Worker", cached: "router, cached hits", kv: "router, KV on every request" };
  console.log(`concurrency ${concurrency}, ${rounds} round(s) x ${seconds} s, GET ${HOST}${PATH} (${report.request.bytes} bytes), median round; load average ${report.machine.loadAvgBefore} -> ${report.machine.loadAvgAfter} on ${report.machine.cpus} CPUs`);
  console.log("| worker | requests/s | p50 ms | p99 ms | workerd CPU us/request | errors |");
  console.log("| --- | ---: | ---: | ---: | ---: | ---: |");
  for (const r of rows) console.log(`| ${label[r.worker]} | ${r.rps} | ${r.p50Ms} | ${r.p99Ms} | ${r.cpuUsPerRequest ?? "-"} | ${r.errors} |`);
  console.log(`cached hits at ${(ratio * 100).toFixed(1)}% of the constant Worker's throughput (target >= ${TARGET * 100}%): ${report.met ? "met" : "NOT met"}`);
}
if (rows.some((r) => r.errors > 0)) process.exitCode = 1;
