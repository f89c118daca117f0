// `npm run dead-letters` against the loopback fake of the Queues API, read and written by
// the real SDK: replay moves the events the ledger would record and acks them only after
// the push; leaves what it cannot replay; a failed push acks nothing; an interrupted run
// (push done, ack lost) is repeated safely, and the real ledger counts the duplicate once;
// --dry-run and list change nothing; bad flags and set-up exit 2 with a clear message and
// never print the token.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { FakeQueuesApi } from "../../../test/fakes/cloudflare-queues-api.ts";
import { startLocalLedger, WORKER_NAME } from "../../../workers/usage-ledger/local/miniflare.ts";
import { DEAD_LETTERS_EXIT, runDeadLetters } from "./cli.ts";
import { pushBatches } from "./events.ts";

const TOKEN = "cf-token-SECRET-4f9a";
const ACCOUNT = "acct-1";
const DLQ = "edgefleet-usage-dlq";
const USAGE = "edgefleet-usage";
const DAY = 86_400_000;
const VT = 600_000;

let fake: FakeQueuesApi;
let env: NodeJS.ProcessEnv;
/** When each test starts (the fake's clock): events are dated from it. */
let t0: number;

beforeEach(async () => {
  fake = new FakeQueuesApi({ token: TOKEN, accountId: ACCOUNT });
  await fake.start();
  // As pulumi up leaves them: the usage queue consumed by the ledger, the DLQ with its pull consumer.
  fake.addQueue(USAGE, { consumer: { type: "worker", scriptName: "edgefleet-usage-ledger", deadLetterQueue: DLQ, settings: { batch_size: 100, max_retries: 5 } } });
  fake.addQueue(DLQ, { retentionSeconds: 14 * 86_400, consumer: { type: "http_pull", settings: { max_retries: 100, visibility_timeout_ms: VT } } });
  env = { CLOUDFLARE_API_TOKEN: TOKEN, CLOUDFLARE_ACCOUNT_ID: ACCOUNT, CLOUDFLARE_API_BASE_URL: fake.baseURL };
  t0 = fake.now();
});
afterEach(() => fake.stop());

async function run(argv: string[], e: NodeJS.ProcessEnv = env) {
  let out = "";
  let err = "";
  const code = await runDeadLetters(argv, { out: (s) => (out += s), err: (s) => (err += s), env: e, now: () => fake.now(), maxRetries: 0, backlogSettleMs: 0 });
  // Never the token, whatever happened.
  expect(out + err).not.toContain(TOKEN);
  return { code, out, err };
}

const event = (i: number, o: { ts?: number; tenant?: string; usage?: object } = {}) => ({
  v: 1,
  request_id: `req_ef_${i}`,
  tenant: o.tenant ?? "t_acme",
  model: "claude-sonnet-4-5",
  ts: o.ts ?? t0 - 3600_000,
  status: 200,
  usage: { input_tokens: 100 + i, output_tokens: 10, cache_read_input_tokens: 0, cache_creation_input_tokens: 0, ...o.usage },
});

/** The DLQ as the failure paths leave it: events the ledger dead-lettered, and junk. */
function seedMixed() {
  fake.send(DLQ, event(1));
  fake.send(DLQ, event(2, { tenant: "t_globex" }));
  fake.send(DLQ, { ...event(3), v: 2 }); // not an event the ledger knows
  fake.send(DLQ, event(4, { ts: t0 - 91 * DAY })); // older than the 90-day call retention
  fake.send(DLQ, "hello", { contentType: "text" });
  fake.send(DLQ, Buffer.from([1, 2, 3]), { contentType: "v8" });
  fake.send(DLQ, event(5));
}

const usageBodies = () => fake.messages(USAGE).map((m) => m.body as { request_id: string });
const actions = () => fake.requests.map((r) => r.action);

