// Issue 16's producer and archive, in workerd against the fake upstream: one usage event
// per billable call through the real Queue (valid against the ledger's schema), none for
// what is not billed; a stream the client abandons is metered and archived as far as it
// went; the archive holds exactly what was sent and what the client got, only for tenants
// who opted in, cut at ARCHIVE_MAX_BYTES and marked; METERING=off sends and archives
// nothing; a Queue or R2 that fails never fails the call.
import type { R2Bucket } from "@cloudflare/workers-types";
import { describe, expect, it } from "vitest";
import { SEND_RETRY_MS } from "../../shared/queue-send.ts";
import { UsageEventSchema } from "../../shared/usage-event.ts";
import { frame, message, messageEvents, MODEL, overloadedEvent, serverToolEvents, SseProbe, type SseEvent } from "./fake-anthropic.ts";
import { Harness, useHarness, MESSAGE, STREAM } from "./harness.ts";
import { kvKeyFor, sha256Hex } from "../src/tenant-record.ts";

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const split = { input_tokens: 120, output_tokens: 33, cache_creation_input_tokens: 30, cache_read_input_tokens: 900, cache_creation: { ephemeral_5m_input_tokens: 10, ephemeral_1h_input_tokens: 20 } };

async function bucket(h: Harness): Promise<R2Bucket> {
  return (await h.mf.getR2Bucket("ARCHIVE", "llm-proxy")) as unknown as R2Bucket;
}

/** Every archived object's key under a prefix. */
async function keys(h: Harness, prefix: string): Promise<string[]> {
  return (await (await bucket(h)).list({ prefix })).objects.map((o) => o.key).sort();
}

/** Polls R2 until the object exists (its write runs after the response). */
async function object(h: Harness, key: string) {
  const b = await bucket(h);
  for (let i = 0; i < 500; i++) {
    const o = await b.get(key);
    if (o !== null) return { text: await o.text(), meta: o.customMetadata ?? {}, contentType: o.httpMetadata?.contentType };
    await sleep(10);
  }
  throw new Error(`nothing archived at ${key}`);
}

const day = () => new Date().toISOString().slice(0, 10);

