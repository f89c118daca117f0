// `npm run bench:proxy-profile`: a V8 CPU profile of the proxy Worker's isolate in workerd
// while it serves closed-loop load, through workerd's inspector (the Chrome DevTools
// protocol: Profiler.start/stop). The Worker is bundled as Pulumi bundles it, unminified,
// so the profile names its functions. Writes the .cpuprofile (open it in Chrome DevTools) and prints where the
// time went: self time per function, and time per source line.
//
// Reading it: samples are wall-clock, on the isolate's thread. "(idle)" is the thread
// waiting; "(program)" is native work outside any JavaScript frame (HTTP, kj event loop);
// an async function's resumption after a native await (a body read, fetch) is charged to
// the line where the function starts. Numbers are per call: each share of the samples
// times the sampled time, over the calls completed.
import { Command } from "commander";
import { writeFileSync } from "node:fs";
import { bundleWorker, startLocalProxy } from "../../../workers/llm-proxy/local/miniflare.ts";
import { FakeAnthropic } from "../../../workers/llm-proxy/test/fake-anthropic.ts";
import { benchTenant, completeAnswer, messagesBody, messagesHeaders, type Mode } from "./calls.ts";
import { emptySamples, runLoad, summarise } from "./load.ts";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
  positionTicks?: { line: number; ticks: number }[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  startTime: number;
  endTime: number;
}

/** One inspector session: send a method, await its result. */
async function inspector(url: string): Promise<{ send: (method: string, params?: object) => Promise<Record<string, unknown>>; close: () => void }> {
  const ws = new WebSocket(url);
  await new Promise<void>((ok, fail) => {
    ws.addEventListener("open", () => ok());
    ws.addEventListener("error", () => fail(new Error(`inspector: cannot connect to ${url}`)));
  });
  let id = 0;
  const pending = new Map<number, (v: Record<string, unknown>) => void>();
  ws.addEventListener("message", (e) => {
    const m = JSON.parse(String(e.data)) as { id?: number; result?: Record<string, unknown> };
    if (m.id !== undefined) pending.get(m.id)?.(m.result ?? {});
  });
  return {
    send: (method, params = {}) =>
      new Promise((ok) => {
        const i = ++id;
        pending.set(i, ok);
        ws.send(JSON.stringify({ id: i, method, params }));
      }),
    close: () => ws.close(),
  };
}

/** Self time per function and time per line, in µs per call, largest first. */
export function summariseProfile(p: CpuProfile, calls: number, top: number): { selfUs: [string, number][]; lineUs: [string, number][]; busyUs: number } {
  const perSample = (p.endTime - p.startTime) / Math.max(1, p.samples.length);
  const count = new Map<number, number>();
  for (const s of p.samples) count.set(s, (count.get(s) ?? 0) + 1);
  const self = new Map<string, number>();
  const lines = new Map<string, number>();
  let idle = 0;
  for (const n of p.nodes) {
    const c = count.get(n.id) ?? 0;
    const f = n.callFrame;
    const name = `${f.functionName || "(anonymous)"}${f.url ? ` ${f.url.split("/").pop()}:${f.lineNumber + 1}` : ""}`;
    if (f.functionName === "(idle)") idle += c;
    self.set(name, (self.get(name) ?? 0) + c);
    for (const t of n.positionTicks ?? []) {
      const k = `${f.functionName || "(anonymous)"} line ${t.line}`;
      lines.set(k, (lines.get(k) ?? 0) + t.ticks);
    }
  }
  const us = (m: Map<string, number>) =>
    [...m.entries()]
      .map(([k, v]): [string, number] => [k, (v * perSample) / calls])
      .sort((a, b) => b[1] - a[1])
      .slice(0, top);
  return { selfUs: us(self), lineUs: us(lines), busyUs: ((p.samples.length - idle) * perSample) / calls };
}