describe("dead-letters replay", () => {
  it("pushes the events the ledger would record to the usage queue as json, acks only those, and leaves the rest in the DLQ, visible", async () => {
    seedMixed();
    const r = await run(["replay", "--json"]);
    expect(r.code).toBe(DEAD_LETTERS_EXIT.left);
    const j = JSON.parse(r.out);
    expect(j).toMatchObject({ dryRun: false, pulled: 7, replayed: 3, pushedNotAcked: 0, dropped: [], stoppedBy: "empty", remaining: 4, dlq: { name: DLQ, pullConsumer: { maxRetries: 100 } }, target: { name: USAGE } });
    expect(fake.messages(USAGE).map((m) => [m.contentType, m.body])).toEqual([
      ["json", event(1)],
      ["json", event(2, { tenant: "t_globex" })],
      ["json", event(5)],
    ]);
    // Left: not acked, and released, so visible at once (each spent one attempt).
    const left = fake.messages(DLQ);
    expect(left.map((m) => [m.contentType, m.attempts, m.leased])).toEqual([
      ["json", 1, false],
      ["json", 1, false],
      ["text", 1, false],
      ["v8", 1, false],
    ]);
    expect(j.left.map((m: { requestId: string | null; reason: string }) => [m.requestId, m.reason])).toEqual([
      ["req_ef_3", "invalid event: v: Invalid input: expected 1"],
      ["req_ef_4", "event older than the 90-day retention: cannot be deduplicated"],
      [null, "a text message: the ledger would read a string, not an event"],
      [null, "a v8 message: not JSON, so not an event (v8 bodies can only be read inside Workers)"],
    ]);
    expect(j.left[1]).toMatchObject({ tenant: "t_acme", model: "claude-sonnet-4-5", attempts: 1, attemptsLeft: 99, contentType: "json", body: event(4, { ts: t0 - 91 * DAY }) });
    // The push came before the ack.
    const a = actions().filter((x) => x === "pull" || x === "batch" || x === "ack");
    expect(a.slice(0, 3)).toEqual(["pull", "batch", "ack"]);
  });

  it("prints what it did and what it left, with reasons, and exits 0 when nothing is left", async () => {
    seedMixed();
    const first = await run(["replay"]);
    expect(first.out).toContain(`replayed 3 event(s) from ${DLQ} to ${USAGE} (pulled 7)`);
    expect(first.out).toMatch(/left 4 in edgefleet-usage-dlq/);
    expect(first.out).toMatch(/req_ef_4\s+│ t_acme\s+│ claude-sonnet-4-5\s+│ 91d 0h\s+│ 1 of 100\s+│ no: event older than the 90-day retention/);
    // Once only events are left, all are replayed and the exit code is 0.
    await run(["replay", "--drop-invalid"]);
    expect(fake.messages(DLQ)).toEqual([]);
    fake.send(DLQ, event(9));
    const clean = await run(["replay"]);
    expect(clean.code).toBe(DEAD_LETTERS_EXIT.ok);
    expect(clean.out).toContain("replayed 1 event(s)");
  });

  it("decodes base64 json bodies exactly: what is pushed is what the ledger sent, UTF-8 and extra usage fields included", async () => {
    const e = event(1, { usage: { service_tier: "standard", server_tool_use: { web_search_requests: 2 }, note: "café ☕ 计费" } });
    fake.send(DLQ, e);
    const r = await run(["replay", "--json"]);
    expect(r.code).toBe(DEAD_LETTERS_EXIT.ok);
    expect(usageBodies()).toEqual([e]);
    // The pull answer really was base64 (the fake encodes as Queues does).
    const list = await run(["list", "--json"]);
    expect(JSON.parse(list.out).messages).toEqual([]);
  });

  it("acks nothing when the push fails: the events stay in the DLQ, released, and the next run moves them", async () => {
    fake.send(DLQ, event(1));
    fake.send(DLQ, event(2));
    fake.failNext({ status: 503, code: 15000, action: "batch", message: "Unknown error" });
    const r = await run(["replay"]);
    expect(r.code).toBe(DEAD_LETTERS_EXIT.failed);
    expect(r.err).toContain(`pushing 2 event(s) to ${USAGE} failed; none of them was acked`);
    expect(r.err).toContain("the Cloudflare API answered 503: 15000 Unknown error");
    // No ack; their leases released (the ack endpoint's `retries`), so they are visible again.
    const acks = fake.requests.filter((q) => q.action === "ack").map((q) => q.body as { acks?: unknown[]; retries?: unknown[] });
    expect(acks.flatMap((b) => b.acks ?? [])).toEqual([]);
    expect(acks.flatMap((b) => b.retries ?? [])).toHaveLength(2);
    expect(fake.messages(USAGE)).toEqual([]);
    expect(fake.messages(DLQ).map((m) => [m.attempts, m.leased])).toEqual([
      [1, false],
      [1, false],
    ]);
    const again = await run(["replay"]);
    expect(again.code).toBe(DEAD_LETTERS_EXIT.ok);
    expect(usageBodies().map((b) => b.request_id)).toEqual(["req_ef_1", "req_ef_2"]);
    expect(fake.messages(DLQ)).toEqual([]);
  });

  it("an ack lost after the push (a crash between the two): the rerun pushes again, the DLQ ends empty, and the real ledger counts each event once", async () => {
    for (let i = 1; i <= 3; i++) fake.send(DLQ, event(i));
    fake.failNext({ status: 500, code: 15000, action: "ack" });
    const r = await run(["replay", "--json"]);
    expect(r.code).toBe(DEAD_LETTERS_EXIT.failed);
    expect(JSON.parse(r.out)).toMatchObject({ replayed: 0, pushedNotAcked: 3, stoppedBy: "error" });
    expect(r.err).toContain("3 event(s) were pushed to edgefleet-usage but their ack failed; they come back after the visibility timeout and a rerun pushes them again, which the ledger counts once");
    expect(usageBodies()).toHaveLength(3);
    // A rerun before the timeout finds them in flight, and says so.
    const metricsBefore = fake.requests.filter((x) => x.action === "metrics").length;
    const early = await run(["replay", "--json"]);
    // Not a clean run: the events are still in the DLQ, unrecorded. The backlog was read
    // before the run, after it, and once more (best-effort: not believed at first sight).
    expect(early.code).toBe(DEAD_LETTERS_EXIT.left);
    expect(JSON.parse(early.out)).toMatchObject({ replayed: 0, remaining: 3, inFlight: 3 });
    expect(fake.requests.filter((x) => x.action === "metrics").length - metricsBefore).toBe(3);
    const earlyText = await run(["replay"]);
    expect(earlyText.code).toBe(DEAD_LETTERS_EXIT.left);
    expect(earlyText.out).toContain("replayed 0 event(s)");
    expect(earlyText.out).toContain("3 more message(s) are in edgefleet-usage-dlq but in flight");
    fake.advance(VT);
    const again = await run(["replay"]);
    expect(again.code).toBe(DEAD_LETTERS_EXIT.ok);
    expect(again.out).toContain("replayed 3 event(s)");
    expect(fake.messages(DLQ)).toEqual([]);
    const pushed = fake.messages(USAGE);
    expect(pushed.map((m) => (m.body as { request_id: string }).request_id)).toEqual(["req_ef_1", "req_ef_2", "req_ef_3", "req_ef_1", "req_ef_2", "req_ef_3"]);

    // The usage queue delivers both copies to the real ledger (two batches, as Queues would).
    const { mf, db } = await startLocalLedger({ onLog: () => {} });
    try {
      const w = await mf.getWorker(WORKER_NAME);
      const deliver = (ms: typeof pushed) => w.queue(USAGE, ms.map((m) => ({ id: m.id, timestamp: new Date(m.timestampMs), attempts: 1, body: m.body })));
      await deliver(pushed.slice(0, 3));
      await deliver(pushed.slice(3));
      const calls = await db.prepare("SELECT COUNT(*) AS n FROM calls").first<{ n: number }>();
      const daily = await db.prepare("SELECT SUM(calls) AS calls, SUM(input_tokens) AS input FROM usage_daily").first<{ calls: number; input: number }>();
      expect(calls?.n).toBe(3);
      expect(daily).toEqual({ calls: 3, input: 101 + 102 + 103 });
    } finally {
      await mf.dispose();
    }
  });

  it("a push whose answer was lost (the events did arrive) acks nothing; the rerun pushes again", async () => {
    fake.send(DLQ, event(1));
    fake.failNext({ status: 502, code: 15000, action: "batch", applied: true });
    const r = await run(["replay"]);
    expect(r.code).toBe(DEAD_LETTERS_EXIT.failed);
    expect(usageBodies()).toHaveLength(1);
    // Not acked, and released: visible again at once.
    expect(fake.messages(DLQ).map((m) => m.leased)).toEqual([false]);
    expect((await run(["replay"])).code).toBe(DEAD_LETTERS_EXIT.ok);
    expect(usageBodies().map((b) => b.request_id)).toEqual(["req_ef_1", "req_ef_1"]);
    expect(fake.messages(DLQ)).toEqual([]);
  });

  it("loops batch by batch until the DLQ is empty, or stops at --limit", async () => {
    for (let i = 0; i < 250; i++) fake.send(DLQ, event(i));
    const limited = await run(["replay", "--limit", "150", "--json"]);
    expect(limited.code).toBe(DEAD_LETTERS_EXIT.ok);
    expect(JSON.parse(limited.out)).toMatchObject({ pulled: 150, replayed: 150, stoppedBy: "limit", remaining: 100 });
    expect(fake.requests.filter((x) => x.action === "pull").map((x) => (x.body as { batch_size: number }).batch_size)).toEqual([100, 50]);
    // The rest was not pulled because of --limit, not leased elsewhere: never called in flight.
    expect((await run(["replay", "--limit", "10"])).out).not.toContain("in flight");
    const rest = await run(["replay", "--batch-size", "40", "--json"]);
    expect(JSON.parse(rest.out)).toMatchObject({ pulled: 90, replayed: 90, stoppedBy: "empty", remaining: 0 });
    expect(usageBodies()).toHaveLength(250);
    expect(new Set(usageBodies().map((b) => b.request_id)).size).toBe(250);
  });

  it("does not push a request id twice in one run: a later copy (a duplicate, or the ledger dead-lettering the replay again) is left", async () => {
    fake.send(DLQ, event(1));
    fake.send(DLQ, event(2));
    fake.send(DLQ, event(1));
    const r = await run(["replay", "--batch-size", "1", "--json"]);
    expect(r.code).toBe(DEAD_LETTERS_EXIT.left);
    expect(usageBodies().map((b) => b.request_id)).toEqual(["req_ef_1", "req_ef_2"]);
    expect(JSON.parse(r.out).left).toEqual([expect.objectContaining({ requestId: "req_ef_1", reason: expect.stringContaining("its request_id was already replayed by this run") })]);
    // A later run pushes it (the ledger counts it once).
    const again = await run(["replay"]);
    expect(again.code).toBe(DEAD_LETTERS_EXIT.ok);
    expect(fake.messages(DLQ)).toEqual([]);
  });

  it("splits pushes at Queues' 256 KB per batch (large events are pushed whole)", async () => {
    // ~60 KB each (extra usage fields are kept): four fit a push, the fifth goes in the next.
    for (let i = 0; i < 5; i++) fake.send(DLQ, event(i, { usage: { padding: "x".repeat(60_000) } }));
    const r = await run(["replay"]);
    expect(r.code).toBe(DEAD_LETTERS_EXIT.ok);
    const pushes = fake.requests.filter((x) => x.action === "batch").map((x) => (x.body as { messages: unknown[] }).messages.length);
    expect(pushes).toEqual([4, 1]);
    expect(usageBodies()).toHaveLength(5);
    expect(pushBatches(Array.from({ length: 250 }, () => ({ pushBytes: 400 }))).map((b) => b.length)).toEqual([100, 100, 50]);
  });

  it("--drop-invalid acks what it cannot replay, after printing each whole to stderr", async () => {
    seedMixed();
    const r = await run(["replay", "--drop-invalid", "--json"]);
    expect(r.code).toBe(DEAD_LETTERS_EXIT.ok);
    expect(JSON.parse(r.out)).toMatchObject({ replayed: 3, left: [] });
    expect(JSON.parse(r.out).dropped).toHaveLength(4);
    expect(fake.messages(DLQ)).toEqual([]);
    expect(r.err).toContain('dead-letters: dropping message');
    expect(r.err).toMatch(/dropping message [0-9a-f]{32} \(invalid event: v: Invalid input: expected 1\): \{"v":2,"request_id":"req_ef_3","tenant":"t_acme",.*\}\n/);
    expect(r.err).toContain('"hello"');
  });

  it("--drop-invalid drops only what no run can ever replay: an event from the future, or one the ledger sent back during the run, stays", async () => {
    fake.send(DLQ, event(1));
    fake.send(DLQ, { junk: 1 });
    fake.send(DLQ, event(1)); // the same request_id again: a duplicate, or the ledger sent it back
    fake.send(DLQ, event(2, { ts: t0 + 3 * 3600_000 })); // a clock ahead of the ledger's
    const r = await run(["replay", "--drop-invalid", "--batch-size", "1", "--json"]);
    const j = JSON.parse(r.out);
    expect(r.code).toBe(DEAD_LETTERS_EXIT.left);
    expect(j.replayed).toBe(1);
    expect(j.dropped.map((m: { body: unknown }) => m.body)).toEqual([{ junk: 1 }]);
    expect(j.left.map((m: { requestId: string; reason: string }) => [m.requestId, m.reason])).toEqual([
      ["req_ef_1", expect.stringMatching(/^its request_id was already replayed by this run/)],
      ["req_ef_2", "event from the future (ts more than an hour ahead)"],
    ]);
    expect(fake.messages(DLQ).map((m) => (m.body as { request_id: string }).request_id)).toEqual(["req_ef_1", "req_ef_2"]);
    expect(r.err).not.toContain("req_ef_1");
  });

  it("a push that fails on an event's last attempt: the event is listed as deleted by Cloudflare, with its body whole (the only copy)", async () => {
    fake.send(DLQ, event(7), { attempts: 99 });
    fake.failNext({ status: 503, code: 15000, action: "batch", message: "Unknown error" });
    const r = await run(["replay"]);
    expect(r.code).toBe(DEAD_LETTERS_EXIT.failed);
    expect(r.err).toMatch(/message [0-9a-f]{32} was pulled on its last attempt \(100 of 100\) and Cloudflare deletes it now \([^)]*\)\. Its body: \{[^\n]*"request_id":"req_ef_7"/);
    expect(fake.messages(DLQ)).toEqual([]);
    expect(fake.messages(USAGE)).toEqual([]);
  });

  it("releases what it left in requests of at most 100 leases, like every other ack", async () => {
    for (let i = 0; i < 150; i++) fake.send(DLQ, { junk: i });
    const r = await run(["replay"]);
    expect(r.code).toBe(DEAD_LETTERS_EXIT.left);
    const releases = fake.requests.filter((q) => q.action === "ack").map((q) => ((q.body as { retries?: unknown[] }).retries ?? []).length);
    expect(releases).toEqual([100, 50]);
    expect(fake.messages(DLQ).filter((m) => m.leased)).toEqual([]);
    expect(r.out).toContain("visible again now");
  });

  it("says which messages Cloudflare deletes because this run's pull was their last attempt, with each body whole, and does not count them as still there", async () => {
    fake.send(DLQ, { junk: "last" }, { attempts: 99 });
    fake.send(DLQ, { junk: "more" }, { attempts: 10 });
    const r = await run(["replay"]);
    expect(r.code).toBe(DEAD_LETTERS_EXIT.left);
    expect(r.out).toMatch(/left 1 in edgefleet-usage-dlq/);
    expect(r.err).toMatch(/message [0-9a-f]{32} was pulled on its last attempt \(100 of 100\) and Cloudflare deletes it now \(invalid event: [^)]*\)\. Its body: \{"junk":"last"\}/);
    expect(r.out).not.toContain("in flight");
    expect(fake.messages(DLQ).map((m) => m.body)).toEqual([{ junk: "more" }]);
    const j = JSON.parse((await run(["replay", "--json"])).out);
    expect(j.deletedByCloudflare).toEqual([]);
  });

  it("reads a null result (an empty pull, an ack) as nothing, not as a failure: the docs' \"empty response\", an earlier SDK's `| null`", async () => {
    await fake.stop();
    fake = new FakeQueuesApi({ token: TOKEN, accountId: ACCOUNT, nullResults: true });
    await fake.start();
    fake.addQueue(USAGE, { consumer: { type: "worker", scriptName: "edgefleet-usage-ledger", deadLetterQueue: DLQ, settings: { batch_size: 100, max_retries: 5 } } });
    fake.addQueue(DLQ, { retentionSeconds: 14 * 86_400, consumer: { type: "http_pull", settings: { max_retries: 100, visibility_timeout_ms: VT } } });
    env = { ...env, CLOUDFLARE_API_BASE_URL: fake.baseURL };
    fake.send(DLQ, event(1));
    const r = await run(["replay"]);
    expect(r.err).toBe("");
    expect(r.code).toBe(DEAD_LETTERS_EXIT.ok);
    expect(usageBodies().map((b) => b.request_id)).toEqual(["req_ef_1"]);
    expect(fake.messages(DLQ)).toEqual([]);
    const empty = await run(["replay"]);
    expect(empty.code).toBe(DEAD_LETTERS_EXIT.ok);
    expect(empty.out).toMatch(/replayed 0 event/);
  });

  it("replays json bodies that the pull answer carries as JSON text, not base64 (the pull docs' own example shows one so)", async () => {
    await fake.stop();
    fake = new FakeQueuesApi({ token: TOKEN, accountId: ACCOUNT, jsonBodies: "plain" });
    await fake.start();
    fake.addQueue(USAGE, { consumer: { type: "worker", scriptName: "edgefleet-usage-ledger", deadLetterQueue: DLQ, settings: { batch_size: 100, max_retries: 5 } } });
    fake.addQueue(DLQ, { retentionSeconds: 14 * 86_400, consumer: { type: "http_pull", settings: { max_retries: 100, visibility_timeout_ms: VT } } });
    env = { ...env, CLOUDFLARE_API_BASE_URL: fake.baseURL };
    fake.send(DLQ, event(1));
    fake.send(DLQ, event(2));
    const r = await run(["replay"]);
    expect(r.code).toBe(DEAD_LETTERS_EXIT.ok);
    expect(usageBodies()).toEqual([event(1), event(2)]);
  });

  it("stops when a pull brings back only what this run already left (their timeout passed), and warns about messages near their last attempt", async () => {
    fake.send(DLQ, { junk: 1 });
    fake.send(DLQ, { junk: 2 }, { attempts: 97 });
    // Each request moves the clock 700 ms; a 1 s timeout ends during the run.
    fake.tickMs = 700;
    const r = await run(["replay", "--batch-size", "1", "--visibility-timeout", "1"]);
    expect(r.code).toBe(DEAD_LETTERS_EXIT.left);
    expect(r.out).toContain("stopped: the messages pulled last had been left earlier in this run");
    expect(r.out).toMatch(/WARNING: message [0-9a-f]{32} has used 98 of its 100 attempts; Cloudflare deletes it when they are spent \(each pull is one\)\. Its body: \{"junk":2\}/);
    // The first one was pulled twice in the run (once to judge it, once on the way out), never more.
    expect(fake.messages(DLQ).map((m) => m.attempts)).toEqual([2, 98]);
  });

  it("a message this run left, pulled again on its last attempt (the run outlasted its visibility timeout), is reported as deleted, not as still there", async () => {
    fake.send(DLQ, { junk: "a" }, { attempts: 98 });
    fake.send(DLQ, { junk: "b" });
    fake.tickMs = 700;
    const r = await run(["replay", "--batch-size", "1", "--visibility-timeout", "1"]);
    expect(r.code).toBe(DEAD_LETTERS_EXIT.left);
    expect(r.out).toContain("left 1 in edgefleet-usage-dlq");
    expect(r.err).toMatch(/was pulled on its last attempt \(100 of 100\) and Cloudflare deletes it now \([^)]*\)\. Its body: \{"junk":"a"\}/);
    // Released with the lease of its last pull: gone, as reported; the other is still there.
    expect(fake.messages(DLQ).map((m) => m.body)).toEqual([{ junk: "b" }]);
  });
});

