// The proxy's side of metering (issue 16, docs/metering.md): one usage event per billable
// call to the USAGE_EVENTS Queue (consumed by workers/usage-ledger), and the archive of
// an opted-in tenant's bodies (archive.ts). The handler (index.ts) makes one CallMeter per
// forwarded call and tells it what was sent and what the client got; nothing here delays
// the client: every send and write runs in waitUntil, and a failure is logged, never
// turned into the call's failure.
//
// Which calls produce an event: a /v1/messages answer whose usage counts at least one
// token, whatever its status (a stream the upstream broke or the client left after
// message_start did use its input tokens). Not: count_tokens (free; its count is not
// usage), /v1/models, refusals before the upstream (auth, size, rate limit), and upstream
// errors that report no usage. A /v1/messages call that got no answer (502/504) after an
// attempt the upstream may have billed sends an event with zero usage and `no_answer`
// (its tokens are unknown, not none). An event of a tenant whose spend budget held a
// reservation carries what the budget charged (`budget_micros`).
//
// The event is built valid by construction (counts are integers in the schema's range,
// the model an id) and checked against UsageEventSchema in the tests, not at run time:
// zod would add ~450 KB to a ~37 KB bundle for ~1 µs of checking per call (measured,
// docs/metering.md).
import { UNNAMED_MODEL } from "../../shared/cost.ts";
import { ID_MAX, idPattern } from "../../shared/ids.ts";
import { TENANT_ID } from "../../shared/archive-key.ts";
import { SEND_DEADLINE_MS, SEND_RETRY_MS, SEND_TIMEOUT_MS } from "../../shared/queue-send.ts";
import { MAX_ATTEMPTS, MAX_BUDGET_MICROS, MAX_TOKENS_PER_CALL } from "../../shared/token-bound.ts";
import type { NoAnswer, StreamEnd, UsageEvent } from "../../shared/usage-event.ts";
import { archiveBytes, archiveRequestStream, archiveResponseStream, type ArchivedCall, type Part } from "./archive.ts";
import type { Config } from "./config.ts";
import type { Env } from "./env.ts";
import { emptyUsage, type Usage } from "./usage.ts";

/** The schema's id rule for `model`. */
const MODEL_ID = idPattern(ID_MAX);
/** The model of an event whose answer named none (or none the ledger can store): the
 *  ledger prices it at the table's highest rates and flags it (docs/metering.md); no
 *  price table may name it (cost.ts UNNAMED_MODEL). */
export const UNKNOWN_MODEL = UNNAMED_MODEL;
const BILLED_ROUTE = "/v1/messages";

/** A token count as the schema takes it: an integer in [0, MAX_TOKENS_PER_CALL] (a fraction is
 *  rounded up: never under-billed). */
function count(n: number): number {
  return Number.isFinite(n) ? Math.min(MAX_TOKENS_PER_CALL, Math.max(0, Math.ceil(n))) : 0;
}

/** Bodies up to this size are parsed for requestedModel; above it the model is
 *  UNKNOWN_MODEL (a failure path must not parse up to MAX_BODY_BYTES when many calls fail
 *  together; a tenant with a reservation has its model from the reservation's parse). */
export const REQUESTED_MODEL_MAX_BYTES = 1 << 20;

/** The model a request body names (an id the ledger can store), else UNKNOWN_MODEL: the
 *  model of a call with no answer. Read only on that rare path; a streamed body is gone. */
export function requestedModel(body: ArrayBuffer | undefined, known?: string): string {
  if (known !== undefined && known !== "") return MODEL_ID.test(known) ? known : UNKNOWN_MODEL;
  if (body === undefined || body.byteLength > REQUESTED_MODEL_MAX_BYTES) return UNKNOWN_MODEL;
  try {
    const m = (JSON.parse(new TextDecoder().decode(body)) as { model?: unknown } | null)?.model;
    return typeof m === "string" && MODEL_ID.test(m) ? m : UNKNOWN_MODEL;
  } catch {
    return UNKNOWN_MODEL;
  }
}

export function billable(route: string, u: Usage): boolean {
  return route === BILLED_ROUTE && (u.inputTokens > 0 || u.outputTokens > 0 || u.cacheCreationTokens > 0 || u.cacheReadTokens > 0 || u.cacheWrite5mTokens > 0 || u.cacheWrite1hTokens > 0);
}

