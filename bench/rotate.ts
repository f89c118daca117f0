// Benchmark of a key rotation across a fleet of Workers against the loopback fakes
// (test/fakes/, test/support/rotation-rig.ts): the real engine, SDKs and journal; fake Cloudflare and
// Anthropic APIs with a realistic latency per call, and Workers that report a new key
// only after a propagation delay. Prints a markdown table: total time, API calls, and
// the lower bound that Cloudflare's account-wide rate limit (1,200 requests / 5 min)
// puts on that many calls, beside it.
// Usage: npm run bench:rotate [-- --workers 300 --latency 50-150 --propagation 1000-5000
//        --time-scale 0.1 --concurrency 8,32 --json]
// --time-scale scales the propagation delays, the poll interval (2 s) and the settle
// wait (30 s) — not the API latency — so a run takes seconds, not minutes.
import { parseArgs } from "node:util";
import { startRotation } from "../scripts/lib/rotate/engine.ts";
import { Rig } from "../test/support/rotation-rig.ts";
import { seeded } from "../test/support/fake-http.ts";
import { CLOUDFLARE_LIMIT } from "../scripts/lib/rotate/rate-limit.ts";

const { values } = parseArgs({
  options: {
    workers: { type: "string", default: "300" },
    latency: { type: "string", default: "50-150" },
    propagation: { type: "string", default: "1000-5000" },
    "time-scale": { type: "string", default: "0.1" },
    concurrency: { type: "string", default: "8,32" },
    confirmations: { type: "string", default: "3" },
    json: { type: "boolean" },
  },
});
const range = (s: string, name: string): [number, number] => {
  const m = /^(\d+)(?:-(\d+))?$/.exec(s);
  if (!m) throw new Error(`--${name}: expected MIN-MAX in ms, e.g. 50-150`);
  return [Number(m[1]), Number(m[2] ?? m[1])];
};
const workers = Number(values.workers);
const [latMin, latMax] = range(values.latency!, "latency");
const [propMin, propMax] = range(values.propagation!, "propagation");
const scale = Number(values["time-scale"]);
const levels = values.concurrency!.split(",").map(Number);
const confirmations = Number(values.confirmations);
if (!(workers >= 1) || !(scale > 0) || levels.some((n) => !(n >= 1))) throw new Error("bench:rotate: bad arguments");

/** Least time Cloudflare's limit allows for `calls` requests (each window admits `limit`). */
const rateBoundS = (calls: number, limit: number, windowMs: number) => (Math.ceil(calls / limit) - 1) * (windowMs / 1000);

interface Row {
  workers: number;
  concurrency: number;
  totalS: number;
  stageS: number;
  confirmS: number;
  cfCalls: number;
  anthropicCalls: number;
  statusReads: number;
  pulumiRuns: number;
  journalWrites: number;
  boundS: number;
  bound1200S: number;
  result: string;
}
const rows: Row[] = [];
const guard = setTimeout(() => {
  console.error("bench:rotate: gave up after 10 minutes");
  process.exit(1);
}, 600_000);

for (const concurrency of levels) {
  const rand = seeded(42);
  const delays = new Map<string, number>();
  const rig = await new Rig({
    workers,
    canaries: 1,
    latencyMs: () => latMin + rand() * (latMax - latMin),
    fleet: {
      propagationMs: (s) => {
        if (!delays.has(s)) delays.set(s, (propMin + rand() * (propMax - propMin)) * scale);
        return delays.get(s)!;
      },
    },
  }).start();
  const marks = new Map<string, number>();
  const t0 = performance.now();
  const deps = rig.deps({
    rateLimit: { limit: 1000, windowMs: CLOUDFLARE_LIMIT.windowMs },
    backoffMs: 1000,
    timing: { pollIntervalMs: 2000 * scale, confirmTimeoutMs: 300_000, statusConcurrency: 32, settleMs: 30_000 * scale },
  });
  const emit = deps.emit;
  deps.emit = (e) => {
    if (e.event === "phase" && typeof e.phase === "string") marks.set(e.phase, performance.now());
    emit(e);
  };
  const out = await startRotation(rig.request("bench", { confirmations, concurrency }), rig.keys, deps);
  const total = (performance.now() - t0) / 1000;
  const cfCalls = rig.cf.requests.length;
  rows.push({
    workers,
    concurrency,
    totalS: total,
    stageS: ((marks.get("confirm") ?? 0) - (marks.get("stage") ?? 0)) / 1000,
    confirmS: ((marks.get("persist") ?? 0) - (marks.get("confirm") ?? 0)) / 1000,
    cfCalls,
    anthropicCalls: rig.anthropic.requests.length,
    statusReads: rig.fleet.reads,
    pulumiRuns: rig.pulumi.calls().length,
    journalWrites: deps.store.writes,
    boundS: rateBoundS(cfCalls, 1000, CLOUDFLARE_LIMIT.windowMs),
    bound1200S: rateBoundS(cfCalls, CLOUDFLARE_LIMIT.limit, CLOUDFLARE_LIMIT.windowMs),
    result: out.result,
  });
  await rig.stop();
  if (out.result !== "done") {
    console.error(`bench:rotate: the rotation ended ${out.result}: ${out.message}`);
    process.exitCode = 1;
  }
}
clearTimeout(guard);

if (values.json) {
  console.log(JSON.stringify({ latencyMs: [latMin, latMax], propagationMs: [propMin, propMax], timeScale: scale, confirmations, rows }, null, 2));
} else {
  console.log(`Rotation of ${workers} Workers against the loopback fakes: API latency ${latMin}-${latMax} ms per call, propagation ${propMin}-${propMax} ms x ${scale}, poll 2 s x ${scale}, settle 30 s x ${scale}, ${confirmations} confirmations, 1 canary.\n`);
  console.log("| Workers | concurrency | total (s) | stage (s) | confirm (s) | Cloudflare API calls | rate-limit bound at 1,000/5 min (s) | at 1,200/5 min (s) | status reads | Anthropic calls | pulumi runs | journal writes | result |");
  console.log("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |");
  for (const r of rows) {
    console.log(`| ${r.workers} | ${r.concurrency} | ${r.totalS.toFixed(1)} | ${r.stageS.toFixed(1)} | ${r.confirmS.toFixed(1)} | ${r.cfCalls} | ${r.boundS} | ${r.bound1200S} | ${r.statusReads} | ${r.anthropicCalls} | ${r.pulumiRuns} | ${r.journalWrites} | ${r.result} |`);
  }
  console.log(`\nThe rate-limit bound is the least time Cloudflare's account-wide limit allows for that many calls: (ceil(calls / limit) - 1) x 300 s; 0 means the calls fit in one window. Three Cloudflare calls per Worker (the secret write, the deployments read after it, the deployments read of the final sweep): ${Math.floor(CLOUDFLARE_LIMIT.limit / 3)} Workers per 5 minutes at most (~333 with the client's default headroom of 1,000).`);
}
