// The Cloudflare Queues API as `npm run dead-letters` uses it, through the official SDK
// (cloudflare 7.3.0, resources/queues): a queue found by name, its backlog, and the
// messages calls (pull, ack, bulk push, peek). The base URL is configurable so the tests
// point it at the loopback fake (test/fakes/cloudflare-queues-api.ts).
import { cloudflareClient } from "../../../stacks/model/cloudflare-client.ts";
import { CLOUDFLARE_LIMIT, DEFAULT_IMPORT_BUDGET, limitedFetch, SlidingWindowLimiter } from "../import/rate-limit.ts";
import Cloudflare from "cloudflare";
import type { WireMessage } from "./events.ts";

export interface QueueInfo {
  id: string;
  name: string;
  /** Seconds the queue keeps a message (its message_retention_period). */
  retentionSeconds?: number;
  /** Its HTTP pull consumer's settings, when it has one. */
  pull?: { maxRetries?: number; visibilityTimeoutMs?: number };
  /** The scripts of its Worker consumers. */
  workers: string[];
}

export interface QueuesClient {
  find(name: string): Promise<QueueInfo | undefined>;
  backlog(queueId: string): Promise<number | undefined>;
  /** The queue's best-effort metrics (GET .../metrics; "values may be approximate"). */
  metrics(queueId: string): Promise<QueueMetrics>;
  pull(queueId: string, batchSize: number, visibilityTimeoutMs: number): Promise<{ messages: WireMessage[]; backlog?: number }>;
  peek(queueId: string, batchSize: number): Promise<WireMessage[]>;
  ack(queueId: string, leases: string[]): Promise<{ acked: number; warnings: number }>;
  /** Releases leases at once (an ack's `retries`), so the messages are visible again. */
  release(queueId: string, leases: string[]): Promise<void>;
  push(queueId: string, bodies: unknown[]): Promise<void>;
}

export interface QueueMetrics {
  /** Unacknowledged messages (leased ones included). */
  backlogCount: number;
  backlogBytes: number;
  /** When the oldest unacknowledged message was sent; undefined when the API does not
   *  know (it answers 0, cloudflare 7.3.0 QueueGetMetricsResponse). */
  oldestMs?: number;
}

export interface ClientOptions {
  apiToken: string;
  accountId: string;
  baseURL?: string;
  /** The SDK's retries of 429, 5xx and lost connections (default 2, with backoff). */
  maxRetries?: number;
}


/** A Worker consumer's script. The API answers `script` (or `service`), not the SDK type's
 *  `script_name`: wrangler reads `consumer.script ?? consumer.service`
 *  (wrangler-dist/cli.js, mapWorkerConsumerForDisplay, from
 *  src/queues/cli/commands/consumer/worker/list.ts), and terraform-provider-cloudflare's
 *  queue_consumer model says "API returns \"script\" but we expose \"script_name\"". */
function consumerScript(c: object): string[] {
  const f = c as { script?: unknown; service?: unknown; script_name?: unknown };
  const name = [f.script, f.service, f.script_name].find((v) => typeof v === "string" && v !== "");
  return typeof name === "string" ? [name] : [];
}
export function openQueues(o: ClientOptions): QueuesClient {
  // Paced like `npm run import`: the account's API allows 1,200 requests per 5 minutes
  // (a replay of over ~100,000 events pushes more than that), and going over blocks every
  // token of the account for 5 minutes; a 429's retry-after pauses the rest.
  const limiter = new SlidingWindowLimiter(DEFAULT_IMPORT_BUDGET, CLOUDFLARE_LIMIT.windowMs);
  const cf = cloudflareClient({ apiToken: o.apiToken, timeout: 60_000, maxRetries: o.maxRetries ?? 2, baseURL: o.baseURL, fetch: limitedFetch(limiter) });
  const account_id = o.accountId;
  return {
    async find(name) {
      // By name, as wrangler does (GET /queues?name=): the list is paged, and a DLQ need
      // not be on its first page. The name filter is checked again here.
      const page = await cf.queues.list({ account_id }, { query: { name } });
      const q = page.result.find((x) => x.queue_name === name);
      if (!q?.queue_id) return undefined;
      const pull = (q.consumers ?? []).find((c) => c.type === "http_pull");
      const settings = (pull?.settings ?? {}) as { max_retries?: number; visibility_timeout_ms?: number };
      return {
        id: q.queue_id,
        name,
        ...(q.settings?.message_retention_period !== undefined ? { retentionSeconds: q.settings.message_retention_period } : {}),
        ...(pull ? { pull: { ...(settings.max_retries !== undefined ? { maxRetries: settings.max_retries } : {}), ...(settings.visibility_timeout_ms !== undefined ? { visibilityTimeoutMs: settings.visibility_timeout_ms } : {}) } } : {}),
        workers: (q.consumers ?? []).flatMap((c) => (c.type === "worker" ? consumerScript(c) : [])),
      };
    },
    async backlog(queueId) {
      const m = await cf.queues.getMetrics(queueId, { account_id });
      return typeof m.backlog_count === "number" ? m.backlog_count : undefined;
    },
    async metrics(queueId) {
      const m = await cf.queues.getMetrics(queueId, { account_id });
      // A field missing or not a number is a contract change: fail, never read it as 0 (an empty DLQ).
      if (typeof m.backlog_count !== "number" || !Number.isFinite(m.backlog_count)) throw new Error(`the Queues metrics answer has no backlog_count (got ${JSON.stringify(m.backlog_count)})`);
      const oldest = m.oldest_message_timestamp_ms;
      return {
        backlogCount: m.backlog_count,
        backlogBytes: typeof m.backlog_bytes === "number" && Number.isFinite(m.backlog_bytes) ? m.backlog_bytes : 0,
        ...(typeof oldest === "number" && Number.isFinite(oldest) && oldest > 0 ? { oldestMs: oldest } : {}),
      };
    },
    async pull(queueId, batchSize, visibilityTimeoutMs) {
      // `result` may be null on an empty queue (the pull docs: "an empty response"; older
      // SDKs typed it `MessagePullResponse | null`): no messages, not a TypeError.
      const r = (await cf.queues.messages.pull(queueId, { account_id, batch_size: batchSize, visibility_timeout_ms: visibilityTimeoutMs })) as { messages?: WireMessage[] | null; message_backlog_count?: number } | null;
      return { messages: r?.messages ?? [], ...(typeof r?.message_backlog_count === "number" ? { backlog: r.message_backlog_count } : {}) };
    },
    async peek(queueId, batchSize) {
      const r = (await cf.queues.messages.peek(queueId, { account_id, batch_size: batchSize })) as { messages?: WireMessage[] | null } | null;
      return r?.messages ?? [];
    },
    async ack(queueId, leases) {
      const r = (await cf.queues.messages.ack(queueId, { account_id, acks: leases.map((lease_id) => ({ lease_id })) })) as { ackCount?: number; warnings?: Record<string, unknown> | null } | null;
      return { acked: r?.ackCount ?? 0, warnings: Object.keys(r?.warnings ?? {}).length };
    },
    async release(queueId, leases) {
      await cf.queues.messages.ack(queueId, { account_id, retries: leases.map((lease_id) => ({ lease_id })) });
    },
    async push(queueId, bodies) {
      await cf.queues.messages.bulkPush(queueId, { account_id, messages: bodies.map((body) => ({ body, content_type: "json" as const })) });
    },
  };
}

