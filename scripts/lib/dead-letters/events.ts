// What a dead-lettered message is and whether a replay would send it: its body decoded as
// the Queues pull and peek answers carry it, then judged by the ledger's own rule
// (workers/usage-ledger/src/check.ts, checkEvent: the schema, the retention, the future).
// Used by `npm run dead-letters` (list, replay and its dry run).
import { batches } from "../batches.ts";
import { checkEvent } from "../../../workers/usage-ledger/src/check.ts";
import { UsageEventSchema, type UsageEvent } from "../../../workers/shared/usage-event.ts";

/** A message as the pull or peek answer gives it (cloudflare SDK 7.3.0, MessagePullResponse.Message). */
export interface WireMessage {
  id?: string;
  attempts?: number;
  body?: string;
  metadata?: unknown;
  timestamp_ms?: number;
  lease_id?: string;
}

/** A message the command can push: the Queues limits (limits.mdx, read 2026-11-27:
 * 128 KB a message, "1 KB is measured as 1000 bytes", with up to ~100 bytes of metadata). */
export const MAX_MESSAGE_BYTES = 128_000;
export const MAX_BATCH_BYTES = 256_000;
export const MAX_BATCH_MESSAGES = 100;
export const METADATA_BYTES = 100;

export interface DeadLetter {
  id: string;
  /** Deliveries so far (each pull is one; at the consumer's max_retries Cloudflare deletes it). */
  attempts: number;
  /** When the message entered the dead-letter queue (ms). */
  enqueuedAt: number;
  /** json, text, bytes or v8 (metadata CF-Content-Type). */
  contentType: string;
  /** The body: the JSON value of a json message, the text of a text message, else its base64. */
  body: unknown;
  /** The event, when the body is one (also when it is too old or from the future). */
  event?: UsageEvent;
  /** replay: a replay sends it to the usage queue; leave: it stays in the DLQ (reason). */
  action: "replay" | "leave";
  reason?: string;
  /** A message left for a reason no later run can change (not an event, an invalid one,
   *  older than the retention, over the message limit, no id): what --drop-invalid drops.
   *  Not set for what a later run may replay (an event from the future, one this run
   *  already pushed). */
  lasting?: boolean;
  /** Bytes it counts against the push limits (JSON body + metadata), when it would be sent. */
  pushBytes?: number;
  /** The lease of this delivery (pulled messages only). */
  leaseId?: string;
}

/** Strict base64 (RFC 4648, with or without padding): Buffer.from() accepts anything. */
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}(?:==)?|[A-Za-z0-9+/]{3}=?)?$/;
const utf8 = new TextDecoder("utf-8", { fatal: true });

/** The content type a message was sent with; Queues' default is json (pull-consumers.mdx). */
export function contentTypeOf(metadata: unknown): string {
  const t = typeof metadata === "object" && metadata !== null ? (metadata as Record<string, unknown>)["CF-Content-Type"] : undefined;
  return typeof t === "string" ? t : "json";
}

/**
 * A body as the pull or peek answer carries it, decoded: `json` (and `bytes`) bodies are
 * base64 of the bytes sent, `text` is plain (pull-consumers.mdx, "Content types"). The
 * same page's example answer shows a `json` message's body as plain text ("hello"), so a
 * `json` body that is not base64 is read as the JSON text itself: an event is an object,
 * and "{" is never base64, so the two readings cannot be confused.
 */
export function decodeBody(contentType: string, body: string | undefined): { ok: true; value: unknown } | { ok: false; reason: string; raw: unknown } {
  if (body === undefined) return { ok: false, reason: "the message has no body", raw: null };
  if (contentType === "text") return { ok: false, reason: "a text message: the ledger would read a string, not an event", raw: body };
  if (contentType !== "json") return { ok: false, reason: `a ${contentType} message: not JSON, so not an event${contentType === "v8" ? " (v8 bodies can only be read inside Workers)" : ""}`, raw: body };
  if (!BASE64.test(body)) {
    try {
      return { ok: true, value: JSON.parse(body) as unknown };
    } catch {
      return { ok: false, reason: "a json message whose body is neither base64 nor JSON text", raw: body };
    }
  }
  let text: string;
  try {
    text = utf8.decode(Buffer.from(body, "base64"));
  } catch {
    return { ok: false, reason: "a json message whose body is not UTF-8", raw: body };
  }
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch {
    return { ok: false, reason: "a json message whose body is not JSON", raw: text };
  }
}

/**
 * Whether a replay now would send this message to the usage queue (the ledger would
 * record it) or leave it in the DLQ, and why. `retentionDays` is the ledger's
 * CALL_RETENTION_DAYS (metering.yaml ledger.call_retention_days).
 */
export function classify(m: WireMessage, now: number, retentionDays: number): DeadLetter {
  const contentType = contentTypeOf(m.metadata);
  const base = { id: m.id ?? "?", attempts: m.attempts ?? 0, enqueuedAt: m.timestamp_ms ?? 0, contentType, ...(m.lease_id !== undefined ? { leaseId: m.lease_id } : {}) };
  const decoded = decodeBody(contentType, m.body);
  if (!decoded.ok) return { ...base, body: decoded.raw, action: "leave", reason: decoded.reason, lasting: true };
  const verdict = checkEvent(decoded.value, now, retentionDays);
  if (!verdict.ok) {
    // Keep what identifies the event when it is one (too old, from the future).
    const event = UsageEventSchema.safeParse(decoded.value);
    return { ...base, body: decoded.value, action: "leave", reason: verdict.reason, lasting: verdict.lasting, ...(event.success ? { event: event.data } : {}) };
  }
  const pushBytes = Buffer.byteLength(JSON.stringify(decoded.value), "utf8") + METADATA_BYTES;
  if (pushBytes > MAX_MESSAGE_BYTES) return { ...base, body: decoded.value, event: verdict.event, action: "leave", reason: `${pushBytes} bytes: over Queues' ${MAX_MESSAGE_BYTES}-byte message limit`, lasting: true };
  if (m.id === undefined) return { ...base, body: decoded.value, event: verdict.event, action: "leave", reason: "the message has no id", lasting: true };
  return { ...base, body: decoded.value, event: verdict.event, action: "replay", pushBytes };
}

/** Splits messages to push into batches Queues accepts: at most 100 messages and 256 KB each. */
export function pushBatches<T extends { pushBytes?: number }>(items: T[]): T[][] {
  return batches(items, (it) => it.pushBytes ?? MAX_MESSAGE_BYTES, MAX_BATCH_MESSAGES, MAX_BATCH_BYTES);
}