describe("dead-letters replay --dry-run and list", () => {
  it("--dry-run pulls nothing: the fake's state is identical, and it says what a replay would do", async () => {
    seedMixed();
    const before = fake.snapshot();
    const r = await run(["replay", "--dry-run"]);
    expect(r.code).toBe(DEAD_LETTERS_EXIT.left);
    expect(fake.snapshot()).toBe(before);
    expect(actions().filter((a) => a === "pull" || a === "ack" || a === "batch" || a === "push")).toEqual([]);
    expect(r.out).toContain("dry run: a replay would send 3 of these 7 to the usage queue and leave 4; nothing was pulled, pushed or acked");
    const j = JSON.parse((await run(["replay", "--dry-run", "--json"])).out);
    expect(j).toMatchObject({ dryRun: true, shown: 7, wouldReplay: 3, wouldLeave: 4, dlq: { backlog: 7, retentionDays: 14 } });
    expect(fake.snapshot()).toBe(before);
    // Only events: exit 0.
    await run(["replay", "--drop-invalid"]);
    fake.send(DLQ, event(8));
    expect((await run(["replay", "--dry-run"])).code).toBe(DEAD_LETTERS_EXIT.ok);
  });

  it("list shows each dead letter (request id, tenant, model, age, attempts) and whether a replay would send it, spending nothing", async () => {
    seedMixed();
    const before = fake.snapshot();
    const r = await run(["list"]);
    expect(r.code).toBe(DEAD_LETTERS_EXIT.ok);
    expect(fake.snapshot()).toBe(before);
    expect(r.out).toContain(`${DLQ}: 7 message(s); messages kept 14 days; HTTP pull consumer, max_retries 100`);
    expect(r.out).toMatch(/req_ef_1\s+│ t_acme\s+│ claude-sonnet-4-5\s+│ 1h 0m\s+│ 0 of 100\s+│ yes/);
    expect(r.out).toMatch(/req_ef_4\s+│ t_acme\s+│ claude-sonnet-4-5\s+│ 91d 0h\s+│ 0 of 100\s+│ no: event older than the 90-day retention/);
    expect(r.out).toContain("3 would be replayed, 4 left");
    const j = JSON.parse((await run(["list", "--json", "--limit", "2"])).out);
    expect(j).toMatchObject({ dlq: { name: DLQ, backlog: 7, retentionDays: 14, pullConsumer: { maxRetries: 100, visibilityTimeoutMs: VT } }, retentionDays: 90, shown: 2, wouldReplay: 2, wouldLeave: 0 });
    expect(j.messages[0]).toEqual({
      id: expect.stringMatching(/^[0-9a-f]{32}$/),
      action: "replay",
      requestId: "req_ef_1",
      tenant: "t_acme",
      model: "claude-sonnet-4-5",
      eventTs: event(1).ts,
      eventAgeSeconds: expect.toSatisfy((s: number) => s >= 3600 && s < 3660),
      enqueuedAt: expect.stringMatching(/^\d{4}-\d{2}-\d{2}T/),
      attempts: 0,
      attemptsLeft: 100,
      contentType: "json",
      body: event(1),
    });
  });

  it("never prints a hostile body's control or bidi characters raw (ids, a reason naming an unknown key, dropped bodies)", async () => {
    fake.send(DLQ, { request_id: "\u001b[2J\u001b[31mgotcha", tenant: "t\u0007", model: 5 });
    fake.send(DLQ, { ...event(1), ["\u001b[31mX\u202e"]: 1 });
    const r = await run(["list"]);
    expect(r.out).toMatch(/│ -\s+│ -\s+│ -\s+│/);
    expect(r.out).toContain("no: invalid event: (body): Unrecognized key: \"\\u001b[31mX\\u202e\"");
    // --json escapes what JSON.stringify would leave raw (bidi marks), and still parses back.
    const j = await run(["list", "--json"]);
    expect(JSON.parse(j.out).messages[1].body).toEqual({ ...event(1), ["\u001b[31mX\u202e"]: 1 });
    const dropped = await run(["replay", "--drop-invalid"]);
    for (const text of [r.out, r.err, j.out, dropped.out, dropped.err]) {
      expect(text).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u202e]/);
    }
    expect(dropped.err).toContain("dropping message");
  });
});

