// Unit tests of the Worker's pure parts (they run in Node: no workerd needed): the
// token bucket, retry timing decisions, the usage readers, metrics sampling and key digests.
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { backoffMs, retryDelayMs, retryableStatus } from "../../src/forward.ts";
import { retryAfterMs } from "../../../shared/retry-after.ts";
import { sampleWeight, toDataPoint, worthLogging, writeMetric, type CallRecord } from "../../src/metrics.ts";
import { sameDigest } from "../../src/policy/auth.ts";
import { LocalLimits, rateLimit } from "../../src/policy/rate-limit.ts";
import { sha256Hex } from "../../src/tenant-record.ts";
import { leaseSize, MAX_LEASE, MAX_TOPUP_LEASE, take, type Bucket, type TakeResult } from "../../src/policy/token-bucket.ts";
import { SseUsageScanner, emptyUsage, usageFromJson } from "../../src/usage.ts";
import { frame, messageEvents, overloadedEvent } from "../wire.ts";

describe("token bucket", () => {
  it("starts full, admits exactly `burst` at one instant, then refuses with retry-after", () => {
    let b: Bucket | undefined;
    const admitted: boolean[] = [];
    let last;
    for (let i = 0; i < 25; i++) {
      const r = take(b, 1_000, 60, 10);
      b = r.bucket;
      admitted.push(r.result.allowed);
      last = r.result;
    }
    expect(admitted.filter(Boolean)).toHaveLength(10);
    expect(last!.retryAfterMs).toBe(1000); // 60/min = one token per second
    expect(last!.remaining).toBe(0);
  });

  it("refills at the rate, never above burst", () => {
    let { bucket } = take(undefined, 0, 120, 4); // 2 tokens/s, 3 left
    for (let i = 0; i < 3; i++) bucket = take(bucket, 0, 120, 4).bucket;
    expect(take(bucket, 0, 120, 4).result.allowed).toBe(false);
    expect(take(bucket, 500, 120, 4).result.allowed).toBe(true); // one token after 0.5 s
    expect(take(bucket, 3_600_000, 120, 4).result.remaining).toBe(3); // capped at burst
  });

  it("never admits more than burst + rate * elapsed (property)", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 600 }), fc.integer({ min: 1, max: 50 }), fc.array(fc.integer({ min: 0, max: 5000 }), { maxLength: 200 }), (rate, burst, gaps) => {
        let b: Bucket | undefined;
        let now = 0;
        let admitted = 0;
        for (const g of gaps) {
          now += g;
          const r = take(b, now, rate, burst);
          b = r.bucket;
          if (r.result.allowed) admitted++;
        }
        return admitted <= burst + Math.floor((rate / 60_000) * now) + 1e-9;
      }),
    );
  });

  it("rejects a broken limit (the Durable Object then errors and the fail mode applies)", () => {
    expect(() => take(undefined, 0, 0, 10)).toThrow(RangeError);
    expect(() => take(undefined, 0, 10, 0)).toThrow(RangeError);
  });
});