/** What an event says beyond its usage: why a stream was cut (`ended`: its output tokens
 *  are a lower bound), why there was no answer (`noAnswer`: the usage is zeros), and what
 *  the tenant's spend budget charged (`budgetMicros`). */
export interface EventNotes {
  ended?: StreamEnd | undefined;
  noAnswer?: NoAnswer | undefined;
  budgetMicros?: number | undefined;
  /** Retried attempts the upstream may have billed (forward.ts `maybeBilledRetries`). */
  maybeBilled?: number | undefined;
}

/** The v1 usage event of a call (Anthropic's Usage shape, with the TTL split when the
 *  upstream sent one; without it the ledger prices cache writes at the 1-hour rate). */
export function usageEvent(call: { requestId: string; tenant: string; status: number; ts: number }, u: Usage, notes: EventNotes = {}): UsageEvent {
  const usage: UsageEvent["usage"] = {
    input_tokens: count(u.inputTokens),
    output_tokens: count(u.outputTokens),
    cache_creation_input_tokens: count(u.cacheCreationTokens),
    cache_read_input_tokens: count(u.cacheReadTokens),
  };
  if (u.cacheWrite5mTokens > 0 || u.cacheWrite1hTokens > 0) {
    usage.cache_creation = { ephemeral_5m_input_tokens: count(u.cacheWrite5mTokens), ephemeral_1h_input_tokens: count(u.cacheWrite1hTokens) };
  }
  return {
    v: 1,
    request_id: call.requestId,
    tenant: call.tenant,
    model: MODEL_ID.test(u.model) ? u.model : UNKNOWN_MODEL,
    ts: Math.floor(call.ts),
    status: call.status,
    usage,
    ...(notes.ended !== undefined ? { ended: notes.ended } : {}),
    ...(notes.noAnswer !== undefined ? { no_answer: notes.noAnswer } : {}),
    ...(notes.budgetMicros !== undefined && Number.isSafeInteger(notes.budgetMicros) && notes.budgetMicros >= 0 ? { budget_micros: Math.min(MAX_BUDGET_MICROS, notes.budgetMicros) } : {}),
    ...(notes.maybeBilled !== undefined && notes.maybeBilled >= 1 ? { maybe_billed_attempts: Math.min(MAX_ATTEMPTS, Math.floor(notes.maybeBilled)) } : {}),
  };
}

export interface CallInfo {
  requestId: string;
  tenantId: string;
  /** The tenant opted in to the archive. */
  archive: boolean;
  route: string;
  startedMs: number;
  /** The model the request body names (requestedModel), read only when an event needs it. */
  requestedModel: () => string;
}

type Log = (line: Record<string, unknown>) => void;
type Outgoing = ArrayBuffer | ReadableStream<Uint8Array> | null;

/** One forwarded call's metering: undefined when METERING is off. */
export function callMeter(env: Env, ctx: ExecutionContext, cfg: Config, call: CallInfo, log: Log): CallMeter | undefined {
  return cfg.metering ? new CallMeter(env, ctx, cfg, call, log) : undefined;
}

export class CallMeter {
  private readonly archive: ArchivedCall | undefined;
  private readonly env: Env;
  private readonly ctx: ExecutionContext;
  private readonly call: CallInfo;
  private readonly log: Log;
  private sent = false;
  private streamEnded?: (e: { complete: boolean; why: string }) => void;

  constructor(env: Env, ctx: ExecutionContext, cfg: Config, call: CallInfo, log: Log) {
    this.env = env;
    this.ctx = ctx;
    this.call = call;
    this.log = log;
    // Only calls that carry a body (the POST routes) are archived, and only under an id of
    // the form `npm run tenants` makes (archive-key.ts TENANT_ID): a record's id is what KV
    // holds, and a hand-edited one could name another tenant's prefix. Such a call is
    // served and metered as any other; its bodies are not kept, and a line says so (the
    // request id only: the id itself may be anything).
    const archived = call.archive && call.route.startsWith(BILLED_ROUTE);
    const keyable = archived && TENANT_ID.test(call.tenantId);
    if (archived && !keyable) log({ requestId: call.requestId, warning: "archive_skipped_invalid_tenant_id" });
    this.archive = keyable
      ? {
          bucket: env.ARCHIVE,
          tenant: call.tenantId,
          requestId: call.requestId,
          startedMs: call.startedMs,
          maxBytes: cfg.archiveMaxBytes,
          waitUntil: (p) => ctx.waitUntil(p),
          onError: (part: Part, e: unknown) => log({ requestId: call.requestId, tenant: call.tenantId, error: "archive_write_failed", part, name: errorName(e) }),
        }
      : undefined;
  }

