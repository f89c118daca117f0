// How the proxy sends its usage events to the Queue (workers/llm-proxy/src/metering.ts);
// free of zod, so the proxy's bundle does not take the schema in with it.

/**
 * Waits before each new try of a batch the Queue refused. sendBatch throws on a network
 * failure and when the fleet's proxies together send more than the queue takes (5,000
 * messages/s per queue: "Too Many Requests"; a backlog over 25 GB: "Storage Limit
 * Exceeded"; developers.cloudflare.com/queues/platform/limits), and a lost event is a call
 * nobody is billed for. Exponential with jitter (each wait 50-100% of its step), about
 * 8 s at most in all: well inside the 30 s a call's waitUntil may run after its response.
 * A try whose reply was lost may have been enqueued: sent again, the ledger counts it
 * once (idempotent on the request id).
 */
export const SEND_RETRY_MS = [100, 400, 1600, 6400] as const;

/**
 * How long one sendBatch may take before it counts as failed and is tried again (the try
 * may still land: the ledger counts a repeat once). Without it a Queue slow to fail (a
 * degraded broker) held the flush until the runtime ended it 30 s after the response, and
 * the events were lost without the log line each lost event gets.
 */
export const SEND_TIMEOUT_MS = 3_000;

/**
 * When, after a flush began, its events are given up (each logged): before the 30 s a
 * call's waitUntil may run after its response. The tries fit: 5 x 3 s plus ~8.5 s of waits.
 */
export const SEND_DEADLINE_MS = 25_000;