describe("usage events (METERING on, the default)", () => {
  let h: Harness;
  let key: string;
  let tenant: string;
  useHarness(
    { BUFFER_BODY_BYTES: "65536" },
    async (started) => {
      h = started;
      ({ key, id: tenant } = await h.tenant());
    },
    { reset: true },
  );

  it("a JSON call sends one event: the call's request id, tenant, model, status and Anthropic's usage with its TTL split", async () => {
    h.fake.enqueue({ kind: "json", body: message("hi", split as never) });
    const r = await h.call("/v1/messages", { key, body: '{"model":"claude-sonnet-5-5","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}' });
    expect(r.status).toBe(200);
    const id = r.headers.get("edgefleet-request-id")!;
    const e = await h.eventFor(id);
    expect(UsageEventSchema.parse(e)).toEqual(e);
    expect(e).toMatchObject({ v: 1, request_id: id, tenant, model: MODEL, status: 200, usage: split });
    expect(e.ts as number).toBeLessThanOrEqual(Date.now());
  });

  it("an event's ts is when the call came in, not when its stream ended: the ledger files it under the day its budget reserved in", async () => {
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    // The stream's last events wait until the test has seen time pass after sending.
    h.fake.enqueue({ kind: "sse", events: messageEvents(["Hello", ", world"]), before: (i) => (i >= 2 ? held : Promise.resolve()) });
    const sent = Date.now();
    const pending = h.call("/v1/messages", { key, body: STREAM });
    await new Promise((r) => setTimeout(r, 300));
    const late = Date.now();
    release();
    const r = await pending;
    expect(r.status).toBe(200);
    const e = await h.eventFor(r.headers.get("edgefleet-request-id")!);
    expect(e.ts as number).toBeGreaterThanOrEqual(sent);
    expect(e.ts as number).toBeLessThan(late);
  });

  it("concurrent calls each send exactly one event (the isolate sends them in batches with sendBatch)", async () => {
    const n = 150; // more than one sendBatch's 100 messages
    const calls = await Promise.all(Array.from({ length: n }, () => h.call("/v1/messages", { key, body: MESSAGE })));
    expect(calls.every((c) => c.status === 200)).toBe(true);
    const ids = calls.map((c) => c.headers.get("edgefleet-request-id")!);
    const events = await h.eventsUntil((es) => es.length >= n);
    await new Promise((r) => setTimeout(r, 200)); // a duplicate would arrive by now
    const got = h.events.map((e) => e.request_id as string);
    expect(got.length).toBe(n);
    expect(new Set(got)).toEqual(new Set(ids));
    expect(events.every((e) => e.tenant === tenant)).toBe(true);
  });

  it("a stream's event has message_start's input and cache counts and message_delta's output", async () => {
    h.fake.enqueue({ kind: "sse", events: messageEvents(["a", "b"], split as never) });
    const r = await h.call("/v1/messages", { key, body: STREAM });
    expect(r.text).toContain("message_stop");
    const e = await h.eventFor(r.headers.get("edgefleet-request-id")!);
    expect(UsageEventSchema.safeParse(e).success).toBe(true);
    expect(e.usage).toEqual(split);
    // A stream that ended normally is not marked as cut.
    expect(e).not.toHaveProperty("ended");
  });

  it("a stream with several message_delta events (server tools) takes their running totals, never their sum", async () => {
    // Each delta repeats the cumulative counts (MessageDeltaUsage); adding them up would
    // bill 25 + 900 + 2,400 input tokens for a call that used 2,400.
    h.fake.enqueue({ kind: "sse", events: serverToolEvents("found it", { input_tokens: 25 }, [{ input_tokens: 900, output_tokens: 40, searches: 1 }, { input_tokens: 2400, output_tokens: 130, searches: 2 }]) });
    const r = await h.call("/v1/messages", { key, body: STREAM });
    expect(r.text).toContain("message_stop");
    const e = await h.eventFor(r.headers.get("edgefleet-request-id")!);
    expect(UsageEventSchema.safeParse(e).success).toBe(true);
    expect(e.usage).toMatchObject({ input_tokens: 2400, output_tokens: 130, cache_read_input_tokens: 0 });
    expect(e).not.toHaveProperty("ended");
  });

  it("sends nothing for count_tokens, /v1/models, refusals or upstream errors without usage; a call with no answer is sent without usage, marked no_answer", async () => {
    const slow = await h.tenant({ name: "slow", ratePerMinute: 1, burst: 1 });
    const calls = [
      await h.call("/v1/messages/count_tokens", { key: slow.key, body: '{"model":"m","messages":[{"role":"user","content":"hi"}]}' }),
      await h.call("/v1/models", { key, method: "GET" }),
      await h.call("/v1/messages", { key: "efk_wrong", body: MESSAGE }),
      await h.call("/v1/messages", { key: slow.key, body: MESSAGE }), // its one request was the count
    ];
    h.fake.enqueue({ kind: "error", status: 400, type: "invalid_request_error", message: "messages: Field required" });
    calls.push(await h.call("/v1/messages", { key, body: MESSAGE }));
    h.fake.enqueue({ kind: "reset" }, { kind: "reset" }, { kind: "reset" });
    calls.push(await h.call("/v1/messages", { key, body: MESSAGE }));
    expect(calls.map((c) => c.status)).toEqual([200, 200, 401, 429, 400, 502]);
    // A billable call after them: once its event is in, every earlier one would be too.
    const last = await h.call("/v1/messages", { key, body: MESSAGE });
    await h.eventFor(last.headers.get("edgefleet-request-id")!);
    const lost = calls[5]!.headers.get("request-id")!;
    expect(h.events.map((e) => e.request_id).sort()).toEqual([lost, last.headers.get("edgefleet-request-id")].sort());
    // Three lost connections, each of which the upstream may have billed: the ledger has
    // the call, with unknown (zero) usage and the model the body asked for. This tenant has
    // no budget, so there is no budget_micros.
    const e = h.events.find((x) => x.request_id === lost)!;
    expect(UsageEventSchema.parse(e)).toEqual(e);
    expect(e).toMatchObject({ tenant, status: 502, no_answer: "unreachable", model: JSON.parse(MESSAGE).model, usage: { input_tokens: 0, output_tokens: 0, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 } });
    expect(e).not.toHaveProperty("budget_micros");
  });

  it("a stream the client abandons sends the usage seen so far, with the status it received", async () => {
    const events = messageEvents(Array.from({ length: 40 }, (_, i) => `w${i} `), split as never);
    const probe = new SseProbe();
    h.fake.enqueue({ kind: "sse", events, probe, before: (i) => (i === 0 ? Promise.resolve() : sleep(40)) });
    const { requestId } = await h.leaveAfter(key, events, 4);
    await probe.closed;
    const e = await h.eventFor(requestId);
    expect(UsageEventSchema.safeParse(e).success).toBe(true);
    // message_start's counts (its output_tokens is 1); the final delta never came, and
    // the event says so: its output count is a lower bound.
    expect(e).toMatchObject({ status: 200, usage: { ...split, output_tokens: 1 }, ended: "client_closed" });
  });

  it("a stream whose upstream sends an error event after message_start, instead of its final usage, is marked upstream_error", async () => {
    const started = messageEvents(["one", "two"], split as never).slice(0, 4);
    h.fake.enqueue({ kind: "sse", events: [...started, overloadedEvent], before: (i) => (i === 4 ? sleep(30) : Promise.resolve()) });
    const r = await h.call("/v1/messages", { key, body: STREAM });
    // Nothing to retry: the client already had the first events; it gets the error event.
    expect(r.text).toBe([...started, overloadedEvent].map(frame).join(""));
    const e = await h.eventFor(r.headers.get("edgefleet-request-id")!);
    expect(UsageEventSchema.safeParse(e).success).toBe(true);
    expect(e).toMatchObject({ ended: "upstream_error", usage: { input_tokens: split.input_tokens, output_tokens: 1 } });
    // A stream whose final usage came is complete even when an error event follows it.
    const whole = messageEvents(["one"], split as never);
    h.fake.enqueue({ kind: "sse", events: [...whole.slice(0, -1), overloadedEvent] });
    const w = await h.call("/v1/messages", { key, body: STREAM });
    expect(await h.eventFor(w.headers.get("edgefleet-request-id")!)).not.toHaveProperty("ended");
  });

  it("a stream that ends without a final usage the proxy can read is marked stream_interrupted: no message_delta, or one over the scanner's bound", async () => {
    // The transport ends cleanly, but message_delta never came.
    const events = messageEvents(["one", "two"], split as never);
    const noDelta = events.filter((e) => e.event !== "message_delta");
    h.fake.enqueue({ kind: "sse", events: noDelta });
    const r = await h.call("/v1/messages", { key, body: STREAM });
    expect(r.text).toBe(noDelta.map(frame).join(""));
    const e = await h.eventFor(r.headers.get("edgefleet-request-id")!);
    expect(UsageEventSchema.safeParse(e).success).toBe(true);
    expect(e).toMatchObject({ ended: "stream_interrupted", usage: { input_tokens: split.input_tokens, output_tokens: 1 } });
    // A message_delta the scanner gives up on (over 64 KiB: a long stop sequence echoed).
    const huge = events.map((x) => (x.event === "message_delta" ? { ...x, data: { ...(x.data as object), delta: { stop_reason: "stop_sequence", stop_sequence: "x".repeat(70 * 1024) } } } : x));
    h.fake.enqueue({ kind: "sse", events: huge });
    const big = await h.call("/v1/messages", { key, body: STREAM });
    expect(big.text).toBe(huge.map(frame).join(""));
    expect(await h.eventFor(big.headers.get("edgefleet-request-id")!)).toMatchObject({ ended: "stream_interrupted" });
  });

  it("a stream the upstream breaks sends the usage seen so far, marked stream_interrupted; a JSON call is never marked", async () => {
    h.fake.enqueue({ kind: "sse", events: messageEvents(["one", "two", "three"], split as never), resetAfter: 4 });
    const r = await h.call("/v1/messages", { key, body: STREAM });
    expect(r.text).toContain("upstream stream interrupted");
    const e = await h.eventFor(r.headers.get("edgefleet-request-id")!);
    expect(UsageEventSchema.safeParse(e).success).toBe(true);
    expect(e).toMatchObject({ ended: "stream_interrupted", usage: { output_tokens: 1 } });
    const j = await h.call("/v1/messages", { key, body: MESSAGE });
    expect(await h.eventFor(j.headers.get("edgefleet-request-id")!)).not.toHaveProperty("ended");
  });

});

