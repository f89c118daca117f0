// Unit tests of the proxy's metering parts (Node): the usage event is valid against the
// ledger's schema for any Usage the readers can produce, which calls bill, the archive's
// keys and its bounded staging. The same paths run in workerd in test/metering.test.ts.
import fc from "fast-check";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { MAX_ATTEMPTS, MAX_BUDGET_MICROS, MAX_TOKENS_PER_CALL, NO_ANSWERS, STREAM_ENDS, UsageEventSchema } from "../../../shared/usage-event.ts";
import { tokensOf } from "../../../shared/pricing.ts";
import { archiveKey, ISOLATE_STAGING_BYTES, Staged, STAGING_GRANT_MS, StagingPool } from "../../src/archive.ts";
import { billable, deliver, requestedModel, UNKNOWN_MODEL, usageEvent } from "../../src/metering.ts";
import { SEND_DEADLINE_MS, SEND_RETRY_MS, SEND_TIMEOUT_MS } from "../../../shared/queue-send.ts";
import { emptyUsage, SseUsageScanner, usageFromJson, type Usage } from "../../src/usage.ts";
import { frame, message, messageEvents } from "../wire.ts";
import { config, MAX_ARCHIVE_BYTES } from "../../src/config.ts";
import type { Env } from "../../src/env.ts";

const call = { requestId: "req_ef_0123456789abcdef0123456789abcdef", tenant: "t_0123456789abcdef", status: 200, ts: Date.UTC(2026, 10, 27, 12) };

