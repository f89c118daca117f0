// The proxy benchmark (`npm run bench:proxy`): the fake upstream directly, a minimal
// pass-through Worker (just `fetch(upstream, request)`) and the edgefleet proxy with auth
// and rate limiting on, JSON and SSE, side by side in one run, all in workerd via
// Miniflare on loopback. For SSE also a "floor" Worker: only the stream handling that
// issue 3 asks of every streamed call, to show what that alone costs. Prints a markdown
// table (ready for docs/BENCHMARKS.md) with the verdict against each of the issue's
// targets, and writes bench/results/proxy.json.
import { Command } from "commander";
import { Miniflare } from "miniflare";
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { dirname } from "node:path";
import { miniflareKv } from "../../../scripts/lib/tenants/local.ts";
import { createTenant } from "../../../scripts/lib/tenants/store.ts";
import { startLocalProxy, wranglerWorkerOptions } from "../../../workers/llm-proxy/local/miniflare.ts";
import { FakeAnthropic } from "../../../workers/llm-proxy/test/fake-anthropic.ts";
import { emptySamples, runLoad, summarise, type LoadResult, type Samples, type Target } from "./load.ts";

const PASS_THROUGH = `
export default {
  fetch(request, env) {
    const u = new URL(request.url);
    return fetch(env.UPSTREAM + u.pathname + u.search, request);
  },
};`;

// The least a Worker can do per streamed call and still do what issue 3 asks of it: read
// the first event before answering (an overloaded first event is retried), keep a copy of
// the stream for the usage scan (tee, read lazily, as the proxy does), and relay through
// a stage that can still append an SSE error event if the upstream breaks. No auth, rate
// limit, retries, parsing or metrics.
const STREAM_FLOOR = `
export default {
  async fetch(request, env, ctx) {
    const u = new URL(request.url);
    const res = await fetch(env.UPSTREAM + u.pathname + u.search, request);
    if (res.body === null || !(res.headers.get("content-type") ?? "").startsWith("text/event-stream")) return res;
    const [client, copy] = res.body.tee();
    const reader = copy.getReader();
    const dec = new TextDecoder();
    let text = "";
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      text += dec.decode(value, { stream: true });
      if (text.includes("\\n\\n")) break;
    }
    const out = new IdentityTransformStream();
    ctx.waitUntil((async () => {
      await client.pipeTo(out.writable, { preventClose: true }).catch(() => {});
      for (;;) if ((await reader.read()).done) break;
      await out.writable.close();
    })());
    return new Response(out.readable, res);
  },
};`;

export interface BenchRow extends LoadResult {
  mode: "json" | "sse";
  target: "upstream" | "pass-through" | "floor" | "edgefleet";
}

