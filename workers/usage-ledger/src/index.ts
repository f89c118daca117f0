// The usage-ledger Worker. queue: records each usage event once in D1 (a call row and
// its day's rollup, in one transaction per batch); an event it can never record goes to
// the dead-letter queue at once; a write that fails is retried by Queues and, after
// max_retries, dead-lettered by Queues itself. scheduled (hourly): deletes call rows past
// the retention and reports the database's size. Nothing here is on a client's path:
// the proxy sends from waitUntil.
import { readConfig, type LedgerConfig } from "./config.ts";
import type { LedgerEnv } from "./env.ts";
import { checkEvent, DAY_MS, recordStatements } from "./ledger.ts";
import { purgeCalls, SIZE_WARN_EVERY_MS, sizeWarning } from "./retention.ts";
import { retryDelaySeconds, transientD1Error } from "./d1-retry.ts";
import { deadLetterBody } from "./dead-letter.ts";
import { escapeControls } from "../../shared/printable.ts";
import type { UsageEvent } from "../../shared/usage-event.ts";

/** A reason as one bounded, printable log line: a schema reason can quote a key of the
 *  body (zod's "Unrecognized key"), which is whatever the producer sent. Escaped
 *  (shared/printable.ts); at most 300 characters. */
function loggable(reason: string): string {
  const escaped = escapeControls(reason);
  return escaped.length > 300 ? escaped.slice(0, 300) + "..." : escaped;
}

async function deadLetter(env: LedgerEnv, msg: Message<unknown>, reason: string): Promise<void> {
  // The body is not logged: it is whatever a producer sent, of any size.
  const out = deadLetterBody(msg.body);
  if (out === undefined) {
    // Retried, not re-sent: after max_retries Queues dead-letters the message itself,
    // with its own content type (sent again here it would lose what JSON cannot carry).
    console.error(`usage-ledger: message ${msg.id} is not an event (${loggable(reason)}) and its body cannot be re-sent as it is: left to Queues to dead-letter after its retries`);
    msg.retry();
    return;
  }
  console.error(`usage-ledger: message ${msg.id} to the dead-letter queue: ${loggable(reason)}`);
  try {
    await env.DEAD_LETTERS.send(out.body, { contentType: out.contentType });
    msg.ack();
  } catch (e) {
    // Left to Queues: after max_retries it dead-letters the message itself.
    console.error(`usage-ledger: dead-letter send failed for ${msg.id}: ${String(e)}`);
    msg.retry();
  }
}

/** D1 is busy, or every write fails: no (further) write one by one (each would meet the
 *  same database and spend an attempt), the events come back after a growing delay from
 *  `baseSeconds` (LedgerConfig.writeRetrySeconds). Each delivery counts against
 *  max_retries; after it Queues dead-letters them, from where they can be replayed. */
function retryLater(baseSeconds: number, items: { msg: Message<unknown> }[], e: unknown, what = "D1 is busy"): void {
  const attempts = Math.max(...items.map(({ msg }) => msg.attempts));
  const delaySeconds = retryDelaySeconds(attempts, Math.random(), baseSeconds);
  console.error(`usage-ledger: ${what} (${String(e)}); ${items.length} event(s) again in ${delaySeconds} s (attempt ${attempts})`);
  for (const { msg } of items) msg.retry({ delaySeconds });
}

// When this isolate last warned that the database is big (sizeWarning): at most hourly.
let sizeWarnedAt = -Infinity;

function watchSize(bytes: number | undefined, now: number): void {
  const w = sizeWarning(bytes ?? 0);
  if (w === undefined || now - sizeWarnedAt < SIZE_WARN_EVERY_MS) return;
  sizeWarnedAt = now;
  console.error(w);
}

/** The longest retry delay a message takes: a day (miniflare's broker validates delays
 *  with QueueMessageDelaySchema, 0 to 86,400 seconds, as Queues' own limit). */
const MAX_RETRY_DELAY_S = 86_400;

/** One-by-one writes that all fail from the start say every write fails: stop after this many. */
const SYSTEMIC_FAILURES = 3;

