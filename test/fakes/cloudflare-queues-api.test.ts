// The fake Queues API refuses what the real one refuses and keeps its delivery rules
// (leases, redelivery with attempts + 1, deletion at max_retries, base64 bodies, batch
// limits), as the real SDK sees it.
import Cloudflare from "cloudflare";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FakeQueuesApi, LIMITS } from "./cloudflare-queues-api.ts";

const ACCOUNT = "acct";
const fake = new FakeQueuesApi({ token: "tok", accountId: ACCOUNT });
let cf: Cloudflare;
let n = 0;
/** A fresh queue with an HTTP pull consumer (max_retries given): its id and name. */
const pullQueue = (maxRetries = 5, deadLetterQueue?: string) => {
  const name = `q${++n}`;
  return { id: fake.addQueue(name, { consumer: { type: "http_pull", settings: { max_retries: maxRetries }, ...(deadLetterQueue ? { deadLetterQueue } : {}) } }), name };
};

const status = (p: Promise<unknown>) => p.then(() => 200, (e: { status?: number; errors?: { code: number }[] }) => `${e.status} ${e.errors?.[0]?.code}`);
const decode = (b: string | undefined) => JSON.parse(Buffer.from(b!, "base64").toString("utf8")) as unknown;

beforeAll(async () => {
  await fake.start();
  cf = new Cloudflare({ apiToken: "tok", baseURL: fake.baseURL, maxRetries: 0 });
});
afterAll(() => fake.stop());

describe("fake Cloudflare Queues API: queues", () => {
  it("lists queues a page at a time, finds one by name (as wrangler does), with its consumers and retention", async () => {
    for (let i = 0; i < 25; i++) fake.addQueue(`filler-${i}`);
    const id = fake.addQueue("the-dlq", { consumer: { type: "http_pull", settings: { max_retries: 100, visibility_timeout_ms: 600_000 } }, retentionSeconds: 14 * 86_400 });
    fake.addQueue("the-usage", { consumer: { type: "worker", scriptName: "ledger", deadLetterQueue: "the-dlq", settings: { max_retries: 5 } } });
    const first = await cf.queues.list({ account_id: ACCOUNT });
    expect(first.result).toHaveLength(fake.pageSize);
    expect(first.result.some((q) => q.queue_name === "the-dlq")).toBe(false);
    const byName = await cf.queues.list({ account_id: ACCOUNT }, { query: { name: "the-dlq" } });
    expect(byName.result).toEqual([
      expect.objectContaining({
        queue_id: id,
        queue_name: "the-dlq",
        consumers: [expect.objectContaining({ type: "http_pull", dead_letter_queue: "", settings: { max_retries: 100, visibility_timeout_ms: 600_000 } })],
        settings: { delivery_delay: 0, delivery_paused: false, message_retention_period: 14 * 86_400 },
      }),
    ]);
    const usage = (await cf.queues.list({ account_id: ACCOUNT }, { query: { name: "the-usage" } })).result[0]!;
    expect(usage.consumers![0]).toMatchObject({ type: "worker", script: "ledger", dead_letter_queue: "the-dlq" });
    expect((await cf.queues.list({ account_id: ACCOUNT }, { query: { name: "nope" } })).result).toEqual([]);
    expect(await cf.queues.get(id, { account_id: ACCOUNT })).toMatchObject({ queue_name: "the-dlq" });
  });

  it("refuses a bad token, another account, an unknown queue id (a name is not an id)", async () => {
    const { id, name } = pullQueue();
    const other = new Cloudflare({ apiToken: "nope", baseURL: fake.baseURL, maxRetries: 0 });
    expect(await status(other.queues.messages.pull(id, { account_id: ACCOUNT }))).toBe("403 10000");
    expect(await status(cf.queues.messages.pull(id, { account_id: "other" }))).toBe("403 10000");
    expect(await status(cf.queues.messages.pull(name, { account_id: ACCOUNT }))).toBe("404 10104");
    expect(await status(cf.queues.messages.bulkPush("0".repeat(32), { account_id: ACCOUNT, messages: [{ body: 1 }] }))).toBe("404 10104");
  });
});

