// Benchmark of `npm run verify -- --all` on a generated fleet of 1,000 zones: the
// plan's BIND export (`npm run plan -- --zone-files DIR`) served by knot on 127.0.0.1.
// Reports wall time and DNS queries per second at the default concurrency (and, for
// context, at lower and higher ones), measured in process, plus the whole command
// (`node scripts/verify.ts`, Node start-up included) at the default settings.
// Bounded: a few runs of a few seconds each, and a watchdog.
// Usage: npm run bench:verify [-- --zones 1000 --runs 3 --concurrency 8,32,128 --out FILE]
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { parseArgs } from "node:util";
import { parseDocument } from "yaml";
import { runPlan } from "../scripts/lib/plan.ts";
import { loadInventoryOrThrow } from "../stacks/model/load.ts";
import { mtaStsSiteFiles } from "../stacks/model/mail.ts";
import { DEFAULTS, runVerify } from "../scripts/lib/verify/cli.ts";
import { serveZoneDir } from "../test/fakes/knot-fleet.ts";
import { generateFleet } from "./lib/generate-fleet.ts";

const { values } = parseArgs({
  options: {
    zones: { type: "string", default: "1000" },
    runs: { type: "string", default: "3" },
    concurrency: { type: "string", default: `8,${DEFAULTS.concurrency},128` },
    out: { type: "string", default: "bench/results/verify.json" },
    json: { type: "boolean" },
  },
});
const zones = Number(values.zones);
const runs = Number(values.runs);
const levels = values.concurrency!.split(",").map(Number);
if (!(zones >= 2) || !(runs >= 1) || levels.some((n) => !(n >= 1))) {
  console.error("usage: node bench/verify.ts [--zones N>=2] [--runs N>=1] [--concurrency 8,32,128] [--out FILE] [--json]");
  process.exit(2);
}

type VerifyJson = { summary: { zones: number; queries: number; byResult: { pass: number } }; zones: { zone: string; checks: { check: string; status: string; problems: string[] }[] }[] };

/** A clean fleet must verify clean, or the benchmark measures the wrong thing. */
function assertClean(code: number, run: VerifyJson, what: string): void {
  if (code === 0 && run.summary.byResult.pass === zones) return;
  const failed = run.zones.flatMap((z) => z.checks.filter((c) => c.status !== "pass" && c.status !== "skip").map((c) => `${z.zone} ${c.check}: ${c.problems.join("; ")}`));
  throw new Error(`${what}: verify did not pass every zone (exit ${code}): ${JSON.stringify(run.summary.byResult)}\n${failed.slice(0, 10).join("\n")}`);
}

const work = mkdtempSync(join(tmpdir(), "edgefleet-bench-verify-"));
const fleet = generateFleet(join(work, "fleet"), zones);
// The generated zones replace the example's, so the example's workers: (routes on its
// llm-gateway zones) would name zones that are not there; verify reads DNS posture only.
const fleetYaml = parseDocument(readFileSync(join(fleet, "fleet.yaml"), "utf8"));
fleetYaml.delete("workers");
writeFileSync(join(fleet, "fleet.yaml"), fleetYaml.toString());

// The zone files come from the plan's BIND export, exactly as an operator makes them.
const zoneDir = join(work, "zones");
let planErr = "";
const planCode = await runPlan(["--inventory", fleet, "--zone-files", zoneDir, "--json"], { out: () => {}, err: (s) => (planErr += s), root: process.cwd() });
if (planCode !== 0) throw new Error(`npm run plan -- --zone-files failed (exit ${planCode}):\n${planErr}`);
const zoneNames = readdirSync(zoneDir).filter((f) => f.endsWith(".zone")).map((f) => f.slice(0, -".zone".length));
if (zoneNames.length !== zones) throw new Error(`the plan wrote ${zoneNames.length} zone files, expected ${zones}`);
const t0 = performance.now();
const knot = await serveZoneDir(zoneDir, zoneNames);
const knotReadyMs = Math.round(performance.now() - t0);
const resolver = `127.0.0.1:${knot.port}`;
// The MTA-STS policies of the fleet's mail zones, by Host, as the router serves them:
// a plain loopback server in its own process (the whole-command runs below block this
// one in spawnSync), since the benchmark measures verify, not the router.
const policyFile = join(work, "policies.json");
writeFileSync(policyFile, JSON.stringify(mtaStsSiteFiles(loadInventoryOrThrow(fleet))));
const policyServer = spawn(process.execPath, ["-e", `
  const files = new Map(JSON.parse(require("node:fs").readFileSync(${JSON.stringify(policyFile)}, "utf8")).map((f) => [f.host, f]));
  const s = require("node:http").createServer((req, res) => {
    const f = files.get(String(req.headers.host));
    if (!f || req.url !== f.path) res.writeHead(404).end(); else res.writeHead(200, { "content-type": f.contentType }).end(f.body);
  });
  s.listen(0, "127.0.0.1", () => console.log(s.address().port));`], { stdio: ["ignore", "pipe", "inherit"] });
