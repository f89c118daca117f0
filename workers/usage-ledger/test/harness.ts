// Test support: the usage-ledger in workerd (Miniflare) with wrangler.jsonc's bindings,
// beside a tiny producer Worker (sends bodies to the usage Queue, as the proxy will) and a
// dead-letter recorder (consumes the DLQ into `deadLetters`). Consumer waits are shortened.
import type { D1Database } from "@cloudflare/workers-types";
import type { Miniflare } from "miniflare";
import { queueRecorder } from "../../../test/support/queue-recorder.ts";
import { startLocalLedger, WORKER_NAME, type LocalLedgerOptions } from "../local/miniflare.ts";

// POST /: JSON bodies, sent with the binding's default content type (json); POST /typed:
// [{ bytes: [...] } | { map: [[k, v], ...] }], sent as "bytes" or "v8" (what another
// producer of the queue could send).
const PRODUCER = `
export default {
  async fetch(req, env) {
    const bodies = await req.json();
    if (new URL(req.url).pathname === "/typed") {
      await env.USAGE.sendBatch(bodies.map((b) => (b.bytes !== undefined ? { body: new Uint8Array(b.bytes), contentType: "bytes" } : { body: new Map(b.map), contentType: "v8" })));
    } else await env.USAGE.sendBatch(bodies.map((body) => ({ body })));
    return new Response("sent");
  },
};`;


export interface QueueResult {
  outcome: string;
  ackAll: boolean;
  retryBatch: { retry: boolean };
  explicitAcks: string[];
  retryMessages: { msgId: string }[];
}

export class LedgerHarness {
  readonly deadLetters: unknown[] = [];
  readonly logs: string[] = [];
  mf!: Miniflare;
  db!: D1Database;
  private seq = 0;

  static async start(o: Omit<LocalLedgerOptions, "extraWorkers" | "onLog"> = {}): Promise<LedgerHarness> {
    const h = new LedgerHarness();
    const { mf, db } = await startLocalLedger({
      ...o,
      consumer: { maxBatchTimeout: 0.05, retryDelay: 0, maxRetries: 2, ...o.consumer },
      onLog: (l) => {
        h.logs.push(l);
      },
      extraWorkers: [
        { name: "producer", modules: true, script: PRODUCER, queueProducers: { USAGE: { queueName: "edgefleet-usage" } } },
        queueRecorder("dlq-recorder", "edgefleet-usage-dlq", (body) => h.deadLetters.push(body)),
      ],
    });
    h.mf = mf;
    h.db = db;
    return h;
  }

  /** Sends bodies through the real Queue (producer binding -> consumer). */
  async send(bodies: unknown[]): Promise<void> {
    const w = await this.mf.getWorker("producer");
    const res = await w.fetch("http://producer/", { method: "POST", body: JSON.stringify(bodies) });
    if (res.status !== 200) throw new Error(`producer answered ${res.status}: ${await res.text()}`);
  }

  /** Sends bodies JSON cannot carry through the real Queue: raw bytes ("bytes") or a Map ("v8"). */
  async sendTyped(bodies: ({ bytes: number[] } | { map: [unknown, unknown][] })[]): Promise<void> {
    const w = await this.mf.getWorker("producer");
    const res = await w.fetch("http://producer/typed", { method: "POST", body: JSON.stringify(bodies) });
    if (res.status !== 200) throw new Error(`producer answered ${res.status}: ${await res.text()}`);
  }

  /** Calls the ledger's queue handler directly with one batch; ids are given or made. */
  async deliver(messages: { body: unknown; id?: string; attempts?: number }[]): Promise<QueueResult> {
    const w = await this.mf.getWorker(WORKER_NAME);
    const batch = messages.map((m) => ({ id: m.id ?? `m${++this.seq}`, timestamp: new Date(), body: m.body, attempts: m.attempts ?? 1 }));
    return (await w.queue("edgefleet-usage", batch)) as unknown as QueueResult;
  }

  async scheduled(at: number): Promise<void> {
    const w = await this.mf.getWorker(WORKER_NAME);
    await w.scheduled({ scheduledTime: new Date(at), cron: "17 * * * *" });
  }

  /** Polls until `done` holds (bounded: 1000 x 10 ms), then returns its last value. */
  async until<T>(probe: () => Promise<T>, done: (v: T) => boolean): Promise<T> {
    let v = await probe();
    for (let i = 0; i < 1000 && !done(v); i++) {
      await new Promise((r) => setTimeout(r, 10));
      v = await probe();
    }
    return v;
  }

  async calls(): Promise<Record<string, unknown>[]> {
    return (await this.db.prepare("SELECT * FROM calls ORDER BY request_id").all<Record<string, unknown>>()).results;
  }

  async daily(): Promise<Record<string, unknown>[]> {
    return (await this.db.prepare("SELECT * FROM usage_daily ORDER BY day, tenant, model").all<Record<string, unknown>>()).results;
  }

  async reset(): Promise<void> {
    await this.db.batch([this.db.prepare("DELETE FROM calls"), this.db.prepare("DELETE FROM usage_daily")]);
    this.deadLetters.length = 0;
    this.logs.length = 0;
  }

  dispose(): Promise<void> {
    return this.mf.dispose();
  }
}

let n = 0;
/** A valid usage event; `over` replaces fields. */
export function event(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    v: 1,
    request_id: `req_${++n}_${Math.random().toString(36).slice(2, 8)}`,
    tenant: "acme",
    model: "claude-sonnet-4-5",
    ts: Date.now() - 1000,
    status: 200,
    usage: { input_tokens: 100, output_tokens: 50, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, cache_creation: { ephemeral_5m_input_tokens: 0, ephemeral_1h_input_tokens: 0 } },
    ...over,
  };
}
