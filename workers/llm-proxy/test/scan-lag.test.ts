// The SSE usage scan reads its tee'd branch lazily (forward.ts relayStream): after the
// client's pipe has ended, or from SSE_SCAN_LAG_MS on. The default suite's streams end
// well inside the default lag; here streams paced slower than the lag, and a lag of 0,
// take the other paths: usage, error events and interrupted streams must come out the same.
import { describe, expect, it } from "vitest";
import { frame, messageEvents, overloadedEvent } from "./fake-anthropic.ts";
import { Harness, useHarness, STREAM } from "./harness.ts";

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const usage = { input_tokens: 31, output_tokens: 17, cache_creation_input_tokens: 2, cache_read_input_tokens: 2048 };

describe.each([
  { lag: "40", note: "a stream that outlasts the lag is scanned as it flows from then on" },
  { lag: "0", note: "a lag of 0 scans every chunk as it comes" },
])("SSE_SCAN_LAG_MS=$lag: $note", ({ lag }) => {
  let h: Harness;
  let key: string;
  useHarness(
    { SSE_SCAN_LAG_MS: lag },
    async (started) => {
      h = started;
      ({ key } = await h.tenant());
    },
    { reset: true },
  );

  it("relays a paced stream whole and records its usage", async () => {
    const events = messageEvents(["one", "two", "three"], usage);
    // 9 events 25 ms apart: about 200 ms, five times the lag.
    h.fake.enqueue({ kind: "sse", events, before: (i) => (i === 0 ? Promise.resolve() : sleep(25)) });
    const r = await h.call("/v1/messages", { key, body: STREAM });
    expect(r.text).toBe(events.map(frame).join(""));
    const [p] = await h.pointsAtLeast(1);
    expect(p!.blobs[4]).toBe("");
    expect(p!.doubles.slice(1, 5)).toEqual([31, 17, 2, 2048]);
  });

  it("an upstream that breaks after the lag: SSE error event, data point stream_interrupted", async () => {
    const events = messageEvents(["one", "two", "three"], usage);
    h.fake.enqueue({ kind: "sse", events, resetAfter: 5, before: (i) => (i === 0 ? Promise.resolve() : sleep(25)) });
    const r = await h.call("/v1/messages", { key, body: STREAM });
    const sent = events.slice(0, 5).map(frame).join("");
    expect(r.text).toBe(sent + `event: error\ndata: {"type":"error","error":{"type":"api_error","message":"upstream stream interrupted"},"request_id":"${r.headers.get("edgefleet-request-id")}"}\n\n`);
    const [p] = await h.pointsAtLeast(1);
    expect(p!.blobs[4]).toBe("stream_interrupted");
    expect(p!.doubles[1]).toBe(31);
  });

  it("an error event late in a paced stream is passed through and recorded", async () => {
    const events = [...messageEvents(["one"], usage).slice(0, 4), overloadedEvent];
    h.fake.enqueue({ kind: "sse", events, before: (i) => (i === 0 ? Promise.resolve() : sleep(25)) });
    const r = await h.call("/v1/messages", { key, body: STREAM });
    expect(r.text).toBe(events.map(frame).join(""));
    expect(h.fake.received).toHaveLength(1);
    const [p] = await h.pointsAtLeast(1);
    expect(p!.blobs[4]).toBe("overloaded_error");
  });
});