describe("the archive (tenant opted in)", () => {
  let h: Harness;
  let key: string;
  let tenant: string;
  let other: { key: string; id: string };
  useHarness(
    { BUFFER_BODY_BYTES: "65536", MAX_RETRIES: "2" },
    async (started) => {
      h = started;
      ({ key, id: tenant } = await h.tenant({ archive: true }));
      other = await h.tenant({ name: "not-archived" });
    },
    { reset: true },
  );

  it("keeps the request as sent and the JSON answer as the client got it, under tenant/day/request id; nothing for a tenant not opted in", async () => {
    // The other tenant's calls first: had they been archived, their writes would have
    // been issued before the archived tenant's call below even started.
    await h.call("/v1/messages", { key: other.key, body: MESSAGE });
    await h.call("/v1/messages", { key: other.key, body: STREAM });
    const body = JSON.stringify({ model: MODEL, max_tokens: 9, messages: [{ role: "user", content: "héllo" }] });
    const r = await h.call("/v1/messages", { key, body });
    const id = r.headers.get("edgefleet-request-id")!;
    const req = await object(h, `${tenant}/${day()}/${id}/request`);
    const res = await object(h, `${tenant}/${day()}/${id}/response`);
    expect(req.text).toBe(body);
    expect(req.contentType).toBe("application/json");
    expect(req.meta).toMatchObject({ request_id: id, tenant, bytes: String(Buffer.byteLength(body)), truncated: "false" });
    expect(res.text).toBe(r.text);
    expect(res.meta).toMatchObject({ status: "200", truncated: "false", complete: "true" });
    expect(await keys(h, `${other.id}/`)).toEqual([]);
    expect(await keys(h, "")).toEqual([`${tenant}/${day()}/${id}/request`, `${tenant}/${day()}/${id}/response`]);
  });

  it("gives each streamed copy's bytes back to the isolate's staging pool once its put settled: five 5 MiB uploads in a row (more than the pool's 16 MiB) each keep their whole 4 MiB", async () => {
    const MiB = 1024 * 1024;
    const body = Buffer.alloc(5 * MiB, 0x61);
    body.write('{"model":"claude-x","max_tokens":1,"messages":[{"role":"user","content":"x"}],"x":"', 0);
    body.write('"}', body.length - 2);
    h.fake.recording = false;
    try {
      for (let i = 0; i < 5; i++) {
        const r = await h.call("/v1/messages", { key, body });
        expect(r.status).toBe(200);
        const req = await object(h, `${tenant}/${day()}/${r.headers.get("edgefleet-request-id")!}/request`);
        expect([i, req.text.length, req.meta.truncated, req.meta.bytes]).toEqual([i, 4 * MiB, "true", String(5 * MiB)]);
      }
    } finally {
      h.fake.recording = true;
    }
  });

  it("keeps a streamed answer byte for byte as the client got it", async () => {
    const r = await h.call("/v1/messages", { key, body: STREAM });
    const id = r.headers.get("edgefleet-request-id")!;
    const res = await object(h, `${tenant}/${day()}/${id}/response`);
    expect(res.text).toBe(r.text);
    expect(res.text).toContain("event: message_stop");
    expect(res.contentType).toMatch(/^text\/event-stream/);
    expect(res.meta).toMatchObject({ status: "200", complete: "true", truncated: "false", bytes: String(Buffer.byteLength(r.text)) });
  });

  it("keeps a stream the client abandoned as far as it went, marked incomplete", async () => {
    const events = messageEvents(Array.from({ length: 40 }, (_, i) => `w${i} `));
    const probe = new SseProbe();
    h.fake.enqueue({ kind: "sse", events, probe, before: (i) => (i === 0 ? Promise.resolve() : sleep(40)) });
    const { requestId, got } = await h.leaveAfter(key, events, 4);
    await probe.closed;
    const res = await object(h, `${tenant}/${day()}/${requestId}/response`);
    expect(res.meta).toMatchObject({ complete: "false", ended: "client_closed" });
    // What the client read is there, and nothing the upstream did not send.
    expect(res.text.startsWith(got)).toBe(true);
    const all = events.map(frame).join("");
    expect(all.startsWith(res.text)).toBe(true);
    expect(res.text.length).toBeLessThan(all.length);
  });

  it("keeps a stream the upstream broke with the error event the client got", async () => {
    const events = messageEvents(["one", "two", "three"]);
    h.fake.enqueue({ kind: "sse", events, resetAfter: 4 });
    const r = await h.call("/v1/messages", { key, body: STREAM });
    expect(r.text).toContain("upstream stream interrupted");
    const res = await object(h, `${tenant}/${day()}/${r.headers.get("edgefleet-request-id")!}/response`);
    expect(res.text).toBe(r.text);
    expect(res.meta).toMatchObject({ complete: "false", ended: "stream_interrupted" });
  });

  it("a retried call sends the same bytes on every attempt (staging does not consume the body)", async () => {
    h.fake.enqueue({ kind: "error", status: 529, type: "overloaded_error", message: "Overloaded" });
    const body = JSON.stringify({ model: MODEL, max_tokens: 3, messages: [{ role: "user", content: "again" }] });
    const r = await h.call("/v1/messages", { key, body });
    expect(r.status).toBe(200);
    expect(h.fake.received.map((x) => x.body.toString())).toEqual([body, body]);
    expect((await object(h, `${tenant}/${day()}/${r.headers.get("edgefleet-request-id")!}/request`)).text).toBe(body);
  });

  it("archives the upstream's error answer too (what the client got), and count_tokens calls", async () => {
    h.fake.enqueue({ kind: "error", status: 400, type: "invalid_request_error", message: "bad" });
    const bad = await h.call("/v1/messages", { key, body: MESSAGE });
    expect((await object(h, `${tenant}/${day()}/${bad.headers.get("edgefleet-request-id")!}/response`)).text).toBe(bad.text);
    const ct = await h.call("/v1/messages/count_tokens", { key, body: '{"model":"m","messages":[{"role":"user","content":"hi"}]}' });
    expect((await object(h, `${tenant}/${day()}/${ct.headers.get("edgefleet-request-id")!}/response`)).text).toBe(ct.text);
  });

  it("a record whose id the ledger would refuse (hand-edited in KV) is no tenant: 401, nothing sent upstream, no event (it could never be billed)", async () => {
    for (const [i, id] of ["t_0123456789abcdef/../t_fedcba9876543210", "..", "acme corp", "a".repeat(65), ""].entries()) {
      const handKey = `efk_hand-edited-unbillable-${i}-0000000000000000000000000000`;
      h.tenantKeys.push(handKey);
      const keyHash = await sha256Hex(handKey);
      const rec = { id, name: "hand-edited", ratePerMinute: 6000, burst: 1000, enabled: true, archive: true, keyHash, createdAt: "" };
      await h.kv.put(kvKeyFor(keyHash), JSON.stringify(rec), {});
      const before = h.fake.received.length;
      const r = await h.call("/v1/messages", { key: handKey, body: MESSAGE });
      expect(r.status).toBe(401);
      expect(JSON.parse(r.text)).toMatchObject({ type: "error", error: { type: "authentication_error", message: "invalid API key" } });
      expect(h.fake.received.length).toBe(before);
    }
    // The longest id the ledger takes is served.
    const handKey = "efk_hand-edited-longest-id-000000000000000000000000000000";
    h.tenantKeys.push(handKey);
    const keyHash = await sha256Hex(handKey);
    const id = "a".repeat(64);
    await h.kv.put(kvKeyFor(keyHash), JSON.stringify({ id, name: "hand-edited", ratePerMinute: 6000, burst: 1000, enabled: true, keyHash, createdAt: "" }), {});
    const r = await h.call("/v1/messages", { key: handKey, body: MESSAGE });
    expect(r.status).toBe(200);
    expect(await h.eventFor(r.headers.get("edgefleet-request-id")!)).toMatchObject({ tenant: id, status: 200 });
  });

  it("a record whose id is not of the form `npm run tenants` makes (hand-edited in KV) is served and metered, not archived, and a warning says so", async () => {
    for (const [i, id] of ["T_0123456789ABCDEF", "t_0123456789abcdef.x", "acme:eu"].entries()) {
      const handKey = `efk_hand-edited-record-${i}-0000000000000000000000000000`;
      h.tenantKeys.push(handKey);
      const keyHash = await sha256Hex(handKey);
      const rec = { id, name: "hand-edited", ratePerMinute: 6000, burst: 1000, enabled: true, archive: true, keyHash, createdAt: "" };
      // (KV's metadata holds at most 1,024 bytes: the proxy reads the value.)
      await h.kv.put(kvKeyFor(keyHash), JSON.stringify(rec), {});
      const r = await h.call("/v1/messages", { key: handKey, body: MESSAGE });
      expect(r.status).toBe(200);
      expect(JSON.parse(r.text)).toMatchObject({ type: "message" });
      const requestId = r.headers.get("edgefleet-request-id")!;
      expect(await h.eventFor(requestId)).toMatchObject({ tenant: id, status: 200 });
      // An archived tenant's call after it: once its objects are in, the earlier call's
      // would be too.
      const after = await h.call("/v1/messages", { key, body: MESSAGE });
      await object(h, `${tenant}/${day()}/${after.headers.get("edgefleet-request-id")!}/response`);
      expect((await keys(h, "")).filter((k) => k.includes(requestId))).toEqual([]);
      const warned = h.logs.filter((l) => l.includes("archive_skipped_invalid_tenant_id")).map((l) => JSON.parse(l.slice(l.indexOf("{"))) as Record<string, unknown>);
      // The request id only: the id itself may be anything.
      expect(warned.filter((l) => l.requestId === requestId)).toEqual([{ requestId, warning: "archive_skipped_invalid_tenant_id" }]);
    }
  });
});

