// A Queue consumer without a dead-letter queue drops a message for good once it has
// failed max_retries times (Cloudflare Queues: "messages that fail ... are deleted"
// unless a DLQ is configured, https://developers.cloudflare.com/queues/configuration/dead-letter-queues/,
// read 2026-11-27): for the usage ledger that is a call nobody is billed for. The DLQ
// must be a queue this stack declares, so it exists before the consumer names it.
//
// HTTP pull consumers (`type: "http_pull"`) are judged differently. The one edgefleet
// declares reads a dead-letter queue (`npm run dead-letters`, stacks/model/dead-letters.ts);
// a DLQ of that DLQ would only move the same events one queue further, with no reader.
// What keeps its events instead is max_retries: every pull is a delivery attempt, and an
// un-acked message is deleted when its attempts reach max_retries
// (queues/configuration/pull-consumers.mdx, read 2026-11-27). The replay leaves the events
// it cannot send (spending one attempt a run), so a pull consumer without a DLQ must
// set max_retries to at least MIN_PULL_MAX_RETRIES (Cloudflare's default, 3, would lose an
// event after three runs). A pull consumer that has a DLQ is held to the Worker rule.
// And the pull consumer is its queue's only reader: Cloudflare allows one beside a Worker
// consumer (queues/configuration/multi-consumer.mdx), but then the Worker takes the events
// a replay is for. A queue cannot have two Worker consumers (Queues get-started guide: "Each queue can only have one consumer
// Worker connected to it"; the API's error 11004 consumer_exists, cloudflare/workers-sdk#5347):
// Cloudflare would refuse the second, so the stack is refused first.
//
// A dead-letter queue must itself be read (a consumer: a Worker, or the pull consumer
// `npm run dead-letters` replays through), or what lands there waits unread until its
// retention deletes it. And dead-letter queues must not form a cycle (A's DLQ is B, B's is
// A): a message failing for good would go round between them. Both need each consumer's
// queue by name; a consumer names its queue by id, unknown before the queue exists, so the
// queue is found through the consumer's queueId dependency (the engine's
// propertyDependencies, which the offline plan's runner gives too). A consumer whose queue
// cannot be found that way cannot break a cycle the others form (it can only add edges),
// so cycles are looked for among the known ones; but it may be what reads a DLQ, so the
// reader check is skipped then, never guessed.
import type { StackValidationPolicy } from "@pulumi/policy";
import { MIN_PULL_MAX_RETRIES } from "../../stacks/model/dead-letters.ts";

/** The least retention a dead-letter queue may set: a day (metering.yaml's least,
 *  ledger.dead_letter_retention_days: 1; Cloudflare accepts 60 s). */
export const MIN_DLQ_RETENTION_SECONDS = 86_400;
import { known, TYPE } from "../lib/resources.ts";

