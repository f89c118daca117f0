import { describe, expect, it } from "vitest";
import { changed, compliantMetering } from "../../test/fixtures/policies.ts";
import { TYPE } from "../lib/resources.ts";
import { runPolicies } from "../run.ts";
import { queueConsumerDlq } from "./queue-consumer-dlq.ts";

const isConsumer = (r: { type: string }) => r.type === TYPE.queueConsumer;

describe("queue-consumer-has-dlq", () => {
  it("passes the usage ledger's consumer, whose DLQ is a queue of the stack", async () => {
    const resources = compliantMetering();
    expect(resources.filter(isConsumer).map((r) => r.props.deadLetterQueue)).toEqual(["edgefleet-usage-dlq"]);
    expect(await runPolicies(resources, [queueConsumerDlq])).toEqual([]);
  });
  it("flags a consumer without a dead-letter queue", async () => {
    const v = await runPolicies(changed(compliantMetering(), isConsumer, ({ deadLetterQueue: _, ...p }) => p), [queueConsumerDlq]);
    expect(v.map((x) => x.message)).toEqual([
      "ledger/consumer/edgefleet-usage (script ledger): no dead-letter queue; a message that fails max_retries times would be dropped (set dead_letter_queue in wrangler.jsonc)",
    ]);
  });
  it("flags a dead-letter queue the stack does not declare", async () => {
    const resources = compliantMetering().filter((r) => !(r.type === TYPE.queue && r.props.queueName === "edgefleet-usage-dlq"));
    const v = await runPolicies(resources, [queueConsumerDlq]);
    expect(v.map((x) => x.message)).toEqual(["ledger/consumer/edgefleet-usage (script ledger): its dead-letter queue 'edgefleet-usage-dlq' is not a Queue of this stack"]);
  });
});