// A stand-in for the ARCHIVE bucket with R2's limit on object metadata, 8,192 bytes
// (developers.cloudflare.com/r2/platform/limits), which Miniflare's R2 does not apply to
// httpMetadata: a put over it fails as R2's does (10012), else goes to a real local bucket.
const R2_LIMITS = `
const size = (o) => Object.entries(o ?? {}).reduce((n, [k, v]) => n + new TextEncoder().encode(k + String(v)).byteLength, 0);
export default function (env) {
  const b = env.BUCKET;
  return {
    put(key, value, o = {}) {
      if (size(o.customMetadata) + size(o.httpMetadata) > 8192) return Promise.reject(new Error("put: Your metadata headers exceed the maximum allowed metadata size. (10012)"));
      return b.put(key, value, o);
    },
    get: (key, o) => b.get(key, o),
    head: (key) => b.head(key),
    list: (o) => b.list(o),
  };
}
`;

describe("the archive and R2's 8 KB metadata limit: a tenant's own Content-Type", () => {
  it("is stored only when it is a plain media type of at most 256 characters, else as application/octet-stream with its length: a 9 KB one still gets the body archived", async () => {
    const h = await Harness.start(
      { BUFFER_BODY_BYTES: "65536" },
      {
        override: { r2Buckets: {}, wrappedBindings: { METRICS: { scriptName: "metrics-recorder" }, ARCHIVE: { scriptName: "r2-limits" } } },
        extraWorkers: [{ name: "r2-limits", modules: true, script: R2_LIMITS, r2Buckets: { BUCKET: "edgefleet-archive-limits" } }],
      },
    );
    try {
      const { key, id: tenant } = await h.tenant({ archive: true });
      const b = (await h.mf.getR2Bucket("BUCKET", "r2-limits")) as unknown as R2Bucket;
      const stored = async (k: string) => {
        for (let i = 0; i < 500; i++) {
          const o = await b.get(k);
          if (o !== null) return { text: await o.text(), meta: o.customMetadata ?? {}, contentType: o.httpMetadata?.contentType };
          await sleep(10);
        }
        throw new Error(`nothing archived at ${k}`);
      };
      const long = "application/json; x=" + "a".repeat(9 * 1024);
      for (const [sent, kept] of [
        [long, undefined],
        ["json", undefined], // not type/subtype
        ["application/json; charset=\"ütf-8\"", undefined], // not printable ASCII
        ["application/json; charset=utf-8", "application/json; charset=utf-8"],
      ] as const) {
        const r = await h.call("/v1/messages", { key, body: MESSAGE, headers: { "content-type": sent } });
        expect(r.status).toBe(200);
        const req = await stored(`${tenant}/${day()}/${r.headers.get("edgefleet-request-id")!}/request`);
        expect(req.text).toBe(MESSAGE);
        if (kept !== undefined) {
          expect(req.contentType).toBe(kept);
          expect(req.meta).not.toHaveProperty("content_type_length");
        } else {
          expect(req.contentType).toBe("application/octet-stream");
          expect(req.meta).toMatchObject({ content_type_length: String(sent.length), bytes: String(MESSAGE.length) });
        }
      }
      expect(h.logs.filter((l) => l.includes("archive_write_failed"))).toEqual([]);
      expect(h.leaks()).toEqual([]);
    } finally {
      await h.dispose();
    }
  });
});

