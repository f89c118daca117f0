// The usage event: what the LLM proxy sends to the usage Queue once per call (from
// waitUntil, after the response has been relayed) and the usage-ledger Worker consumes.
// Version 1. `usage` is Anthropic's Usage object as the upstream reported it (the final
// message_delta for a stream), passed through; fields the ledger does not bill
// (server_tool_use, service_tier, inference_geo, ...) are allowed and ignored.
import { z } from "zod";
import { tokensOf } from "./cost.ts";
import { ID_MAX, idPattern, idRule, TENANT_ID_MAX } from "./ids.ts";
import { MAX_ATTEMPTS, MAX_BUDGET_MICROS, MAX_TOKENS_PER_CALL } from "./token-bound.ts";

export { MAX_ATTEMPTS, MAX_BUDGET_MICROS, MAX_TOKENS_PER_CALL };

/** Why a streamed answer ended before its final usage (the proxy's relay, forward.ts):
 *  the client left, the upstream broke (or the stream ended without a message_delta usage
 *  the proxy could read: stream_interrupted too), the upstream went silent, or the upstream
 *  sent an error event after message_start and before its final message_delta. Such a call's
 *  output_tokens are what the stream reported before the cut (Anthropic reports a
 *  stream's output in its final message_delta), so they count less than was generated. */
export const STREAM_ENDS = ["client_closed", "stream_interrupted", "stream_idle_timeout", "upstream_error"] as const;
export type StreamEnd = (typeof STREAM_ENDS)[number];

/** Why a call got no answer after an upstream attempt the upstream may have billed (the
 *  proxy's forward.ts `again`): its headers never came, its connection was lost, or its
 *  2xx answer broke off or stalled (a stream before its first event). Anthropic reported
 *  no usage for it, so its tokens are unknown: the event's usage is all zeros, and the
 *  ledger counts the call without a cost (`no_answer_calls`). */
export const NO_ANSWERS = ["timeout", "unreachable", "broke_off"] as const;
export type NoAnswer = (typeof NO_ANSWERS)[number];

const Count = z.number().int().nonnegative().max(MAX_TOKENS_PER_CALL);

export const UsageSchema = z.looseObject({
  input_tokens: Count,
  output_tokens: Count,
  cache_creation_input_tokens: Count.nullish(),
  cache_read_input_tokens: Count.nullish(),
  cache_creation: z.looseObject({ ephemeral_5m_input_tokens: Count, ephemeral_1h_input_tokens: Count }).nullish(),
});

/** Ids are plain printable tokens: they end up in SQL parameters, CSV and terminals. */
const Id = (max: number) => z.string().regex(idPattern(max), idRule(max));

export const UsageEventSchema = z.strictObject({
  v: z.literal(1),
  /** Unique per call: the proxy's request id (the ledger's idempotency key). */
  request_id: Id(ID_MAX),
  /** The tenant's id (never its key). */
  tenant: Id(TENANT_ID_MAX),
  /** The model the upstream reported (else the one requested). */
  model: Id(ID_MAX),
  /** When the proxy received the call, milliseconds since the epoch (the proxy's clock):
   *  the ledger files it under that UTC day, as its spend budget (which reserves in the
   *  window of the call's start) and the archive do. Before 2026-11-29 it was when the call
   *  ended, which put a stream running across midnight on the next day's budget. */
  ts: z.number().int().min(Date.UTC(2020, 0, 1)).max(Date.UTC(2100, 0, 1)),
  /** The HTTP status the client received. */
  status: z.number().int().min(100).max(599),
  usage: UsageSchema,
  /** Present only for a stream cut short (STREAM_ENDS): its output_tokens are a lower
   *  bound. Added 2026-11-28 within v1 (optional): the ledger records it in calls.ended
   *  and counts such calls in usage_daily.cut_calls (migration 0002). */
  ended: z.enum(STREAM_ENDS).optional(),
  /** Present only for a call that got no answer after an attempt that may have been
   *  billed (NO_ANSWERS); its usage is all zeros. Added 2026-11-28 within v1 (optional,
   *  migration 0003). */
  no_answer: z.enum(NO_ANSWERS).optional(),
  /** What the tenant's spend budget was charged for this call, in micro-dollars: present
   *  only when a budget held a reservation for it. It differs from the priced usage where
   *  the budget must hold and the usage cannot say: a stream cut short (its whole
   *  max_tokens) and a call with no answer (its whole reservation). The ledger keeps the
   *  difference (`usage_daily.held_micros`) so `npm run usage`'s budget used is what the
   *  budget charged. Added 2026-11-28 within v1 (optional, migration 0003). */
  budget_micros: z.number().int().nonnegative().max(MAX_BUDGET_MICROS).optional(),
  /** Attempts of the call before the last that the upstream may have billed (headers that
   *  never came, a lost connection, a 2xx answer that broke off) and the proxy retried:
   *  Anthropic reported no usage for them, so whatever they cost is not in `usage`. Only a
   *  call holding no reservation is retried so. Present only when at least 1. Added
   *  2026-11-28 within v1 (optional, migration 0003). */
  maybe_billed_attempts: z.number().int().min(1).max(MAX_ATTEMPTS).optional(),
})
  // A call with no answer had no stream to cut, and its usage is unknown, not some tokens.
  .refine((e) => e.no_answer === undefined || e.ended === undefined, { message: "no_answer and ended exclude each other", path: ["no_answer"] })
  .refine((e) => e.no_answer === undefined || Object.values(tokensOf(e.usage)).every((n) => n === 0), { message: "a call with no answer has no usage (all zeros)", path: ["usage"] });

export type UsageEvent = z.infer<typeof UsageEventSchema>;