  /** The request body about to be sent: staged for the archive; returns what to send
   *  (a streamed body is tee'd). */
  request(body: Outgoing, headers: Headers): Outgoing {
    const a = this.archive;
    if (a === undefined || body === null) return body;
    const contentType = headers.get("content-type");
    if (body instanceof ReadableStream) {
      const cl = headers.get("content-length");
      return archiveRequestStream(a, body, cl !== null && /^\d+$/.test(cl) ? Number(cl) : undefined, contentType);
    }
    archiveBytes(a, "request", body, { contentType });
    return body;
  }

  /** A whole answer (JSON or any non-stream body), as the client gets it. */
  responseBytes(bytes: ArrayBuffer, status: number, contentType: string | null): void {
    if (this.archive !== undefined) archiveBytes(this.archive, "response", bytes, { contentType, status, complete: true });
  }

  /** A streamed answer: returns the stream to give the client (copied as it passes when
   *  archived); `done` must follow when the relay ends. */
  responseStream(stream: ReadableStream<Uint8Array>, status: number, contentType: string | null): ReadableStream<Uint8Array> {
    if (this.archive === undefined) return stream;
    const ended = new Promise<{ complete: boolean; why: string }>((r) => (this.streamEnded = r));
    return archiveResponseStream(this.archive, stream, status, contentType, ended);
  }

  /** The call's answer is complete (or the stream ended early, `ended` saying why, with
   *  the usage seen so far): sends its usage event if it is billable, or if an attempt the
   *  proxy retried may have been (`maybeBilled`), or a budget charged it: then an answer
   *  without usage still sends one. An answer that names no model is filed under the
   *  requested one. Once per call.
   *  `budgetMicros`: what the tenant's spend budget charged (tokens.ts settle). */
  done(status: number, usage: Usage, ended?: StreamEnd, budgetMicros?: number, maybeBilled?: number): void {
    this.streamEnded?.({ complete: ended === undefined, why: ended ?? "" });
    if (this.sent) return;
    // Without usage, an event still goes when there is something to record: retried
    // attempts that may have been billed, or a budget's charge (a stream cut before any
    // usage is charged its max_tokens).
    const owed = (maybeBilled !== undefined && maybeBilled > 0) || (budgetMicros !== undefined && budgetMicros > 0);
    const bill = billable(this.call.route, usage);
    if (!bill && !(owed && this.call.route === BILLED_ROUTE)) return;
    const u = usage.model === "" ? { ...usage, model: this.call.requestedModel() } : usage;
    this.send({ requestId: this.call.requestId, tenant: this.call.tenantId, status, ts: this.call.startedMs }, u, { ended, budgetMicros, maybeBilled });
  }

  /** The call got no answer after an attempt the upstream may have billed (forward.ts
   *  `again`): sends an event with zero usage and `no_answer`, under the requested model
   *  (UNKNOWN_MODEL when the body did not say), so the ledger has the call and what its
   *  budget kept. Once per call; only for the billed route. */
  noAnswer(status: number, why: NoAnswer, budgetMicros?: number, maybeBilled?: number): void {
    if (this.sent || this.call.route !== BILLED_ROUTE) return;
    this.send({ requestId: this.call.requestId, tenant: this.call.tenantId, status, ts: this.call.startedMs }, { ...emptyUsage(), model: this.call.requestedModel() }, { noAnswer: why, budgetMicros, maybeBilled });
  }

  private send(call: { requestId: string; tenant: string; status: number; ts: number }, usage: Usage, notes: EventNotes): void {
    this.sent = true;
    const event = usageEvent(call, usage, notes);
    // Sent with the isolate's next batch, BATCH_WAIT_MS later, so never before a JSON
    // answer's Response is returned (its done() runs first). Never the call's failure;
    // logged with ids only (the ledger will lack this call).
    const flush = batcher.add(this.env, { event, requestId: this.call.requestId, tenant: this.call.tenantId }, this.log);
    if (flush !== undefined) this.ctx.waitUntil(flush);
  }
}

/** Queues' sendBatch bounds: 100 messages, 256 KB in all (developers.cloudflare.com/queues/platform/limits).
 *  The byte bound needs no check: an event's ids are capped (usage-event.ts: 128 + 64 +
 *  128 characters) and its counts are numbers, so 100 events stay well under 100 KB. */