describe("the usage event", () => {
  it("carries Anthropic's Usage with the cache_creation split read from a stream", () => {
    const s = new SseUsageScanner();
    const start = { input_tokens: 1200, output_tokens: 800, cache_creation_input_tokens: 3000, cache_read_input_tokens: 50000, cache_creation: { ephemeral_5m_input_tokens: 1000, ephemeral_1h_input_tokens: 2000 } };
    s.push(new TextEncoder().encode(messageEvents(["hi"], start).map(frame).join("")));
    const e = usageEvent(call, s.usage);
    expect(UsageEventSchema.parse(e)).toEqual(e);
    expect(e).toEqual({
      v: 1,
      request_id: call.requestId,
      tenant: call.tenant,
      model: "claude-sonnet-5-5",
      ts: call.ts,
      status: 200,
      usage: { input_tokens: 1200, output_tokens: 800, cache_creation_input_tokens: 3000, cache_read_input_tokens: 50000, cache_creation: { ephemeral_5m_input_tokens: 1000, ephemeral_1h_input_tokens: 2000 } },
    });
    // The ledger reads the same tokens by kind.
    expect(tokensOf(e.usage)).toMatchObject({ input: 1200, cacheWrite5m: 1000, cacheWrite1h: 2000, cacheRead: 50000, output: 800 });
  });

  it("says why a stream was cut short (ended), only when it was, with a reason the ledger's schema takes", () => {
    const u = { ...emptyUsage(), model: "claude-opus-4-5", inputTokens: 40, outputTokens: 1 };
    expect(usageEvent(call, u)).not.toHaveProperty("ended");
    for (const why of STREAM_ENDS) {
      const e = usageEvent(call, u, { ended: why });
      expect(e.ended).toBe(why);
      expect(UsageEventSchema.parse(e)).toEqual(e);
    }
    expect(UsageEventSchema.safeParse({ ...usageEvent(call, u), ended: "done" }).success).toBe(false);
  });

  it("says a call got no answer (zero usage, no_answer) and what its budget charged, in a shape only the ledger's schema takes together", () => {
    const none = { ...emptyUsage(), model: "claude-opus-4-5" };
    for (const why of NO_ANSWERS) {
      const e = usageEvent({ ...call, status: why === "timeout" ? 504 : 502 }, none, { noAnswer: why, budgetMicros: 61_250 });
      expect(e).toMatchObject({ no_answer: why, budget_micros: 61_250, model: "claude-opus-4-5", usage: { input_tokens: 0, output_tokens: 0 } });
      expect(UsageEventSchema.parse(e)).toEqual(e);
    }
    // Without a budget (or with nothing to say) neither key is there.
    const plain = usageEvent(call, { ...none, inputTokens: 3 });
    expect(plain).not.toHaveProperty("budget_micros");
    expect(plain).not.toHaveProperty("no_answer");
    expect(usageEvent(call, { ...none, inputTokens: 3 }, { budgetMicros: 0 }).budget_micros).toBe(0);
    // A charge that is not a whole, safe, non-negative number is left out, never sent broken.
    for (const bad of [-1, 1.5, Number.NaN, 2 ** 60]) expect(usageEvent(call, { ...none, inputTokens: 3 }, { budgetMicros: bad })).not.toHaveProperty("budget_micros");
    // The schema: a call with no answer reports no tokens, and was no cut stream.
    const e = usageEvent(call, none, { noAnswer: "timeout" });
    expect(UsageEventSchema.safeParse({ ...e, usage: { ...e.usage, input_tokens: 5 } }).success).toBe(false);
    expect(UsageEventSchema.safeParse({ ...e, usage: { ...e.usage, cache_creation: { ephemeral_5m_input_tokens: 0, ephemeral_1h_input_tokens: 1 } } }).success).toBe(false);
    expect(UsageEventSchema.safeParse({ ...e, ended: "client_closed" }).success).toBe(false);
    expect(UsageEventSchema.safeParse({ ...e, no_answer: "lost" }).success).toBe(false);
    expect(UsageEventSchema.safeParse({ ...e, budget_micros: -1 }).success).toBe(false);
    expect(UsageEventSchema.safeParse({ ...e, budget_micros: 0.5 }).success).toBe(false);
    // Bounded, so the ledger's day sums stay exact 64-bit integers: a charge above the
    // bound is refused by the schema, and the proxy caps what it sends (never refused).
    expect(UsageEventSchema.safeParse({ ...e, budget_micros: MAX_BUDGET_MICROS }).success).toBe(true);
    expect(UsageEventSchema.safeParse({ ...e, budget_micros: MAX_BUDGET_MICROS + 1 }).success).toBe(false);
    expect(UsageEventSchema.safeParse({ ...e, budget_micros: Number.MAX_SAFE_INTEGER }).success).toBe(false);
    const capped = usageEvent(call, { ...none, inputTokens: 3 }, { budgetMicros: Number.MAX_SAFE_INTEGER });
    expect(capped.budget_micros).toBe(MAX_BUDGET_MICROS);
    expect(UsageEventSchema.safeParse(capped).success).toBe(true);
    // Retried attempts that may have been billed: from 1, whole, bounded; absent at 0.
    expect(usageEvent(call, none, { noAnswer: "timeout", maybeBilled: 2 }).maybe_billed_attempts).toBe(2);
    expect(usageEvent(call, { ...none, inputTokens: 3 }, { maybeBilled: 0 })).not.toHaveProperty("maybe_billed_attempts");
    expect(UsageEventSchema.parse(usageEvent(call, { ...none, inputTokens: 3 }, { maybeBilled: 10_000 })).maybe_billed_attempts).toBe(MAX_ATTEMPTS);
    for (const bad of [0, -1, 1.5, MAX_ATTEMPTS + 1]) expect(UsageEventSchema.safeParse({ ...e, maybe_billed_attempts: bad }).success).toBe(false);
  });

  it("takes a call with no answer's model from its request body, else 'unknown'", () => {
    const enc = (s: string) => new TextEncoder().encode(s).buffer as ArrayBuffer;
    expect(requestedModel(enc(JSON.stringify({ model: "claude-haiku-4-5", max_tokens: 5, messages: [] })))).toBe("claude-haiku-4-5");
    for (const body of [undefined, enc("not json"), enc("null"), enc("[]"), enc('{"model": 5}'), enc('{"model": "claude@3"}'), enc(JSON.stringify({ model: "a".repeat(200) }))]) {
      expect(requestedModel(body)).toBe(UNKNOWN_MODEL);
    }
  });

  it("leaves the split out when the upstream sent none (the ledger then prices writes at the 1-hour rate)", () => {
    const e = usageEvent(call, usageFromJson(JSON.stringify(message("x", { input_tokens: 10, output_tokens: 5, cache_creation_input_tokens: 7, cache_read_input_tokens: 0 }))));
    expect(e.usage).toEqual({ input_tokens: 10, output_tokens: 5, cache_creation_input_tokens: 7, cache_read_input_tokens: 0 });
    expect(tokensOf(e.usage)).toMatchObject({ cacheWrite5m: 0, cacheWrite1h: 7 });
  });

  it("is valid against UsageEventSchema for any Usage (hostile numbers and model ids included)", () => {
    const n = fc.oneof(fc.integer({ min: 0, max: 2 * MAX_TOKENS_PER_CALL }), fc.double({ noNaN: false }), fc.constantFrom(-1, 0.5, Infinity, NaN));
    const usage = fc.record({
      model: fc.oneof(fc.string(), fc.constantFrom("claude-opus-4-5", "claude@3", "", "a".repeat(200))),
      inputTokens: n,
      outputTokens: n,
      cacheCreationTokens: n,
      cacheWrite5mTokens: n,
      cacheWrite1hTokens: n,
      cacheReadTokens: n,
    });
    fc.assert(
      fc.property(usage, (u) => {
        const e = usageEvent(call, { ...emptyUsage(), ...u });
        expect(UsageEventSchema.safeParse(e).success).toBe(true);
        // Never under-billed: a count is the reported one, rounded up, capped by the schema.
        if (Number.isInteger(u.inputTokens) && u.inputTokens >= 0 && u.inputTokens <= MAX_TOKENS_PER_CALL) expect(e.usage.input_tokens).toBe(u.inputTokens + 0); // + 0: -0 is 0
      }),
    );
    expect(usageEvent(call, { ...emptyUsage(), model: "claude@3", inputTokens: 1 }).model).toBe(UNKNOWN_MODEL);
    expect(usageEvent(call, { ...emptyUsage(), inputTokens: 2.2 }).usage.input_tokens).toBe(3);
  });

  it("bills /v1/messages answers that count a token, nothing else", () => {
    const with_ = (p: Partial<Usage>): Usage => ({ ...emptyUsage(), ...p });
    expect(billable("/v1/messages", with_({ inputTokens: 1 }))).toBe(true);
    expect(billable("/v1/messages", with_({ cacheReadTokens: 1 }))).toBe(true);
    expect(billable("/v1/messages", with_({ outputTokens: 1, errorType: "client_closed" }))).toBe(true);
    expect(billable("/v1/messages", with_({ errorType: "overloaded_error" }))).toBe(false);
    expect(billable("/v1/messages/count_tokens", with_({ countedTokens: 42 }))).toBe(false);
    expect(billable("/v1/models", with_({}))).toBe(false);
  });
});

