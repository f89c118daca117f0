// Benchmark of `npm run verify -- --all` on a generated fleet of 1,000 zones served
// by knot on 127.0.0.1: wall time, DNS queries and queries per second at the default
// concurrency (and, for context, at lower and higher ones). The verifier runs in
// process; knot runs as its own process. Bounded: a few runs of a few seconds each.
// Usage: npm run bench:verify [-- --zones 1000 --runs 3 --concurrency 8,32,128]
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { loadInventoryOrThrow } from "../stacks/model/load.ts";
import { DEFAULTS, runVerify } from "../scripts/lib/verify/cli.ts";
import { serveFleet } from "../scripts/lib/verify/test-fleet.ts";
import { generateFleet } from "./lib/generate-fleet.ts";

const { values } = parseArgs({
  options: {
    zones: { type: "string", default: "1000" },
    runs: { type: "string", default: "3" },
    concurrency: { type: "string", default: `8,${DEFAULTS.concurrency},128` },
    json: { type: "boolean" },
  },
});
const zones = Number(values.zones);
const runs = Number(values.runs);
const levels = values.concurrency!.split(",").map(Number);

const work = mkdtempSync(join(tmpdir(), "edgefleet-bench-verify-"));
const dir = generateFleet(join(work, "fleet"), zones);
const { knot } = await serveFleet(loadInventoryOrThrow(dir));
const rows: { concurrency: number; default: boolean; zones: number; queries: number; medianMs: number; minMs: number; maxMs: number; queriesPerSec: number; warmupUnverified: number }[] = [];
// Bounded even if a run hangs: stop everything after two minutes.
const guard = setTimeout(() => {
  console.error("bench:verify: gave up after 120 s");
  void knot.stop().then(() => process.exit(1));
}, 120_000);
try {
  for (const concurrency of levels) {
    const times: number[] = [];
    let queries = 0;
    let warmupUnverified = 0;
    for (let i = 0; i <= runs; i++) {
      let out = "";
      const t0 = performance.now();
      const code = await runVerify(["--all", "--json", "--inventory", dir, "--resolver", `127.0.0.1:${knot.port}`, "--concurrency", String(concurrency)], {
        out: (s) => (out += s),
        err: (s) => process.stderr.write(s),
        root: process.cwd(),
      });
      const ms = performance.now() - t0;
      const run = JSON.parse(out) as { summary: { zones: number; queries: number; byResult: { pass: number } }; zones: { zone: string; checks: { check: string; status: string; problems: string[] }[] }[] };
      // A clean fleet must verify clean, or the benchmark measures the wrong thing.
      // The warm-up run may see knot still busy right after its start (timeouts, reported
      // as "cannot verify"); measured runs must be clean.
      if (i > 0 && (code !== 0 || run.summary.byResult.pass !== zones)) {
        const failed = run.zones.flatMap((z) => z.checks.filter((c) => c.status !== "pass" && c.status !== "skip").map((c) => `${z.zone} ${c.check}: ${c.problems.join("; ")}`));
        throw new Error(`verify did not pass every zone (exit ${code}): ${JSON.stringify(run.summary.byResult)}\n${failed.slice(0, 10).join("\n")}`);
      }
      if (i === 0) warmupUnverified = zones - run.summary.byResult.pass;
      queries = run.summary.queries;
      if (i > 0) times.push(ms); // the first run warms module loading and knot's caches
    }
    times.sort((a, b) => a - b);
    const median = times[Math.floor(times.length / 2)]!;
    rows.push({
      concurrency,
      default: concurrency === DEFAULTS.concurrency,
      zones,
      queries,
      medianMs: Math.round(median),
      minMs: Math.round(times[0]!),
      maxMs: Math.round(times[times.length - 1]!),
      queriesPerSec: Math.round((queries / median) * 1000),
      warmupUnverified,
    });
  }
} finally {
  clearTimeout(guard);
  await knot.stop();
  rmSync(work, { recursive: true, force: true });
}

const meta = { node: process.version, cpus: cpus().length, cpu: cpus()[0]?.model, runs, zones, date: new Date().toISOString().slice(0, 10) };
writeFileSync("bench/results/verify.json", `${JSON.stringify({ meta, rows }, null, 2)}\n`);
if (values.json) console.log(JSON.stringify({ meta, rows }, null, 2));
else {
  console.log(`verify benchmark: ${zones} zones against knot on 127.0.0.1, ${meta.node}, ${meta.cpus} x ${meta.cpu}, median of ${runs} runs\n`);
  console.log("| concurrency | zones | DNS queries | median wall | min | max | queries/s |");
  console.log("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
  for (const r of rows) console.log(`| ${r.concurrency}${r.default ? " (default)" : ""} | ${r.zones} | ${r.queries} | ${r.medianMs} ms | ${r.minMs} ms | ${r.maxMs} ms | ${r.queriesPerSec} |`);
}