export const queueConsumerDlq: StackValidationPolicy = {
  name: "queue-consumer-has-dlq",
  description: `Every Queue consumer has a dead-letter queue, declared in the same stack: a message that exhausts its retries is kept, never dropped. An HTTP pull consumer without one keeps messages through max_retries >= ${MIN_PULL_MAX_RETRIES}, and is its queue's only consumer; a queue has at most one Worker consumer. A dead-letter queue has a consumer of its own, and dead-letter queues form no cycle.`,
  enforcementLevel: "mandatory",
  validateStack: (args, report) => {
    const queueResources = args.resources.filter((r) => r.type === TYPE.queue);
    const queues = new Set(queueResources.map((r) => String(r.props.queueName ?? "")));
    // A DLQ keeps what it is given only as long as its retention: Cloudflare's default is
    // 4 days (developers.cloudflare.com/queues/configuration/configure-queues), too short to
    // notice and replay an outage's events over a long weekend. The stack must set it.
    const retention = (name: string) => (queueResources.find((q) => q.props.queueName === name)?.props.settings as { messageRetentionPeriod?: unknown } | undefined)?.messageRetentionPeriod;
    const consumers = args.resources.filter((r) => r.type === TYPE.queueConsumer);
    // The queue a consumer reads, when its id is known (a preview of a stack whose queues
    // exist; the offline plan's model checks the same before: stacks/model/workers.ts). On
    // a first deploy the id is unknown, and reading it directly would stop this policy for
    // every consumer after the first (the engine's "can't run during preview").
    const nameOf = (c: (typeof consumers)[number]) => {
      const q = c.propertyDependencies?.queueId?.find((r) => r.type === TYPE.queue);
      const name = q?.props.queueName;
      return typeof name === "string" && name !== "" ? name : undefined;
    };
    // What a consumer's queue is known by: its name (through the dependency) and its id
    // (when known). Two consumers read one queue when these share a key: a consumer may
    // have one, the other, or both.
    const keysOf = (c: (typeof consumers)[number]) => {
      const keys: string[] = [];
      const name = nameOf(c);
      if (name !== undefined) keys.push(`name:${name}`);
      const id = known(c.props, "queueId");
      if (typeof id === "string" && id !== "") keys.push(`id:${id}`);
      return keys;
    };
    const keys = new Map(consumers.map((c) => [c, keysOf(c)]));
    const sameQueue = (a: (typeof consumers)[number], b: (typeof consumers)[number]) => keys.get(a)!.some((k) => keys.get(b)!.includes(k));
    for (const c of consumers) {
      const pull = c.props.type === "http_pull";
      const who = pull ? `${c.name} (HTTP pull)` : `${c.name} (script ${String(c.props.scriptName ?? "?")})`;
      const dlq = c.props.deadLetterQueue;
      if (typeof dlq === "string" && dlq !== "") {
        if (!queues.has(dlq)) report(`${who}: its dead-letter queue '${dlq}' is not a Queue of this stack`, c.urn);
        else if (typeof retention(dlq) !== "number") report(`${who}: its dead-letter queue '${dlq}' sets no message retention, so Cloudflare's default of 4 days applies and unread events are deleted (set it, as ledger.dead_letter_retention_days does for the ledger's)`, c.urn);
        else if ((retention(dlq) as number) < MIN_DLQ_RETENTION_SECONDS) report(`${who}: its dead-letter queue '${dlq}' keeps messages ${retention(dlq) as number} s, under a day: unread events are deleted before anyone can replay them (ledger.dead_letter_retention_days is 1 to 14 days)`, c.urn);
      } else if (!pull) {
        report(`${who}: no dead-letter queue; a message that fails max_retries times would be dropped (set dead_letter_queue in wrangler.jsonc)`, c.urn);
      } else {
        const retries = (c.props.settings as { maxRetries?: unknown } | undefined)?.maxRetries;
        if (typeof retries !== "number" || retries < MIN_PULL_MAX_RETRIES) {
          report(`${who}: no dead-letter queue and max_retries ${typeof retries === "number" ? retries : "unset (Cloudflare's default: 3)"}; every pull spends an attempt and a message is deleted when they reach max_retries, so set it to at least ${MIN_PULL_MAX_RETRIES}`, c.urn);
        }
      }
      if (pull) {
        const others = consumers.filter((o) => o !== c && sameQueue(c, o)).map((o) => o.name);
        if (others.length > 0) report(`${who}: its queue has another consumer (${others.join(", ")}), which would take the messages this pull consumer is there to replay; a pull consumer must be its queue's only reader`, c.urn);
      } else {
        const workers = consumers.filter((o) => o !== c && o.props.type !== "http_pull" && sameQueue(c, o)).map((o) => o.name);
        if (workers.length > 0) report(`${who}: its queue has another Worker consumer (${workers.join(", ")}); Cloudflare allows one Worker consumer per queue (the second deploy fails with error 11004, consumer_exists)`, c.urn);
      }
    }
    // Readers: only with every consumer's queue known by name (an unknown one may be a
    // DLQ's reader). Cycles: among the consumers whose queue is known.
    const named = consumers.flatMap((c) => {
      const queue = nameOf(c);
      return queue === undefined ? [] : [{ c, queue }];
    });
    const allKnown = named.length === consumers.length;
    const read = new Set(named.map((x) => x.queue));
    const dlqOf = new Map<string, string>();
    for (const { c, queue } of named) {
      const dlq = c.props.deadLetterQueue;
      if (typeof dlq !== "string" || dlq === "") continue;
      dlqOf.set(queue, dlq);
      if (allKnown && queues.has(dlq) && !read.has(dlq)) {
        report(`${c.name}: its dead-letter queue '${dlq}' has no consumer, so nothing reads what lands there until its retention deletes it (give it a pull consumer, as metering.yaml's ledger.dead_letter_retention_days does for the ledger's, and replay it with npm run dead-letters)`, c.urn);
      }
    }
    // Each cycle once, from its first queue in name order.
    const reported = new Set<string>();
    for (const start of [...dlqOf.keys()].sort()) {
      const path = [start];
      for (let q = dlqOf.get(start); q !== undefined; q = dlqOf.get(q)) {
        const at = path.indexOf(q);
        if (at >= 0) {
          const cycle = path.slice(at);
          const key = [...cycle].sort().join(",");
          if (!reported.has(key)) {
            reported.add(key);
            const c = named.find((x) => x.queue === cycle[0])!.c;
            report(`${c.name}: dead-letter queues form a cycle (${[...cycle, cycle[0]].join(" -> ")}): a message that keeps failing would go round them instead of stopping in one`, c.urn);
          }
          break;
        }
        path.push(q);
      }
    }
  },
};
