// The usage ledger's D1 write rate (`npm run bench:ledger`): events recorded per second
// by batch size, through the real consumer (workers/usage-ledger in workerd, local D1
// persisted to a temporary folder, i.e. SQLite on disk) with batches delivered by
// Miniflare's queue dispatch, one at a time (Queues hands a consumer one batch per
// invocation). Every event is new (a call row and a rollup upsert each); one extra pass
// redelivers events already recorded (the idempotent path). Reports events/s, ms per
// batch and workerd CPU per event; writes bench/results/ledger.json. Local numbers: D1 in
// production is a remote database with its own latency per batch, so read these for the
// consumer's own cost and how batching amortises it.
import { Command } from "commander";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { startLocalLedger, WORKER_NAME } from "../../../workers/usage-ledger/local/miniflare.ts";
import { cpuMs, withWorkerdPid } from "../router/cpu.ts";
import { percentile } from "../stats.ts";

export interface LedgerRow {
  batchSize: number;
  /** "new": every event recorded for the first time; "redelivered": all already recorded. */
  kind: "new" | "redelivered";
  batches: number;
  events: number;
  seconds: number;
  eventsPerSecond: number;
  batchP50Ms: number;
  batchP99Ms: number;
  /** workerd CPU (user + system, /proc) per event, µs; undefined without /proc. */
  cpuUsPerEvent: number | undefined;
}

const MODELS = ["claude-sonnet-4-5", "claude-haiku-4-5-20251001", "claude-opus-4-5"];

let seq = 0;
function event(tenant: number, ts: number) {
  return {
    v: 1,
    request_id: `req_ef_bench_${(++seq).toString(36)}_${Math.random().toString(36).slice(2, 10)}`,
    tenant: `t_bench${tenant}`,
    model: MODELS[seq % MODELS.length],
    ts,
    status: 200,
    usage: { input_tokens: 1200, output_tokens: 800, cache_creation_input_tokens: 3000, cache_read_input_tokens: 50000, cache_creation: { ephemeral_5m_input_tokens: 1000, ephemeral_1h_input_tokens: 2000 } },
  };
}

