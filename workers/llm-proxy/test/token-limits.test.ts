// Token limits per tenant in workerd (issue 14.8): input and output tokens per minute in
// the tenant's Durable Object, reserved before the call (input from the body's size or
// count_tokens, output from max_tokens) and settled to the usage afterwards. Exact under
// concurrency; cache reads are free; a 429 names the limit in Anthropic's envelope and
// in headers.
import { describe, expect, it } from "vitest";
import { message, messageEvents, overloadedEvent, type Behaviour } from "./fake-anthropic.ts";
import { Harness, useHarness } from "./harness.ts";

const body = (maxTokens: number, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ model: "claude-x", max_tokens: maxTokens, messages: [{ role: "user", content: "Hello" }], ...extra });

describe("token limits per tenant", () => {
  let h: Harness;
  useHarness({ METRICS_SAMPLE_RATE: "0" }, (started) => {
    h = started;
  });

  it("100 concurrent calls of max_tokens 100 against 1,000 output tokens/min admit exactly 10", async () => {
    const { key } = await h.tenant({ ratePerMinute: 6000, burst: 1000, outputTokensPerMinute: 1000 });
    h.fake.reset();
    // Every admitted call uses all of its max_tokens: nothing is given back.
    h.fake.enqueue(...Array.from({ length: 100 }, () => ({ kind: "json" as const, body: message("x", { input_tokens: 5, output_tokens: 100, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 }) })));
    const t0 = Date.now();
    const results = await Promise.all(Array.from({ length: 100 }, () => h.call("/v1/messages", { key, body: body(100) })));
    const elapsedS = (Date.now() - t0) / 1000;
    const ok = results.filter((r) => r.status === 200);
    const limited = results.filter((r) => r.status === 429);
    // 1,000/min refills 100 tokens (one more call) every 6 s.
    expect(ok.length).toBeGreaterThanOrEqual(10);
    expect(ok.length).toBeLessThanOrEqual(10 + Math.floor(elapsedS / 6));
    if (elapsedS < 5.5) expect(ok).toHaveLength(10);
    expect(ok.length + limited.length).toBe(100);
    expect(h.fake.received.filter((r) => r.path === "/v1/messages")).toHaveLength(ok.length);
    const r = limited[0]!;
    expect(JSON.parse(r.text)).toEqual({
      type: "error",
      error: { type: "rate_limit_error", message: "rate limit exceeded for this API key: output tokens per minute (1000)" },
      request_id: r.headers.get("request-id"),
    });
    expect(r.headers.get("edgefleet-ratelimit-exceeded")).toBe("output_tokens");
    expect(r.headers.get("edgefleet-ratelimit-output-tokens-limit")).toBe("1000");
    expect(Number(r.headers.get("edgefleet-ratelimit-output-tokens-remaining"))).toBeLessThan(100);
    expect(r.headers.get("edgefleet-ratelimit-output-tokens-reset")).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    expect(Number(r.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect(Number(r.headers.get("retry-after"))).toBeLessThanOrEqual(6);
    // No input limit: no input headers; the organisation's headers never reach a tenant.
    expect(r.headers.get("edgefleet-ratelimit-input-tokens-limit")).toBeNull();
    expect(ok[0]!.headers.get("edgefleet-ratelimit-output-tokens-limit")).toBe("1000");
  });

  it("settles to the usage: a call that used 5 of its 900 reserved output tokens gives 895 back (JSON and SSE)", async () => {
    for (const stream of [false, true]) {
      const { key } = await h.tenant({ outputTokensPerMinute: 1000 });
      h.fake.reset();
      if (stream) h.fake.enqueue({ kind: "sse", events: messageEvents(["Hi"], { input_tokens: 5, output_tokens: 5, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 }) });
      else h.fake.enqueue({ kind: "json", body: message("Hi", { input_tokens: 5, output_tokens: 5, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 }) });
      const first = await h.call("/v1/messages", { key, body: body(900, stream ? { stream: true } : {}) });
      expect(first.status).toBe(200);
      // Without the settle only ~100 tokens would be left: a second call of 900 must wait.
      let second = 0;
      for (let i = 0; i < 50 && second !== 200; i++) {
        if (i > 0) await new Promise((r) => setTimeout(r, 20));
        second = (await h.call("/v1/messages", { key, body: body(900) })).status;
      }
      expect(second, stream ? "sse" : "json").toBe(200);
    }
  });

  it("a stream the client abandons keeps its output reservation (the upstream may have generated it)", async () => {
    const { key } = await h.tenant({ outputTokensPerMinute: 1000 });
    h.fake.reset();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    h.fake.enqueue({ kind: "sse", events: messageEvents(["a", "b", "c"]), before: (i) => (i === 3 ? gate : Promise.resolve()) });
    const ac = new AbortController();
    const res = await fetch(new URL("/v1/messages", h.url), {
      method: "POST",
      headers: { "x-api-key": key, "content-type": "application/json", "anthropic-version": "2023-06-01" },
      body: body(900, { stream: true }),
      signal: ac.signal,
    });
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    await reader.read();
    ac.abort();
    await reader.cancel().catch(() => {});
    release();
    await new Promise((r) => setTimeout(r, 300));
    const next = await h.call("/v1/messages", { key, body: body(900) });
    expect(next.status).toBe(429);
    expect(next.headers.get("edgefleet-ratelimit-exceeded")).toBe("output_tokens");
  });

  // Streams the client received to their end that still lack their final usage.
  const unfinished: [string, Behaviour, string][] = [
    [
      "the upstream ends with an error event before its final usage",
      { kind: "sse", events: [...messageEvents(["a", "b"]).slice(0, 4), overloadedEvent], before: (i) => (i === 4 ? new Promise((r) => setTimeout(r, 30)) : Promise.resolve()) },
      "overloaded_error",
    ],
    ["it ends without its final usage (no message_delta)", { kind: "sse", events: messageEvents(["a", "b"]).filter((e) => e.event !== "message_delta") }, "message_stop"],
  ];
  for (const [what, answer, seen] of unfinished) {
    it(`a stream where ${what} keeps its output reservation too`, async () => {
      const { key } = await h.tenant({ outputTokensPerMinute: 1000 });
      h.fake.reset();
      h.fake.enqueue(answer);
      const r = await h.call("/v1/messages", { key, body: body(900, { stream: true }) });
      expect(r.text).toContain(seen);
      await new Promise((res) => setTimeout(res, 300));
      const next = await h.call("/v1/messages", { key, body: body(900) });
      expect(next.status).toBe(429);
      expect(next.headers.get("edgefleet-ratelimit-exceeded")).toBe("output_tokens");
    });
  }

  it("cache reads do not count toward the input limit; uncached input and cache writes do", async () => {
    const { key } = await h.tenant({ inputTokensPerMinute: 2000 });
    h.fake.reset();
    // 100,000 tokens read from the cache: 50 times the limit, and free.
    h.fake.enqueue({ kind: "json", body: message("a", { input_tokens: 10, output_tokens: 3, cache_creation_input_tokens: 0, cache_read_input_tokens: 100_000 }) });
    expect((await h.call("/v1/messages", { key, body: body(10) })).status).toBe(200);
    let s = 0;
    let last;
    for (let i = 0; i < 50 && s !== 200; i++) {
      await new Promise((r) => setTimeout(r, 20));
      last = await h.call("/v1/messages", { key, body: body(10) });
      s = last.status;
    }
    expect(s).toBe(200);
    // 2000 - 10 used - this call's reservation (its byte size), give or take the refill.
    const remaining = Number(last!.headers.get("edgefleet-ratelimit-input-tokens-remaining"));
    expect(remaining).toBeLessThanOrEqual(2000 - 10 - body(10).length + 5);
    expect(remaining).toBeGreaterThan(1500);
    // Cache writes count: 1,950 written leaves too little for another call at once.
    const { key: k2 } = await h.tenant({ inputTokensPerMinute: 2000 });
    h.fake.enqueue({ kind: "json", body: message("a", { input_tokens: 10, output_tokens: 3, cache_creation_input_tokens: 1950, cache_read_input_tokens: 0 }) });
    expect((await h.call("/v1/messages", { key: k2, body: body(10) })).status).toBe(200);
    // (after the first call's lease, which held one more reservation, has expired)
    await new Promise((r) => setTimeout(r, 1100));
    h.fake.enqueue({ kind: "json", body: { input_tokens: 1500 } }); // count_tokens near the limit
    const refused = await h.call("/v1/messages", { key: k2, body: body(10) });
    expect(refused.status).toBe(429);
    expect(refused.headers.get("edgefleet-ratelimit-exceeded")).toBe("input_tokens");
  });

  it("near the input limit, asks count_tokens (counted fields only) and admits what fits", async () => {
    const { key } = await h.tenant({ inputTokensPerMinute: 1000 });
    h.fake.reset();
    // 3,000 bytes of text: the byte bound (3,000+) exceeds the limit; the real count fits.
    const big = JSON.stringify({ model: "claude-x", max_tokens: 50, stream: false, messages: [{ role: "user", content: "word ".repeat(600) }] });
    const r = await h.call("/v1/messages", { key, body: big });
    expect(r.status).toBe(200);
    expect(h.fake.received.map((q) => q.path)).toEqual(["/v1/messages/count_tokens", "/v1/messages"]);
    const counted = JSON.parse(h.fake.received[0]!.body.toString("utf8")) as Record<string, unknown>;
    expect(Object.keys(counted).sort()).toEqual(["messages", "model"]);
    expect(h.fake.received[0]!.headers["x-api-key"]).toBe(h.secrets.ANTHROPIC_API_KEY);
    // The forwarded body is still the client's bytes.
    expect(h.fake.received[1]!.body.toString("utf8")).toBe(big);

    // When even the exact count exceeds the limit, waiting cannot help: 429, no retry.
    h.fake.reset();
    h.fake.enqueue({ kind: "json", body: { input_tokens: 5000 } });
    const never = await h.call("/v1/messages", { key, body: big });
    expect(never.status).toBe(429);
    expect(JSON.parse(never.text).error.message).toMatch(/exceeds this API key's limit of input tokens per minute \(1000\)/);
    expect(never.headers.get("x-should-retry")).toBe("false");
    expect(h.fake.received.map((q) => q.path)).toEqual(["/v1/messages/count_tokens"]);
  });

  it("an image (whose bytes bound nothing) is counted before it is admitted", async () => {
    const { key } = await h.tenant({ inputTokensPerMinute: 100_000 });
    h.fake.reset();
    h.fake.enqueue({ kind: "json", body: { input_tokens: 1600 } });
    const img = JSON.stringify({
      model: "claude-x",
      max_tokens: 10,
      messages: [{ role: "user", content: [{ type: "image", source: { type: "base64", media_type: "image/png", data: "iVBORw0KGgo=" } }, { type: "text", text: "what is it?" }] }],
    });
    const r = await h.call("/v1/messages", { key, body: img });
    expect(r.status).toBe(200);
    expect(h.fake.received.map((q) => q.path)).toEqual(["/v1/messages/count_tokens", "/v1/messages"]);
  });

  it("a tenant without token limits is untouched: no body read before the limit, no token headers", async () => {
    const { key } = await h.tenant();
    h.fake.reset();
    const r = await h.call("/v1/messages", { key, body: body(100000) });
    expect(r.status).toBe(200);
    expect(r.headers.get("edgefleet-ratelimit-output-tokens-limit")).toBeNull();
    expect(h.fake.received.map((q) => q.path)).toEqual(["/v1/messages"]);
  });
});
