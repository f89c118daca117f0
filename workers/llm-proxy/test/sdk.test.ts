// The official @anthropic-ai/sdk as the client, through the proxy in workerd, against
// the fake upstream: non-streaming, streaming, count_tokens, and the SDK's typed errors
// for the proxy's own answers (401, 429).
import Anthropic from "@anthropic-ai/sdk";
import { describe, expect, it } from "vitest";
import { MODEL } from "./fake-anthropic.ts";
import { Harness, useHarness } from "./harness.ts";

let h: Harness;
let key: string;
let client: Anthropic;

useHarness({}, async (started) => {
  h = started;
  ({ key } = await h.tenant({ ratePerMinute: 1, burst: 4 }));
  // maxRetries 0: the proxy does the retrying; the SDK must see its answers as they are.
  client = new Anthropic({ apiKey: key, baseURL: h.url.origin, maxRetries: 0 });
});

describe("@anthropic-ai/sdk through the proxy", () => {
  it("messages.create, non-streaming", async () => {
    const { data: msg, response } = await client.messages
      .create({ model: MODEL, max_tokens: 64, messages: [{ role: "user", content: "Say hello" }] })
      .withResponse();
    h.record(response, JSON.stringify(msg));
    expect(msg.content).toEqual([{ type: "text", text: "Hello, world" }]);
    expect(msg.usage.cache_read_input_tokens).toBe(40);
    // The upstream saw the SDK's own bytes and the provider key, not the tenant's.
    const got = h.fake.received.at(-1)!;
    expect(JSON.parse(got.body.toString())).toEqual({ model: MODEL, max_tokens: 64, messages: [{ role: "user", content: "Say hello" }] });
    expect(got.headers["x-api-key"]).toBe(h.secrets.ANTHROPIC_API_KEY);
    expect(got.headers["anthropic-version"]).toMatch(/^\d{4}-\d{2}-\d{2}$/); // the SDK's own version, passed through
  });

  it("messages.stream, streaming: text deltas and the final message", async () => {
    const stream = client.messages.stream({ model: MODEL, max_tokens: 64, messages: [{ role: "user", content: "Say hello" }] });
    const deltas: string[] = [];
    stream.on("text", (t) => deltas.push(t));
    const final = await stream.finalMessage();
    h.record(stream.response!, JSON.stringify(final) + deltas.join(""));
    expect(deltas).toEqual(["Hello", ", world"]);
    expect(final.usage).toMatchObject({ input_tokens: 25, output_tokens: 9, cache_creation_input_tokens: 7, cache_read_input_tokens: 100 });
    expect(final.stop_reason).toBe("end_turn");
  });

  it("messages.countTokens", async () => {
    const { data: r, response } = await client.messages.countTokens({ model: MODEL, messages: [{ role: "user", content: "x" }] }).withResponse();
    h.record(response, JSON.stringify(r));
    expect(r.input_tokens).toBe(42);
  });

  it("surfaces the proxy's own errors as the SDK's typed errors", async () => {
    const bad = new Anthropic({ apiKey: "efk_wrong", baseURL: h.url.origin, maxRetries: 0 });
    const e = await bad.messages.create({ model: MODEL, max_tokens: 1, messages: [{ role: "user", content: "hi" }] }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(Anthropic.AuthenticationError);
    expect((e as InstanceType<typeof Anthropic.AuthenticationError>).requestID).toMatch(/^req_ef_/);
    h.transcript.push(String(e));
    // The bucket of 4 is spent by the three calls above plus this one; the next is limited.
    await client.messages.create({ model: MODEL, max_tokens: 1, messages: [{ role: "user", content: "hi" }] });
    const limited = await client.messages.create({ model: MODEL, max_tokens: 1, messages: [{ role: "user", content: "hi" }] }).catch((x: unknown) => x);
    expect(limited).toBeInstanceOf(Anthropic.RateLimitError);
    h.transcript.push(String(limited));
  });
});