export async function runLedgerBench(argv: string[]): Promise<number> {
  const program = new Command("bench:ledger")
    .description("Benchmark the usage ledger's D1 writes: events per second by batch size (workerd, local D1)")
    .option("--seconds <n>", "measured seconds per batch size", "3")
    .option("--sizes <list>", "batch sizes, comma-separated (wrangler.jsonc's max_batch_size is 100)", "1,10,25,50,100")
    .option("--tenants <n>", "distinct tenants the events spread over (rollup rows per day = tenants x 3 models)", "20")
    .option("--out <file>", "where to write the JSON results", "bench/results/ledger.json")
    .option("--json", "print the results as JSON instead of a table");
  program.parse(argv, { from: "user" });
  const o = program.opts<{ seconds: string; sizes: string; tenants: string; out: string; json?: boolean }>();
  const sizes = o.sizes.split(",").map((s) => Number(s.trim()));
  const bad = [
    ...(sizes.some((n) => !Number.isInteger(n) || n < 1 || n > 100) ? [`--sizes: integers from 1 to 100, got ${o.sizes}`] : []),
    ...(!Number.isFinite(Number(o.seconds)) ? [`--seconds: not a number: ${o.seconds}`] : []),
    ...(!Number.isInteger(Number(o.tenants)) || Number(o.tenants) < 1 ? [`--tenants: an integer >= 1, got ${o.tenants}`] : []),
  ];
  if (bad.length > 0) {
    process.stderr.write(`bench:ledger: ${bad.join("; ")}\n`);
    return 2;
  }
  const seconds = Math.min(30, Math.max(0.5, Number(o.seconds)));
  const tenants = Number(o.tenants);

  const persist = mkdtempSync(join(tmpdir(), "ef-bench-ledger-"));
  const { value: ledger, pid } = await withWorkerdPid(() => startLocalLedger({ persistDir: persist, onLog: () => {} }));
  const w = await ledger.mf.getWorker(WORKER_NAME);
  let msgId = 0;
  const deliver = async (bodies: unknown[]) => {
    const t0 = performance.now();
    const r = (await w.queue(
      "edgefleet-usage",
      bodies.map((body) => ({ id: `m${++msgId}`, timestamp: new Date(), attempts: 1, body })),
    )) as unknown as { outcome: string; retryMessages: unknown[]; explicitAcks: string[] };
    if (r.outcome !== "ok" || r.retryMessages.length > 0 || r.explicitAcks.length !== bodies.length) throw new Error(`the ledger did not ack the batch: ${JSON.stringify(r).slice(0, 200)}`);
    return performance.now() - t0;
  };

  const rows: LedgerRow[] = [];
  try {
    // Warm-up: the first batches compile the Worker's code and open the database.
    for (let i = 0; i < 5; i++) await deliver(Array.from({ length: 10 }, () => event(i % tenants, Date.now())));
    for (const size of sizes) {
      const recorded: unknown[][] = [];
      for (const kind of ["new", "redelivered"] as const) {
        const times: number[] = [];
        const before = cpuMs(pid);
        const start = performance.now();
        let events = 0;
        const until = start + seconds * 1000;
        let i = 0;
        while (performance.now() < until && (kind === "new" || i < recorded.length)) {
          const batch = kind === "new" ? Array.from({ length: size }, (_, k) => event((i * size + k) % tenants, Date.now())) : recorded[i]!;
          times.push(await deliver(batch));
          if (kind === "new") recorded.push(batch);
          events += batch.length;
          i++;
        }
        const elapsed = (performance.now() - start) / 1000;
        const after = cpuMs(pid);
        times.sort((a, b) => a - b);
        rows.push({
          batchSize: size,
          kind,
          batches: times.length,
          events,
          seconds: elapsed,
          eventsPerSecond: events / elapsed,
          batchP50Ms: percentile(times, 50),
          batchP99Ms: percentile(times, 99),
          cpuUsPerEvent: before === undefined || after === undefined || events === 0 ? undefined : ((after - before) * 1000) / events,
        });
        if (!o.json) process.stderr.write(`bench: batch size ${size}, ${kind}: ${events} events in ${elapsed.toFixed(1)} s\n`);
      }
    }
    const counted = (await ledger.db.prepare("SELECT SUM(calls) AS n FROM usage_daily").first<{ n: number }>())?.n ?? 0;
    const fresh = rows.filter((r) => r.kind === "new").reduce((a, r) => a + r.events, 0) + 50;
    // Redeliveries must not have counted: the rollups hold exactly the new events.
    if (counted !== fresh) throw new Error(`rollups count ${counted} calls, ${fresh} were sent once`);
  } finally {
    await ledger.mf.dispose();
    rmSync(persist, { recursive: true, force: true });
  }

  const result = {
    command: `npm run bench:ledger -- ${argv.join(" ")}`.trim(),
    date: new Date().toISOString(),
    machine: { cpus: cpus().length, model: cpus()[0]?.model ?? "", loadavg: loadavg(), node: process.version, note: "shared machine unless stated otherwise" },
    settings: { seconds, sizes, tenants, d1: "Miniflare local D1 (SQLite on disk, temporary folder)" },
    rows,
  };
  mkdirSync(dirname(o.out), { recursive: true });
  writeFileSync(o.out, JSON.stringify(result, null, 2) + "\n");
  if (o.json) process.stdout.write(JSON.stringify(result, null, 2) + "\n");
  else process.stdout.write(markdownLedger(rows) + `\n\nwritten to ${o.out}\n`);
  return 0;
}

export function markdownLedger(rows: LedgerRow[]): string {
  const lines = ["| batch size | events | kind | events/s | ms per batch p50 | p99 | workerd CPU µs/event |", "| ---: | ---: | --- | ---: | ---: | ---: | ---: |"];
  for (const r of rows) {
    const cpu = r.cpuUsPerEvent === undefined ? "-" : r.cpuUsPerEvent.toFixed(0);
    lines.push(`| ${r.batchSize} | ${r.events} | ${r.kind} | ${r.eventsPerSecond.toFixed(0)} | ${r.batchP50Ms.toFixed(2)} | ${r.batchP99Ms.toFixed(2)} | ${cpu} |`);
  }
  return lines.join("\n");
}