describe("leases and the in-isolate shortcut", () => {
  // A stand-in for the Durable Object: the real bucket arithmetic, one call at a time
  // (as the input gate makes it), on a clock the test controls.
  function durableObject(rate: number, burst: number, clock: { now: number }) {
    let bucket: Bucket | undefined;
    let calls = 0;
    const call = async (leaseCap?: number): Promise<TakeResult> => {
      calls++;
      await new Promise((r) => setImmediate(r));
      const r = take(bucket, clock.now, rate, burst, leaseCap);
      bucket = r.bucket;
      return r.result;
    };
    return { call, calls: () => calls };
  }

  it("leases nothing for a slow or nearly empty bucket, a bounded share otherwise", () => {
    expect(leaseSize(9, 1)).toBe(0);
    expect(leaseSize(15, 1_000_000)).toBe(0);
    expect(leaseSize(160, 6000)).toBe(10);
    expect(leaseSize(1e9, 1e9)).toBe(MAX_LEASE);
    // A top-up may ask for more, never beyond MAX_TOPUP_LEASE nor the other bounds.
    expect(leaseSize(1e9, 1e9, 64)).toBe(64);
    expect(leaseSize(1e9, 1e9, 1e9)).toBe(MAX_TOPUP_LEASE);
    expect(leaseSize(1e9, 1e9, Number.NaN)).toBe(MAX_LEASE);
    expect(leaseSize(160, 6000, 1e9)).toBe(10);
    // Granted tokens come out of the bucket: a lease can never exceed the limit.
    const { result, bucket } = take(undefined, 0, 6000, 161);
    expect(result.granted).toBe(11);
    expect(bucket.tokens).toBe(150);
  });

  it("under concurrency, isolates never admit more than the bucket, with or without top-ups (frozen clock)", async () => {
    for (const topUps of [false, true]) {
      for (const isolates of [1, 3]) {
        const clock = { now: 1_000 };
        const dobj = durableObject(600_000, 300, clock);
        const locals = Array.from({ length: isolates }, () => new LocalLimits());
        const background: Promise<unknown>[] = [];
        const bg = topUps ? (p: Promise<unknown>) => void background.push(p) : undefined;
        const verdicts = await Promise.all(
          Array.from({ length: 1000 }, (_, i) => rateLimit("t", dobj.call, locals[i % isolates]!, () => clock.now, false, 1000, bg)),
        );
        await Promise.all(background);
        const admitted = verdicts.filter((v) => v.ok).length;
        if (isolates === 1) expect(admitted).toBe(300);
        else expect(admitted).toBeLessThanOrEqual(300);
        expect(verdicts.filter((v) => !v.ok).every((v) => !v.ok && v.status === 429)).toBe(true);
        // Leases saved Durable Object calls: far fewer calls than admissions.
        if (isolates === 1) expect(dobj.calls()).toBeLessThan(admitted);
        if (topUps) expect(background.length).toBeGreaterThan(0);
      }
    }
  });

  it("tops a lease up in the background before it runs out, so calls rarely wait", async () => {
    const clock = { now: 0 };
    const dobj = durableObject(6_000_000, 1_000_000, clock);
    const local = new LocalLimits();
    const background: Promise<unknown>[] = [];
    const bg = (p: Promise<unknown>) => void background.push(p);
    // First call: one Durable Object call, granted 1 + 32 (MAX_LEASE).
    await rateLimit("t", dobj.call, local, () => clock.now, false, 1000, bg);
    expect(dobj.calls()).toBe(1);
    // Spending the lease down to its last quarter starts exactly one top-up.
    for (let i = 0; i < 24; i++) expect((await rateLimit("t", dobj.call, local, () => clock.now, false, 1000, bg)).ok).toBe(true);
    expect(background).toHaveLength(1);
    await Promise.all(background);
    expect(dobj.calls()).toBe(2);
    // The lease was spent within its lifetime, so the top-up asked for twice as much: its
    // whole grant joined the lease, 8 left + 65 = 73 calls without asking.
    for (let i = 0; i < 73; i++) await rateLimit("t", dobj.call, local, () => clock.now, false, 1000);
    expect(dobj.calls()).toBe(2);
    await rateLimit("t", dobj.call, local, () => clock.now, false, 1000);
    expect(dobj.calls()).toBe(3);
  });

  it("top-ups of a busy isolate grow to MAX_TOPUP_LEASE; a fresh or expired lease starts at MAX_LEASE", async () => {
    const clock = { now: 0 };
    const dobj = durableObject(6_000_000, 1_000_000, clock);
    const local = new LocalLimits();
    const granted: number[] = [];
    const call = async (cap: number) => {
      const r = await dobj.call(cap);
      granted.push(r.granted);
      return r;
    };
    for (let i = 0; i < 2000; i++) {
      const background: Promise<unknown>[] = [];
      expect((await rateLimit("t", call, local, () => clock.now, false, 1000, (p) => void background.push(p))).ok).toBe(true);
      await Promise.all(background);
    }
    expect(granted[0]).toBe(1 + MAX_LEASE);
    expect(Math.max(...granted)).toBe(1 + MAX_TOPUP_LEASE);
    // Far fewer Durable Object calls than with MAX_LEASE alone (2000 / 33 = 61).
    expect(dobj.calls()).toBeLessThan(20);
    // After the lease expired, the next call asks for MAX_LEASE again.
    clock.now += 2000;
    await rateLimit("t", call, local, () => clock.now, false, 1000);
    expect(granted.at(-1)).toBe(1 + MAX_LEASE);
  });

  it("spends leased tokens before a remembered denial (they were deducted already)", () => {
    const local = new LocalLimits();
    local.remember("t", 0, { allowed: true, granted: 3, remaining: 0, limit: 10, retryAfterMs: 0, resetMs: 0 }, 1000, 0);
    local.remember("t", 0, { allowed: false, granted: 0, remaining: 0, limit: 10, retryAfterMs: 500, resetMs: 500 }, 1000);
    expect([1, 2, 3, 4].map(() => local.check("t", 10)?.allowed)).toEqual([true, true, true, false]);
    expect(local.check("t", 10)?.retryAfterMs).toBe(490);
    expect(local.check("t", 500)).toBeUndefined(); // the denial is over: ask the Durable Object
  });

  it("drops a lease after LEASE_MS and asks again", async () => {
    const clock = { now: 0 };
    const dobj = durableObject(600_000, 10_000, clock);
    const local = new LocalLimits();
    await rateLimit("t", dobj.call, local, () => clock.now, false, 1000);
    await rateLimit("t", dobj.call, local, () => clock.now, false, 1000);
    expect(dobj.calls()).toBe(1);
    clock.now += 1000;
    await rateLimit("t", dobj.call, local, () => clock.now, false, 1000);
    expect(dobj.calls()).toBe(2);
  });

  it("fails closed (503) or open as configured when the Durable Object throws", async () => {
    const boom = async (): Promise<TakeResult> => {
      throw new Error("durable object reset");
    };
    const closed = await rateLimit("t", boom, new LocalLimits(), () => 0, false, 1000);
    expect(closed).toMatchObject({ ok: false, status: 503 });
    const open = await rateLimit("t", boom, new LocalLimits(), () => 0, true, 1000);
    expect(open).toMatchObject({ ok: true, failedOpen: true });
  });
});

