// Whether a usage event can be recorded now: the ledger's one rule for a message body
// (the schema, and not too old to deduplicate nor from the future). Pure, with no Workers
// types, so the ledger's queue handler and `npm run dead-letters` (which decides what a
// replay would send) apply the very same check.
import { UsageEventSchema, type UsageEvent } from "../../shared/usage-event.ts";

export const DAY_MS = 86_400_000;
/** How far ahead of the consumer's clock an event's ts may be (clock skew). */
export const FUTURE_SLACK_MS = 3_600_000;

/** A refusal is `lasting` when no later attempt can change it (not an event, or too old:
 *  it only gets older); an event from the future is recordable `recordableInMs` from now,
 *  once the clock has passed it. */
export type Verdict =
  | { ok: true; event: UsageEvent }
  | { ok: false; reason: string; lasting: true }
  | { ok: false; reason: string; lasting: false; recordableInMs: number };

/** Whether a message body is an event the ledger can record now. */
export function checkEvent(body: unknown, now: number, retentionDays: number): Verdict {
  const parsed = UsageEventSchema.safeParse(body);
  if (!parsed.success) {
    const first = parsed.error.issues[0]!;
    return { ok: false, reason: `invalid event: ${first.path.join(".") || "(body)"}: ${first.message}`, lasting: true };
  }
  const e = parsed.data;
  // A call row older than the retention has been deleted: a redelivery that old could not
  // be recognised as one and would count twice. (Retention >= 15 days > a Queue message's
  // 14-day maximum life, so this refuses only events from a broken clock or a replay.)
  if (e.ts < now - retentionDays * DAY_MS) return { ok: false, reason: `event older than the ${retentionDays}-day retention: cannot be deduplicated`, lasting: true };
  if (e.ts > now + FUTURE_SLACK_MS) return { ok: false, reason: "event from the future (ts more than an hour ahead)", lasting: false, recordableInMs: e.ts - FUTURE_SLACK_MS - now };
  return { ok: true, event: e };
}
