// A small bounded load generator for the router benchmark: `concurrency` loops, each
// sending one keep-alive HTTP/1.1 request at a time to 127.0.0.1 until the deadline,
// recording every latency. node:http rather than fetch because the router picks the
// site by Host header, which fetch may not set.
import { Agent, request } from "node:http";
import { percentile, type LoadSummary } from "../stats.ts";

export interface LoadOptions {
  port: number;
  host: string;
  path: string;
  concurrency: number;
  durationMs: number;
  /** Status every response must have; others count as errors. */
  expectStatus?: number;
}

export type LoadResult = LoadSummary;


function once(agent: Agent, o: LoadOptions): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ agent, host: "127.0.0.1", port: o.port, path: o.path, headers: { host: o.host } }, (res) => {
      res.on("data", () => {});
      res.on("end", () => resolve(res.statusCode ?? 0));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end();
  });
}

export async function drive(o: LoadOptions): Promise<LoadResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: o.concurrency });
  const latencies: number[] = [];
  let errors = 0;
  const start = performance.now();
  const end = start + o.durationMs;
  const loop = async () => {
    while (performance.now() < end) {
      const t = performance.now();
      try {
        const status = await once(agent, o);
        if (status !== (o.expectStatus ?? 200)) errors++;
      } catch {
        errors++;
      }
      latencies.push(performance.now() - t);
    }
  };
  await Promise.all(Array.from({ length: o.concurrency }, loop));
  const seconds = (performance.now() - start) / 1000;
  agent.destroy();
  latencies.sort((a, b) => a - b);
  const round = (x: number) => Math.round(x * 1000) / 1000;
  return {
    requests: latencies.length,
    errors,
    seconds: round(seconds),
    rps: Math.round(latencies.length / seconds),
    p50Ms: round(percentile(latencies, 50)),
    p99Ms: round(percentile(latencies, 99)),
  };
}
