// `npm run bench:proxy-same-process`: the pass-through, the JSON floor and the proxy as
// three Workers of ONE workerd process (Miniflare routes the first two by Host header,
// `pass.bench` and `floor.bench`; everything else reaches the proxy), measured in
// interleaved 1-second slices. `npm run bench:proxy` runs each target in its own workerd
// (its CPU column needs that), and two processes running the same Worker differ by up to
// ~12% in CPU per call; here every target shares the process, so a ratio compares the
// Workers and not the processes. Only one target is loaded at a time, so the process's
// CPU during a slice is that target's. Prints one JSON line per run.
import { Command } from "commander";
import type { WorkerOptions } from "miniflare";
import { startLocalProxy, wranglerWorkerOptions } from "../../../workers/llm-proxy/local/miniflare.ts";
import { FakeAnthropic } from "../../../workers/llm-proxy/test/fake-anthropic.ts";
import { cpuMs, withWorkerdPid } from "../router/cpu.ts";
import { benchTenant, completeAnswer, messagesBody, messagesHeaders, type Mode } from "./calls.ts";
import { emptySamples, runLoad, summarise } from "./load.ts";
import { JSON_FLOOR, PASS_THROUGH } from "./workers.ts";

export async function runSameProcess(argv: string[]): Promise<number> {
  const program = new Command("bench:proxy-same-process")
    .description("The proxy against a pass-through and the JSON floor in the same workerd process (loopback only)")
    .option("--mode <json|sse>", "what the calls ask for", "json")
    .option("--metering <on|off>", "the proxy's METERING", "off")
    .option("--seconds <n>", "measured 1-second slices per target", "6")
    .option("--concurrency <n>", "requests in flight", "16");
  program.parse(argv, { from: "user" });
  const o = program.opts<{ mode: string; metering: string; seconds: string; concurrency: string }>();
  if (!["json", "sse"].includes(o.mode) || !["on", "off"].includes(o.metering) || ![o.seconds, o.concurrency].every((x) => Number.isFinite(Number(x)) && Number(x) >= 1)) {
    process.stderr.write("bench:proxy-same-process: --mode json|sse, --metering on|off, --seconds and --concurrency >= 1\n");
    return 2;
  }
  const seconds = Math.min(60, Math.round(Number(o.seconds)));
  const concurrency = Math.min(64, Math.round(Number(o.concurrency)));
  const fake = new FakeAnthropic();
  fake.recording = false;
  await fake.start();
  const { options } = wranglerWorkerOptions();
  const beside = (name: string, script: string): WorkerOptions => ({ name, modules: true, routes: [`${name}.bench/*`], script, compatibilityDate: options.compatibilityDate, compatibilityFlags: options.compatibilityFlags, bindings: { UPSTREAM: fake.url } });
  const { value: p, pid } = await withWorkerdPid(() =>
    startLocalProxy({
      vars: { UPSTREAM_BASE_URL: fake.url, METERING: o.metering },
      secrets: { ANTHROPIC_API_KEY: "sk-ant-bench-placeholder", OPERATOR_TOKEN: "bench" },
      onLog: () => {},
      extraWorkers: [beside("pass", PASS_THROUGH), beside("floor", JSON_FLOOR)],
    }),
  );
  try {
    const mode = o.mode as Mode;
    const key = await benchTenant([p.mf]);
    const body = messagesBody(mode);
    const target = (host?: string) => ({ url: `${p.url.origin}/v1/messages`, headers: messagesHeaders(key, host), body, ok: completeAnswer(mode) });
    const cases = [
      { name: "pass-through", t: target("pass.bench") },
      { name: "json-floor", t: target("floor.bench") },
      { name: "edgefleet", t: target() },
    ].map((c) => ({ ...c, samples: emptySamples(), cpuMs: 0 }));
    for (const c of cases) await runLoad(c.t, concurrency, 1, emptySamples(), false);
    for (let i = 0; i < seconds; i++) {
      for (const c of cases) {
        const before = cpuMs(pid);
        await runLoad(c.t, concurrency, 1, c.samples);
        const after = cpuMs(pid);
        if (before !== undefined && after !== undefined) c.cpuMs += after - before;
      }
    }
    const rows = cases.map((c) => {
      const s = summarise(c.samples);
      return { target: c.name, rps: Math.round(s.rps), cpuUsPerCall: pid === undefined || s.requests === 0 ? undefined : Math.round((c.cpuMs * 1000) / s.requests), requests: s.requests, errors: s.errors };
    });
    const [pass, floor, proxy] = rows as [(typeof rows)[number], (typeof rows)[number], (typeof rows)[number]];
    const ratio = (a: number, b: number) => Math.round((a / b) * 1000) / 10;
    process.stdout.write(JSON.stringify({ command: `npm run bench:proxy-same-process -- ${argv.join(" ")}`.trim(), date: new Date().toISOString(), mode: o.mode, metering: o.metering, concurrency, seconds, rows, proxyPctOfPass: ratio(proxy.rps, pass.rps), floorPctOfPass: ratio(floor.rps, pass.rps) }) + "\n");
    return rows.some((r) => r.requests === 0) ? 1 : 0;
  } finally {
    await p.mf.dispose();
    await fake.stop();
  }
}
