// Both fakes of Anthropic's Messages API refuse the same bodies with the same words (their
// rules are one module, test/support/anthropic-request.ts): a test of the draft command
// cannot pass on a body the proxy's tests would see refused, or the other way round.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FakeAnthropic } from "../../workers/llm-proxy/test/fake-anthropic.ts";
import { startFakeMessagesApi, type FakeMessagesApi } from "../fakes/anthropic-messages-api.ts";

let draftFake: FakeMessagesApi;
const proxyFake = new FakeAnthropic();
beforeAll(async () => {
  draftFake = await startFakeMessagesApi();
  await proxyFake.start();
});
afterAll(async () => {
  await draftFake.close();
  await proxyFake.stop();
});

const headers = { "content-type": "application/json", "x-api-key": "k", "anthropic-version": "2023-06-01" };
async function refusal(url: string, path: string, body: string): Promise<[number, string]> {
  const r = await fetch(url + path, { method: "POST", headers, body });
  const j = (await r.json()) as { error?: { message?: string } };
  return [r.status, j.error?.message ?? ""];
}

const one = [{ role: "user", content: "hi" }];
const cases: [string, string, string][] = [
  ["/v1/messages", "{oops", "body is not JSON"],
  ["/v1/messages", "[]", "body: Input should be a valid dictionary"],
  ["/v1/messages", JSON.stringify({ max_tokens: 5, messages: one }), "model: Field required"],
  ["/v1/messages", JSON.stringify({ model: "m", messages: one }), "max_tokens: Field required"],
  ["/v1/messages", JSON.stringify({ model: "m", max_tokens: "5", messages: one }), "max_tokens: Input should be a valid integer"],
  ["/v1/messages", JSON.stringify({ model: "m", max_tokens: 0, messages: one }), "max_tokens: Input should be greater than or equal to 1"],
  ["/v1/messages", JSON.stringify({ model: "m", max_tokens: 5 }), "messages: Field required"],
  ["/v1/messages", JSON.stringify({ model: "m", max_tokens: 5, messages: [] }), "messages: at least one message is required"],
  ["/v1/messages/count_tokens", JSON.stringify({ model: "m", max_tokens: 5, messages: one }), "max_tokens: Extra inputs are not permitted"],
  ["/v1/messages/count_tokens", JSON.stringify({ model: "m", stream: true, messages: one }), "stream: Extra inputs are not permitted"],
  ["/v1/messages/count_tokens", JSON.stringify({ model: "m", messages: [] }), "messages: at least one message is required"],
  ["/v1/messages/count_tokens", JSON.stringify({ messages: one }), "model: Field required"],
];

describe("the Anthropic fakes' request rules", () => {
  it.each(cases)("%s %s: both refuse it with 400 and the same message", async (path, body, message) => {
    expect(await refusal(draftFake.url, path, body)).toEqual([400, message]);
    expect(await refusal(proxyFake.url, path, body)).toEqual([400, message]);
  });

  it("both take a body with a leading byte order mark (RFC 8259 8.1 lets a parser ignore it)", async () => {
    draftFake.script([{ kind: "text", text: "ok" }]);
    const bom = "\ufeff" + JSON.stringify({ model: "m", max_tokens: 5, messages: one });
    for (const url of [draftFake.url, proxyFake.url]) {
      const r = await fetch(url + "/v1/messages", { method: "POST", headers, body: bom });
      expect([url, r.status, r.status === 200 ? "" : await r.text()]).toEqual([url, 200, ""]);
    }
  });
});
