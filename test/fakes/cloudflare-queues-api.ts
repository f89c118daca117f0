// A loopback fake of Cloudflare's Queues REST API, the part `npm run dead-letters` uses:
//   GET  /client/v4/accounts/{a}/queues[?name=&page=&per_page=]   list (queues.list)
//   GET  /client/v4/accounts/{a}/queues/{queue_id}                one queue (queues.get)
//   GET  /client/v4/accounts/{a}/queues/{queue_id}/metrics        backlog (queues.getMetrics)
//   POST /client/v4/accounts/{a}/queues/{queue_id}/messages/pull  {batch_size?, visibility_timeout_ms?}
//   POST /client/v4/accounts/{a}/queues/{queue_id}/messages/ack   {acks?: [{lease_id}], retries?: [{lease_id, delay_seconds?}]}
//   POST /client/v4/accounts/{a}/queues/{queue_id}/messages/batch {messages: [{body, content_type?, delay_seconds?}], delay_seconds?}
//   POST /client/v4/accounts/{a}/queues/{queue_id}/messages       {body, content_type?, delay_seconds?}
//   POST /client/v4/accounts/{a}/queues/{queue_id}/messages/peek  {batch_size?}
// in Cloudflare's v4 envelope ({success, errors: [{code, message}], messages, result}).
//
// Where each rule comes from (all read 2026-11-27):
// - Paths, parameters and result shapes: the official SDK, node_modules/cloudflare 7.3.0,
//   resources/queues/messages.{d.ts,js} (pull, ack, bulkPush -> /messages/batch, push,
//   peek: "without leasing them ... remains available for subsequent peek or pull") and
//   resources/queues/{queues,consumers}.d.ts (Queue, consumer shapes, list is a SinglePage).
//   wrangler 4.153 (wrangler-dist/cli.js, getQueue) finds a queue by name with
//   GET /queues?page=1&name=<name>; without a name the list is paged.
// - Semantics: cloudflare/cloudflare-docs, src/content/docs/queues/configuration/pull-consumers.mdx:
//   pulling needs HTTP pull enabled on the queue (an http_pull consumer; the fake keeps one
//   consumer per queue, where Cloudflare allows a pull consumer beside a Worker one,
//   queues/configuration/multi-consumer.mdx); batch_size default 5, max 100; visibility timeout
//   default 30 s, max 12 h; `json` and `bytes` bodies are base64 in the pull answer, `text`
//   plain (`v8` cannot be decoded outside Workers: sent base64 here); each message carries
//   {body, id, timestamp_ms, attempts, metadata, lease_id}; `attempts` counts deliveries and
//   when it reaches max_retries an unacked message "will be deleted from the queue
//   permanently" (here: moved to the consumer's dead_letter_queue when it has one); an
//   unacked message is delivered again once its visibility timeout passes; an ack after
//   the timeout is still accepted, also by a lease given to an earlier delivery; a retry
//   puts the message back at once, or after delay_seconds.
// - Limits: queues/platform/limits.mdx: 128 KB per message, 100 messages or 256 KB per
//   batch, "1 KB is measured as 1000 bytes", "up to ~100 bytes of internal metadata that
//   counts towards total message limits" (charged here at 100 bytes a message: stricter);
//   delaySeconds and visibilityTimeout at most 12 h; retention 4 days unless the queue's
//   message_retention_period says otherwise.
// - The account-wide API limit, 1,200 requests per 5 minutes, then 429 for five minutes
//   (test/support/account-rate-limit.ts, which cites it); `npm run dead-letters` paces
//   itself below it.
// - Error codes: queues/reference/error-codes.mdx: 10104 queue does not exist, 10203
//   invalid message metadata (content type, delay), 10204 message size, 10205 batch size,
//   10206 batch count, 10207 body does not match the schema, 10208 body not JSON. A bad
//   token answers 403 with code 10000 (Cloudflare's authentication error, as the D1 fake).
//
// Stricter than the service on purpose: an unknown key in a request body is refused
// (10207). The docs' own curl example sends `visibility_timeout`, which is not in the API's
// schema; a client sending it to the real API would silently get the 30 s default. Not
// documented, so chosen here and never relied on by the command (it checks the consumer
// first): pulling a queue without an http_pull consumer answers 400 with code 10400. Peek
// shows messages that are available (not leased, not delayed) and needs no pull consumer.
//
// Faults: failNext({status, code, action?, applied?, times?, retryAfterMs?}) answers the next
// request (of that action) with that error, before doing anything or, with `applied`, after
// doing it (a lost answer: the write happened, the client cannot know). advance(ms) moves
// the fake's clock (leases, delays, retention) without waiting; tickMs moves it on every request.
import { randomBytes } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { AccountRateLimit, RATE_LIMITED, type AccountLimitOptions } from "../support/account-rate-limit.ts";
import { json, LoopbackFake, LoopbackServer } from "../support/fake-http.ts";

