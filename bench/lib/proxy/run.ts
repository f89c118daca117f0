// The proxy benchmark (`npm run bench:proxy`): the fake upstream directly, a minimal
// pass-through Worker (just `fetch(upstream, request)`) and the edgefleet proxy with auth
// and rate limiting on, JSON and SSE, side by side in one run, all in workerd via
// Miniflare on loopback. Prints a table and writes bench/results/proxy.json.
import { Command } from "commander";
import Table from "cli-table3";
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

export interface BenchRow extends LoadResult {
  mode: "json" | "sse";
  target: "upstream" | "pass-through" | "edgefleet";
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
  const seconds = Math.min(20, Math.max(1, Math.round(Number(o.seconds))));
  const warmup = Math.min(5, Math.max(0, Number(o.warmup)));
  const concurrency = Math.min(64, Math.max(1, Number(o.concurrency)));

  const fake = new FakeAnthropic();
  fake.recording = false;
  await fake.start();
  const { options } = wranglerWorkerOptions();
  const pass = new Miniflare({
    modules: true,
    script: PASS_THROUGH,
    compatibilityDate: options.compatibilityDate,
    compatibilityFlags: options.compatibilityFlags,
    bindings: { UPSTREAM: fake.url },
    cf: false,
    host: "127.0.0.1",
    port: 0,
  });
  const passUrl = await pass.ready;
  // The real Worker: auth (KV), rate limiting (Durable Object) and metrics all on; the
  // tenant's rate is high enough never to limit.
  const proxy = await startLocalProxy({
    vars: { UPSTREAM_BASE_URL: fake.url },
    secrets: { ANTHROPIC_API_KEY: "sk-ant-bench-placeholder", OPERATOR_TOKEN: "bench" },
    onLog: () => {},
  });
  const { key } = await createTenant(miniflareKv(await proxy.mf.getKVNamespace("TENANTS")), { name: "bench", ratePerMinute: 10_000_000, burst: 1_000_000 });

  const bodies = {
    json: Buffer.from(JSON.stringify({ model: "claude-sonnet-4-5", max_tokens: 64, messages: [{ role: "user", content: "Say hello" }] })),
    sse: Buffer.from(JSON.stringify({ model: "claude-sonnet-4-5", max_tokens: 64, stream: true, messages: [{ role: "user", content: "Say hello" }] })),
  };
  const headers = { "content-type": "application/json", "anthropic-version": "2023-06-01", "x-api-key": key };
  const okJson = (s: number, b: string) => s === 200 && b.includes('"type":"message"');
  const okSse = (s: number, b: string) => s === 200 && b.includes("event: message_stop");
  const targets: Record<BenchRow["target"], string> = { upstream: fake.url, "pass-through": passUrl.origin, edgefleet: proxy.url.origin };

  const cases: { mode: BenchRow["mode"]; target: BenchRow["target"]; t: Target; samples: Samples }[] = [];
  for (const mode of ["json", "sse"] as const) {
    for (const target of ["upstream", "pass-through", "edgefleet"] as const) {
      const t: Target = { url: `${targets[target]}/v1/messages`, headers, body: bodies[mode], ok: mode === "json" ? okJson : okSse };
      cases.push({ mode, target, t, samples: emptySamples() });
    }
  }
  const rows: BenchRow[] = [];
  try {
    for (const c of cases) await runLoad(c.t, concurrency, warmup, c.samples, false);
    for (let round = 0; round < seconds; round++) {
      if (!o.json) process.stderr.write(`bench: round ${round + 1}/${seconds} (6 cases x 1 s, concurrency ${concurrency})\n`);
      for (const c of cases) await runLoad(c.t, concurrency, 1, c.samples);
    }
    for (const c of cases) rows.push({ mode: c.mode, target: c.target, ...summarise(c.samples) });
  } finally {
    await proxy.mf.dispose();
    await pass.dispose();
    await fake.stop();
  }

  const ratio = (mode: string) => {
    const p = rows.find((r) => r.mode === mode && r.target === "pass-through")!;
    const e = rows.find((r) => r.mode === mode && r.target === "edgefleet")!;
    return {
      mode,
      throughputRatio: e.rps / p.rps,
      p50DeltaMs: e.p50Ms - p.p50Ms,
      ttfbP50DeltaMs: e.ttfbP50Ms - p.ttfbP50Ms,
    };
  };
  const result = {
    command: `npm run bench:proxy -- ${argv.join(" ")}`.trim(),
    date: new Date().toISOString(),
    machine: { cpus: cpus().length, model: cpus()[0]?.model ?? "", loadavg: loadavg(), node: process.version, note: "shared machine unless stated otherwise" },
    settings: { seconds, warmup, concurrency },
    rows,
    versusPassThrough: ["json", "sse"].map(ratio),
    targets: { throughputRatioMin: 0.7, p50DeltaMaxMs: 1, sseTtfbDeltaMaxMs: 2 },
  };
  mkdirSync(dirname(o.out), { recursive: true });
  writeFileSync(o.out, JSON.stringify(result, null, 2) + "\n");
  if (o.json) process.stdout.write(JSON.stringify(result, null, 2) + "\n");
  else {
    const t = new Table({ head: ["mode", "target", "req/s", "p50 ms", "p99 ms", "TTFB p50 ms", "TTFB p99 ms", "errors"], style: { head: [], border: [] } });
    for (const r of rows) t.push([r.mode, r.target, r.rps.toFixed(0), r.p50Ms.toFixed(2), r.p99Ms.toFixed(2), r.ttfbP50Ms.toFixed(2), r.ttfbP99Ms.toFixed(2), r.errors]);
    process.stdout.write(t.toString() + "\n");
    for (const v of result.versusPassThrough) {
      process.stdout.write(`${v.mode}: edgefleet/pass-through throughput ${(v.throughputRatio * 100).toFixed(0)}% (target >= 70%), p50 +${v.p50DeltaMs.toFixed(2)} ms (target <= 1), TTFB p50 +${v.ttfbP50DeltaMs.toFixed(2)} ms (SSE target <= 2)\n`);
    }
    process.stdout.write(`written to ${o.out}\n`);
  }
  return rows.some((r) => r.requests === 0) ? 1 : 0;
}