describe("the archive's staging", () => {
  it("keys objects by tenant, UTC day of the call's start and request id", () => {
    expect(archiveKey("t_1", Date.UTC(2026, 10, 27, 23, 59, 59), "req_ef_1", "request")).toBe("t_1/2026-11-27/req_ef_1/request");
    expect(archiveKey("t_1", Date.UTC(2026, 10, 28), "req_ef_1", "response")).toBe("t_1/2026-11-28/req_ef_1/response");
  });

  it("keeps at most the cap, in order, counts what passed, and copies (a detached chunk does not change it)", () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 50 }), { maxLength: 20 }), fc.integer({ min: 0, max: 400 }), (chunks, cap) => {
        const s = new Staged(cap);
        for (const c of chunks) s.add(c);
        const all = Buffer.concat(chunks);
        expect(s.seen).toBe(all.length);
        expect(Buffer.from(s.bytes())).toEqual(all.subarray(0, cap));
        expect(s.truncated).toBe(all.length > cap);
      }),
    );
    const s = new Staged(10);
    const chunk = new Uint8Array([1, 2, 3]);
    s.add(chunk);
    structuredClone(chunk.buffer, { transfer: [chunk.buffer] });
    expect([...s.bytes()]).toEqual([1, 2, 3]);
  });
});

describe("the isolate's staging pool (what all streamed copies may hold at once)", () => {
  it("gives copies bytes as they keep them, stops a copy when it runs out (truncated, like the cap), and takes them back once, after the put", () => {
    const pool = new StagingPool(10);
    const a = new Staged(8, pool);
    const b = new Staged(8, pool);
    a.add(new Uint8Array([1, 2, 3, 4, 5, 6]));
    b.add(new Uint8Array([7, 8, 9, 10, 11]));
    expect([...a.bytes()]).toEqual([1, 2, 3, 4, 5, 6]);
    // b asked for 5 and got the 4 left: it keeps them and nothing more.
    expect([...b.bytes()]).toEqual([7, 8, 9, 10]);
    expect(b.full).toBe(true);
    expect(b.truncated).toBe(true);
    b.add(new Uint8Array([12]));
    expect(b.kept).toBe(4);
    expect(b.seen).toBe(6);
    expect(pool.inUse).toBe(10);
    a.release();
    a.release();
    expect(pool.inUse).toBe(4);
    // a keeps nothing after its release; a new copy gets what a gave back.
    a.add(new Uint8Array([1]));
    expect(a.kept).toBe(6);
    const c = new Staged(8, pool);
    c.add(new Uint8Array(8));
    expect([c.kept, c.full, c.truncated]).toEqual([6, true, true]);
    b.release();
    c.release();
    expect(pool.inUse).toBe(0);
    // Without a pool: only the cap.
    const d = new Staged(3);
    d.add(new Uint8Array(5));
    expect([d.kept, d.full, d.truncated]).toEqual([3, true, true]);
    expect(ISOLATE_STAGING_BYTES).toBe(16 * 1024 * 1024);
  });

  it("takes back a grant that stood longer than STAGING_GRANT_MS (its put's context ended before it settled): the pool never shrinks for good", () => {
    let t = 0;
    const pool = new StagingPool(10, () => t);
    const lost = new Staged(10, pool);
    lost.add(new Uint8Array(10)); // its put never settles: release() is never called
    const next = new Staged(10, pool);
    next.add(new Uint8Array(4));
    expect(next.kept).toBe(0);
    t = STAGING_GRANT_MS + 1;
    const later = new Staged(10, pool);
    later.add(new Uint8Array(4));
    expect(later.kept).toBe(4);
    expect(pool.inUse).toBe(4);
    later.release();
    expect(pool.inUse).toBe(0);
  });

  it("a copy still adding after its own grant's age is not reclaimed by its own take: its release gives everything back", () => {
    let t = 0;
    const pool = new StagingPool(100, () => t);
    const long = new Staged(50, pool);
    long.add(new Uint8Array(10));
    t = STAGING_GRANT_MS + 1;
    long.add(new Uint8Array(10));
    expect(long.kept).toBe(20);
    expect(pool.inUse).toBe(20);
    long.release();
    expect(pool.inUse).toBe(0);
    t = 3 * STAGING_GRANT_MS;
    const next = new Staged(100, pool);
    next.add(new Uint8Array(100));
    expect(next.kept).toBe(100);
  });
});