export type ContentType = "json" | "text" | "bytes" | "v8";
export type Action = "list" | "get" | "metrics" | "pull" | "ack" | "batch" | "push" | "peek";

export const LIMITS = {
  maxBatchMessages: 100,
  /** 128 KB, 1 KB = 1000 bytes (limits.mdx). */
  maxMessageBytes: 128_000,
  maxBatchBytes: 256_000,
  /** Internal metadata counted against the limits, per message (the docs' upper bound). */
  metadataBytes: 100,
  defaultPullBatch: 5,
  maxPullBatch: 100,
  defaultVisibilityMs: 30_000,
  maxVisibilityMs: 12 * 3600_000,
  maxDelaySeconds: 12 * 3600,
  defaultRetentionSeconds: 4 * 86_400,
  maxRetentionSeconds: 14 * 86_400,
  /** Cloudflare's default max_retries for a consumer that sets none. */
  defaultMaxRetries: 3,
} as const;

interface Stored {
  id: string;
  body: Buffer;
  contentType: ContentType;
  timestampMs: number;
  attempts: number;
  /** When it may be delivered: after a delay, or when its lease ends. */
  visibleAt: number;
  /** The lease of the current delivery, if it is leased. */
  lease?: string;
  /** Every lease ever given for it: an ack by any of them is accepted. */
  leases: string[];
  source: string;
}

export interface ConsumerSpec {
  type: "worker" | "http_pull";
  scriptName?: string;
  deadLetterQueue?: string;
  settings?: { batch_size?: number; max_retries?: number; max_wait_time_ms?: number; retry_delay?: number; visibility_timeout_ms?: number };
}

interface FakeQueue {
  id: string;
  name: string;
  createdOn: string;
  retentionSeconds: number;
  consumer?: ConsumerSpec & { id: string };
  messages: Stored[];
}

interface Fault {
  status: number;
  code: number;
  message: string;
  action?: Action;
  applied: boolean;
  retryAfterMs?: number;
}

