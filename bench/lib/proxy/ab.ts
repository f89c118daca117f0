// `npm run bench:proxy-ab`: the proxy as it is in the working tree ("head") against the
// proxy at a git revision ("base", default HEAD), side by side in ONE workerd process,
// in alternating 1-second slices whose order swaps every round. It answers "did this
// change make the proxy cheaper?", which `bench:proxy` cannot: on this kind of shared VM
// one Worker's throughput moves by +-30% between 1-second slices and by up to 12% between
// processes, more than most changes are worth. Two things make the comparison steady:
// - both builds serve from one process, seconds apart, so the machine's drift hits both;
// - the verdict is the median of per-round paired ratios (head's slice against base's
//   slice of the same round), with their quartiles, beside the pooled ratio.
// For SSE the stream floor Worker (workers.ts) runs in the same rounds, so each build's
// TTFB can be read against it (issue 14's target at concurrency 16).
//
// The base is bundled from a detached `git worktree` of the revision (removed after),
// with this tree's node_modules; both builds get this tree's wrangler.jsonc bindings, so
// a revision whose bindings differ is not comparable. Loopback only; no network.
import { Command } from "commander";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { bundleWorker as bundleModelWorker } from "../../../stacks/model/bundle.ts";
import { readWorkerConfigOrThrow } from "../../../stacks/model/wrangler.ts";
import { bundleWorker, proxyWorkerOptions, startLocalProxy, wranglerWorkerOptions, WORKER_DIR } from "../../../workers/llm-proxy/local/miniflare.ts";
import { FakeAnthropic } from "../../../workers/llm-proxy/test/fake-anthropic.ts";
import { cpuMs, withWorkerdPid } from "../router/cpu.ts";
import { benchTenant, completeAnswer, messagesBody, messagesHeaders, type Mode } from "./calls.ts";
import { emptySamples, runLoad, summarise, type Samples } from "./load.ts";
import { STREAM_FLOOR } from "./workers.ts";
import { spread } from "../stats.ts";
import { QUEUE_ENDPOINT, QUEUE_SINK } from "./run.ts";

const REPO = resolve(WORKER_DIR, "../..");

type Side = "base" | "head" | "floor";

/** The proxy at `rev`, bundled as Pulumi bundles it, from a throwaway worktree. */
export function bundleAt(rev: string): { script: string; commit: string } {
  const git = (...args: string[]) => {
    const r = spawnSync("git", args, { cwd: REPO, encoding: "utf8" });
    if (r.status !== 0) throw new Error(`git ${args.join(" ")}: ${(r.stderr || r.stdout).trim()}`);
    return r.stdout.trim();
  };
  const commit = git("rev-parse", "--verify", `${rev}^{commit}`);
  const dir = join(mkdtempSync(join(tmpdir(), "edgefleet-ab-")), "tree");
  git("worktree", "add", "--detach", "--quiet", dir, commit);
  try {
    if (existsSync(join(REPO, "node_modules"))) symlinkSync(join(REPO, "node_modules"), join(dir, "node_modules"), "dir");
    const script = bundleModelWorker(readWorkerConfigOrThrow("llm-proxy", join(dir, "workers"))).content;
    return { script, commit };
  } finally {
    // Never hides the build's own error; a worktree left registered is pruned by
    // `git worktree prune` once its folder is gone.
    spawnSync("git", ["worktree", "remove", "--force", dir], { cwd: REPO });
    rmSync(resolve(dir, ".."), { recursive: true, force: true });
    spawnSync("git", ["worktree", "prune"], { cwd: REPO });
  }
}

export interface Slice {
  round: number;
  side: Side;
  calls: number;
  /** workerd CPU over the slice, ms (10 ms resolution), or undefined without /proc. */
  cpuMs: number | undefined;
}

export interface Paired {
  rounds: number;
  median: number;
  q1: number;
  q3: number;
  pooled: number;
}