describe("the archive's cap (ARCHIVE_MAX_BYTES=100) and streamed request bodies", () => {
  let h: Harness;
  let key: string;
  let tenant: string;
  useHarness(
    { ARCHIVE_MAX_BYTES: "100", BUFFER_BODY_BYTES: "1024" },
    async (started) => {
      h = started;
      ({ key, id: tenant } = await h.tenant({ archive: true }));
    },
    { reset: true },
  );

  it("cuts each body at the cap and says so; the client and the upstream get everything", async () => {
    const body = JSON.stringify({ model: MODEL, max_tokens: 3, messages: [{ role: "user", content: "y".repeat(500) }] });
    const r = await h.call("/v1/messages", { key, body: body });
    const id = r.headers.get("edgefleet-request-id")!;
    const req = await object(h, `${tenant}/${day()}/${id}/request`);
    expect(req.text).toBe(body.slice(0, 100));
    expect(req.meta).toMatchObject({ truncated: "true", bytes: String(body.length) });
    expect(h.fake.received[0]!.body.toString()).toBe(body);
    const res = await object(h, `${tenant}/${day()}/${id}/response`);
    expect(r.text.length).toBeGreaterThan(100);
    expect(res.text).toBe(r.text.slice(0, 100));
    expect(res.meta).toMatchObject({ truncated: "true", bytes: String(r.text.length), complete: "true" });
  });

  it("a body streamed to the upstream (over BUFFER_BODY_BYTES) is tee'd: its first bytes archived, all of it sent with its length", async () => {
    const body = JSON.stringify({ model: MODEL, max_tokens: 3, messages: [{ role: "user", content: "z".repeat(5000) }] });
    const r = await h.call("/v1/messages", { key, body, headers: { "content-length": String(body.length) } });
    expect(r.status).toBe(200);
    const got = h.fake.received[0]!;
    expect(got.body.toString()).toBe(body);
    expect(got.headers["content-length"]).toBe(String(body.length));
    const req = await object(h, `${tenant}/${day()}/${r.headers.get("edgefleet-request-id")!}/request`);
    expect(req.text).toBe(body.slice(0, 100));
    expect(req.meta).toMatchObject({ truncated: "true", bytes: String(body.length) });
  });
});

