// Unit tests (Node, no workerd) of the forward path's pure parts: the response-header
// allowlist and status texts, the provider quota read into the data point, the
// x-should-retry decision, how a request body travels, and the usage scanner's bound.
import { describe, expect, it } from "vitest";
import { upstreamRetryable } from "../../src/forward.ts";
import { quotaFromHeaders, toDataPoint, type CallRecord } from "../../src/metrics.ts";
import { takeBody } from "../../src/policy/body-size.ts";
import { clientHeaders, statusText } from "../../src/respond.ts";
import { MAX_EVENT_BYTES, SseUsageScanner, emptyUsage } from "../../src/usage.ts";
import { frame, messageEvents } from "../wire.ts";

const upstream = () =>
  new Headers({
    "content-type": "application/json",
    "request-id": "req_011CSHoEeqs5C35K2UUqR7Fy",
    "anthropic-organization-id": "org",
    "anthropic-ratelimit-requests-limit": "4000",
    "anthropic-ratelimit-requests-remaining": "3999",
    "anthropic-ratelimit-tokens-remaining": "1987000",
    "anthropic-ratelimit-input-tokens-remaining": "1990000",
    "anthropic-ratelimit-output-tokens-remaining": "397000",
    "anthropic-ratelimit-requests-reset": "2026-11-27T15:00:00Z",
    server: "cloudflare",
    via: "1.1 google",
    "cf-ray": "x",
    "set-cookie": "a=b",
    "x-debug-trace": "internal",
    "retry-after": "7",
    "retry-after-ms": "7000",
  });

describe("response headers by allowlist", () => {
  it("passes content type and request id only, on a success", () => {
    expect([...clientHeaders(upstream(), 200, false).keys()].sort()).toEqual(["content-type", "request-id"]);
  });
  it("adds retry-after (and -ms) on answers a client may retry, never the quota", () => {
    for (const status of [429, 500, 503, 529]) {
      expect([...clientHeaders(upstream(), status, false).keys()].sort()).toEqual(["content-type", "request-id", "retry-after", "retry-after-ms"]);
    }
    expect(clientHeaders(upstream(), 400, false).get("retry-after")).toBeNull();
  });
  it("says x-should-retry: false once the proxy spent its retries, else passes the upstream's", () => {
    expect(clientHeaders(upstream(), 529, true).get("x-should-retry")).toBe("false");
    const h = upstream();
    h.set("x-should-retry", "true");
    expect(clientHeaders(h, 529, false).get("x-should-retry")).toBe("true");
    expect(clientHeaders(h, 529, true).get("x-should-retry")).toBe("false");
    h.set("x-should-retry", "maybe");
    expect(clientHeaders(h, 529, false).get("x-should-retry")).toBeNull();
  });
  it("gives 529 and the usual statuses a reason phrase", () => {
    expect(statusText(529)).toBe("Overloaded");
    expect(statusText(429)).toBe("Too Many Requests");
    expect(statusText(599)).toBe("Server Error");
  });
});

describe("retry decision", () => {
  it("obeys the upstream's x-should-retry before the status", () => {
    expect(upstreamRetryable(new Response("", { status: 500 }))).toBe(true);
    expect(upstreamRetryable(new Response("", { status: 500, headers: { "x-should-retry": "false" } }))).toBe(false);
    expect(upstreamRetryable(new Response("", { status: 409, headers: { "x-should-retry": "true" } }))).toBe(true);
    expect(upstreamRetryable(new Response("", { status: 400 }))).toBe(false);
  });
});