describe("retry decisions", () => {
  const cfg = { retryBaseMs: 100, retryMaxBackoffMs: 1000, retryAfterCapMs: 5000 };
  it("retries 429, 529 and 5xx only", () => {
    expect([429, 500, 502, 503, 529].every(retryableStatus)).toBe(true);
    expect([200, 400, 401, 403, 404, 413].some(retryableStatus)).toBe(false);
  });
  it("honours retry-after (seconds, ms, HTTP date) up to the cap", () => {
    expect(retryDelayMs(new Headers({ "retry-after": "2" }), 0, cfg, 0, 0.5)).toBe(2000);
    expect(retryDelayMs(new Headers({ "retry-after-ms": "1234" }), 0, cfg, 0, 0.5)).toBe(1234);
    const now = Date.parse("2026-01-01T00:00:00Z");
    expect(retryAfterMs(new Headers({ "retry-after": "Thu, 01 Jan 2026 00:00:03 GMT" }), now)).toBe(3000);
    expect(retryDelayMs(new Headers({ "retry-after": "6" }), 0, cfg, 0, 0.5)).toBeUndefined();
  });
  it("backs off exponentially with full jitter, capped", () => {
    expect(retryDelayMs(new Headers(), 0, cfg, 0, 1)).toBe(100);
    expect(backoffMs(1, cfg, 1)).toBe(200);
    expect(backoffMs(3, cfg, 1)).toBe(800);
    expect(backoffMs(10, cfg, 1)).toBe(1000);
    expect(backoffMs(3, cfg, 0.25)).toBe(200);
    expect(backoffMs(3, cfg, 0)).toBe(0);
  });
});

