// The retry matrix, in workerd against the fake upstream: what is retried (429 with
// retry-after, 529, 500, a reset connection, a stream whose first event is an
// overload), what is not (client errors, anything after the first byte), and limits.
import { describe, expect, it } from "vitest";
import { frame, message, messageEvents, overloadedEvent } from "./fake-anthropic.ts";
import { Harness, useHarness, STREAM } from "./harness.ts";

let h: Harness;
let key: string;

useHarness(
  { MAX_RETRIES: "2", RETRY_AFTER_CAP_MS: "1500" },
  async (started) => {
    h = started;
    ({ key } = await h.tenant());
  },
  { reset: true },
);

const body = '{"model":"claude-x","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}';
const overloaded = { kind: "error", status: 529, type: "overloaded_error", message: "Overloaded" } as const;

async function retriesRecorded(): Promise<number> {
  const [p] = await h.pointsAtLeast(1);
  return p!.doubles[6]!;
}

describe("retried while nothing has reached the client", () => {
  it("429 with retry-after: waits, retries, succeeds", async () => {
    h.fake.enqueue({ kind: "error", status: 429, type: "rate_limit_error", message: "slow down", headers: { "retry-after": "1" } });
    const r = await h.call("/v1/messages", { key, body });
    expect(r.status).toBe(200);
    expect(JSON.parse(r.text).content[0].text).toBe("Hello, world");
    expect(h.fake.received).toHaveLength(2);
    // How long it waits is retryDelayMs's job (unit-tested in units.test.ts).
    expect(await retriesRecorded()).toBe(1);
  });

  it("529 then 500 then success: two retries, same bytes each time", async () => {
    h.fake.enqueue(overloaded, { kind: "error", status: 500, type: "api_error", message: "Internal server error" });
    const r = await h.call("/v1/messages", { key, body });
    expect(r.status).toBe(200);
    expect(h.fake.received).toHaveLength(3);
    for (const got of h.fake.received) expect(got.body.toString()).toBe(body);
    expect(await retriesRecorded()).toBe(2);
  });

  it("a reset connection is retried", async () => {
    h.fake.enqueue({ kind: "reset" });
    const r = await h.call("/v1/messages", { key, body });
    expect(r.status).toBe(200);
    expect(h.fake.received).toHaveLength(2);
  });

  it("a JSON answer cut short by the network is retried (it is read whole before a byte is sent)", async () => {
    h.fake.enqueue({ kind: "truncated", body: JSON.stringify(message("never complete")), bytes: 40 });
    const r = await h.call("/v1/messages", { key, body });
    expect(r.status).toBe(200);
    expect(JSON.parse(r.text).content[0].text).toBe("Hello, world");
    expect(h.fake.received).toHaveLength(2);
    expect(await retriesRecorded()).toBe(1);
  });

  it("a 200 stream whose first event is overloaded_error is retried; the client sees only the good stream", async () => {
    h.fake.enqueue({ kind: "sse", events: [overloadedEvent, ...messageEvents(["never sent"])] });
    const r = await h.call("/v1/messages", { key, body: STREAM });
    expect(r.status).toBe(200);
    expect(r.text).toBe(messageEvents(["Hello", ", world"]).map(frame).join(""));
    expect(r.text).not.toContain("overloaded_error");
    expect(h.fake.received).toHaveLength(2);
    expect(await retriesRecorded()).toBe(1);
  });
});

