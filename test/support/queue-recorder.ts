// A Worker for a test's Miniflare that consumes a Queue and hands each message's body to
// the test process (through a service binding), acking it: how the proxy's tests see the
// usage events it sends, and the ledger's tests what reaches its dead-letter queue.
import { Response, type Request as MfRequest, type WorkerOptions } from "miniflare";

// Bodies JSON cannot carry are tagged, so a test sees what arrived: raw bytes as
// {"$bytes": [...]}, a Map as {"$map": [[k, v], ...]}, a Date as {"$date": iso}.
const RECORDER = `
const tag = (v) =>
  v instanceof ArrayBuffer ? { $bytes: [...new Uint8Array(v)] }
  : v instanceof Map ? { $map: [...v].map(([k, x]) => [tag(k), tag(x)]) }
  : v instanceof Date ? { $date: v.toISOString() }
  : Array.isArray(v) ? v.map(tag)
  : v !== null && typeof v === "object" ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, tag(x)]))
  : v;
export default {
  async queue(batch, env) {
    for (const m of batch.messages) {
      await env.SINK.fetch("http://sink/", { method: "POST", body: JSON.stringify({ body: m.body === undefined ? null : tag(m.body) }) });
      m.ack();
    }
  },
};`;

export function queueRecorder(name: string, queue: string, onBody: (body: unknown) => void): WorkerOptions {
  return {
    name,
    modules: true,
    script: RECORDER,
    queueConsumers: { [queue]: { maxBatchTimeout: 0.05, maxRetries: 0 } },
    serviceBindings: {
      SINK: async (req: MfRequest) => {
        onBody(((await req.json()) as { body: unknown }).body);
        return new Response("ok");
      },
    },
  };
}