describe("dead-letters check (the DLQ alert)", () => {
  it("an empty DLQ: exit 0, and it reads only the queue and its metrics (no peek, no pull)", async () => {
    const r = await run(["check"]);
    expect(r.code).toBe(DEAD_LETTERS_EXIT.ok);
    expect(r.out).toBe(`${DLQ}: 0 dead letter(s), 0 bytes; retention 14 days\nnothing to replay\n`);
    expect(r.err).toBe("");
    expect(actions()).toEqual(["list", "metrics"]);
    const j = JSON.parse((await run(["check", "--json"])).out);
    expect(j).toMatchObject({ dlq: { name: DLQ }, backlog: 0, alert: false, urgent: false, oldestSentAt: null, oldestDeletedAt: null, retentionSeconds: 14 * 86_400 });
  });

  it("dead letters: exit 4, the alert on stderr names the count and when Cloudflare deletes the oldest; nothing changes", async () => {
    const sent = t0 - 3 * 3600_000;
    fake.send(DLQ, event(1), { timestampMs: sent });
    fake.send(DLQ, event(2), { timestampMs: t0 - 60_000 });
    fake.send(DLQ, event(3), { timestampMs: t0 - 30_000 });
    const before = fake.snapshot();
    const r = await run(["check"]);
    expect(r.code).toBe(DEAD_LETTERS_EXIT.alert);
    expect(fake.snapshot()).toBe(before);
    expect(r.out).toMatch(new RegExp(`^${DLQ}: 3 dead letter\\(s\\), \\d+ bytes, the oldest sent 3h 0m ago; retention 14 days\\n$`));
    const deletes = new Date(sent + 14 * DAY).toISOString();
    // The fake's clock moves a little with each request: the countdown is just under 13d 21h.
    expect(r.err).toContain(`ALERT: 3 usage event(s) in ${DLQ} (more than --max-backlog 0): calls the ledger has not recorded; Cloudflare deletes the oldest at ${deletes}, in 13d 20h.`);
    expect(r.err).not.toContain("URGENT");
    expect(r.err).toContain("npm run dead-letters -- list");
    const j = JSON.parse((await run(["check", "--json"])).out);
    expect(j).toMatchObject({ backlog: 3, maxBacklog: 0, alert: true, urgent: false, oldestSentAt: new Date(sent).toISOString(), oldestDeletedAt: deletes, retentionFromDefault: false });
    expect(j.oldestAgeSeconds).toBeGreaterThanOrEqual(3 * 3600);
    expect(j.oldestAgeSeconds + j.oldestDeletedInSeconds).toBeGreaterThanOrEqual(14 * 86_400 - 1);
    expect(j.oldestAgeSeconds + j.oldestDeletedInSeconds).toBeLessThanOrEqual(14 * 86_400);
    expect(j.backlogBytes).toBeGreaterThan(0);
    // Leased messages are still unacknowledged: a pull does not hide them from the check.
    await run(["replay", "--limit", "1", "--dry-run"]);
    expect((await run(["check", "--max-backlog", "2"])).code).toBe(DEAD_LETTERS_EXIT.alert);
  });

  it("--max-backlog tolerates a few; over it, the alert", async () => {
    for (let i = 0; i < 3; i++) fake.send(DLQ, event(i));
    const within = await run(["check", "--max-backlog", "3"]);
    expect(within.code).toBe(DEAD_LETTERS_EXIT.ok);
    expect(within.out).toContain("within --max-backlog 3");
    fake.send(DLQ, event(9));
    expect((await run(["check", "--max-backlog", "3"])).code).toBe(DEAD_LETTERS_EXIT.alert);
  });

  it("urgent within 48 hours of the oldest's deletion, with the DLQ's own retention", async () => {
    fake.send(DLQ, event(1), { timestampMs: t0 - 13 * DAY });
    const r = await run(["check"]);
    expect(r.code).toBe(DEAD_LETTERS_EXIT.alert);
    expect(r.err).toContain("URGENT: ALERT: 1 usage event(s)");
    expect(r.err).toContain("in 23h 59m.");

    // A DLQ created without a retention: Cloudflare keeps messages 4 days (the API then
    // reports message_retention_period 345600, as the fake does).
    const bare = new FakeQueuesApi({ token: TOKEN, accountId: ACCOUNT });
    await bare.start();
    try {
      bare.addQueue(USAGE, { consumer: { type: "worker", scriptName: "edgefleet-usage-ledger", deadLetterQueue: DLQ } });
      bare.addQueue(DLQ, { consumer: { type: "http_pull" } });
      bare.send(DLQ, event(2), { timestampMs: fake.now() - 3 * DAY });
      const e = { ...env, CLOUDFLARE_API_BASE_URL: bare.baseURL };
      const d = await run(["check", "--json"], e);
      expect(d.code).toBe(DEAD_LETTERS_EXIT.alert);
      const j = JSON.parse(d.out);
      expect(j).toMatchObject({ alert: true, urgent: true, retentionSeconds: 4 * 86_400 });
      expect(j.oldestDeletedInSeconds).toBeGreaterThan(86_400 - 60);
      expect(j.oldestDeletedInSeconds).toBeLessThanOrEqual(86_400);
      const text = await run(["check"], e);
      expect(text.out).toContain("retention 4 days\n");
      expect(text.err).toContain("URGENT");
    } finally {
      await bare.stop();
    }
  });

  it("a failed metrics call is exit 1, never an all-clear", async () => {
    fake.send(DLQ, event(1));
    fake.failNext({ status: 500, code: 10001, message: "Internal error", action: "metrics" });
    const r = await run(["check"]);
    expect(r.code).toBe(DEAD_LETTERS_EXIT.failed);
    expect(r.out).toBe("");
    expect(r.err).toMatch(/^dead-letters: the Cloudflare API answered 500/);
  });

  it("says the token needs Queues Read, and refuses a bad --max-backlog before any request", async () => {
    const r = await run(["check"], { CLOUDFLARE_API_BASE_URL: fake.baseURL, CLOUDFLARE_ACCOUNT_ID: ACCOUNT });
    expect(r.code).toBe(DEAD_LETTERS_EXIT.usage);
    expect(r.err).toBe("dead-letters: needs CLOUDFLARE_API_TOKEN (environment only, never a flag; Queues Read)\n");
    for (const bad of ["-1", "x", "1.5"]) {
      const b = await run(["check", "--max-backlog", bad]);
      expect(b.code).toBe(DEAD_LETTERS_EXIT.usage);
      expect(b.err).toContain("--max-backlog");
    }
    expect(actions()).toEqual([]);
  });
});