export async function runBench(argv: string[]): Promise<number> {
  const program = new Command("bench:proxy")
    .description("Benchmark the LLM proxy against a minimal pass-through Worker and the upstream (all on loopback)")
    .option("--seconds <n>", "measured seconds per case, in 1-second slices interleaved across cases", "5")
    .option("--warmup <n>", "unmeasured warm-up seconds per case", "1")
    .option("--concurrency <n>", "requests in flight", "16")
    .option("--out <file>", "where to write the JSON results", "bench/results/proxy.json")
    .option("--json", "print the results as JSON instead of a table");
  program.parse(argv, { from: "user" });
  const o = program.opts<{ seconds: string; warmup: string; concurrency: string; out: string; json?: boolean }>();
  const bad = (["seconds", "warmup", "concurrency"] as const).filter((k) => !Number.isFinite(Number(o[k])));
  if (bad.length > 0) {
    process.stderr.write(`bench:proxy: ${bad.map((k) => `--${k}: not a number: ${o[k]}`).join("; ")}\n`);
    return 2;
  }
  const seconds = Math.min(20, Math.max(1, Math.round(Number(o.seconds))));
  const warmup = Math.min(5, Math.max(0, Number(o.warmup)));
  const concurrency = Math.min(64, Math.max(1, Math.round(Number(o.concurrency))));

  const fake = new FakeAnthropic();
  fake.recording = false;
  await fake.start();
  const { options } = wranglerWorkerOptions();
  // The comparison Workers run with the proxy's compatibility date and flags.
  const inline = (script: string) =>
    new Miniflare({
      modules: true,
      script,
      compatibilityDate: options.compatibilityDate,
      compatibilityFlags: options.compatibilityFlags,
      bindings: { UPSTREAM: fake.url },
      cf: false,
      host: "127.0.0.1",
      port: 0,
    });
  const pass = inline(PASS_THROUGH);
  const passUrl = await pass.ready;
  const floor = inline(STREAM_FLOOR);
  const floorUrl = await floor.ready;
  // The real Worker: auth (KV), rate limiting (Durable Object) and metrics all on; the
  // tenant's rate is high enough never to limit.
  const proxy = await startLocalProxy({
    vars: { UPSTREAM_BASE_URL: fake.url },
    secrets: { ANTHROPIC_API_KEY: "sk-ant-bench-placeholder", OPERATOR_TOKEN: "bench" },
    onLog: () => {},
  });
  const { key } = await createTenant(miniflareKv(await proxy.mf.getKVNamespace("TENANTS")), { name: "bench", ratePerMinute: 10_000_000, burst: 1_000_000 });

  const bodies = {
    json: Buffer.from(JSON.stringify({ model: "claude-sonnet-5-5", max_tokens: 64, messages: [{ role: "user", content: "Say hello" }] })),
    sse: Buffer.from(JSON.stringify({ model: "claude-sonnet-5-5", max_tokens: 64, stream: true, messages: [{ role: "user", content: "Say hello" }] })),
  };
  const headers = { "content-type": "application/json", "anthropic-version": "2023-06-01", "x-api-key": key };
  const okJson = (s: number, b: string) => s === 200 && b.includes('"type":"message"');
  const okSse = (s: number, b: string) => s === 200 && b.includes("event: message_stop");
  const targets: Record<BenchRow["target"], string> = { upstream: fake.url, "pass-through": passUrl.origin, floor: floorUrl.origin, edgefleet: proxy.url.origin };

  const cases: { mode: BenchRow["mode"]; target: BenchRow["target"]; t: Target; samples: Samples }[] = [];
  for (const mode of ["json", "sse"] as const) {
    for (const target of ["upstream", "pass-through", "floor", "edgefleet"] as const) {
      if (target === "floor" && mode === "json") continue;
      const t: Target = { url: `${targets[target]}/v1/messages`, headers, body: bodies[mode], ok: mode === "json" ? okJson : okSse };
      cases.push({ mode, target, t, samples: emptySamples() });
    }
  }
  const rows: BenchRow[] = [];
  try {
    for (const c of cases) await runLoad(c.t, concurrency, warmup, c.samples, false);
    for (let round = 0; round < seconds; round++) {
      if (!o.json) process.stderr.write(`bench: round ${round + 1}/${seconds} (${cases.length} cases x 1 s, concurrency ${concurrency})\n`);
      for (const c of cases) await runLoad(c.t, concurrency, 1, c.samples);
    }
    for (const c of cases) rows.push({ mode: c.mode, target: c.target, ...summarise(c.samples) });
  } finally {
    await proxy.mf.dispose();
    await pass.dispose();
    await floor.dispose();
    await fake.stop();
  }

  const versusPassThrough = (["json", "sse"] as const).map((mode) => compare(rows, mode));
  const verdicts = judge(versusPassThrough);
  const floorVersusPassThrough = compare(rows, "sse", "floor");
  const result = {
    command: `npm run bench:proxy -- ${argv.join(" ")}`.trim(),
    date: new Date().toISOString(),
    machine: { cpus: cpus().length, model: cpus()[0]?.model ?? "", loadavg: loadavg(), node: process.version, note: "shared machine unless stated otherwise" },
    settings: { seconds, warmup, concurrency },
    rows,
    versusPassThrough,
    floorVersusPassThrough,
    targets: TARGETS,
    verdicts,
  };
  mkdirSync(dirname(o.out), { recursive: true });
  writeFileSync(o.out, JSON.stringify(result, null, 2) + "\n");
  if (o.json) process.stdout.write(JSON.stringify(result, null, 2) + "\n");
  else {
    process.stdout.write(markdownTable(rows) + "\n\n" + markdownVerdicts(verdicts) + "\n\n" + markdownFloor(floorVersusPassThrough) + "\n\n");
    process.stdout.write(`written to ${o.out}\n`);
  }
  // 1: a case never completed a request (the run says nothing); the targets themselves
  // are reported, not enforced: a shared machine's numbers are not a verdict on the code.
  return rows.some((r) => r.requests === 0) ? 1 : 0;
}