describe("ARCHIVE_MAX_BYTES", () => {
  it("is clamped to 16 MiB: an archived call holds about three times it, and an isolate has 128 MB", () => {
    const env = (v?: string) => ({ ...(v !== undefined ? { ARCHIVE_MAX_BYTES: v } : {}) }) as unknown as Env;
    expect(config(env()).archiveMaxBytes).toBe(4 * 1024 * 1024);
    expect(config(env(String(100 * 1024 * 1024))).archiveMaxBytes).toBe(MAX_ARCHIVE_BYTES);
    expect(MAX_ARCHIVE_BYTES * 3).toBeLessThan(128 * 1000 * 1000);
    expect(config(env("1000")).archiveMaxBytes).toBe(1000);
  });
});

describe("sending a batch of usage events (deliver)", () => {
  const run = async (send: () => Promise<unknown>) => {
    const seen: { sent?: number; lost?: [string, number]; at?: number } = {};
    const start = Date.now();
    const done = deliver(send, start + SEND_DEADLINE_MS, {
      sent: (n) => (seen.sent = n),
      lost: (name, n) => {
        seen.lost = [name, n];
        seen.at = Date.now() - start;
      },
    });
    await vi.runAllTimersAsync();
    await done;
    return seen;
  };
  beforeEach(() => {
    vi.useFakeTimers({ now: Date.UTC(2026, 10, 29, 12) });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("a Queue that never answers: every try times out, and the batch is given up (and logged) before the flush's waitUntil would be ended", async () => {
    let tries = 0;
    const seen = await run(() => (tries++, new Promise(() => {})));
    expect(tries).toBe(SEND_RETRY_MS.length + 1);
    expect(seen.lost).toEqual(["timeout", SEND_RETRY_MS.length]);
    expect(seen.at!).toBeLessThanOrEqual(SEND_DEADLINE_MS);
    expect(SEND_DEADLINE_MS).toBeLessThan(30_000);
  });

  it("a Queue that hangs once, then takes the batch: sent on the second try", async () => {
    let tries = 0;
    const seen = await run(() => (++tries === 1 ? new Promise(() => {}) : Promise.resolve()));
    expect(tries).toBe(2);
    expect(seen).toEqual({ sent: 1 });
  });

  it("a Queue that refuses every try: given up naming the error; one that answers at once: no retry", async () => {
    const refused = await run(() => Promise.reject(new TypeError("Too Many Requests")));
    expect(refused.lost).toEqual(["TypeError", SEND_RETRY_MS.length]);
    // One that throws before it returns (a missing binding, a JavaScript stand-in) alike.
    const thrown = await run(() => {
      throw new TypeError("Cannot read properties of undefined (reading 'sendBatch')");
    });
    expect(thrown.lost).toEqual(["TypeError", SEND_RETRY_MS.length]);
    expect(await run(() => Promise.resolve())).toEqual({});
  });

  it("no try starts that could not run its whole bound before the deadline (a flush's later chunks after slow earlier ones)", async () => {
    let tries = 0;
    const start = Date.now();
    const seen: { lost?: [string, number] } = {};
    const done = deliver(() => (tries++, new Promise(() => {})), start + SEND_TIMEOUT_MS + 50, { sent: () => {}, lost: (name, n) => (seen.lost = [name, n]) });
    await vi.runAllTimersAsync();
    await done;
    expect(tries).toBe(1);
    expect(seen.lost).toEqual(["timeout", 0]);
    const late = await (async () => {
      const out: { lost?: [string, number] } = {};
      const d = deliver(() => Promise.resolve(), Date.now() - 1, { sent: () => {}, lost: (name, n) => (out.lost = [name, n]) });
      await vi.runAllTimersAsync();
      await d;
      return out;
    })();
    expect(late.lost).toEqual(["deadline", 0]);
  });
});