describe("usage readers", () => {
  it("reads model and all token counts from an SSE stream split at any byte", () => {
    const bytes = new TextEncoder().encode(messageEvents(["a", "ü😀"], { input_tokens: 3, output_tokens: 77, cache_creation_input_tokens: 5, cache_read_input_tokens: 9 }).map(frame).join(""));
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: bytes.length - 1 }), { maxLength: 12 }), (cuts) => {
        const s = new SseUsageScanner();
        const points = [0, ...[...new Set(cuts)].sort((a, b) => a - b), bytes.length];
        for (let i = 0; i + 1 < points.length; i++) s.push(bytes.slice(points[i], points[i + 1]));
        expect(s.usage).toMatchObject({ inputTokens: 3, outputTokens: 77, cacheCreationTokens: 5, cacheReadTokens: 9, errorType: "" });
        expect(s.usage.model).toMatch(/^claude-/);
        expect(s.atBoundary).toBe(true);
        expect(s.events).toBe(8);
      }),
    );
  });
  it("counts events as they end, not blank lines alone (how the first event is found)", () => {
    const s = new SseUsageScanner();
    const first = new TextEncoder().encode(frame(messageEvents(["a"])[0]!));
    s.push(new TextEncoder().encode("\n\r\n"));
    expect(s.events).toBe(0);
    s.push(first.slice(0, first.length - 1));
    expect(s.events).toBe(0);
    s.push(first.slice(first.length - 1));
    expect(s.events).toBe(1);
    expect(s.usage.inputTokens).toBe(25);
    s.push(new TextEncoder().encode(": a comment\n\nevent: ping\ndata: {}\n\n"));
    expect(s.events).toBe(3);
  });
  it("reads usage with CRLF or CR line ends, split at any byte, and knows where events end", () => {
    const lf = messageEvents(["a", "b"], { input_tokens: 4, output_tokens: 12, cache_creation_input_tokens: 6, cache_read_input_tokens: 2 }).map(frame).join("");
    for (const eol of ["\r\n", "\r"]) {
      const bytes = new TextEncoder().encode(lf.replace(/\n/g, eol));
      fc.assert(
        fc.property(fc.array(fc.integer({ min: 1, max: bytes.length - 1 }), { maxLength: 12 }), (cuts) => {
          const s = new SseUsageScanner();
          const points = [0, ...[...new Set(cuts)].sort((a, b) => a - b), bytes.length];
          for (let i = 0; i + 1 < points.length; i++) s.push(bytes.slice(points[i], points[i + 1]));
          expect(s.usage).toMatchObject({ inputTokens: 4, outputTokens: 12, cacheCreationTokens: 6, cacheReadTokens: 2, errorType: "" });
          expect(s.usage.model).toMatch(/^claude-/);
          expect(s.atBoundary).toBe(true);
        }),
      );
    }
    const s = new SseUsageScanner();
    const first = new TextEncoder().encode(frame(messageEvents(["a"])[0]!));
    s.push(first.slice(0, 10));
    expect(s.atBoundary).toBe(false);
    s.push(first.slice(10));
    expect(s.atBoundary).toBe(true);
    s.push(new TextEncoder().encode("event: content_block_delta\ndata: {"));
    expect(s.atBoundary).toBe(false);
  });
  it("sees error events and overloads", () => {
    const s = new SseUsageScanner();
    s.push(new TextEncoder().encode(frame(overloadedEvent)));
    expect(s.usage.errorType).toBe("overloaded_error");
    expect(s.events).toBe(1);
    const ok = new SseUsageScanner();
    ok.push(new TextEncoder().encode(frame(messageEvents([])[0]!)));
    expect(ok.usage.errorType).toBe("");
  });
  it("reads JSON messages, count_tokens results and error envelopes", () => {
    expect(usageFromJson('{"model":"m","usage":{"input_tokens":1,"output_tokens":2,"cache_read_input_tokens":3}}')).toMatchObject({ model: "m", inputTokens: 1, outputTokens: 2, cacheReadTokens: 3 });
    // count_tokens: a count, recorded apart from billed input tokens (issue 14.9).
    expect(usageFromJson('{"input_tokens":42}')).toMatchObject({ inputTokens: 0, countedTokens: 42 });
    expect(usageFromJson('{"type":"error","error":{"type":"overloaded_error","message":"x"}}').errorType).toBe("overloaded_error");
    expect(usageFromJson("not json")).toEqual(emptyUsage());
  });
  it("reads the cache-write split by TTL from a JSON message and from an SSE stream (issue 16.1)", () => {
    const usage = { input_tokens: 5, output_tokens: 9, cache_creation_input_tokens: 300, cache_read_input_tokens: 0, cache_creation: { ephemeral_5m_input_tokens: 100, ephemeral_1h_input_tokens: 200 } };
    expect(usageFromJson(JSON.stringify({ type: "message", model: "m", usage }))).toMatchObject({ cacheCreationTokens: 300, cacheWrite5mTokens: 100, cacheWrite1hTokens: 200 });
    const s = new SseUsageScanner();
    s.push(new TextEncoder().encode(messageEvents(["a"], usage).map(frame).join("")));
    expect(s.usage).toMatchObject({ cacheCreationTokens: 300, cacheWrite5mTokens: 100, cacheWrite1hTokens: 200, outputTokens: 9 });
    // No split sent: both stay zero (the pricing rule bills the unexplained part as 1-hour writes).
    expect(usageFromJson('{"usage":{"input_tokens":1,"output_tokens":1,"cache_creation_input_tokens":7}}')).toMatchObject({ cacheCreationTokens: 7, cacheWrite5mTokens: 0, cacheWrite1hTokens: 0 });
  });
});