/** The issue's targets, relative to the minimal pass-through Worker. */
export const TARGETS = { throughputRatioMin: 0.7, p50DeltaMaxMs: 1, sseTtfbDeltaMaxMs: 2 } as const;

export interface Comparison {
  mode: BenchRow["mode"];
  throughputRatio: number;
  p50DeltaMs: number;
  ttfbP50DeltaMs: number;
}

export function compare(rows: BenchRow[], mode: BenchRow["mode"], target: BenchRow["target"] = "edgefleet"): Comparison {
  const p = rows.find((r) => r.mode === mode && r.target === "pass-through");
  const e = rows.find((r) => r.mode === mode && r.target === target);
  if (p === undefined || e === undefined) throw new Error(`bench: no ${mode} rows for pass-through and ${target}`);
  return { mode, throughputRatio: e.rps / p.rps, p50DeltaMs: e.p50Ms - p.p50Ms, ttfbP50DeltaMs: e.ttfbP50Ms - p.ttfbP50Ms };
}

export interface Verdict {
  target: string;
  measured: string;
  met: boolean;
}

/** One verdict per target: throughput and p50 for JSON and SSE, TTFB for SSE. */
export function judge(cmp: Comparison[]): Verdict[] {
  const out: Verdict[] = [];
  for (const c of cmp) {
    const pct = (c.throughputRatio * 100).toFixed(0);
    out.push({ target: `${c.mode}: throughput >= ${TARGETS.throughputRatioMin * 100}% of pass-through`, measured: `${pct}%`, met: c.throughputRatio >= TARGETS.throughputRatioMin });
    out.push({ target: `${c.mode}: p50 within ${TARGETS.p50DeltaMaxMs} ms of pass-through`, measured: signed(c.p50DeltaMs), met: c.p50DeltaMs <= TARGETS.p50DeltaMaxMs });
    if (c.mode === "sse") {
      out.push({ target: `sse: time to first byte (p50) within ${TARGETS.sseTtfbDeltaMaxMs} ms of pass-through`, measured: signed(c.ttfbP50DeltaMs), met: c.ttfbP50DeltaMs <= TARGETS.sseTtfbDeltaMaxMs });
    }
  }
  return out;
}

/** The floor Worker judged by the same targets: not a verdict on the proxy, a bound on any. */
export function markdownFloor(c: Comparison): string {
  const rows = judge([c]).map((x) => `| ${x.target} | ${x.measured} | ${x.met ? "yes" : "no"} |`);
  return ["| floor Worker (stream handling only) | measured | within the target |", "| --- | ---: | --- |", ...rows].join("\n");
}

const signed = (ms: number) => `${ms >= 0 ? "+" : ""}${ms.toFixed(2)} ms`;

export function markdownTable(rows: BenchRow[]): string {
  const lines = [
    "| mode | target | req/s | p50 ms | p99 ms | TTFB p50 ms | TTFB p99 ms | requests | errors |",
    "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
  ];
  for (const r of rows) {
    lines.push(`| ${r.mode} | ${r.target} | ${r.rps.toFixed(0)} | ${r.p50Ms.toFixed(2)} | ${r.p99Ms.toFixed(2)} | ${r.ttfbP50Ms.toFixed(2)} | ${r.ttfbP99Ms.toFixed(2)} | ${r.requests} | ${r.errors} |`);
  }
  return lines.join("\n");
}

export function markdownVerdicts(v: Verdict[]): string {
  return ["| target | measured | met |", "| --- | ---: | --- |", ...v.map((x) => `| ${x.target} | ${x.measured} | ${x.met ? "yes" : "**no**"} |`)].join("\n");
}