class ApiError extends Error {
  readonly status: number;
  readonly code: number;
  constructor(status: number, code: number, message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

const hex = (n: number) => randomBytes(n).toString("hex");
const PATH = /^\/client\/v4\/accounts\/([^/]+)\/queues(?:\/([^/]+)(?:\/(metrics|messages)(?:\/(pull|ack|batch|peek))?)?)?$/;

export class FakeQueuesApi extends LoopbackFake {
  readonly token: string;
  readonly accountId: string;
  /** Every request, in order: what it was and its parsed body. */
  readonly requests: { method: string; action: Action | "unknown"; queue?: string; body: unknown }[] = [];
  /** Queues per page when listing without a name. */
  pageSize = 20;
  /** Each request moves the clock this far (a run that takes time, without waiting). */
  tickMs = 0;
  private readonly queues = new Map<string, FakeQueue>();
  private faults: Fault[] = [];
  private offset = 0;
  protected readonly server = new LoopbackServer((req, body, res) => this.handle(req, body, res));

  /** The account-wide API limit (1,200 requests / 5 min), on the fake's clock. */
  readonly account: AccountRateLimit;

  /** How pull and peek answers carry a `json` body: base64, as pull-consumers.mdx's
   *  "Content types" says, or as the JSON text itself, as the same page's example answer
   *  shows it ("body": "hello" with CF-Content-Type json). Which one the service sends is
   *  not settled, so the command must read both. */
  readonly jsonBodies: "base64" | "plain";

  /** How an empty pull and an ack are answered: `result` an object (the current SDK's
   *  types), or null, which the pull docs allow ("an empty response" when nothing is
   *  available) and an earlier cloudflare-typescript typed (`MessagePullResponse | null`,
   *  `MessageAckResponse | null`): the command must read both. */
  readonly nullResults: boolean;

  constructor(o: { token: string; accountId: string; limit?: AccountLimitOptions; jsonBodies?: "base64" | "plain"; nullResults?: boolean }) {
    super();
    this.token = o.token;
    this.accountId = o.accountId;
    this.account = new AccountRateLimit(o.limit);
    this.jsonBodies = o.jsonBodies ?? "base64";
    this.nullResults = o.nullResults ?? false;
  }

  /** The base URL to give the SDK (its default is https://api.cloudflare.com/client/v4). */
  get baseURL(): string {
    return `${this.server.url}/client/v4`;
  }

  /** The fake's clock (ms): real time plus what advance() added. */
  now(): number {
    return Date.now() + this.offset;
  }

  advance(ms: number): void {
    this.offset += ms;
  }

  /** Creates a queue (as `pulumi up` would) and returns its id. */
  addQueue(name: string, o: { consumer?: ConsumerSpec; retentionSeconds?: number } = {}): string {
    if ([...this.queues.values()].some((q) => q.name === name)) throw new Error(`fake: queue ${name} exists`);
    const id = hex(16);
    this.queues.set(id, {
      id,
      name,
      createdOn: new Date(this.now()).toISOString(),
      retentionSeconds: o.retentionSeconds ?? LIMITS.defaultRetentionSeconds,
      ...(o.consumer ? { consumer: { ...o.consumer, id: hex(16) } } : {}),
      messages: [],
    });
    return id;
  }

  /** Sends a message as a Worker's producer binding would (the ledger's DEAD_LETTERS, or
   * Queues dead-lettering one): `json` bodies are serialised here, `bytes`/`v8` given raw. */
  send(queue: string, body: unknown, o: { contentType?: ContentType; timestampMs?: number; attempts?: number } = {}): string {
    const q = this.byName(queue);
    const contentType = o.contentType ?? "json";
    const bytes = contentType === "json" ? Buffer.from(JSON.stringify(body), "utf8") : contentType === "text" ? Buffer.from(String(body), "utf8") : Buffer.from(body as Uint8Array);
    const m: Stored = { id: hex(16), body: bytes, contentType, timestampMs: o.timestampMs ?? this.now(), attempts: o.attempts ?? 0, visibleAt: 0, leases: [], source: "worker" };
    q.messages.push(m);
    return m.id;
  }

  /** A queue's messages as the test reads them (json bodies parsed), leased or not. */
  messages(queue: string): { id: string; contentType: ContentType; body: unknown; attempts: number; leased: boolean; timestampMs: number }[] {
    const q = this.byName(queue);
    this.settle(q);
    return q.messages.map((m) => ({
      id: m.id,
      contentType: m.contentType,
      body: m.contentType === "json" ? JSON.parse(m.body.toString("utf8")) : m.contentType === "text" ? m.body.toString("utf8") : Buffer.from(m.body),
      attempts: m.attempts,
      leased: m.lease !== undefined,
      timestampMs: m.timestampMs,
    }));
  }

  /** Everything the fake holds, as text: equal snapshots mean nothing changed. */
  snapshot(): string {
    for (const q of this.queues.values()) this.settle(q);
    return JSON.stringify([...this.queues.values()].map((q) => ({ ...q, messages: q.messages.map((m) => ({ ...m, body: m.body.toString("base64") })) })));
  }

  idOf(queue: string): string {
    return this.byName(queue).id;
  }

  failNext(f: { status: number; code: number; message?: string; action?: Action; applied?: boolean; times?: number; retryAfterMs?: number }): void {
    for (let i = 0; i < (f.times ?? 1); i++) {
      this.faults.push({ status: f.status, code: f.code, message: f.message ?? "injected fault", applied: f.applied ?? false, ...(f.action ? { action: f.action } : {}), ...(f.retryAfterMs !== undefined ? { retryAfterMs: f.retryAfterMs } : {}) });
    }
  }

  private byName(name: string): FakeQueue {
    const q = [...this.queues.values()].find((x) => x.name === name);
    if (!q) throw new Error(`fake: no queue ${name}`);
    return q;
  }

  private maxRetries(q: FakeQueue): number {
    return q.consumer?.settings?.max_retries ?? LIMITS.defaultMaxRetries;
  }

  /** Applies time: retention deletes old messages; an expired lease makes a message
   * deliverable again, unless its attempts reached max_retries (then it is gone, or in the
   * consumer's dead-letter queue). */
  private settle(q: FakeQueue): void {
    const now = this.now();
    const keep: Stored[] = [];
    for (const m of q.messages) {
      if (m.timestampMs + q.retentionSeconds * 1000 <= now) continue;
      if (m.lease !== undefined && m.visibleAt <= now) {
        m.lease = undefined;
        if (m.attempts >= this.maxRetries(q)) {
          this.exhausted(q, m);
          continue;
        }
      }
      keep.push(m);
    }
    q.messages = keep;
  }

  private exhausted(q: FakeQueue, m: Stored): void {
    const dlq = q.consumer?.deadLetterQueue ? [...this.queues.values()].find((x) => x.name === q.consumer!.deadLetterQueue) : undefined;
    if (dlq) dlq.messages.push({ ...m, id: hex(16), attempts: 0, visibleAt: 0, lease: undefined, leases: [] });
  }

  private available(q: FakeQueue): Stored[] {
    const now = this.now();
    return q.messages.filter((m) => m.lease === undefined && m.visibleAt <= now).sort((a, b) => a.timestampMs - b.timestampMs);
  }

  private encode(m: Stored): string {
    return m.contentType === "text" || (m.contentType === "json" && this.jsonBodies === "plain") ? m.body.toString("utf8") : m.body.toString("base64");
  }

  // A Worker consumer's script is `script` in the API's answer, as wrangler reads it
  // (`consumer.script ?? consumer.service`, src/queues/cli/commands/consumer/worker/list.ts)
  // and terraform-provider-cloudflare's queue_consumer model notes ("API returns \"script\""),
  // not the SDK type's `script_name`.
  private queueJson(q: FakeQueue): unknown {
    const c = q.consumer;
    return {
      queue_id: q.id,
      queue_name: q.name,
      created_on: q.createdOn,
      modified_on: q.createdOn,
      producers: [],
      producers_total_count: 0,
      consumers: c ? [{ consumer_id: c.id, created_on: q.createdOn, queue_name: q.name, dead_letter_queue: c.deadLetterQueue ?? "", type: c.type, settings: c.settings ?? {}, ...(c.type === "worker" ? { script: c.scriptName } : {}) }] : [],
      consumers_total_count: c ? 1 : 0,
      settings: { delivery_delay: 0, delivery_paused: false, message_retention_period: q.retentionSeconds },
    };
  }

  private async handle(req: IncomingMessage, raw: Buffer, res: ServerResponse): Promise<void> {
    this.offset += this.tickMs;
    const url = new URL(req.url ?? "/", "http://fake");
    const m = PATH.exec(url.pathname);
    const action: Action | "unknown" = !m ? "unknown" : m[4] ? (m[4] as Action) : m[3] === "messages" ? "push" : m[3] === "metrics" ? "metrics" : m[2] ? "get" : "list";
    let body: unknown;
    let malformed = false;
    const text = raw.toString("utf8");
    try {
      body = text === "" ? undefined : JSON.parse(text);
    } catch {
      malformed = true;
      body = text;
    }
    this.requests.push({ method: req.method ?? "", action, ...(m?.[2] ? { queue: decodeURIComponent(m[2]) } : {}), body });
    const send = (status: number, payload: unknown, headers: Record<string, string> = {}) => json(res, status, payload, headers);
    const fail = (e: ApiError, headers: Record<string, string> = {}) => send(e.status, { success: false, errors: [{ code: e.code, message: e.message }], messages: [], result: null }, headers);
    const blocked = this.account.arrive(this.now());
    if (blocked !== undefined) return send(429, { success: false, errors: [RATE_LIMITED], messages: [], result: null }, { "retry-after": String(blocked) });
    const i = this.faults.findIndex((f) => f.action === undefined || f.action === action);
    const fault = i >= 0 ? this.faults.splice(i, 1)[0] : undefined;
    const faultHeaders: Record<string, string> = fault?.retryAfterMs !== undefined ? { "retry-after-ms": String(fault.retryAfterMs) } : {};
    if (fault && !fault.applied) return fail(new ApiError(fault.status, fault.code, fault.message), faultHeaders);
    try {
      if (!m) throw new ApiError(404, 7003, "Could not route to the requested path");
      const method = action === "list" || action === "get" || action === "metrics" ? "GET" : "POST";
      if (req.method !== method) throw new ApiError(405, 10405, "Method not allowed");
      // A global API key beside the token is what authenticates (cloudflare/cloudflare-typescript#2454);
      // the fake has none, so such a request is refused like a wrong key.
      const globalKey = req.headers["x-auth-key"] !== undefined || req.headers["x-auth-email"] !== undefined;
      if (globalKey || req.headers.authorization !== `Bearer ${this.token}` || decodeURIComponent(m[1]!) !== this.accountId) throw new ApiError(403, 10000, "Authentication error");
      if (method === "POST" && malformed) throw new ApiError(400, 10208, "request body is not valid JSON");
      const { result, extra } = this.route(action as Action, m[2] ? decodeURIComponent(m[2]) : undefined, body, url.searchParams);
      if (fault) return fail(new ApiError(fault.status, fault.code, fault.message), faultHeaders);
      send(200, { success: true, errors: [], messages: [], result, ...extra });
    } catch (e) {
      if (e instanceof ApiError) return fail(e);
      throw e;
    }
  }

  private route(action: Action, queueId: string | undefined, body: unknown, params: URLSearchParams): { result: unknown; extra?: Record<string, unknown> } {
    if (action === "list") {
      const name = params.get("name");
      const page = Number(params.get("page") ?? "1");
      const perPage = Number(params.get("per_page") ?? String(this.pageSize));
      if (!Number.isInteger(page) || page < 1 || !Number.isInteger(perPage) || perPage < 1) throw new ApiError(400, 10207, "page and per_page must be positive integers");
      const all = [...this.queues.values()].filter((q) => name === null || q.name === name);
      const slice = all.slice((page - 1) * perPage, page * perPage);
      return { result: slice.map((q) => this.queueJson(q)), extra: { result_info: { page, per_page: perPage, count: slice.length, total_count: all.length, total_pages: Math.ceil(all.length / perPage) } } };
    }
    const q = this.queues.get(queueId!);
    if (!q) throw new ApiError(404, 10104, `Queue ${queueId} does not exist`);
    this.settle(q);
    switch (action) {
      case "get":
        return { result: this.queueJson(q) };
      case "metrics": {
        const oldest = q.messages.reduce((t, x) => Math.min(t, x.timestampMs), Infinity);
        return { result: { backlog_count: q.messages.length, backlog_bytes: q.messages.reduce((n, x) => n + x.body.length, 0), oldest_message_timestamp_ms: oldest === Infinity ? 0 : oldest } };
      }
      case "pull": {
        const r = this.pull(q, body) as { messages: unknown[] };
        return { result: this.nullResults && r.messages.length === 0 ? null : r };
      }
      case "peek":
        return { result: this.peek(q, body) };
      case "ack": {
        const r = this.ack(q, body);
        return { result: this.nullResults ? null : r };
      }
      case "batch":
        return { result: this.push(q, body, true) };
      case "push":
        return { result: this.push(q, body, false) };
    }
  }

  private pull(q: FakeQueue, body: unknown): unknown {
    const b = object(body ?? {}, ["batch_size", "visibility_timeout_ms"]);
    if (q.consumer?.type !== "http_pull") throw new ApiError(400, 10400, `queue ${q.name} has no HTTP pull consumer`);
    const size = int(b.batch_size, "batch_size", 1, LIMITS.maxPullBatch) ?? q.consumer.settings?.batch_size ?? LIMITS.defaultPullBatch;
    const visibility = int(b.visibility_timeout_ms, "visibility_timeout_ms", 1, LIMITS.maxVisibilityMs) ?? q.consumer.settings?.visibility_timeout_ms ?? LIMITS.defaultVisibilityMs;
    const now = this.now();
    const batch = this.available(q).slice(0, size);
    for (const m of batch) {
      m.attempts += 1;
      m.lease = `${hex(8)}.${randomBytes(32).toString("base64url")}`;
      m.leases.push(m.lease);
      m.visibleAt = now + visibility;
    }
    return {
      messages: batch.map((m) => ({ body: this.encode(m), id: m.id, timestamp_ms: m.timestampMs, attempts: m.attempts, metadata: { "CF-sourceMessageSource": m.source, "CF-Content-Type": m.contentType }, lease_id: m.lease })),
      message_backlog_count: q.messages.length,
    };
  }

  private peek(q: FakeQueue, body: unknown): unknown {
    const b = object(body ?? {}, ["batch_size"]);
    const size = int(b.batch_size, "batch_size", 1, LIMITS.maxPullBatch) ?? LIMITS.defaultPullBatch;
    return {
      messages: this.available(q)
        .slice(0, size)
        .map((m) => ({ body: this.encode(m), id: m.id, timestamp_ms: m.timestampMs, attempts: m.attempts, metadata: { "CF-sourceMessageSource": m.source, "CF-Content-Type": m.contentType }, ref: `ref.${m.id}.${hex(8)}` })),
    };
  }

  private ack(q: FakeQueue, body: unknown): unknown {
    const b = object(body ?? {}, ["acks", "retries"]);
    const list = (v: unknown, name: string, keys: string[]) => {
      if (v === undefined) return [];
      if (!Array.isArray(v)) throw new ApiError(400, 10207, `${name} must be an array`);
      return v.map((x) => {
        const o = object(x, keys);
        if (typeof o.lease_id !== "string" || o.lease_id === "") throw new ApiError(400, 10207, `${name}[].lease_id must be a string`);
        return o;
      });
    };
    const acks = list(b.acks, "acks", ["lease_id"]);
    const retries = list(b.retries, "retries", ["lease_id", "delay_seconds"]);
    for (const r of retries) int(r.delay_seconds, "delay_seconds", 0, LIMITS.maxDelaySeconds);
    const find = (lease: string) => q.messages.find((x) => x.leases.includes(lease));
    const warnings: Record<string, string> = {};
    let ackCount = 0;
    let retryCount = 0;
    for (const a of acks) {
      const msg = find(a.lease_id as string);
      if (!msg) {
        warnings[a.lease_id as string] = "no message with this lease (already acknowledged or deleted)";
        continue;
      }
      q.messages = q.messages.filter((x) => x !== msg);
      ackCount++;
    }
    const now = this.now();
    for (const r of retries) {
      const msg = find(r.lease_id as string);
      if (!msg) {
        warnings[r.lease_id as string] = "no message with this lease (already acknowledged or deleted)";
        continue;
      }
      msg.lease = undefined;
      msg.visibleAt = now + ((r.delay_seconds as number | undefined) ?? 0) * 1000;
      retryCount++;
      if (msg.attempts >= this.maxRetries(q)) {
        q.messages = q.messages.filter((x) => x !== msg);
        this.exhausted(q, msg);
      }
    }
    return { ackCount, retryCount, warnings };
  }

  private push(q: FakeQueue, body: unknown, batch: boolean): unknown {
    const keys = ["body", "content_type", "delay_seconds"];
    let items: Record<string, unknown>[];
    let delay: number | undefined;
    if (batch) {
      const b = object(body ?? {}, ["messages", "delay_seconds"]);
      if (!Array.isArray(b.messages)) throw new ApiError(400, 10207, "messages must be an array");
      if (b.messages.length > LIMITS.maxBatchMessages) throw new ApiError(400, 10206, `Batch count out of bounds: ${b.messages.length} messages, at most ${LIMITS.maxBatchMessages}`);
      items = b.messages.map((x) => object(x, keys));
      delay = delaySeconds(b.delay_seconds);
    } else {
      items = [object(body ?? {}, keys)];
    }
    const now = this.now();
    const made: Stored[] = [];
    let total = 0;
    for (const it of items) {
      const type = it.content_type ?? "json";
      if (type !== "json" && type !== "text") throw new ApiError(400, 10203, `Invalid message metadata: content_type '${String(type)}' (json or text)`);
      if (it.body === undefined) throw new ApiError(400, 10207, "body is required");
      if (type === "text" && typeof it.body !== "string") throw new ApiError(400, 10203, "Invalid message metadata: a text message's body must be a string");
      const bytes = Buffer.from(type === "json" ? JSON.stringify(it.body) : (it.body as string), "utf8");
      const size = bytes.length + LIMITS.metadataBytes;
      if (size > LIMITS.maxMessageBytes) throw new ApiError(400, 10204, `Message size out of bounds: ${size} bytes with metadata, at most ${LIMITS.maxMessageBytes}`);
      total += size;
      const d = delaySeconds(it.delay_seconds) ?? delay ?? 0;
      made.push({ id: hex(16), body: bytes, contentType: type, timestampMs: now, attempts: 0, visibleAt: now + d * 1000, leases: [], source: "api" });
    }
    if (total > LIMITS.maxBatchBytes) throw new ApiError(400, 10205, `Batch size out of bounds: ${total} bytes, at most ${LIMITS.maxBatchBytes}`);
    q.messages.push(...made);
    return { metadata: { metrics: { backlog_count: q.messages.length, backlog_bytes: q.messages.reduce((n, x) => n + x.body.length, 0), oldest_message_timestamp_ms: q.messages[0]?.timestampMs ?? 0 } } };
  }
}

/** A JSON object with only the known keys (unknown ones refused: see the header). */
function object(v: unknown, keys: string[]): Record<string, unknown> {
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw new ApiError(400, 10207, "the body must be a JSON object");
  for (const k of Object.keys(v)) if (!keys.includes(k)) throw new ApiError(400, 10207, `unknown field '${k}' (expected ${keys.join(", ")})`);
  return v as Record<string, unknown>;
}

function int(v: unknown, name: string, min: number, max: number): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) throw new ApiError(400, 10207, `${name} must be an integer from ${min} to ${max}`);
  return v;
}

function delaySeconds(v: unknown): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > LIMITS.maxDelaySeconds) throw new ApiError(400, 10203, `Invalid message metadata: delay_seconds must be an integer from 0 to ${LIMITS.maxDelaySeconds}`);
  return v;
}