describe("fake Cloudflare Queues API: pull, ack, peek", () => {
  it("pulls only from a queue with an HTTP pull consumer", async () => {
    const worker = fake.addQueue(`w${++n}`, { consumer: { type: "worker", scriptName: "s" } });
    const none = fake.addQueue(`x${++n}`);
    expect(await status(cf.queues.messages.pull(worker, { account_id: ACCOUNT }))).toBe("400 10400");
    expect(await status(cf.queues.messages.pull(none, { account_id: ACCOUNT }))).toBe("400 10400");
  });

  it("checks batch_size (1-100) and visibility_timeout_ms (up to 12 h), and refuses unknown fields", async () => {
    const { id } = pullQueue();
    for (const batch_size of [0, 101, 2.5]) expect(await status(cf.queues.messages.pull(id, { account_id: ACCOUNT, batch_size })), String(batch_size)).toBe("400 10207");
    for (const v of [0, LIMITS.maxVisibilityMs + 1]) expect(await status(cf.queues.messages.pull(id, { account_id: ACCOUNT, visibility_timeout_ms: v }))).toBe("400 10207");
    // The docs' curl example spells it `visibility_timeout`: not the API's field.
    expect(await status(cf.queues.messages.pull(id, { account_id: ACCOUNT, visibility_timeout: 1000 } as never))).toBe("400 10207");
    expect(await status(cf.queues.messages.pull(id, { account_id: ACCOUNT, batch_size: 100, visibility_timeout_ms: LIMITS.maxVisibilityMs }))).toBe(200);
  });

  it("encodes json and bytes bodies in base64, text plain, with the content type in the metadata; default batch 5", async () => {
    const { id, name: q } = pullQueue();
    fake.send(q, { v: 1, note: "é" });
    fake.send(q, "plain words", { contentType: "text" });
    fake.send(q, Buffer.from([0, 1, 2, 255]), { contentType: "bytes" });
    for (let i = 0; i < 5; i++) fake.send(q, { i });
    const got = (await cf.queues.messages.pull(id, { account_id: ACCOUNT })).messages!;
    expect(got).toHaveLength(LIMITS.defaultPullBatch);
    expect(decode(got[0]!.body)).toEqual({ v: 1, note: "é" });
    expect(got[0]!.metadata).toEqual({ "CF-sourceMessageSource": "worker", "CF-Content-Type": "json" });
    expect(got[1]).toMatchObject({ body: "plain words", metadata: { "CF-Content-Type": "text" } });
    expect(Buffer.from(got[2]!.body!, "base64")).toEqual(Buffer.from([0, 1, 2, 255]));
    expect(got[0]).toMatchObject({ attempts: 1, id: expect.stringMatching(/^[0-9a-f]{32}$/), lease_id: expect.any(String), timestamp_ms: expect.any(Number) });
  });

  it("leases what it delivers: hidden until the visibility timeout, then delivered again with attempts + 1; an ack by an old lease still counts", async () => {
    const { id, name: q } = pullQueue();
    fake.send(q, { a: 1 });
    const first = (await cf.queues.messages.pull(id, { account_id: ACCOUNT, visibility_timeout_ms: 60_000 })).messages!;
    expect(first.map((m) => m.attempts)).toEqual([1]);
    expect((await cf.queues.messages.pull(id, { account_id: ACCOUNT })).messages).toEqual([]);
    expect((await cf.queues.messages.peek(id, { account_id: ACCOUNT })).messages).toEqual([]);
    fake.advance(59_000);
    expect((await cf.queues.messages.pull(id, { account_id: ACCOUNT })).messages).toEqual([]);
    fake.advance(1_000);
    const again = (await cf.queues.messages.pull(id, { account_id: ACCOUNT })).messages!;
    expect(again.map((m) => [m.id, m.attempts])).toEqual([[first[0]!.id, 2]]);
    expect(again[0]!.lease_id).not.toBe(first[0]!.lease_id);
    // Acked by the first delivery's lease, after its timeout: accepted, the message is gone.
    expect(await cf.queues.messages.ack(id, { account_id: ACCOUNT, acks: [{ lease_id: first[0]!.lease_id! }] })).toEqual({ ackCount: 1, retryCount: 0, warnings: {} });
    expect(fake.messages(q)).toEqual([]);
    const late = await cf.queues.messages.ack(id, { account_id: ACCOUNT, acks: [{ lease_id: again[0]!.lease_id! }] });
    expect(late).toMatchObject({ ackCount: 0, warnings: { [again[0]!.lease_id!]: expect.any(String) } });
  });

  it("deletes a message whose attempts reached max_retries when its lease ends, or moves it to the consumer's dead-letter queue", async () => {
    const { id, name: q } = pullQueue(2);
    fake.send(q, { gone: true });
    for (let i = 1; i <= 2; i++) {
      expect((await cf.queues.messages.pull(id, { account_id: ACCOUNT, visibility_timeout_ms: 1000 })).messages!.map((m) => m.attempts)).toEqual([i]);
      fake.advance(1000);
    }
    expect(fake.messages(q)).toEqual([]);
    const spare = `spare${++n}`;
    fake.addQueue(spare);
    const withDlq = pullQueue(1, spare);
    fake.send(withDlq.name, { kept: true });
    await cf.queues.messages.pull(withDlq.id, { account_id: ACCOUNT, visibility_timeout_ms: 1000 });
    fake.advance(1000);
    expect(fake.messages(withDlq.name)).toEqual([]);
    expect(fake.messages(spare).map((m) => m.body)).toEqual([{ kept: true }]);
  });

  it("retries: back at once, or after delay_seconds (up to 12 h); a retry at max_retries deletes", async () => {
    const { id, name: q } = pullQueue(5);
    fake.send(q, { r: 1 });
    let lease = (await cf.queues.messages.pull(id, { account_id: ACCOUNT })).messages![0]!.lease_id!;
    expect(await cf.queues.messages.ack(id, { account_id: ACCOUNT, retries: [{ lease_id: lease }] })).toMatchObject({ retryCount: 1 });
    lease = (await cf.queues.messages.pull(id, { account_id: ACCOUNT })).messages![0]!.lease_id!;
    await cf.queues.messages.ack(id, { account_id: ACCOUNT, retries: [{ lease_id: lease, delay_seconds: 60 }] });
    expect((await cf.queues.messages.pull(id, { account_id: ACCOUNT })).messages).toEqual([]);
    fake.advance(60_000);
    expect((await cf.queues.messages.pull(id, { account_id: ACCOUNT })).messages!.map((m) => m.attempts)).toEqual([3]);
    expect(await status(cf.queues.messages.ack(id, { account_id: ACCOUNT, retries: [{ lease_id: lease, delay_seconds: LIMITS.maxDelaySeconds + 1 }] }))).toBe("400 10207");
    expect(await status(cf.queues.messages.ack(id, { account_id: ACCOUNT, acks: [{}] }))).toBe("400 10207");
  });

  it("peeks without a lease and without spending an attempt: the state is unchanged", async () => {
    const { id, name: q } = pullQueue();
    for (let i = 0; i < 3; i++) fake.send(q, { i });
    const before = fake.snapshot();
    const peeked = (await cf.queues.messages.peek(id, { account_id: ACCOUNT, batch_size: 2 })).messages!;
    expect(peeked.map((m) => [decode(m.body), m.attempts, typeof m.ref])).toEqual([
      [{ i: 0 }, 0, "string"],
      [{ i: 1 }, 0, "string"],
    ]);
    expect(peeked[0]).not.toHaveProperty("lease_id");
    expect(fake.snapshot()).toBe(before);
    expect(await status(cf.queues.messages.peek(id, { account_id: ACCOUNT, batch_size: 101 }))).toBe("400 10207");
  });

  it("reports the backlog, and drops messages older than the queue's retention", async () => {
    const id = fake.addQueue(`short${++n}`, { retentionSeconds: 3600, consumer: { type: "http_pull" } });
    fake.send(`short${n}`, { old: true });
    expect(await cf.queues.getMetrics(id, { account_id: ACCOUNT })).toMatchObject({ backlog_count: 1, backlog_bytes: 12 });
    fake.advance(3600_000);
    expect(await cf.queues.getMetrics(id, { account_id: ACCOUNT })).toEqual({ backlog_count: 0, backlog_bytes: 0, oldest_message_timestamp_ms: 0 });
  });
});

