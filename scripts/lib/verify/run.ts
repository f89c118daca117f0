// Runs the posture checks over many zones with bounded concurrency and sums the
// results up: zones by result, failures by check. Used by the verify CLI and its benchmark.
import { CHECKS, verifyZone, type CheckName, type ZoneExpectation, type ZoneResult } from "./checks.ts";
import type { Dns } from "./dns.ts";
import type { PolicyFetcher } from "./mta-sts.ts";

export interface Summary {
  zones: number;
  byResult: { pass: number; drift: number; error: number };
  /** Per check: zones where it found drift, and zones where it could not verify. */
  byCheck: Record<CheckName, { drift: number; error: number }>;
  queries: number;
}

export interface RunOptions {
  concurrency: number;
  timeoutMs: number;
  /** How MTA-STS policies are fetched (mta-sts.ts policyFetcher). */
  fetchPolicy: PolicyFetcher;
  onZone?: (r: ZoneResult) => void;
}

export async function verifyZones(dns: Dns, zones: ZoneExpectation[], opts: RunOptions): Promise<ZoneResult[]> {
  const results: ZoneResult[] = new Array(zones.length);
  let next = 0;
  // A fixed pool of workers pulling the next zone: at most `concurrency` zones in flight.
  const worker = async () => {
    while (next < zones.length) {
      const i = next++;
      results[i] = await verifyZone(dns, zones[i]!, opts.timeoutMs, opts.fetchPolicy);
      opts.onZone?.(results[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(opts.concurrency, zones.length)) }, worker));
  return results;
}

export function summarize(results: ZoneResult[], queries: number): Summary {
  const byCheck = Object.fromEntries(CHECKS.map((c) => [c, { drift: 0, error: 0 }])) as Summary["byCheck"];
  const byResult = { pass: 0, drift: 0, error: 0 };
  for (const r of results) {
    byResult[r.status]++;
    for (const c of r.checks) if (c.status === "drift" || c.status === "error") byCheck[c.check][c.status]++;
  }
  return { zones: results.length, byResult, byCheck, queries };
}