/** Per-round ratios of `value(a)` to `value(b)` (rounds where both are finite), their
 *  median and quartiles, and the pooled ratio (`pooled(a) / pooled(b)`). */
export function paired(slices: Slice[], a: Side, b: Side, value: (s: Slice) => number | undefined, pooled: (side: Side) => number): Paired {
  const by = (side: Side) => new Map(slices.filter((s) => s.side === side).map((s) => [s.round, value(s)]));
  const x = by(a);
  const y = by(b);
  const ratios = [...x.entries()].map(([round, v]) => (v === undefined ? Number.NaN : v / (y.get(round) ?? Number.NaN))).filter(Number.isFinite);
  return { ...spread(ratios), pooled: pooled(a) / pooled(b) };
}

export async function runAb(argv: string[]): Promise<number> {
  const program = new Command("bench:proxy-ab")
    .description("The proxy in the working tree (head) against the proxy at a git revision (base), in one workerd, alternating 1-second slices; prints per-round paired ratios")
    .option("--base <rev>", "git revision of the base build", "HEAD")
    .option("--mode <mode>", "json or sse", "sse")
    .option("--concurrency <n>", "requests in flight", "16")
    .option("--rounds <n>", "rounds per process (each: one 1-second slice of each build, and of the floor for SSE)", "20")
    .option("--runs <n>", "fresh workerd processes, the builds taking turns at being the process's first Worker; their rounds are pooled", "2")
    .option("--warmup <s>", "unmeasured seconds per build before the rounds", "1")
    .option("--lead-in <s>", "unrecorded seconds of each slice's load before it is recorded", "0.25")
    .option("--metering <m>", "off (METERING=off) or sink (on, with the Queue binding's stand-in)", "off")
    .option("--base-metering <m>", "the base build's metering, when it differs from --metering: `--base HEAD --base-metering off --metering sink` is metering's own cost (issue 16.8), paired")
    .option("--json", "print the results as JSON");
  program.parse(argv, { from: "user" });
  const o = program.opts<{ base: string; mode: string; concurrency: string; rounds: string; runs: string; warmup: string; leadIn: string; metering: string; baseMetering?: string; json?: boolean }>();
  const problems: string[] = [];
  if (o.mode !== "json" && o.mode !== "sse") problems.push(`--mode: json or sse, not ${o.mode}`);
  if (o.metering !== "off" && o.metering !== "sink") problems.push(`--metering: off or sink, not ${o.metering}`);
  const baseMetering = o.baseMetering ?? o.metering;
  if (baseMetering !== "off" && baseMetering !== "sink") problems.push(`--base-metering: off or sink, not ${baseMetering}`);
  const int = (name: string, v: string, lo: number, hi: number) => {
    const n = Number(v);
    if (!/^\d+$/.test(v) || n < lo || n > hi) problems.push(`--${name}: a whole number from ${lo} to ${hi}, not ${v}`);
    return n;
  };
  const secs = (name: string, v: string, hi: number) => {
    const n = Number(v);
    if (v.trim() === "" || !Number.isFinite(n) || n < 0 || n > hi) problems.push(`--${name}: seconds from 0 to ${hi}, not ${v}`);
    return n;
  };
  const concurrency = int("concurrency", o.concurrency, 1, 64);
  const rounds = int("rounds", o.rounds, 2, 200);
  const runs = int("runs", o.runs, 1, 10);
  const warmup = secs("warmup", o.warmup, 10);
  const leadIn = secs("lead-in", o.leadIn, 2);
  if (problems.length > 0) {
    process.stderr.write(`bench:proxy-ab: ${problems.join("; ")}\n`);
    return 2;
  }
  const mode = o.mode as Mode;
  let base: { script: string; commit: string };
  try {
    base = bundleAt(o.base);
  } catch (e) {
    process.stderr.write(`bench:proxy-ab: cannot build the base at ${o.base}: ${e instanceof Error ? e.message : String(e)}\n`);
    return 2;
  }

  const head = await bundleWorker();
  const fake = new FakeAnthropic();
  fake.recording = false;
  await fake.start();
  const secrets = { ANTHROPIC_API_KEY: "sk-ant-bench-placeholder", OPERATOR_TOKEN: "bench" };
  const metering = (side: Side) => (side === "base" ? baseMetering : o.metering);
  const vars = (side: Side) => ({ UPSTREAM_BASE_URL: fake.url, METERING: metering(side) === "off" ? "off" : "on" });
  const sink = (side: Side) => (metering(side) === "sink" ? { queueProducers: {}, wrappedBindings: { USAGE_EVENTS: { scriptName: "queue-sink" } } } : {});
  const { options } = wranglerWorkerOptions();
  const sides: Side[] = mode === "sse" ? ["base", "head", "floor"] : ["base", "head"];
  const samples = Object.fromEntries(sides.map((s) => [s, emptySamples()])) as Record<Side, Samples>;
  const slices: Slice[] = [];
  try {
    for (let run = 0; run < runs; run++) {
      // The process's first Worker gets what no route claims, and in one run its calls cost
      // ~4% more CPU than the same build behind a route (HEAD against HEAD): the builds
      // take turns at being first, run by run, so an even --runs cancels that out.
      const first: Side = run % 2 === 0 ? "head" : "base";
      const second: Side = first === "head" ? "base" : "head";
      const { value: proxy, pid } = await withWorkerdPid(() =>
        startLocalProxy({
          script: first === "head" ? head : base.script,
          vars: vars(first),
          secrets,
          onLog: () => {},
          override: sink(first),
          extraWorkers: [
            QUEUE_SINK,
            QUEUE_ENDPOINT,
            proxyWorkerOptions(second === "head" ? head : base.script, { name: second, vars: vars(second), secrets, override: { routes: [`${second}.bench/*`], ...sink(second) } }),
            { name: "floor", modules: true, routes: ["floor.bench/*"], script: STREAM_FLOOR, compatibilityDate: options.compatibilityDate, compatibilityFlags: options.compatibilityFlags, bindings: { UPSTREAM: fake.url } },
          ],
        }),
      );
      try {
        const key = await benchTenant(proxy.mf);
        const target = (side: Side) => ({
          url: `${proxy.url.origin}/v1/messages`,
          headers: messagesHeaders(key, side === first ? undefined : `${side}.bench`),
          body: messagesBody(mode),
          ok: completeAnswer(mode),
        });
        for (const side of sides) await runLoad(target(side), concurrency, warmup, emptySamples(), false);
        for (let r = 0; r < rounds; r++) {
          const round = run * rounds + r;
          if (!o.json) process.stderr.write(`bench:proxy-ab: run ${run + 1}/${runs}, round ${r + 1}/${rounds}\r`);
          // The order swaps every round: a slice that follows another runs on warmer or
          // colder caches, and that must not favour one build.
          const order = round % 2 === 0 ? sides : [...sides].reverse();
          for (const side of order) {
            let before: number | undefined;
            const done = samples[side].totals.length;
            await runLoad(target(side), concurrency, 1, samples[side], true, leadIn, () => (before = cpuMs(pid)));
            const after = cpuMs(pid);
            slices.push({ round, side, calls: samples[side].totals.length - done, cpuMs: before !== undefined && after !== undefined ? after - before : undefined });
          }
        }
        if (!o.json) {
          const mine = slices.filter((s) => s.round >= run * rounds);
          const t = paired(mine, "head", "base", (s) => s.calls, (side) => mine.filter((s) => s.side === side).reduce((n, s) => n + s.calls, 0));
          process.stderr.write(`\nbench:proxy-ab: run ${run + 1} (${first} first): head / base throughput, median of ${t.rounds} rounds ${(t.median * 100).toFixed(1)}%\n`);
        }
      } finally {
        await proxy.mf.dispose();
      }
    }
  } finally {
    await fake.stop();
  }

  const sum = (side: Side, f: (s: Slice) => number) => slices.filter((s) => s.side === side).reduce((n, s) => n + f(s), 0);
  const cpuKnown = slices.every((s) => s.cpuMs !== undefined);
  const usPerCall = (side: Side) => (sum(side, (s) => s.cpuMs ?? 0) * 1000) / sum(side, (s) => s.calls);
  const rows = sides.map((side) => {
    const s = summarise(samples[side]);
    return { side, requests: s.requests, errors: s.errors, rps: s.rps, p50Ms: s.p50Ms, ttfbP50Ms: s.ttfbP50Ms, cpuUsPerCall: cpuKnown ? usPerCall(side) : undefined };
  });
  const throughput = paired(slices, "head", "base", (s) => s.calls, (side) => sum(side, (s) => s.calls));
  const cpu = cpuKnown ? paired(slices, "head", "base", (s) => (s.cpuMs! * 1000) / s.calls, usPerCall) : undefined;
  const ttfbVsFloor = mode === "sse" ? Object.fromEntries((["base", "head"] as const).map((s) => [s, rows.find((r) => r.side === s)!.ttfbP50Ms - rows.find((r) => r.side === "floor")!.ttfbP50Ms])) : undefined;
  const result = {
    command: `npm run bench:proxy-ab -- ${argv.join(" ")}`.trim(),
    date: new Date().toISOString(),
    base: { rev: o.base, commit: base.commit },
    settings: { mode, concurrency, rounds, runs, warmup, leadIn, metering: o.metering, baseMetering },
    rows,
    paired: { throughput, cpuPerCall: cpu },
    ttfbVsFloorMs: ttfbVsFloor,
  };
  if (o.json) {
    process.stdout.write(JSON.stringify(result, null, 2) + "\n");
  } else {
    const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
    const lines = [
      `base ${o.base} (${base.commit.slice(0, 12)}) vs head (working tree): ${mode}, concurrency ${concurrency}, ${runs} x ${rounds} rounds, metering ${baseMetering === o.metering ? o.metering : `${o.metering} (base: ${baseMetering})`}`,
      "",
      "| build | req/s | p50 ms | TTFB p50 ms | workerd CPU µs/call | requests | errors |",
      "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
      ...rows.map((r) => `| ${r.side} | ${r.rps.toFixed(0)} | ${r.p50Ms.toFixed(2)} | ${r.ttfbP50Ms.toFixed(2)} | ${r.cpuUsPerCall?.toFixed(0) ?? "-"} | ${r.requests} | ${r.errors} |`),
      "",
      "| head / base, per round | rounds | median | quartiles | pooled |",
      "| --- | ---: | ---: | ---: | ---: |",
      `| throughput | ${throughput.rounds} | ${pct(throughput.median)} | ${pct(throughput.q1)} - ${pct(throughput.q3)} | ${pct(throughput.pooled)} |`,
      ...(cpu ? [`| CPU per call | ${cpu.rounds} | ${pct(cpu.median)} | ${pct(cpu.q1)} - ${pct(cpu.q3)} | ${pct(cpu.pooled)} |`] : []),
      ...(ttfbVsFloor ? ["", `TTFB p50 vs the floor: base ${ttfbVsFloor.base! >= 0 ? "+" : ""}${ttfbVsFloor.base!.toFixed(2)} ms, head ${ttfbVsFloor.head! >= 0 ? "+" : ""}${ttfbVsFloor.head!.toFixed(2)} ms (issue 14: within 1 ms at concurrency 16)`] : []),
    ];
    process.stdout.write(lines.join("\n") + "\n");
  }
  // 1: a build never completed a call or answered wrongly: its numbers say nothing.
  return rows.some((r) => r.requests === 0 || r.errors > 0) ? 1 : 0;
}