const BATCH_MAX = 100;
const BATCH_WAIT_MS = 20;
/** A flush older than this was lost with its request's context (waitUntil ends 30 s after
 *  the response): the next event opens a new one instead of waiting on it for good. */
const STALE_FLUSH_MS = 40_000;
interface Pending {
  event: UsageEvent;
  requestId: string;
  tenant: string;
}

/**
 * The usage events of this isolate's calls, sent together: one sendBatch per
 * BATCH_WAIT_MS (or per BATCH_MAX events) instead of one send per call. The call whose
 * event opens a batch holds its flush in waitUntil; the calls that join it do not: the
 * flush runs in the opener's context, which stays alive until it is sent, and it takes
 * every event pending when it runs. (Holding it from every call made each joiner's
 * context wait on a promise resolved in another request's context: more work for workerd
 * per call, and nothing more kept alive.) A refused batch is tried again (SEND_RETRY_MS);
 * one that still fails is logged per event, with ids only.
 */
class EventBatcher {
  private pending: Pending[] = [];
  private flush: Promise<void> | undefined;
  private flushSince = 0;

  /** Adds an event; returns the flush to hold when this event opened a batch. */
  add(env: Env, p: Pending, log: Log): Promise<void> | undefined {
    this.pending.push(p);
    const now = Date.now();
    if (this.flush !== undefined && now - this.flushSince < STALE_FLUSH_MS) return undefined;
    this.flushSince = now;
    this.flush = new Promise<void>((r) => setTimeout(r, BATCH_WAIT_MS)).then(() => this.send(env, log));
    return this.flush;
  }

  private async send(env: Env, log: Log): Promise<void> {
    this.flush = undefined;
    const all = this.pending;
    this.pending = [];
    const deadline = Date.now() + SEND_DEADLINE_MS;
    for (let i = 0; i < all.length; i += BATCH_MAX) {
      const batch = all.slice(i, i + BATCH_MAX);
      const messages = batch.map((p) => ({ body: p.event, contentType: "json" as const }));
      await deliver(() => env.USAGE_EVENTS.sendBatch(messages), deadline, {
        sent: (retries) => log({ info: "usage_events_sent_after_retry", events: batch.length, retries }),
        lost: (name, retries) => {
          for (const p of batch) log({ requestId: p.requestId, tenant: p.tenant, error: "usage_event_not_sent", name, retries });
        },
      });
    }
  }
}

/**
 * Sends one batch: each try bounded by SEND_TIMEOUT_MS (a try that runs out counts as
 * failed, `timeout`), tried again after SEND_RETRY_MS, and given up when the tries are
 * spent or the next would end past `deadline` (Date.now() time): `lost` then names the
 * last failure (`timeout`, `deadline`, or the error's name), so every lost event is logged
 * before the runtime ends the flush's waitUntil. `sent` is told the retries a batch needed.
 */
export async function deliver(send: () => Promise<unknown>, deadline: number, on: { sent: (retries: number) => void; lost: (name: string, retries: number) => void }): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    const left = deadline - Date.now();
    let failed: string;
    if (left <= 0) failed = "deadline";
    else {
      let t: ReturnType<typeof setTimeout> | undefined;
      // A send that throws at once (a missing binding, a JavaScript stand-in) fails like
      // one that rejects: tried again, and logged if it keeps failing.
      const trying = Promise.resolve().then(send);
      try {
        const r = await Promise.race([trying, new Promise<typeof SEND_TIMED_OUT>((ok) => (t = setTimeout(ok, Math.min(SEND_TIMEOUT_MS, left), SEND_TIMED_OUT)))]);
        if (r !== SEND_TIMED_OUT) {
          if (attempt > 0) on.sent(attempt);
          return;
        }
        failed = "timeout";
        trying.catch(() => {});
      } catch (e) {
        failed = errorName(e);
      } finally {
        if (t !== undefined) clearTimeout(t);
      }
    }
    const wait = SEND_RETRY_MS[attempt];
    // Not started when it could not run its whole bound before the deadline.
    const next = wait === undefined ? undefined : wait * (0.5 + Math.random() / 2);
    if (next === undefined || Date.now() + next + SEND_TIMEOUT_MS > deadline) {
      on.lost(failed, attempt);
      return;
    }
    await new Promise((r) => setTimeout(r, next));
  }
}

const SEND_TIMED_OUT = Symbol("timed out");

const batcher = new EventBatcher();

function errorName(e: unknown): string {
  return e instanceof Error ? e.name : typeof e;
}
