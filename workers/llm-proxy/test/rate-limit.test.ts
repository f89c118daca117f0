// Rate limiting in workerd: the per-tenant Durable Object admits exactly the bucket
// under concurrency, answers 429 with retry-after and rate-limit headers, keeps tenants
// apart, and fails closed (or open, when configured) when it errors.
import { describe, expect, it } from "vitest";
import { Harness, useHarness, MESSAGE } from "./harness.ts";

// A record whose limit the Durable Object refuses (rate 0): the limiter errors.
const brokenTenant = (h: Harness) => h.brokenTenant();

describe("rate limiting (fail closed by default, success metrics sampled out)", () => {
  let h: Harness;
  useHarness({ METRICS_SAMPLE_RATE: "0" }, (started) => {
    h = started;
  });

  it("100 concurrent requests against a bucket of 10 admit exactly 10", async () => {
    // 1 token per minute: nothing refills while the test runs.
    const { key } = await h.tenant({ ratePerMinute: 1, burst: 10 });
    h.fake.reset();
    const results = await Promise.all(Array.from({ length: 100 }, () => h.call("/v1/messages", { key, body: MESSAGE })));
    const ok = results.filter((r) => r.status === 200);
    const limited = results.filter((r) => r.status === 429);
    expect(ok).toHaveLength(10);
    expect(limited).toHaveLength(90);
    expect(h.fake.received).toHaveLength(10);
    const r = limited[0]!;
    expect(JSON.parse(r.text)).toEqual({ type: "error", error: { type: "rate_limit_error", message: "rate limit exceeded for this API key: requests (10 at once)" }, request_id: r.headers.get("request-id") });
    expect(r.headers.get("edgefleet-ratelimit-exceeded")).toBe("requests");
    expect(Number(r.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect(Number(r.headers.get("retry-after"))).toBeLessThanOrEqual(60);
    expect(r.headers.get("ratelimit-limit")).toBe("10");
    expect(r.headers.get("ratelimit-remaining")).toBe("0");
    expect(r.headers.get("request-id")).toMatch(/^req_ef_/);
    // Remaining counts down 9..0 across the admitted calls.
    expect(ok.map((x) => Number(x.headers.get("ratelimit-remaining"))).sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it("with leases and top-ups in play, concurrent requests never exceed the bucket plus its refill", async () => {
    // 240/min with a bucket of 200: admitted calls bring leases of 2 tokens (half a
    // second of the rate), so most calls are admitted without a Durable Object call.
    const { key } = await h.tenant({ ratePerMinute: 240, burst: 200 });
    h.fake.reset();
    const t0 = Date.now();
    const results = await Promise.all(Array.from({ length: 300 }, () => h.call("/v1/messages", { key, body: MESSAGE })));
    const elapsedS = (Date.now() - t0) / 1000;
    const ok = results.filter((r) => r.status === 200).length;
    expect(ok + results.filter((r) => r.status === 429).length).toBe(300);
    // The upper bound is the guarantee: the bucket plus what refilled while the test ran.
    expect(ok).toBeLessThanOrEqual(200 + Math.ceil(4 * elapsedS));
    expect(ok).toBeGreaterThan(150); // leases that expire unspent may refuse a few early
    expect(h.fake.received).toHaveLength(ok);
  });

  it("ratelimit-reset is the Durable Object's (time until the bucket is full) on every answer of a burst", async () => {
    // 240/min (4 a second), bucket 300: admitted calls bring leases of 2. Every answer's
    // reset must be the time until the Durable Object's bucket is full again, i.e. about
    // (300 - remaining) / 4 s, whether it came from a lease, the Durable Object or a
    // remembered denial (before: 0 from a lease, ~1 from a remembered denial).
    const { key } = await h.tenant({ ratePerMinute: 240, burst: 300 });
    const results = await Promise.all(Array.from({ length: 400 }, () => h.call("/v1/messages", { key, body: MESSAGE })));
    expect(results.some((r) => r.status === 429)).toBe(true);
    const off = results
      .map((r) => ({ status: r.status, reset: Number(r.headers.get("ratelimit-reset")), remaining: Number(r.headers.get("ratelimit-remaining")) }))
      .filter((x) => Math.abs(x.reset - (300 - x.remaining) / 4) > 3);
    expect(off).toEqual([]);
    const denied = results.filter((r) => r.status === 429).map((r) => Number(r.headers.get("ratelimit-reset")));
    expect(Math.min(...denied)).toBeGreaterThanOrEqual(70);
  });

  it("keeps tenants apart: one tenant's exhausted bucket does not limit another", async () => {
    const a = await h.tenant({ ratePerMinute: 1, burst: 2 });
    const b = await h.tenant({ ratePerMinute: 1, burst: 2 });
    const sa = [];
    for (let i = 0; i < 3; i++) sa.push((await h.call("/v1/messages", { key: a.key, body: MESSAGE })).status);
    expect(sa).toEqual([200, 200, 429]);
    expect((await h.call("/v1/messages", { key: b.key, body: MESSAGE })).status).toBe(200);
  });

  it("fails closed when the limiter errors: 503, upstream not called", async () => {
    const key = await brokenTenant(h);
    h.fake.reset();
    const r = await h.call("/v1/messages", { key, body: MESSAGE });
    expect(r.status).toBe(503);
    expect(JSON.parse(r.text).error.type).toBe("api_error");
    expect(h.fake.received).toHaveLength(0);
  });

  it("with sampling at 0 writes no success points but every error point", async () => {
    const { key } = await h.tenant();
    h.points.length = 0;
    await h.call("/v1/messages", { key, body: MESSAGE });
    await h.call("/v1/messages", { key: "efk_wrong", body: MESSAGE });
    h.fake.enqueue({ kind: "error", status: 400, type: "invalid_request_error", message: "bad" });
    await h.call("/v1/messages", { key, body: MESSAGE });
    const pts = await h.pointsAtLeast(2);
    await new Promise((r) => setTimeout(r, 100)); // a success point, if wrongly written, would land by now
    expect(pts.map((p) => p.blobs[3]).sort()).toEqual(["400", "401"]);
  });
});

describe("rate limiting, fail open when configured", () => {
  let h: Harness;
  useHarness({ RATE_LIMIT_FAIL_MODE: "open" }, (started) => {
    h = started;
  });

  it("lets the call through when the limiter errors", async () => {
    const key = await brokenTenant(h);
    const r = await h.call("/v1/messages", { key, body: MESSAGE });
    expect(r.status).toBe(200);
    expect(h.fake.received).toHaveLength(1);
    // A success that bypassed the limiter is logged, so the failure does not go unseen.
    await h.pointsAtLeast(1);
    const line = h.logs.map((l) => (l.includes('"requestId"') ? (JSON.parse(l) as Record<string, unknown>) : undefined)).find((l) => l?.status === 200);
    expect(line).toMatchObject({ tenant: "t_00000000000000bb", rateLimiter: "failed_open" });
  });
});