const policyPort = await new Promise<string>((r) => policyServer.stdout!.once("data", (d) => r(String(d).trim())));
const policyOrigin = `http://127.0.0.1:${policyPort}`;

interface Row {
  mode: "in process" | "whole command";
  concurrency: number;
  default: boolean;
  zones: number;
  queries: number;
  medianMs: number;
  minMs: number;
  maxMs: number;
  queriesPerSec: number;
  warmupUnverified: number;
}
const rows: Row[] = [];
const row = (mode: Row["mode"], concurrency: number, queries: number, times: number[], warmupUnverified: number): Row => {
  times.sort((a, b) => a - b);
  const median = times[Math.floor(times.length / 2)]!;
  return {
    mode,
    concurrency,
    default: concurrency === DEFAULTS.concurrency,
    zones,
    queries,
    medianMs: Math.round(median),
    minMs: Math.round(times[0]!),
    maxMs: Math.round(times[times.length - 1]!),
    queriesPerSec: Math.round((queries / median) * 1000),
    warmupUnverified,
  };
};

// Bounded even if a run hangs: every run of 1,000 zones takes seconds, not minutes.
const budgetMs = 60_000 + levels.length * (runs + 1) * Math.max(20_000, zones * 20);
const guard = setTimeout(() => {
  console.error(`bench:verify: gave up after ${Math.round(budgetMs / 1000)} s`);
  policyServer.kill();
  void knot.stop().then(() => process.exit(1));
}, budgetMs);
try {
  for (const concurrency of levels) {
    const times: number[] = [];
    let queries = 0;
    let warmupUnverified = 0;
    for (let i = 0; i <= runs; i++) {
      let out = "";
      const start = performance.now();
      const code = await runVerify(["--all", "--json", "--inventory", fleet, "--resolver", resolver, "--mta-sts-origin", policyOrigin, "--concurrency", String(concurrency)], {
        out: (s) => (out += s),
        err: (s) => process.stderr.write(s),
        root: process.cwd(),
      });
      const ms = performance.now() - start;
      const run = JSON.parse(out) as VerifyJson;
      // The first run warms module loading and knot's caches; it may see knot still busy
      // right after its start (timeouts, "cannot verify"). Measured runs must be clean.
      if (i === 0) warmupUnverified = zones - run.summary.byResult.pass;
      else {
        assertClean(code, run, `concurrency ${concurrency}`);
        times.push(ms);
      }
      queries = run.summary.queries;
    }
    rows.push(row("in process", concurrency, queries, times, warmupUnverified));
  }
  // The whole command as the operator runs it (minus npm's own start-up), default settings.
  const times: number[] = [];
  let queries = 0;
  for (let i = 0; i < runs; i++) {
    const start = performance.now();
    const p = spawnSync(process.execPath, ["scripts/verify.ts", "--all", "--json", "--inventory", fleet, "--resolver", resolver, "--mta-sts-origin", policyOrigin], { encoding: "utf8", maxBuffer: 1 << 30 });
    const ms = performance.now() - start;
    const run = JSON.parse(p.stdout) as VerifyJson;
    assertClean(p.status ?? -1, run, "node scripts/verify.ts");
    queries = run.summary.queries;
    times.push(ms);
  }
  rows.push(row("whole command", DEFAULTS.concurrency, queries, times, 0));
} finally {
  clearTimeout(guard);
  policyServer.kill();
  await knot.stop();
  rmSync(work, { recursive: true, force: true });
}

const meta = { node: process.version, cpus: cpus().length, cpu: cpus()[0]?.model, runs, zones, knotReadyMs, timeoutMs: DEFAULTS.timeoutMs, maxQueries: DEFAULTS.maxQueries, date: new Date().toISOString().slice(0, 10) };
mkdirSync(dirname(values.out!), { recursive: true });
writeFileSync(values.out!, `${JSON.stringify({ meta, rows }, null, 2)}\n`);
if (values.json) console.log(JSON.stringify({ meta, rows }, null, 2));
else {
  console.log(`verify benchmark: ${zones} zones (plan's BIND export) served by knot on 127.0.0.1 (ready in ${knotReadyMs} ms), ${meta.node}, ${meta.cpus} x ${meta.cpu}, median of ${runs} runs\n`);
  console.log("| run | concurrency (zones) | zones | DNS queries | median wall | min | max | queries/s |");
  console.log("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
  for (const r of rows) {
    console.log(`| ${r.mode} | ${r.concurrency}${r.default ? " (default)" : ""} | ${r.zones} | ${r.queries} | ${r.medianMs} ms | ${r.minMs} ms | ${r.maxMs} ms | ${r.queriesPerSec} |`);
  }
  console.log(`\nwrote ${values.out}`);
}