describe("dead-letters: bad command lines and set-up", () => {
  it("exits 2 with a clear message for bad flags, before any request", async () => {
    const cases: [string[], RegExp][] = [
      [["replay", "--limit", "0"], /--limit must be an integer >= 1/],
      [["replay", "--batch-size", "101"], /--batch-size must be an integer from 1 to 100/],
      [["replay", "--visibility-timeout", "43201"], /--visibility-timeout must be an integer from 1 to 43200/],
      [["list", "--limit", "500"], /--limit must be an integer from 1 to 100/],
      [["replay", "--nope"], /unknown option '--nope'/],
      [["replay", "extra"], /too many arguments/],
      [["purge"], /unknown command 'purge'/],
      [[], /Usage: dead-letters/],
      [["replay", "--dry-run", "--drop-invalid"], /--dry-run drops nothing/],
    ];
    for (const [argv, message] of cases) {
      const r = await run(argv);
      expect(r.code, argv.join(" ")).toBe(DEAD_LETTERS_EXIT.usage);
      expect(r.err, argv.join(" ")).toMatch(message);
    }
    expect(fake.requests).toEqual([]);
    expect((await run(["--help"])).code).toBe(DEAD_LETTERS_EXIT.ok);
  });

  it("needs the token from the environment and an account, and says which is missing", async () => {
    const r = await run(["replay"], { CLOUDFLARE_API_BASE_URL: fake.baseURL });
    expect(r.code).toBe(DEAD_LETTERS_EXIT.usage);
    expect(r.err).toBe("dead-letters: needs CLOUDFLARE_API_TOKEN (environment only, never a flag; Queues Read and Edit); --account-id or CLOUDFLARE_ACCOUNT_ID\n");
    const flag = await run(["list", "--account-id", ACCOUNT], { ...env, CLOUDFLARE_ACCOUNT_ID: undefined });
    expect(flag.code).toBe(DEAD_LETTERS_EXIT.ok);
  });

  it("a wrong token or account is an API failure (exit 1) that names the answer, never the token", async () => {
    const r = await run(["list"], { ...env, CLOUDFLARE_API_TOKEN: "wrong-token" });
    expect(r.code).toBe(DEAD_LETTERS_EXIT.failed);
    expect(r.err).toBe("dead-letters: the Cloudflare API answered 403: 10000 Authentication error\n");
    expect(r.err).not.toContain("wrong-token");
    const other = await run(["list", "--account-id", "someone-else"]);
    expect(other.code).toBe(DEAD_LETTERS_EXIT.failed);
  });

  it("refuses to replay a DLQ without its HTTP pull consumer, or a missing queue (exit 2); list still works", async () => {
    const bare = new FakeQueuesApi({ token: TOKEN, accountId: ACCOUNT });
    await bare.start();
    try {
      bare.addQueue(USAGE, { consumer: { type: "worker", scriptName: "edgefleet-usage-ledger", deadLetterQueue: DLQ } });
      const e = { ...env, CLOUDFLARE_API_BASE_URL: bare.baseURL };
      const missing = await run(["list"], e);
      expect(missing.code).toBe(DEAD_LETTERS_EXIT.usage);
      expect(missing.err).toBe(`dead-letters: queue '${DLQ}' does not exist in account ${ACCOUNT} (pulumi up creates it with the ledger)\n`);
      bare.addQueue(DLQ, { consumer: { type: "worker", scriptName: "someone" } });
      const r = await run(["replay"], e);
      expect(r.code).toBe(DEAD_LETTERS_EXIT.usage);
      expect(r.err).toContain(`queue '${DLQ}' has no HTTP pull consumer, so it cannot be pulled: pulumi up declares it (queue/${DLQ}/pull-consumer, max_retries 100)`);
      expect(r.err).toContain("it has a Worker consumer, someone: the DLQ edgefleet declares has only the pull consumer");
      expect(bare.requests.map((x) => x.action)).not.toContain("pull");
      const l = await run(["list"], e);
      expect(l.code).toBe(DEAD_LETTERS_EXIT.ok);
      expect(l.out).toContain("no HTTP pull consumer (replay needs it: pulumi up declares it)");
    } finally {
      await bare.stop();
    }
  });

  it("reads the call retention from the inventory's metering.yaml, and refuses an invalid one, located", async () => {
    fake.send(DLQ, event(1, { ts: t0 - 20 * DAY }));
    const dir = mkdtempSync(join(tmpdir(), "dead-letters-"));
    try {
      // A 15-day retention keeps the dead-letter queue under 15 - 4 days (metering.ts).
      const meteringText = (days: number) => `prices:\n  currency: USD\n  as_of: "2026-11-27"\n  source: test\n  models:\n    claude-sonnet-4-5: { input: "3", cache_write_5m: "3.75", cache_write_1h: "6", cache_read: "0.30", output: "15" }\nledger:\n  call_retention_days: ${days}\n  dead_letter_retention_days: 10\narchive:\n  retention_days: 7\n`;
      mkdirSync(join(dir, "short"));
      writeFileSync(join(dir, "short", "metering.yaml"), meteringText(15));
      const short = JSON.parse((await run(["list", "--json", "--inventory", join(dir, "short")])).out);
      expect(short.messages[0]).toMatchObject({ action: "leave", reason: "event older than the 15-day retention: cannot be deduplicated" });
      expect(JSON.parse((await run(["list", "--json"])).out).messages[0]).toMatchObject({ action: "replay" });
      mkdirSync(join(dir, "bad"));
      writeFileSync(join(dir, "bad", "metering.yaml"), meteringText(3));
      const bad = await run(["replay", "--inventory", join(dir, "bad")]);
      expect(bad.code).toBe(DEAD_LETTERS_EXIT.usage);
      expect(bad.err).toMatch(/metering\.yaml:8:24: ledger\.call_retention_days: at least 15/);
      expect(fake.requests).toEqual(expect.not.arrayContaining([expect.objectContaining({ action: "pull" })]));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