export default {
  async queue(batch: MessageBatch<unknown>, env: LedgerEnv): Promise<void> {
    let config: LedgerConfig;
    try {
      config = readConfig(env);
    } catch (e) {
      // Events that cannot be priced are never acked: retried, and in the end
      // dead-lettered by Queues, from where they can be replayed once the config is fixed.
      console.error(`usage-ledger: cannot record events: ${(e as Error).message}`);
      batch.retryAll();
      return;
    }
    const now = Date.now();
    const ready: { msg: Message<unknown>; event: UsageEvent }[] = [];
    for (const msg of batch.messages) {
      const v = checkEvent(msg.body, now, config.retentionDays);
      if (v.ok) ready.push({ msg, event: v.event });
      else if (!v.lasting) {
        // From the future (a producer's clock ahead): recordable once this clock passes its
        // ts, so it comes back then (Queues' retry delay, at most a day: after max_retries
        // it is dead-lettered like any message), not to the dead-letter queue at once.
        const due = Math.min(MAX_RETRY_DELAY_S, Math.max(1, Math.ceil(v.recordableInMs / 1000)));
        console.error(`usage-ledger: message ${msg.id} ${loggable(v.reason)}: retried in ${due} s`);
        msg.retry({ delaySeconds: due });
      } else await deadLetter(env, msg, v.reason);
    }
    if (ready.length === 0) return;
    // A fresh ingest id per delivery attempt (see ledger.ts: ADD_TO_DAY).
    const statements = (items: typeof ready) => items.flatMap(({ event }) => recordStatements(env.DB, event, config.prices, crypto.randomUUID(), now));
    try {
      const results = await env.DB.batch(statements(ready));
      const inserted = results.filter((r, i) => i % 2 === 0 && r.meta.changes > 0).length;
      watchSize(results[results.length - 1]?.meta.size_after, now);
      if (inserted < ready.length) console.log(`usage-ledger: ${ready.length - inserted} redelivered event(s) were already recorded`);
      for (const { msg } of ready) msg.ack();
    } catch (e) {
      // The batch's transaction rolled back as a whole.
      if (transientD1Error(e)) return retryLater(config.writeRetrySeconds, ready, e);
      // One event alone: its own write just failed, and nothing was written. Whether the
      // event is bad or every write is (a ledger ahead of its migration, on a quiet queue
      // whose batches hold one event), the growing delay: a fixed 30 s would dead-letter it
      // in ~5 minutes, and a bad event reaches the DLQ all the same, later.
      if (ready.length === 1) return retryLater(config.writeRetrySeconds, ready, e, "the event's write failed");
      // Record the events one by one, so one event that cannot be written does not hold
      // the others back.
      console.error(`usage-ledger: batch write failed (${String(e)}); writing ${ready.length} event(s) one by one`);
      // The events that failed before any write succeeded: their retry waits until it is
      // known whether one event is bad (a plain retry) or every write is (the growing delay).
      const head: typeof ready = [];
      let written = false;
      let probed = false;
      for (let i = 0; i < ready.length; i++) {
        const item = ready[i]!;
        try {
          await env.DB.batch(statements([item]));
          item.msg.ack();
          if (!written) for (const h of head.splice(0)) h.msg.retry();
          written = true;
        } catch (err) {
          // The database went busy meanwhile: the rest waits with this one (and the head).
          if (transientD1Error(err)) return retryLater(config.writeRetrySeconds, [...head, ...ready.slice(i)], err);
          console.error(`usage-ledger: write failed for ${item.msg.id}: ${String(err)}`);
          if (written) {
            item.msg.retry();
            continue;
          }
          head.push(item);
          // The first events all failing, none written: likely not one bad event but every
          // write (a ledger deployed ahead of its migration: "no such column"). One more
          // try, the batch's last event, tells the two apart: written, the head was bad
          // events, and the rest goes on one by one (three bad events at the head no longer
          // send back, and in the end dead-letter, the good ones behind them). Failing too,
          // the whole batch waits with the growing delay, the rest untried: one by one, a
          // batch of 100 would cost D1 101 transactions, and a fixed 30 s retry would spend
          // the head's max_retries in ~5 minutes and dead-letter it.
          if (head.length >= SYSTEMIC_FAILURES) {
            // The batch's last event goes next (swapped in), tried like any other.
            if (!probed && i + 1 < ready.length) {
              probed = true;
              const last = ready.length - 1;
              [ready[i + 1], ready[last]] = [ready[last]!, ready[i + 1]!];
              continue;
            }
            const rest = ready.length - i - 1;
            return retryLater(
              config.writeRetrySeconds,
              [...head, ...ready.slice(i + 1)],
              err,
              `every write is failing: the first ${head.length - (probed ? 1 : 0)} event(s)${probed ? " and the batch's last" : ""} failed one by one${rest > 0 ? `, the other ${rest} sent back untried` : ""}`,
            );
          }
        }
      }
      // Fewer than SYSTEMIC_FAILURES events, all failed and none written: as above, nothing
      // tells one bad event from every write failing, so the growing delay.
      if (head.length > 0) retryLater(config.writeRetrySeconds, head, e, `every write failed: ${head.length} event(s) one by one`);
    }
  },

  async scheduled(controller: ScheduledController, env: LedgerEnv): Promise<void> {
    const { retentionDays } = readConfig(env);
    const cutoff = controller.scheduledTime - retentionDays * DAY_MS;
    const p = await purgeCalls(env.DB, cutoff);
    const more = p.more ? "; more are left for the next run" : "";
    console.log(`usage-ledger: retention deleted ${p.deleted} call row(s) older than ${new Date(cutoff).toISOString()}${more}; database ${p.sizeAfter} bytes`);
    // The purge's own reading, whatever the batches saw: the warning repeats every run.
    const w = sizeWarning(p.sizeAfter);
    if (w !== undefined) console.error(w);
  },
} satisfies ExportedHandler<LedgerEnv>;
