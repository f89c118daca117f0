// How a Worker's dead-letter queue is kept and read back (issue 16): the queue's message
// retention and the HTTP pull consumer through which `npm run dead-letters` replays it.
// Pure model: the desired state (stacks/model/workers.ts), the policy
// `queue-consumer-has-dlq` and the command read these numbers from here.
//
// Facts (Cloudflare docs, queues/configuration/pull-consumers.mdx and
// queues/platform/limits.mdx in cloudflare/cloudflare-docs, read 2026-11-27):
// - a queue gets an HTTP pull consumer with `type: "http_pull"` (settings
//   visibility_timeout_ms, max_retries; optional dead_letter_queue). A queue may have a
//   pull consumer beside a Worker consumer (queues/configuration/multi-consumer.mdx); the
//   DLQ has only the pull consumer. wrangler's config schema
//   (node_modules/wrangler/config-schema.json) only takes `type: "worker"` consumers, so
//   this one cannot live in wrangler.jsonc: the model declares it beside the queue.
// - every pull is a delivery attempt: `attempts` counts it, and when it reaches
//   max_retries the message "will be deleted from the queue permanently". A message the
//   command leaves in the queue (invalid, too old) is pulled, not acked, and comes back
//   after the visibility timeout with one attempt spent. Hence max_retries is the most
//   Queues allows ("Message retries: 100"): a left event survives 100 replay runs.
// - the visibility timeout (default 30 s, at most 12 h) is how long a pulled message stays
//   leased (hidden) before it is delivered again. The command pushes and acks a batch in
//   seconds; the timeout matters when it stops between the push and the ack (the batch
//   comes back after it and is pushed again: the ledger counts a request id once) and for
//   the events it leaves (hidden for the rest of a run, so one run pulls each at most once
//   per timeout). 10 minutes: long enough for a run over a large backlog, short enough
//   that an interrupted run can be repeated soon. The command sends its own timeout on
//   each pull (default this one); the consumer's is what any other puller gets.
// - a Queue keeps a message 4 days unless its message_retention_period (seconds, at most
//   14 days) says otherwise: the DLQ gets metering.yaml's ledger.dead_letter_retention_days.
import type { Ref } from "./desired.ts";
import { DAY_SECONDS } from "./metering.ts";
import type { TYPES } from "./names.ts";
import type { ModelInputs } from "./provider-args.ts";

/** The HTTP pull consumer's settings on a dead-letter queue (why: above). */
export const DEAD_LETTER_PULL = {
  /** Queues' maximum: a message left unacked is deleted when its attempts reach this. */
  maxRetries: 100,
  /** How long a pulled message stays hidden before it is delivered again. */
  visibilityTimeoutMs: 10 * 60_000,
} as const;

/**
 * The least max_retries the policy accepts for an HTTP pull consumer that has no
 * dead-letter queue of its own (a DLQ's reader: a DLQ of the DLQ would only move the
 * problem). Cloudflare's default (3) would delete an event after three replay runs that
 * could not send it; 50 leaves weeks of daily runs to fix what keeps it out.
 */
export const MIN_PULL_MAX_RETRIES = 50;

/** A dead-letter queue's settings: how long it keeps a message. */
export function deadLetterQueueSettings(retentionDays: number): NonNullable<ModelInputs<typeof TYPES.queue>["settings"]> {
  return { messageRetentionPeriod: retentionDays * DAY_SECONDS };
}

/** The inputs of the HTTP pull consumer of a dead-letter queue (no script: nothing is pushed to a Worker). */
export function deadLetterPullConsumer(accountId: string, queueId: Ref): ModelInputs<typeof TYPES.queueConsumer> {
  return {
    accountId,
    queueId,
    type: "http_pull",
    settings: { maxRetries: DEAD_LETTER_PULL.maxRetries, visibilityTimeoutMs: DEAD_LETTER_PULL.visibilityTimeoutMs },
  };
}
