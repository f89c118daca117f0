// Decoding a dead letter as the pull answer carries it, and the replay's verdict: the
// ledger's own check, base64 taken strictly, anything undecodable left (never guessed at).
import { describe, expect, it } from "vitest";
import { classify, contentTypeOf, decodeBody, MAX_BATCH_BYTES, pushBatches } from "./events.ts";

const NOW = Date.UTC(2026, 10, 27, 12);
const b64 = (s: string | Buffer) => Buffer.from(s).toString("base64");
const event = { v: 1, request_id: "req_1", tenant: "t_acme", model: "claude-haiku-4-5", ts: NOW - 60_000, status: 200, usage: { input_tokens: 1, output_tokens: 2 } };
const msg = (body: string | undefined, type?: string) => ({ id: "m1", attempts: 1, body, timestamp_ms: NOW, lease_id: "l1", ...(type ? { metadata: { "CF-Content-Type": type } } : {}) });

describe("decodeBody", () => {
  it("reads json bodies as base64 of UTF-8 JSON, strictly", () => {
    expect(decodeBody("json", b64(JSON.stringify({ a: "é☕" })))).toEqual({ ok: true, value: { a: "é☕" } });
    expect(decodeBody("json", b64("[1,2]").replace(/=+$/, ""))).toEqual({ ok: true, value: [1, 2] });
    // Buffer.from() would decode these to something; the command refuses them.
    expect(decodeBody("json", "not base64!")).toMatchObject({ ok: false, reason: "a json message whose body is neither base64 nor JSON text" });
    expect(decodeBody("json", b64(Buffer.from([0xff, 0xfe, 0x7b])))).toMatchObject({ ok: false, reason: "a json message whose body is not UTF-8" });
    expect(decodeBody("json", b64("{oops"))).toMatchObject({ ok: false, reason: "a json message whose body is not JSON", raw: "{oops" });
    expect(decodeBody("json", undefined)).toMatchObject({ ok: false, reason: "the message has no body" });
  });

  it("reads a json body that is the JSON text itself (the pull docs' example shows one so): an object is never base64", () => {
    expect(decodeBody("json", JSON.stringify(event))).toEqual({ ok: true, value: event });
    expect(classify(msg(JSON.stringify(event)), NOW, 30)).toMatchObject({ action: "replay", event: { request_id: "req_1" } });
    expect(decodeBody("json", "{oops")).toMatchObject({ ok: false, reason: "a json message whose body is neither base64 nor JSON text", raw: "{oops" });
  });

  it("leaves text, bytes and v8 bodies: the ledger never receives an event in them", () => {
    expect(decodeBody("text", JSON.stringify(event))).toMatchObject({ ok: false, raw: JSON.stringify(event) });
    expect(decodeBody("bytes", b64("x"))).toMatchObject({ ok: false, reason: "a bytes message: not JSON, so not an event" });
    expect(decodeBody("v8", b64("x"))).toMatchObject({ ok: false, reason: expect.stringContaining("v8 bodies can only be read inside Workers") });
  });

  it("takes the content type from the metadata; json (Queues' default) when it is missing", () => {
    expect(contentTypeOf({ "CF-Content-Type": "text" })).toBe("text");
    expect(contentTypeOf(undefined)).toBe("json");
    expect(contentTypeOf({ "CF-Content-Type": 5 })).toBe("json");
  });
});

describe("classify", () => {
  it("replays what the ledger would record, by the ledger's check (schema, retention, future)", () => {
    expect(classify(msg(b64(JSON.stringify(event)), "json"), NOW, 90)).toMatchObject({ id: "m1", action: "replay", event, body: event, leaseId: "l1", pushBytes: JSON.stringify(event).length + 100 });
    const old = { ...event, ts: NOW - 16 * 86_400_000 };
    expect(classify(msg(b64(JSON.stringify(old))), NOW, 15)).toMatchObject({ action: "leave", reason: "event older than the 15-day retention: cannot be deduplicated", event: old, lasting: true });
    expect(classify(msg(b64(JSON.stringify(old))), NOW, 90)).toMatchObject({ action: "replay" });
    const future = { ...event, ts: NOW + 2 * 3600_000 };
    expect(classify(msg(b64(JSON.stringify(future))), NOW, 90)).toMatchObject({ action: "leave", reason: "event from the future (ts more than an hour ahead)", lasting: false });
    expect(classify(msg(b64(JSON.stringify({ ...event, extra: 1 }))), NOW, 90)).toMatchObject({ action: "leave", reason: expect.stringMatching(/^invalid event: /), lasting: true });
    expect(classify(msg(b64(JSON.stringify(event)), "text"), NOW, 90)).toMatchObject({ action: "leave", lasting: true });
    expect(classify(msg(b64(JSON.stringify(event))), NOW, 90).lasting).toBeUndefined();
  });

  it("leaves an event too large to push (Queues: 128 KB a message, with ~100 bytes of metadata)", () => {
    const big = { ...event, usage: { ...event.usage, pad: "x".repeat(128_000) } };
    expect(classify(msg(b64(JSON.stringify(big))), NOW, 90)).toMatchObject({ action: "leave", reason: expect.stringMatching(/over Queues' 128000-byte message limit/) });
  });
});

describe("pushBatches", () => {
  it("packs at most 100 messages and 256 KB a push, in order", () => {
    const items = [120_000, 120_000, 20_000, 1, 130_000].map((pushBytes, i) => ({ i, pushBytes }));
    const batches = pushBatches(items);
    expect(batches.map((b) => b.map((x) => x.i))).toEqual([[0, 1], [2, 3, 4]]);
    for (const b of batches) expect(b.reduce((n, x) => n + x.pushBytes, 0)).toBeLessThanOrEqual(MAX_BATCH_BYTES);
    expect(pushBatches([])).toEqual([]);
  });
});