describe("not retried", () => {
  it("gives up after MAX_RETRIES and passes the last upstream answer through", async () => {
    h.fake.enqueue(overloaded, overloaded, overloaded, overloaded);
    const r = await h.call("/v1/messages", { key, body });
    expect(r.status).toBe(529);
    expect(JSON.parse(r.text)).toEqual({ type: "error", error: { type: "overloaded_error", message: "Overloaded" }, request_id: r.headers.get("request-id") });
    // The proxy spent its retries: the SDKs must not multiply them (issue 14.4), and 529
    // has a status text of its own (the upstream sends none over HTTP/2).
    expect(r.headers.get("x-should-retry")).toBe("false");
    expect(r.statusText).toBe("Overloaded");
    expect(r.headers.get("request-id")).toMatch(/^req_[0-9A-Za-z]{24}$/);
    expect(h.fake.received).toHaveLength(3);
    const [p] = await h.pointsAtLeast(1);
    expect(p!.blobs[3]).toBe("529");
    expect(p!.blobs[4]).toBe("overloaded_error");
    expect(p!.doubles[6]).toBe(2);
  });

  it("502 in Anthropic's envelope when every attempt fails on the network", async () => {
    h.fake.enqueue({ kind: "reset" }, { kind: "reset" }, { kind: "reset" });
    const r = await h.call("/v1/messages", { key, body });
    expect(r.status).toBe(502);
    expect(JSON.parse(r.text)).toEqual({ type: "error", error: { type: "api_error", message: "upstream unreachable" }, request_id: r.headers.get("request-id") });
    expect(r.headers.get("x-should-retry")).toBe("false");
    // Admitted, so the answer says where the tenant's bucket stands, like a 200 would.
    expect(r.headers.get("ratelimit-limit")).not.toBeNull();
    expect(r.headers.get("ratelimit-reset")).not.toBeNull();
    expect(h.fake.received).toHaveLength(3);
    expect(await retriesRecorded()).toBe(2);
  });

  it("a retry-after beyond the cap is handed to the client at once", async () => {
    h.fake.enqueue({ kind: "error", status: 429, type: "rate_limit_error", message: "slow down", headers: { "retry-after": "30" } });
    const r = await h.call("/v1/messages", { key, body });
    expect(r.status).toBe(429);
    expect(r.headers.get("retry-after")).toBe("30");
    // Not retried here: the client may retry after its retry-after (no x-should-retry: false).
    expect(r.headers.get("x-should-retry")).toBeNull();
    expect(h.fake.received).toHaveLength(1);
  });

  it("the last overloaded stream is passed through as it came", async () => {
    h.fake.enqueue(
      { kind: "sse", events: [overloadedEvent] },
      { kind: "sse", events: [overloadedEvent] },
      { kind: "sse", events: [overloadedEvent] },
    );
    const r = await h.call("/v1/messages", { key, body: STREAM });
    expect(r.status).toBe(200);
    expect(r.text).toBe(frame(overloadedEvent));
    expect(h.fake.received).toHaveLength(3);
    const [p] = await h.pointsAtLeast(1);
    expect(p!.blobs[4]).toBe("overloaded_error");
  });

  it("an error in the middle of a stream ends it with an SSE error event, never a retry", async () => {
    const events = messageEvents(["one", "two", "three"]);
    h.fake.enqueue({ kind: "sse", events, resetAfter: 4 });
    const r = await h.call("/v1/messages", { key, body: STREAM });
    expect(r.status).toBe(200);
    const sent = events.slice(0, 4).map(frame).join("");
    expect(r.text.slice(0, sent.length)).toBe(sent);
    // With the call's request id, as the proxy's JSON errors carry it.
    const id = r.headers.get("edgefleet-request-id");
    expect(id).toMatch(/^req_ef_[0-9a-f]{32}$/);
    expect(r.text.slice(sent.length)).toBe(
      `event: error\ndata: {"type":"error","error":{"type":"api_error","message":"upstream stream interrupted"},"request_id":"${id}"}\n\n`,
    );
    expect(h.fake.received).toHaveLength(1);
    const [p] = await h.pointsAtLeast(1);
    expect(p!.blobs[4]).toBe("stream_interrupted");
  });

  it("an upstream error event mid-stream is passed through untouched", async () => {
    const events = [...messageEvents(["one"]).slice(0, 3), overloadedEvent];
    h.fake.enqueue({ kind: "sse", events });
    const r = await h.call("/v1/messages", { key, body: STREAM });
    expect(r.text).toBe(events.map(frame).join(""));
    expect(h.fake.received).toHaveLength(1);
  });

  it("a JSON success is not retried", async () => {
    h.fake.enqueue({ kind: "json", body: message("once") });
    const r = await h.call("/v1/messages", { key, body });
    expect(JSON.parse(r.text).content[0].text).toBe("once");
    expect(h.fake.received).toHaveLength(1);
  });
});