// A metrics binding whose write throws (a bug, a misdeploy): the call's record() throws.
const THROWING_METRICS = `
export default function () { return { writeDataPoint() { throw new Error("metrics unavailable"); } }; }
`;

describe("a record() that throws after the answer", () => {
  it("does not stop the usage event or the archive: a stream's response object is written and its event sent", async () => {
    const h = await Harness.start(
      { BUFFER_BODY_BYTES: "65536" },
      { override: { wrappedBindings: { METRICS: { scriptName: "throwing-metrics" } } }, extraWorkers: [{ name: "throwing-metrics", modules: true, script: THROWING_METRICS }] },
    );
    try {
      const { key, id: tenant } = await h.tenant({ archive: true });
      const r = await h.call("/v1/messages", { key, body: STREAM });
      expect(r.status).toBe(200);
      expect(r.text).toContain("event: message_stop");
      const id = r.headers.get("edgefleet-request-id")!;
      expect(await h.eventFor(id)).toMatchObject({ tenant, status: 200 });
      const res = await object(h, `${tenant}/${day()}/${id}/response`);
      expect(res.text).toBe(r.text);
      expect(res.meta).toMatchObject({ complete: "true", status: "200" });
      // A JSON answer's record() runs before the Response: the handler's error answer
      // follows, but its usage event (the upstream billed it) is still sent.
      await h.call("/v1/messages", { key, body: MESSAGE });
      await h.eventsUntil((es) => es.length >= 2);
      expect(h.events.filter((e) => e.tenant === tenant).map((e) => e.request_id)).toHaveLength(2);
      expect(h.leaks()).toEqual([]);
    } finally {
      await h.dispose();
    }
  });
});

