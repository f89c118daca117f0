// A Queue consumer without a dead-letter queue drops a message for good once it has
// failed max_retries times (Cloudflare Queues: "messages that fail ... are deleted"
// unless a DLQ is configured, https://developers.cloudflare.com/queues/configuration/dead-letter-queues/,
// read 2026-11-27): for the usage ledger that is a call nobody is billed for. The DLQ
// must be a queue this stack declares, so it exists before the consumer names it.
import type { StackValidationPolicy } from "@pulumi/policy";
import { TYPE } from "../lib/resources.ts";

export const queueConsumerDlq: StackValidationPolicy = {
  name: "queue-consumer-has-dlq",
  description: "Every Queue consumer has a dead-letter queue, declared in the same stack: a message that exhausts its retries is kept, never dropped.",
  enforcementLevel: "mandatory",
  validateStack: (args, report) => {
    const queues = new Set(args.resources.filter((r) => r.type === TYPE.queue).map((r) => String(r.props.queueName ?? "")));
    for (const c of args.resources.filter((r) => r.type === TYPE.queueConsumer)) {
      const who = `${c.name} (script ${String(c.props.scriptName ?? "?")})`;
      const dlq = c.props.deadLetterQueue;
      if (typeof dlq !== "string" || dlq === "") report(`${who}: no dead-letter queue; a message that fails max_retries times would be dropped (set dead_letter_queue in wrangler.jsonc)`, c.urn);
      else if (!queues.has(dlq)) report(`${who}: its dead-letter queue '${dlq}' is not a Queue of this stack`, c.urn);
    }
  },
};
