// The two things `npm run dead-letters` does with the ledger's dead-letter queue:
// look (peek: no lease, no delivery attempt spent) and replay (pull, push the events the
// ledger would record to the usage queue, and only then ack them).
//
// Why a replay is safe to interrupt and repeat at any point: a message is acked only
// after the push that carried its event succeeded. Stopped before the push, nothing was
// sent and the message comes back after the visibility timeout; stopped between the push
// and the ack (or a push whose answer was lost), the event is in the usage queue AND the
// message comes back and is pushed again: the ledger records a request_id once
// (docs/metering.md, "Why a redelivery never counts twice"), so it counts once.
import type { DeadLetter } from "./events.ts";
import { classify, MAX_BATCH_MESSAGES, pushBatches } from "./events.ts";
import { describeError } from "../cloudflare-error.ts";
import type { QueueInfo, QueuesClient } from "./queues.ts";

export interface Look {
  dlq: QueueInfo;
  /** Messages in the DLQ (leased ones included), when the API says. */
  backlog?: number;
  /** The oldest messages not leased, at most 100 (peek has no cursor). */
  messages: DeadLetter[];
}

/** Peeks at the DLQ: changes nothing, spends no attempt. */
export async function look(api: QueuesClient, dlq: QueueInfo, o: { limit: number; retentionDays: number; now: () => number }): Promise<Look> {
  const backlog = await api.backlog(dlq.id);
  const peeked = await api.peek(dlq.id, Math.min(o.limit, MAX_BATCH_MESSAGES));
  const now = o.now();
  return { dlq, ...(backlog !== undefined ? { backlog } : {}), messages: peeked.map((m) => classify(m, now, o.retentionDays)) };
}

export interface ReplayOptions {
  /** At most this many messages pulled in all (default: until the DLQ is empty). */
  limit?: number;
  batchSize: number;
  visibilityTimeoutMs: number;
  retentionDays: number;
  /** Ack (delete) the messages no run can ever replay (DeadLetter.lasting), after onDrop
   *  has shown them. What a later run may replay (an event from the future, one this run
   *  already pushed and the ledger sent back) is left, never dropped. */
  dropInvalid: boolean;
  /** The DLQ pull consumer's max_retries, when known: a message left with that many
   *  attempts is deleted by Cloudflare when its lease ends (ReplayReport.spent). */
  maxRetries?: number;
  now: () => number;
}

export interface ReplayHooks {
  /** After each pulled batch is handled: messages handled so far, and the backlog the pull reported. */
  progress?: (handled: number, backlog: number | undefined) => void;
  /** Before messages are dropped (--drop-invalid): the caller prints them whole. */
  onDrop?: (messages: DeadLetter[]) => void;
}

export interface ReplayReport {
  pulled: number;
  /** Pushed to the usage queue and acked. */
  replayed: number;
  /** Pushed, but their ack failed: they come back and are pushed again (counted once). */
  pushedNotAcked: number;
  /** Acked without replay (--drop-invalid). */
  dropped: DeadLetter[];
  /** Left in the DLQ (leased until released at the end, or the visibility timeout). */
  left: DeadLetter[];
  /** Of `left`, those whose attempts reached max_retries with this run's pull: Cloudflare
   *  deletes each when its lease ends ("will be deleted from the queue permanently",
   *  pull-consumers.mdx), so they are not in the DLQ after the run. Their bodies are in
   *  the report (and printed) so that nothing is lost unseen. */
  spent: DeadLetter[];
  /** Acks whose lease Cloudflare no longer knew (another puller acked it first). */
  ackWarnings: number;
  stoppedBy: "empty" | "limit" | "seen" | "error";
  /** A release of the left messages' leases failed: they are visible again only after the
   *  visibility timeout, not at once. */
  releaseFailed?: boolean;
  error?: string;
  /** Messages in the DLQ after the run (Cloudflare's best-effort metric): beyond `left`,
   * ones in flight (leased by an interrupted run or another puller) or newly arrived. */
  remaining?: number;
}

/**
 * Pulls the DLQ batch by batch until it is empty (what is left is leased, so a pull no
 * longer returns it), --limit messages were pulled, or a pull returns only messages this
 * run already left (their visibility timeout passed: pulling them again would spend
 * attempts for nothing). Each batch: the events the ledger would record are pushed to the
 * usage queue (json, at most 100 messages and 256 KB a push) and, after each push
 * succeeded, acked; the rest are left (or dropped). At the end the leases of what was left
 * are released, so the messages are visible in the DLQ at once.
 */