describe("METERING=off", () => {
  let h: Harness;
  let key: string;
  useHarness({ METERING: "off" }, async (started) => {
    h = started;
    ({ key } = await h.tenant({ archive: true }));
  });

  it("sends no usage event and archives nothing, even for an archived tenant", async () => {
    const a = await h.call("/v1/messages", { key, body: MESSAGE });
    const b = await h.call("/v1/messages", { key, body: STREAM });
    expect([a.status, b.status]).toEqual([200, 200]);
    await h.pointsAtLeast(2); // both calls finished their after-response work
    await sleep(200);
    expect(h.events).toEqual([]);
    expect(await keys(h, "")).toEqual([]);
  });
});

/**
 * A proxy whose USAGE_EVENTS is the Queue stand-in `script` (it logs the request ids of
 * each batch it takes as `{"queueAccepted": [...]}`); `until` waits for `n` of them and
 * the proxy's "sent after retry" line (logged once sendBatch resolved, a moment after the
 * Queue took the batch).
 */
async function withQueueStandIn(script: string, test: (h: Harness, until: (n: number) => Promise<{ accepted: string[]; retried: boolean }>) => Promise<void>): Promise<void> {
  const h = await Harness.start(
    {},
    { override: { queueProducers: {}, wrappedBindings: { METRICS: { scriptName: "metrics-recorder" }, USAGE_EVENTS: { scriptName: "queue-stand-in" } } }, extraWorkers: [{ name: "queue-stand-in", modules: true, script }] },
  );
  const accepted = () => h.logs.filter((l) => l.includes("queueAccepted")).flatMap((l) => (JSON.parse(l.slice(l.indexOf("{"))) as { queueAccepted: string[] }).queueAccepted);
  const retried = () => h.logs.some((l) => l.includes("usage_events_sent_after_retry"));
  const until = async (n: number) => {
    for (let i = 0; i < 1000 && (accepted().length < n || !retried()); i++) await sleep(10);
    return { accepted: accepted(), retried: retried() };
  };
  try {
    await test(h, until);
    expect(h.logs.filter((l) => l.includes("usage_event_not_sent"))).toEqual([]);
  } finally {
    await h.dispose();
  }
}