describe("fake Cloudflare Queues API: bulkPush", () => {
  it("stores json and text messages; the default content type is json", async () => {
    const { id, name } = pullQueue();
    await cf.queues.messages.bulkPush(id, { account_id: ACCOUNT, messages: [{ body: { a: 1 }, content_type: "json" }, { body: "t", content_type: "text" }, { body: [1, 2] }] });
    expect(fake.messages(name).map((m) => [m.contentType, m.body, m.attempts])).toEqual([
      ["json", { a: 1 }, 0],
      ["text", "t", 0],
      ["json", [1, 2], 0],
    ]);
  });

  it("refuses over 100 messages, a message over 128 KB (with its ~100 bytes of metadata), a batch over 256 KB, bad metadata; a refused batch stores nothing", async () => {
    const { id, name: q } = pullQueue();
    type Pushed = NonNullable<Parameters<typeof cf.queues.messages.bulkPush>[1]["messages"]>;
    const push = (messages: { body: unknown; content_type?: "json" | "text"; delay_seconds?: number }[]) => status(cf.queues.messages.bulkPush(id, { account_id: ACCOUNT, messages: messages as Pushed }));
    expect(await push(Array.from({ length: 101 }, (_, i) => ({ body: i })))).toBe("400 10206");
    expect(await push(Array.from({ length: 100 }, (_, i) => ({ body: i })))).toBe(200);
    const text = (bytes: number) => ({ body: "x".repeat(bytes), content_type: "text" as const });
    expect(await push([text(LIMITS.maxMessageBytes - LIMITS.metadataBytes + 1)])).toBe("400 10204");
    expect(await push([text(LIMITS.maxMessageBytes - LIMITS.metadataBytes)])).toBe(200);
    expect(await push([text(90_000), text(90_000), text(90_000)])).toBe("400 10205");
    expect(await push([{ body: 1, content_type: "v8" as never }])).toBe("400 10203");
    expect(await push([{ body: 1, delay_seconds: LIMITS.maxDelaySeconds + 1 }])).toBe("400 10203");
    expect(await push([{ body: 1 }, { body: 2, content_type: "text" }])).toBe("400 10203");
    expect(fake.messages(q)).toHaveLength(101);
  });

  it("delays a pushed message by delay_seconds", async () => {
    const { id } = pullQueue();
    await cf.queues.messages.bulkPush(id, { account_id: ACCOUNT, messages: [{ body: "later", content_type: "text" }], delay_seconds: 30 });
    expect((await cf.queues.messages.pull(id, { account_id: ACCOUNT })).messages).toEqual([]);
    fake.advance(30_000);
    expect((await cf.queues.messages.pull(id, { account_id: ACCOUNT })).messages!.map((m) => m.body)).toEqual(["later"]);
  });
});