describe("provider quota in the data point", () => {
  it("reads the four remaining counts; -1 where a header is absent or malformed", () => {
    expect(quotaFromHeaders(upstream())).toEqual({ requestsRemaining: 3999, tokensRemaining: 1987000, inputTokensRemaining: 1990000, outputTokensRemaining: 397000 });
    expect(quotaFromHeaders(new Headers({ "anthropic-ratelimit-requests-remaining": "12abc" }))).toEqual({ requestsRemaining: -1, tokensRemaining: -1, inputTokensRemaining: -1, outputTokensRemaining: -1 });
  });
  it("appends counted tokens and the quota after the existing doubles (earlier queries keep their meaning)", () => {
    const r: CallRecord = { requestId: "r", tenant: "t", route: "/v1/messages/count_tokens", status: 200, usage: { ...emptyUsage(), countedTokens: 42 }, latencyMs: 1, ttfbMs: 1, retries: 0, quota: quotaFromHeaders(upstream()) };
    const d = toDataPoint(r, 1).doubles!;
    expect(d).toHaveLength(14);
    expect(d.slice(9)).toEqual([42, 3999, 1987000, 1990000, 397000]);
    expect(toDataPoint({ ...r, quota: undefined }, 1).doubles!.slice(10)).toEqual([-1, -1, -1, -1]);
  });
});

describe("how a request body travels", () => {
  const post = (body: BodyInit, headers: Record<string, string> = {}) => new Request("http://x/v1/messages", { method: "POST", body, headers, duplex: "half" } as RequestInit);
  const stream = (n: number) => new ReadableStream<Uint8Array>({ start: (c) => (c.enqueue(new Uint8Array(n).fill(97)), c.close()) });

  it("holds a body up to the buffer limit, streams a bigger one with a declared length", async () => {
    expect(await takeBody(post("abc", { "content-length": "3" }), 10, 100)).toMatchObject({ kind: "bytes" });
    const big = await takeBody(post(stream(50), { "content-length": "50" }), 10, 100);
    expect(big.kind).toBe("stream");
  });
  it("without a declared length: held up to the buffer limit, 411 past it, 413 past the maximum", async () => {
    const small = await takeBody(post(stream(10)), 10, 100);
    expect(small.kind === "bytes" && small.bytes.byteLength).toBe(10);
    expect(await takeBody(post(stream(11)), 10, 100)).toMatchObject({ kind: "refused", status: 411 });
    expect(await takeBody(post(stream(101)), 1000, 100)).toMatchObject({ kind: "refused", status: 413 });
  });
});

describe("the usage scanner's bound", () => {
  it("gives up an event it would parse once it passes MAX_EVENT_BYTES, and reads the next ones", () => {
    const s = new SseUsageScanner();
    const huge = `event: message_start\ndata: {"type":"message_start","message":{"model":"m","usage":{"input_tokens":5},"pad":"${"x".repeat(MAX_EVENT_BYTES + 10)}"}}\n\n`;
    const bytes = new TextEncoder().encode(huge);
    for (let i = 0; i < bytes.length; i += 4096) s.push(bytes.subarray(i, i + 4096));
    expect(s.oversized).toBe(1);
    expect(s.usage.inputTokens).toBe(0);
    const rest = messageEvents(["a"], { input_tokens: 7, output_tokens: 3, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 }).slice(-2);
    s.push(new TextEncoder().encode(rest.map(frame).join("")));
    expect(s.usage.outputTokens).toBe(3);
    expect(s.atBoundary).toBe(true);
  });

  it("gives up the same event when it comes whole in one chunk: what is read never depends on how the bytes were cut", () => {
    const huge = `event: message_start\ndata: {"type":"message_start","message":{"model":"m","usage":{"input_tokens":5},"pad":"${"x".repeat(MAX_EVENT_BYTES + 10)}"}}\n\n`;
    const whole = new SseUsageScanner();
    whole.push(new TextEncoder().encode(huge));
    expect(whole.oversized).toBe(1);
    expect(whole.usage.inputTokens).toBe(0);
    expect(whole.events).toBe(1);
    // Just under the bound, whole or cut, it is read.
    const fits = `event: message_start\ndata: {"type":"message_start","message":{"model":"m","usage":{"input_tokens":5},"pad":"${"x".repeat(MAX_EVENT_BYTES - 200)}"}}\n\n`;
    const one = new SseUsageScanner();
    one.push(new TextEncoder().encode(fits));
    const cut = new SseUsageScanner();
    const b = new TextEncoder().encode(fits);
    for (let i = 0; i < b.length; i += 4096) cut.push(b.subarray(i, i + 4096));
    expect([one.usage.inputTokens, one.oversized, cut.usage.inputTokens, cut.oversized]).toEqual([5, 0, 5, 0]);
  });
});