export async function runProfile(argv: string[]): Promise<number> {
  const program = new Command("bench:proxy-profile")
    .description("CPU-profile the LLM proxy in workerd under load (loopback only)")
    .option("--mode <json|sse>", "what the calls ask for", "json")
    .option("--metering <on|off>", "METERING", "off")
    .option("--seconds <n>", "profiled seconds", "8")
    .option("--concurrency <n>", "requests in flight", "16")
    .option("--port <n>", "workerd inspector port", "9329")
    .option("--top <n>", "rows to print", "25")
    .option("--out <file>", "where to write the .cpuprofile", "bench/results/proxy.cpuprofile");
  program.parse(argv, { from: "user" });
  const o = program.opts<{ mode: string; metering: string; seconds: string; concurrency: string; port: string; top: string; out: string }>();
  if (!["json", "sse"].includes(o.mode) || !["on", "off"].includes(o.metering)) {
    process.stderr.write("bench:proxy-profile: --mode is json or sse, --metering on or off\n");
    return 2;
  }
  const num = (s: string) => Math.max(1, Math.round(Number(s)));
  if ([o.seconds, o.concurrency, o.port, o.top].some((x) => !Number.isFinite(Number(x)))) {
    process.stderr.write("bench:proxy-profile: --seconds, --concurrency, --port and --top are numbers\n");
    return 2;
  }
  const script = await bundleWorker({ minify: false });
  const fake = new FakeAnthropic();
  fake.recording = false;
  await fake.start();
  const port = num(o.port);
  const p = await startLocalProxy({
    vars: { UPSTREAM_BASE_URL: fake.url, METERING: o.metering },
    secrets: { ANTHROPIC_API_KEY: "sk-ant-bench-placeholder", OPERATOR_TOKEN: "bench" },
    onLog: () => {},
    inspectorPort: port,
    override: { script },
  });
  try {
    const mode = o.mode as Mode;
    const key = await benchTenant(p.mf);
    const t = { url: `${p.url.origin}/v1/messages`, headers: messagesHeaders(key), body: messagesBody(mode), ok: completeAnswer(mode) };
    const concurrency = num(o.concurrency);
    await runLoad(t, concurrency, 2, emptySamples(), false);
    const targets = (await (await fetch(`http://127.0.0.1:${port}/json/list`)).json()) as { webSocketDebuggerUrl?: string }[];
    const target = targets.find((x) => (x.webSocketDebuggerUrl ?? "").endsWith(":llm-proxy"));
    if (target?.webSocketDebuggerUrl === undefined) throw new Error("bench:proxy-profile: workerd's inspector lists no llm-proxy isolate");
    const session = await inspector(target.webSocketDebuggerUrl);
    await session.send("Profiler.enable");
    await session.send("Profiler.setSamplingInterval", { interval: 100 });
    await session.send("Profiler.start");
    const samples = emptySamples();
    await runLoad(t, concurrency, num(o.seconds), samples);
    const profile = (await session.send("Profiler.stop")).profile as CpuProfile;
    session.close();
    writeFileSync(o.out, JSON.stringify(profile));
    const s = summarise(samples);
    const { selfUs, lineUs, busyUs } = summariseProfile(profile, s.requests, num(o.top));
    const fmt = (rows: [string, number][]) => rows.map(([k, v]) => `| ${k} | ${v.toFixed(1)} |`).join("\n");
    process.stdout.write(
      `${o.mode}, metering ${o.metering}, concurrency ${concurrency}: ${s.requests} calls, ${s.rps.toFixed(0)}/s (profiling slows it), ${busyUs.toFixed(0)} µs of the isolate's thread busy per call\n\n` +
        `| self time | µs/call |\n| --- | ---: |\n${fmt(selfUs)}\n\n| by line | µs/call |\n| --- | ---: |\n${fmt(lineUs)}\n\nprofile written to ${o.out}\n`,
    );
    return s.errors > 0 ? 1 : 0;
  } finally {
    await p.mf.dispose();
    await fake.stop();
  }
}