// A Queue that refuses its first two batches as the real one does above its rate
// ("Too Many Requests": developers.cloudflare.com/queues/platform/limits), then takes them.
const FLAKY = `
let tries = 0;
class Flaky {
  async sendBatch(messages) {
    if (++tries <= 2) throw new Error("Too Many Requests");
    console.log(JSON.stringify({ queueAccepted: messages.map((m) => m.body.request_id) }));
  }
}
export default function () { return new Flaky(); }
`;

describe("a Queue that refuses for a while (its rate limit)", () => {
  it("gets every event once it takes them again: the proxy tries a refused batch again with backoff", () =>
    withQueueStandIn(FLAKY, async (h, until) => {
      const { key } = await h.tenant({});
      const calls = await Promise.all([h.call("/v1/messages", { key, body: MESSAGE }), h.call("/v1/messages", { key, body: STREAM })]);
      expect(calls.map((c) => c.status)).toEqual([200, 200]);
      const ids = calls.map((c) => c.headers.get("edgefleet-request-id")!);
      const { accepted, retried } = await until(2);
      expect(accepted.sort()).toEqual([...ids].sort());
      expect(retried).toBe(true);
    }));
});

// A Queue whose first sendBatch never answers (a degraded broker), then takes batches.
const HANGS_ONCE = `
let tries = 0;
class HangsOnce {
  sendBatch(messages) {
    if (++tries === 1) return new Promise(() => {});
    console.log(JSON.stringify({ queueAccepted: messages.map((m) => m.body.request_id) }));
    return Promise.resolve();
  }
}
export default function () { return new HangsOnce(); }
`;

describe("a Queue that does not answer", () => {
  it("gets the event anyway: a try that takes longer than SEND_TIMEOUT_MS is tried again", () =>
    withQueueStandIn(HANGS_ONCE, async (h, until) => {
      const { key } = await h.tenant({});
      const r = await h.call("/v1/messages", { key, body: MESSAGE });
      expect(r.status).toBe(200);
      const { accepted, retried } = await until(1);
      expect(accepted).toEqual([r.headers.get("edgefleet-request-id")!]);
      expect(retried).toBe(true);
    }), 20_000);
});

// Stand-ins for a Queue and a bucket that refuse every write (an outage, a misdeploy).
const FAILING = `
class Failing {
  send() { return Promise.reject(new Error("queue unavailable")); }
  sendBatch() { return Promise.reject(new Error("queue unavailable")); }
  put() { return Promise.reject(new TypeError("bucket unavailable")); }
}
export default function () { return new Failing(); }
`;

describe("a Queue and an R2 bucket that fail", () => {
  let h: Harness;
  let key: string;
  let plain: string;
  it("never fail the call: the client gets the full answer, the failures are logged with ids only", async () => {
    h = await Harness.start(
      {},
      {
        override: {
          queueProducers: {},
          r2Buckets: {},
          wrappedBindings: { METRICS: { scriptName: "metrics-recorder" }, USAGE_EVENTS: { scriptName: "failing" }, ARCHIVE: { scriptName: "failing" } },
        },
        extraWorkers: [{ name: "failing", modules: true, script: FAILING }],
      },
    );
    try {
      ({ key } = await h.tenant({ archive: true }));
      ({ key: plain } = await h.tenant({ name: "plain" }));
      const json = await h.call("/v1/messages", { key, body: MESSAGE });
      const sse = await h.call("/v1/messages", { key, body: STREAM });
      const other = await h.call("/v1/messages", { key: plain, body: MESSAGE });
      expect([json.status, sse.status, other.status]).toEqual([200, 200, 200]);
      expect(JSON.parse(json.text)).toMatchObject({ type: "message" });
      expect(sse.text).toContain("event: message_stop");
      // The Queue's refusals are tried again for up to ~8.5 s (SEND_RETRY_MS) first.
      const lines = async (error: string, n: number) => {
        for (let i = 0; i < 1500 && h.logs.filter((l) => l.includes(error)).length < n; i++) await sleep(10);
        return h.logs.filter((l) => l.includes(error)).map((l) => JSON.parse(l.slice(l.indexOf("{"))) as Record<string, unknown>);
      };
      const notSent = await lines("usage_event_not_sent", 3);
      expect(notSent.map((l) => l.requestId).sort()).toEqual([json, sse, other].map((c) => c.headers.get("edgefleet-request-id")).sort());
      expect(notSent[0]).toEqual({ requestId: expect.any(String), tenant: expect.any(String), error: "usage_event_not_sent", name: "Error", retries: SEND_RETRY_MS.length });
      const archive = await lines("archive_write_failed", 4);
      expect(archive.map((l) => l.part).sort()).toEqual(["request", "request", "response", "response"]);
      expect(h.leaks()).toEqual([]);
    } finally {
      await h.dispose();
    }
  });
});
