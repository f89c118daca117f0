// A closed-loop HTTP load generator for the proxy benchmark: `concurrency` workers, each
// sending the next request as soon as the previous one finished, for a fixed duration.
// The benchmark interleaves short slices of each case so a shared machine's load
// drifts affect all of them alike.
// Measures per request the time to the first body byte and to the end (node:http with a
// keep-alive agent: less client overhead than fetch on a shared 2-core machine).
import { Agent, request } from "node:http";
import { percentile, type LoadSummary } from "../stats.ts";

export interface LoadResult extends LoadSummary {
  ttfbP50Ms: number;
  ttfbP99Ms: number;
}

export interface Target {
  url: string;
  headers: Record<string, string>;
  body: Buffer;
  /** A check of each answer (status 200 and the expected shape), so errors are counted. */
  ok: (status: number, body: string) => boolean;
}


function once(agent: Agent, t: Target): Promise<{ ttfb: number; total: number; ok: boolean }> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    let ttfb = -1;
    const req = request(t.url, { method: "POST", agent, headers: { ...t.headers, "content-length": String(t.body.length) } }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => {
        if (ttfb < 0) ttfb = performance.now() - t0;
        text += c;
      });
      res.on("end", () => {
        const total = performance.now() - t0;
        resolve({ ttfb: ttfb < 0 ? total : ttfb, total, ok: t.ok(res.statusCode ?? 0, text) });
      });
      res.on("error", () => resolve({ ttfb: 0, total: performance.now() - t0, ok: false }));
    });
    req.on("error", () => resolve({ ttfb: 0, total: performance.now() - t0, ok: false }));
    req.end(t.body);
  });
}

export interface Samples {
  totals: number[];
  ttfbs: number[];
  errors: number;
  seconds: number;
}

export function emptySamples(): Samples {
  return { totals: [], ttfbs: [], errors: 0, seconds: 0 };
}

/**
 * Adds `seconds` of closed-loop load to `into`; stops by itself. With `leadIn` (seconds),
 * the same load runs that long first, unrecorded, on the same connections, and `onMeasure`
 * is called when recording starts (the caller's CPU reading): requests sent from then on
 * are recorded.
 */
export async function runLoad(t: Target, concurrency: number, seconds: number, into: Samples, measure = true, leadIn = 0, onMeasure?: () => void): Promise<void> {
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  const from = performance.now() + leadIn * 1000;
  const end = from + seconds * 1000;
  const started = leadIn > 0 ? new Promise<void>((r) => setTimeout(() => (onMeasure?.(), r()), leadIn * 1000)) : (onMeasure?.(), Promise.resolve());
  const worker = async () => {
    while (performance.now() < end) {
      const sent = performance.now();
      const r = await once(agent, t);
      if (!measure || sent < from) continue;
      if (!r.ok) into.errors++;
      else {
        into.totals.push(r.total);
        into.ttfbs.push(r.ttfb);
      }
    }
  };
  await Promise.all([started, ...Array.from({ length: concurrency }, worker)]);
  agent.destroy();
  if (measure) into.seconds += seconds;
}

export function summarise(s: Samples): LoadResult {
  const totals = [...s.totals].sort((a, b) => a - b);
  const ttfbs = [...s.ttfbs].sort((a, b) => a - b);
  return {
    requests: totals.length,
    errors: s.errors,
    seconds: s.seconds,
    rps: totals.length / s.seconds,
    p50Ms: percentile(totals, 50),
    p99Ms: percentile(totals, 99),
    ttfbP50Ms: percentile(ttfbs, 50),
    ttfbP99Ms: percentile(ttfbs, 99),
  };
}