describe("metrics sampling", () => {
  const rec = (status: number, errorType = ""): CallRecord => ({ requestId: "r", tenant: "t", route: "/v1/messages", status, usage: { ...emptyUsage(), errorType }, latencyMs: 1, ttfbMs: 1, retries: 0 });
  it("always writes errors, samples successes with a weight of 1/rate", () => {
    expect(sampleWeight(rec(500), 0, 0.99)).toBe(1);
    expect(sampleWeight(rec(200, "stream_interrupted"), 0, 0.99)).toBe(1);
    expect(sampleWeight(rec(200), 0, 0)).toBe(0);
    expect(sampleWeight(rec(200), 0.25, 0.1)).toBe(4);
    expect(sampleWeight(rec(200), 0.25, 0.3)).toBe(0);
    expect(toDataPoint(rec(200), 4).doubles?.[8]).toBe(4);
  });
  it("leaves nothing pending with a synchronous binding; hands a recorder's promise back", async () => {
    const written: AnalyticsEngineDataPoint[] = [];
    const real = { writeDataPoint: (p?: AnalyticsEngineDataPoint) => void written.push(p!) } as AnalyticsEngineDataset;
    expect(writeMetric(real, rec(200), 1, 0.5)).toBeUndefined();
    expect(writeMetric(real, rec(200), 0.25, 0.5)).toBeUndefined(); // sampled out: not written
    expect(written).toHaveLength(1);
    let done = false;
    const recorder = { writeDataPoint: () => new Promise<void>((r) => setTimeout(() => ((done = true), r()), 1)) } as unknown as AnalyticsEngineDataset;
    const pending = writeMetric(recorder, rec(500), 0, 0.9);
    expect(pending).toBeInstanceOf(Promise);
    await pending;
    expect(done).toBe(true);
  });
  it("logs errors, retried calls and calls let through by a failed limiter; not plain successes", () => {
    expect(worthLogging(rec(200), false)).toBe(false);
    expect(worthLogging(rec(200), true)).toBe(true);
    expect(worthLogging({ ...rec(200), retries: 1 }, false)).toBe(true);
    expect(worthLogging(rec(200, "client_closed"), false)).toBe(true);
    expect(worthLogging(rec(429), false)).toBe(true);
  });
});

describe("key digests", () => {
  it("sha256Hex is SHA-256 in lower-case hex (the hash npm run tenants stores)", async () => {
    expect(await sha256Hex("")).toBe("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    expect(await sha256Hex("abc")).toBe("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  });

  it("sameDigest is equality: a difference anywhere, or another length, is unequal", () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[0-9a-f]{64}$/), fc.nat(63), (d, i) => {
        expect(sameDigest(d, d)).toBe(true);
        const flipped = d.slice(0, i) + (d[i] === "0" ? "1" : "0") + d.slice(i + 1);
        expect(sameDigest(d, flipped)).toBe(false);
        expect(sameDigest(d, d.slice(0, i))).toBe(false);
      }),
    );
  });
});