describe("fake Cloudflare Queues API: faults", () => {
  it("fails the next request of an action before doing it, or after (a lost answer)", async () => {
    const { id, name: q } = pullQueue();
    fake.failNext({ status: 503, code: 15000, action: "batch" });
    // Another action is not affected.
    expect((await cf.queues.messages.peek(id, { account_id: ACCOUNT })).messages).toEqual([]);
    expect(await status(cf.queues.messages.bulkPush(id, { account_id: ACCOUNT, messages: [{ body: 1 }] }))).toBe("503 15000");
    expect(fake.messages(q)).toEqual([]);
    fake.failNext({ status: 500, code: 15000, action: "batch", applied: true });
    expect(await status(cf.queues.messages.bulkPush(id, { account_id: ACCOUNT, messages: [{ body: 2 }] }))).toBe("500 15000");
    expect(fake.messages(q).map((m) => m.body)).toEqual([2]);
    // The SDK retries a 5xx: two faults then an answer, with retry-after-ms honoured.
    const retrying = new Cloudflare({ apiToken: "tok", baseURL: fake.baseURL, maxRetries: 2 });
    fake.failNext({ status: 503, code: 15000, action: "peek", times: 2, retryAfterMs: 0 });
    expect((await retrying.queues.messages.peek(id, { account_id: ACCOUNT })).messages).toHaveLength(1);
  });
});

describe("fake Cloudflare Queues API: the account's API limit", () => {
  it("answers 429 (code 971, retry-after) past 1,200 requests in 5 minutes, for the rest of the five minutes; with perSecond, past that many in a second", async () => {
    const limited = await new FakeQueuesApi({ token: "tok", accountId: ACCOUNT }).start();
    try {
      const id = limited.addQueue("q", { consumer: { type: "http_pull", settings: { max_retries: 3 } } });
      const url = `${limited.baseURL}/accounts/${ACCOUNT}/queues/${id}/metrics`;
      const get = () => fetch(url, { headers: { authorization: "Bearer tok" } });
      for (let i = 0; i < 1200; i++) expect((await get()).status).toBe(200);
      const over = await get();
      expect(over.status).toBe(429);
      expect(over.headers.get("retry-after")).toBe("300");
      expect(((await over.json()) as { errors: { code: number }[] }).errors[0]!.code).toBe(971);
      // The block holds for five minutes, whatever the window does meanwhile.
      limited.advance(299_000);
      const sdk = new Cloudflare({ apiToken: "tok", baseURL: limited.baseURL, maxRetries: 0 });
      expect(await status(sdk.queues.get(id, { account_id: ACCOUNT }))).toBe("429 971");
      limited.advance(1_001);
      expect(await status(sdk.queues.get(id, { account_id: ACCOUNT }))).toBe(200);
      expect(limited.account.hits).toBe(1);
    } finally {
      await limited.stop();
    }
    const perSecond = await new FakeQueuesApi({ token: "tok", accountId: ACCOUNT, limit: { perSecond: 3 } }).start();
    try {
      const id = perSecond.addQueue("q");
      const sdk = new Cloudflare({ apiToken: "tok", baseURL: perSecond.baseURL, maxRetries: 0 });
      const codes = [];
      for (let i = 0; i < 4; i++) codes.push(await status(sdk.queues.get(id, { account_id: ACCOUNT })));
      expect(codes).toEqual([200, 200, 200, "429 971"]);
      perSecond.advance(1_001);
      expect(await status(sdk.queues.get(id, { account_id: ACCOUNT }))).toBe(200);
    } finally {
      await perSecond.stop();
    }
  });
});