export async function replay(api: QueuesClient, dlq: QueueInfo, target: QueueInfo, o: ReplayOptions, hooks: ReplayHooks = {}): Promise<ReplayReport> {
  const r: ReplayReport = { pulled: 0, replayed: 0, pushedNotAcked: 0, dropped: [], left: [], spent: [], ackWarnings: 0, stoppedBy: "empty" };
  const seen = new Set<string>();
  // Request ids pushed by this run. One pulled again in a later batch is left, not pushed a
  // second time: it is a duplicate in the DLQ, or the ledger refused the replayed event and
  // dead-lettered it again (a deployed CALL_RETENTION_DAYS or PRICES other than this
  // checkout's, D1 still down), and pushing it again would loop until the run ends.
  const pushedRequests = new Set<string>();
  const fail = (what: string, e: unknown) => {
    r.stoppedBy = "error";
    r.error = `${what}: ${describeError(e)}`;
  };
  for (;;) {
    const want = Math.min(o.batchSize, o.limit === undefined ? MAX_BATCH_MESSAGES : o.limit - r.pulled);
    if (want <= 0) {
      r.stoppedBy = "limit";
      break;
    }
    let pulled: Awaited<ReturnType<QueuesClient["pull"]>>;
    try {
      pulled = await api.pull(dlq.id, want, o.visibilityTimeoutMs);
    } catch (e) {
      fail("pulling the dead-letter queue failed (nothing of this batch was sent)", e);
      break;
    }
    if (pulled.messages.length === 0) break;
    r.pulled += pulled.messages.length;
    // Messages this run already left, pulled again (their visibility timeout passed): a
    // new delivery, with a new lease and one more attempt. The release at the end and the
    // last-attempt report use those (with the first pull's, a message whose second pull
    // was its last was deleted while the run said it was still there: a review).
    const again = pulled.messages.filter((m) => m.id !== undefined && seen.has(m.id));
    if (again.length > 0) {
      const leftById = new Map(r.left.map((m) => [m.id, m]));
      for (const w of again) {
        const m = leftById.get(w.id!);
        if (m === undefined) continue;
        if (w.lease_id !== undefined) m.leaseId = w.lease_id;
        if (typeof w.attempts === "number") m.attempts = w.attempts;
      }
    }
    const now = o.now();
    const fresh = pulled.messages.filter((m) => m.id === undefined || !seen.has(m.id)).map((m) => classify(m, now, o.retentionDays));
    if (fresh.length === 0) {
      r.stoppedBy = "seen";
      break;
    }
    for (const m of fresh) seen.add(m.id);
    for (const m of fresh) {
      if (m.action === "replay" && m.event && pushedRequests.has(m.event.request_id)) {
        m.action = "leave";
        m.reason = "its request_id was already replayed by this run: a duplicate, or the ledger sent it back to the DLQ (is the deployed ledger's config this checkout's? is D1 up?); a later run pushes it again";
      }
    }
    const leave = fresh.filter((m) => m.action === "leave" || m.leaseId === undefined);
    const send = fresh.filter((m) => !leave.includes(m));
    let stop = false;
    // Messages of this pull whose push was not made or failed: left like the rest (so
    // released at the end, and reported if the release deletes them: their last attempt).
    const unsent = new Set(send);
    for (const batch of pushBatches(send)) {
      try {
        await api.push(target.id, batch.map((m) => m.body));
      } catch (e) {
        fail(`pushing ${batch.length} event(s) to ${target.name} failed; none of them was acked, so they stay in the dead-letter queue (released for a rerun, unless this was their last attempt: listed below)`, e);
        stop = true;
        break;
      }
      for (const m of batch) unsent.delete(m);
      try {
        const a = await api.ack(dlq.id, batch.map((m) => m.leaseId!));
        r.ackWarnings += a.warnings;
      } catch (e) {
        r.pushedNotAcked += batch.length;
        fail(`${batch.length} event(s) were pushed to ${target.name} but their ack failed; they come back after the visibility timeout and a rerun pushes them again, which the ledger counts once (request_id)`, e);
        stop = true;
        break;
      }
      r.replayed += batch.length;
      for (const m of batch) if (m.event) pushedRequests.add(m.event.request_id);
    }
    if (stop) {
      // Pushed and not acked: the lease runs out and they come back (the ledger counts a
      // second push once). Not pushed: left with the rest, released below, and listed if
      // that was their last attempt (Cloudflare then deletes them: their bodies are
      // printed, the only copy).
      r.left.push(...leave, ...unsent);
      break;
    }
    if (o.dropInvalid && leave.length > 0) {
      const droppable = leave.filter((m) => m.leaseId !== undefined && m.lasting === true);
      const kept = leave.filter((m) => !droppable.includes(m));
      if (droppable.length > 0) hooks.onDrop?.(droppable);
      try {
        if (droppable.length > 0) {
          const a = await api.ack(dlq.id, droppable.map((m) => m.leaseId!));
          r.ackWarnings += a.warnings;
        }
        r.dropped.push(...droppable);
        r.left.push(...kept);
      } catch (e) {
        r.left.push(...leave);
        fail("acking the messages to drop failed; they stay in the dead-letter queue", e);
        break;
      }
    } else {
      r.left.push(...leave);
    }
    hooks.progress?.(r.replayed + r.left.length + r.dropped.length, pulled.backlog);
    if (o.limit !== undefined && r.pulled >= o.limit) {
      r.stoppedBy = "limit";
      break;
    }
  }
  // What was left is leased until the visibility timeout: released now, it is visible in
  // the DLQ at once (for `list`, or a run after a fix). A release is no delivery; a message
  // whose attempts reached max_retries is deleted by it as by the lease's end.
  // In requests of at most 100 leases, like every other ack.
  const leases = r.left.flatMap((m) => (m.leaseId !== undefined ? [m.leaseId] : []));
  for (let i = 0; i < leases.length; i += MAX_BATCH_MESSAGES) {
    try {
      await api.release(dlq.id, leases.slice(i, i + MAX_BATCH_MESSAGES));
    } catch {
      // Not a loss: the leases end after the visibility timeout anyway.
      r.releaseFailed = true;
    }
  }
  if (o.maxRetries !== undefined) r.spent = r.left.filter((m) => m.leaseId !== undefined && m.attempts >= o.maxRetries!);
  const remaining = await api.backlog(dlq.id).catch(() => undefined);
  if (remaining !== undefined) r.remaining = remaining;
  return r;
}
