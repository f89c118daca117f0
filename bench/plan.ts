// Benchmark of the main job: `npm run plan` as a whole process (Node start-up, module
// loading, parsing, validation, desired state, rendering) on generated fleets of
// 100, 1,000 and 5,000 zones. Reports the median wall time of several runs and the
// peak RSS. Usage: npm run bench:plan [-- --runs N --sizes 100,1000,5000]
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { generateFleet } from "./lib/generate-fleet.ts";

const { values } = parseArgs({
  options: { runs: { type: "string", default: "7" }, sizes: { type: "string", default: "100,1000,5000" }, json: { type: "boolean" } },
});
const runs = Number(values.runs);
const sizes = values.sizes!.split(",").map(Number);
const TARGETS: Record<number, { ms: number; mb: number }> = { 1000: { ms: 1500, mb: 300 }, 5000: { ms: 5000, mb: 300 } };

// Run exactly what `npm run plan` runs (its Node flags included), minus npm's own start-up.
const planScript = (JSON.parse(readFileSync("package.json", "utf8")) as { scripts: { plan: string } }).scripts.plan.split(/\s+/);
if (planScript[0] !== "node") throw new Error(`unexpected plan script: ${planScript.join(" ")}`);
const nodeFlags = planScript.slice(1, -1);
const script = planScript[planScript.length - 1]!;

const work = mkdtempSync(join(tmpdir(), "edgefleet-bench-"));
const rows: { zones: number; records: number; medianMs: number; minMs: number; maxMs: number; peakRssMb: number; target?: string; met?: boolean }[] = [];
try {
  for (const zones of sizes) {
    const dir = generateFleet(join(work, `fleet-${zones}`), zones);
    const times: number[] = [];
    let peak = 0;
    let records = 0;
    for (let i = 0; i <= runs; i++) {
      const rssFile = join(work, "rss");
      const t0 = performance.now();
      const r = spawnSync(process.execPath, [...nodeFlags, "--import", "./bench/lib/report-rss.ts", script, "--inventory", dir, "--json"], {
        env: { ...process.env, EDGEFLEET_RSS_FILE: rssFile },
        encoding: "utf8",
        maxBuffer: 64 << 20,
      });
      const ms = performance.now() - t0;
      if (r.status !== 0) throw new Error(`plan failed on ${zones} zones (exit ${r.status}): ${r.stderr}`);
      records = JSON.parse(r.stdout).summary.records;
      peak = Math.max(peak, Number(readFileSync(rssFile, "utf8")) / 1024);
      if (i > 0) times.push(ms); // the first run warms the file cache
    }
    times.sort((a, b) => a - b);
    const target = TARGETS[zones];
    const median = times[Math.floor(times.length / 2)]!;
    rows.push({
      zones,
      records,
      medianMs: Math.round(median),
      minMs: Math.round(times[0]!),
      maxMs: Math.round(times[times.length - 1]!),
      peakRssMb: Math.round(peak),
      ...(target ? { target: `< ${target.ms} ms, < ${target.mb} MB`, met: median < target.ms && peak < target.mb } : {}),
    });
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}

const meta = { node: process.version, cpus: cpus().length, cpu: cpus()[0]?.model, runs, date: new Date().toISOString().slice(0, 10) };
writeFileSync("bench/results/plan.json", `${JSON.stringify({ meta, rows }, null, 2)}\n`);
if (values.json) console.log(JSON.stringify({ meta, rows }, null, 2));
else {
  console.log(`plan benchmark: ${meta.node}, ${meta.cpus} x ${meta.cpu}, median of ${runs} runs\n`);
  console.log("| zones | DNS records | median wall | min | max | peak RSS | target | met |");
  console.log("| ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |");
  for (const r of rows) {
    console.log(`| ${r.zones} | ${r.records} | ${r.medianMs} ms | ${r.minMs} ms | ${r.maxMs} ms | ${r.peakRssMb} MB | ${r.target ?? "-"} | ${r.met === undefined ? "-" : r.met ? "yes" : "NO"} |`);
  }
}
process.exitCode = rows.every((r) => r.met !== false) ? 0 : 1;
