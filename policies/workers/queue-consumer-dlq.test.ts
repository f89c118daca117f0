import { describe, expect, it } from "vitest";
import { changed, compliantMetering, named } from "../../test/fixtures/policies.ts";
import { TYPE } from "../lib/resources.ts";
import { runPolicies } from "../run.ts";
import { queueConsumerDlq } from "./queue-consumer-dlq.ts";

const isConsumer = (r: { type: string }) => r.type === TYPE.queueConsumer;
const isPull = (r: { type: string; props: Record<string, unknown> }) => isConsumer(r) && r.props.type === "http_pull";
const PULL = "queue/edgefleet-usage-dlq/pull-consumer (HTTP pull)";

describe("queue-consumer-has-dlq", () => {
  it("passes the usage ledger's consumer, whose DLQ is a queue of the stack, and the DLQ's pull consumer with 100 retries", async () => {
    const resources = compliantMetering();
    expect(resources.filter(isConsumer).map((r) => [r.name, r.props.type, r.props.deadLetterQueue])).toEqual([
      ["ledger/consumer/edgefleet-usage", "worker", "edgefleet-usage-dlq"],
      ["queue/edgefleet-usage-dlq/pull-consumer", "http_pull", undefined],
    ]);
    expect(await runPolicies(resources, [queueConsumerDlq])).toEqual([]);
  });
  it("checks every consumer in the preview that creates the queues (queue ids unknown): none stops the policy", async () => {
    // compliantMetering() comes from the desired state: the consumers' queueId is a
    // reference to a queue not created yet, unknown as in a first `pulumi preview`.
    const ledger = compliantMetering().find(named("ledger/consumer/edgefleet-usage"))!;
    expect(() => ledger.props.queueId).not.toThrow();
    const second = { ...ledger, name: "other/consumer/edgefleet-usage", props: { ...ledger.props, scriptName: "other", deadLetterQueue: undefined } };
    const v = await runPolicies([...compliantMetering(), second], [queueConsumerDlq]);
    // Its queue is known through its queueId dependency even so: two Worker consumers of it.
    expect(v.map((x) => x.message)).toEqual([
      "ledger/consumer/edgefleet-usage (script ledger): its queue has another Worker consumer (other/consumer/edgefleet-usage); Cloudflare allows one Worker consumer per queue (the second deploy fails with error 11004, consumer_exists)",
      "other/consumer/edgefleet-usage (script other): no dead-letter queue; a message that fails max_retries times would be dropped (set dead_letter_queue in wrangler.jsonc)",
      "other/consumer/edgefleet-usage (script other): its queue has another Worker consumer (ledger/consumer/edgefleet-usage); Cloudflare allows one Worker consumer per queue (the second deploy fails with error 11004, consumer_exists)",
    ]);
  });
  it("flags a consumer without a dead-letter queue", async () => {
    const v = await runPolicies(changed(compliantMetering(), named("ledger/consumer/edgefleet-usage"), ({ deadLetterQueue: _, ...p }) => p), [queueConsumerDlq]);
    expect(v.map((x) => x.message)).toEqual([
      "ledger/consumer/edgefleet-usage (script ledger): no dead-letter queue; a message that fails max_retries times would be dropped (set dead_letter_queue in wrangler.jsonc)",
    ]);
  });
  it("flags a dead-letter queue without a message retention of its own (Cloudflare's default, 4 days, deletes unread events)", async () => {
    const isDlq = (r: { type: string; props: Record<string, unknown> }) => r.type === TYPE.queue && r.props.queueName === "edgefleet-usage-dlq";
    expect(compliantMetering().find(isDlq)!.props.settings).toMatchObject({ messageRetentionPeriod: 14 * 86_400 });
    const v = await runPolicies(changed(compliantMetering(), isDlq, ({ settings: _, ...p }) => p), [queueConsumerDlq]);
    expect(v.map((x) => x.message)).toEqual([expect.stringMatching(/^ledger\/consumer\/edgefleet-usage \(script ledger\): its dead-letter queue 'edgefleet-usage-dlq' sets no message retention/)]);
  });

  it("flags a dead-letter queue that keeps messages under a day (Cloudflare accepts 60 s)", async () => {
    const isDlq = (r: { type: string; props: Record<string, unknown> }) => r.type === TYPE.queue && r.props.queueName === "edgefleet-usage-dlq";
    const short = (seconds: number) => changed(compliantMetering(), isDlq, (p) => ({ ...p, settings: { messageRetentionPeriod: seconds } }));
    expect((await runPolicies(short(60), [queueConsumerDlq])).map((x) => x.message)).toEqual([
      "ledger/consumer/edgefleet-usage (script ledger): its dead-letter queue 'edgefleet-usage-dlq' keeps messages 60 s, under a day: unread events are deleted before anyone can replay them (ledger.dead_letter_retention_days is 1 to 14 days)",
    ]);
    expect(await runPolicies(short(86_400), [queueConsumerDlq])).toEqual([]);
  });

  it("flags a dead-letter queue the stack does not declare", async () => {
    const resources = compliantMetering().filter((r) => !(r.type === TYPE.queue && r.props.queueName === "edgefleet-usage-dlq"));
    const v = await runPolicies(resources, [queueConsumerDlq]);
    expect(v.map((x) => x.message)).toEqual(["ledger/consumer/edgefleet-usage (script ledger): its dead-letter queue 'edgefleet-usage-dlq' is not a Queue of this stack"]);
  });

  it("flags a pull consumer without a DLQ whose max_retries is below 50 or unset (every pull spends an attempt)", async () => {
    const retries = (n: number | undefined) => changed(compliantMetering(), isPull, (p) => ({ ...p, settings: { ...(p.settings as object), maxRetries: n } }));
    expect(await runPolicies(retries(50), [queueConsumerDlq])).toEqual([]);
    const low = await runPolicies(retries(49), [queueConsumerDlq]);
    expect(low.map((x) => x.message)).toEqual([
      `${PULL}: no dead-letter queue and max_retries 49; every pull spends an attempt and a message is deleted when they reach max_retries, so set it to at least 50`,
    ]);
    const unset = await runPolicies(retries(undefined), [queueConsumerDlq]);
    expect(unset.map((x) => x.message)).toEqual([expect.stringContaining(`${PULL}: no dead-letter queue and max_retries unset (Cloudflare's default: 3)`)]);
  });

  it("holds a pull consumer that has a DLQ to the Worker rule: the DLQ must be a queue of the stack, its retries are then free", async () => {
    const withDlq = (dlq: string) => changed(compliantMetering(), isPull, (p) => ({ ...p, deadLetterQueue: dlq, settings: { maxRetries: 3 } }));
    // The usage queue as a DLQ: a queue of the stack, but with Cloudflare's default
    // retention, and (the usage queue's DLQ being this one) a cycle.
    expect((await runPolicies(withDlq("edgefleet-usage"), [queueConsumerDlq])).map((x) => x.message)).toEqual([
      expect.stringMatching(/^queue\/edgefleet-usage-dlq\/pull-consumer \(HTTP pull\): its dead-letter queue 'edgefleet-usage' sets no message retention/),
      expect.stringMatching(/^ledger\/consumer\/edgefleet-usage: dead-letter queues form a cycle/),
    ]);
    const v = await runPolicies(withDlq("nowhere"), [queueConsumerDlq]);
    expect(v.map((x) => x.message)).toEqual([`${PULL}: its dead-letter queue 'nowhere' is not a Queue of this stack`]);
  });

  it("flags a pull consumer on a queue that also has a Worker consumer (it would take the events the replay is for): by the queueId dependency, or by known ids without one", async () => {
    const pullOn = (queue: string) => compliantMetering().map((r) => (isPull(r) ? { ...r, refs: { queueId: `queue/${queue}` } } : r));
    const message = `${PULL}: its queue has another consumer (ledger/consumer/edgefleet-usage), which would take the messages this pull consumer is there to replay; a pull consumer must be its queue's only reader`;
    expect(await runPolicies(pullOn("edgefleet-usage-dlq"), [queueConsumerDlq])).toEqual([]);
    expect((await runPolicies(pullOn("edgefleet-usage"), [queueConsumerDlq])).map((x) => x.message)).toContain(message);
    // Without dependencies (resources a policy sees with no propertyDependencies), a
    // preview of a stack whose queues exist still carries each queue's id.
    const ids = (pullQueue: string) =>
      changed(changed(compliantMetering(), named("ledger/consumer/edgefleet-usage"), (p) => ({ ...p, queueId: "q-usage" })), isPull, (p) => ({ ...p, queueId: pullQueue })).map((r) => ({ ...r, refs: undefined }));
    expect(await runPolicies(ids("q-dlq"), [queueConsumerDlq])).toEqual([]);
    const v = await runPolicies(ids("q-usage"), [queueConsumerDlq]);
    expect(v.map((x) => x.message)).toEqual([message]);
    // Mixed: the Worker consumer known by its dependency and its id, the pull consumer by
    // its id alone (a preview of an existing stack where one resource lost its dependency).
    const mixed = changed(compliantMetering(), named("ledger/consumer/edgefleet-usage"), (p) => ({ ...p, queueId: "q-usage" })).map((r) => (isPull(r) ? { ...r, refs: undefined, props: { ...r.props, queueId: "q-usage" } } : r));
    expect((await runPolicies(mixed, [queueConsumerDlq])).map((x) => x.message)).toContain(message);
  });

  it("flags two Worker consumers of one queue (Cloudflare allows one: error 11004), once the queue ids are known", async () => {
    const ledger = named("ledger/consumer/edgefleet-usage");
    const base = changed(compliantMetering(), ledger, (p) => ({ ...p, queueId: "q-usage" }));
    const second = { ...base.find(ledger)!, name: "ledger-eu/consumer/edgefleet-usage" };
    second.props = { ...second.props, scriptName: "ledger-eu" };
    const v = await runPolicies([...base, second], [queueConsumerDlq]);
    expect(v.map((x) => x.message)).toEqual([
      "ledger/consumer/edgefleet-usage (script ledger): its queue has another Worker consumer (ledger-eu/consumer/edgefleet-usage); Cloudflare allows one Worker consumer per queue (the second deploy fails with error 11004, consumer_exists)",
      "ledger-eu/consumer/edgefleet-usage (script ledger-eu): its queue has another Worker consumer (ledger/consumer/edgefleet-usage); Cloudflare allows one Worker consumer per queue (the second deploy fails with error 11004, consumer_exists)",
    ]);
    // On another queue of the stack (by its dependency): accepted.
    const usage = base.find((r) => r.type === TYPE.queue && r.props.queueName === "edgefleet-usage")!;
    const other = { ...usage, name: "queue/edgefleet-other", props: { ...usage.props, queueName: "edgefleet-other" } };
    expect(await runPolicies([...base, other, { ...second, refs: { queueId: "queue/edgefleet-other" }, props: { ...second.props, queueId: "q-other" } }], [queueConsumerDlq])).toEqual([]);
  });

  it("flags a dead-letter queue nothing reads: the consumer's queue is found through its queueId dependency, unknown in a preview", async () => {
    const noReader = compliantMetering().filter((r) => !isPull(r));
    // The ledger's consumer names its queue by an id not known yet, and by its dependency.
    const ledger = noReader.find(named("ledger/consumer/edgefleet-usage"))!;
    expect(ledger.refs).toEqual({ queueId: "queue/edgefleet-usage" });
    const v = await runPolicies(noReader, [queueConsumerDlq]);
    expect(v.map((x) => x.message)).toEqual([expect.stringMatching(/^ledger\/consumer\/edgefleet-usage: its dead-letter queue 'edgefleet-usage-dlq' has no consumer, so nothing reads what lands there/)]);
    // Without the dependency (a consumer whose queue cannot be told), the check is skipped, not guessed.
    const blind = noReader.map((r) => (r === ledger ? { ...r, refs: undefined } : r));
    expect(await runPolicies(blind, [queueConsumerDlq])).toEqual([]);
  });

  it("flags dead-letter queues that form a cycle, once, including a queue that is its own", async () => {
    // The DLQ's reader becomes a Worker consumer that dead-letters back into the usage queue.
    const loop = changed(compliantMetering(), isPull, (p) => ({ ...p, type: "worker", scriptName: "ledger", deadLetterQueue: "edgefleet-usage" }));
    const v = await runPolicies(loop, [queueConsumerDlq]);
    expect(v.map((x) => x.message).filter((m) => m.includes("cycle"))).toEqual([
      "ledger/consumer/edgefleet-usage: dead-letter queues form a cycle (edgefleet-usage -> edgefleet-usage-dlq -> edgefleet-usage): a message that keeps failing would go round them instead of stopping in one",
    ]);
    const self = changed(compliantMetering(), named("ledger/consumer/edgefleet-usage"), (p) => ({ ...p, deadLetterQueue: "edgefleet-usage" }));
    const w = await runPolicies(self, [queueConsumerDlq]);
    expect(w.map((x) => x.message).filter((m) => m.includes("cycle"))).toEqual([expect.stringContaining("(edgefleet-usage -> edgefleet-usage)")]);
    // A consumer elsewhere whose queue cannot be told (no dependency) does not hide it.
    const ledger = compliantMetering().find(named("ledger/consumer/edgefleet-usage"))!;
    const stranger = { ...ledger, name: "other/consumer/q-literal", refs: undefined, props: { ...ledger.props, scriptName: "other", queueId: "q-literal", deadLetterQueue: "edgefleet-usage-dlq" } };
    const hidden = await runPolicies([...self, stranger], [queueConsumerDlq]);
    expect(hidden.map((x) => x.message).filter((m) => m.includes("cycle"))).toEqual([expect.stringContaining("(edgefleet-usage -> edgefleet-usage)")]);
  });
});
