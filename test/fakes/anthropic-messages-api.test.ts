// The fake Messages API refuses what the real one refuses, in the real error envelope,
// and the real SDK reads its answers (so the draft tests exercise the production path).
import Anthropic from "@anthropic-ai/sdk";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startFakeMessagesApi, type FakeMessagesApi } from "./anthropic-messages-api.ts";

let api: FakeMessagesApi;
beforeAll(async () => {
  api = await startFakeMessagesApi();
});
afterAll(() => api.close());

const ok = { model: "claude-x", max_tokens: 10, messages: [{ role: "user", content: "hi" }] };
async function post(path: string, body: unknown, headers: Record<string, string> = { authorization: "Bearer k", "anthropic-version": "2023-06-01" }, method = "POST") {
  const res = await fetch(`${api.url}${path}`, { method, headers: { "content-type": "application/json", ...headers }, body: method === "GET" ? undefined : typeof body === "string" ? body : JSON.stringify(body) });
  return { status: res.status, requestId: res.headers.get("request-id"), json: (await res.json()) as { type: string; error?: { type: string; message: string }; request_id?: string } };
}

describe("the fake Messages API", () => {
  it.each([
    ["no API key", "/v1/messages", ok, { "anthropic-version": "2023-06-01" }, 401, "authentication_error"],
    ["no anthropic-version", "/v1/messages", ok, { authorization: "Bearer k" }, 400, "invalid_request_error"],
    ["a body that is not JSON", "/v1/messages", "{", undefined, 400, "invalid_request_error"],
    ["no model", "/v1/messages", { ...ok, model: undefined }, undefined, 400, "invalid_request_error"],
    ["no messages", "/v1/messages", { ...ok, messages: [] }, undefined, 400, "invalid_request_error"],
    ["no max_tokens", "/v1/messages", { ...ok, max_tokens: undefined }, undefined, 400, "invalid_request_error"],
    ["max_tokens on count_tokens", "/v1/messages/count_tokens", ok, undefined, 400, "invalid_request_error"],
    ["an unknown path", "/v1/complete", ok, undefined, 404, "not_found_error"],
  ] as const)("refuses %s in the real error envelope", async (_what, path, body, headers, status, type) => {
    const r = await post(path, body, headers as Record<string, string> | undefined);
    expect(r.status).toBe(status);
    expect(r.json).toMatchObject({ type: "error", error: { type } });
    expect(r.json.error!.message.length).toBeGreaterThan(0);
    expect(r.requestId).toMatch(/^req_/);
    expect(r.json.request_id).toBe(r.requestId);
  });

  it("is read by the real SDK: a tool answer, a count, and an error as APIError with its request id", async () => {
    const client = new Anthropic({ apiKey: "k", baseURL: api.url, maxRetries: 0 });
    api.script([{ kind: "tool", input: { a: 1 } }]);
    const m = await client.messages.create({ model: "claude-x", max_tokens: 10, messages: [{ role: "user", content: "hi" }] });
    expect(m.stop_reason).toBe("tool_use");
    expect(m.content[0]).toMatchObject({ type: "tool_use", name: "propose_inventory_edits", input: { a: 1 } });
    api.tokens(42);
    expect((await client.messages.countTokens({ model: "claude-x", messages: [{ role: "user", content: "hi" }] })).input_tokens).toBe(42);
    api.script([{ kind: "error", status: 400, type: "invalid_request_error", message: "bad" }]);
    const e = await client.messages.create({ model: "claude-x", max_tokens: 10, messages: [{ role: "user", content: "hi" }] }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(Anthropic.BadRequestError);
    expect((e as InstanceType<typeof Anthropic.APIError>).requestID).toMatch(/^req_fake_/);
  });
});
