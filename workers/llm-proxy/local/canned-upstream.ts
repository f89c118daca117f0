// A canned stand-in for Anthropic's Messages API on 127.0.0.1, for `npm run dev:proxy
// --fake-upstream` only: it lets an operator run the whole metering pipeline with no API
// key and no network. Not a test fake (those live under test/ and enforce the API's
// contract); it answers every well-formed call the same way:
// - POST /v1/messages: a Message, or its SSE events when `"stream": true` (message_start,
//   content_block_start, content_block_delta, content_block_stop, message_delta,
//   message_stop: the order and usage fields of @anthropic-ai/sdk's typings), as the
//   model the body asked for, with usage from the body's size (about 4 bytes a token) and
//   a few output tokens, so the ledger prices it like a real call of that model;
// - POST /v1/messages/count_tokens: {input_tokens} by the same rule;
// - anything else, or a body the API would refuse for its shape (not a JSON object; no
//   string `model`; no `messages` list; on /v1/messages no integer `max_tokens` >= 1: the
//   fields @anthropic-ai/sdk's MessageCreateParamsBase requires, and count_tokens takes no
//   max_tokens): Anthropic's error envelope (400/404), as the API words a missing field.
//   The content of the messages is not checked: the proxy's own tests do that against
//   test/fakes/anthropic-messages-api.ts.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

const TEXT = "Hello from the canned upstream of dev:proxy.";
const OUTPUT_TOKENS = 12;

export class CannedUpstream {
  private server: Server | undefined;
  private n = 0;
  url = "";

  async start(): Promise<this> {
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((r) => this.server!.listen(0, "127.0.0.1", r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  async stop(): Promise<void> {
    const s = this.server;
    if (s === undefined) return;
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks);
    const requestId = `req_canned${String(++this.n).padStart(8, "0")}`;
    const fail = (status: number, type: string, message: string) => {
      res.writeHead(status, { "content-type": "application/json", "request-id": requestId });
      res.end(JSON.stringify({ type: "error", error: { type, message }, request_id: requestId }));
    };
    const path = (req.url ?? "").split("?")[0];
    if (req.method !== "POST" || (path !== "/v1/messages" && path !== "/v1/messages/count_tokens")) return fail(404, "not_found_error", `${req.method} ${path}: the canned upstream answers POST /v1/messages and /v1/messages/count_tokens only`);
    let body: { model?: unknown; stream?: unknown; messages?: unknown; max_tokens?: unknown };
    try {
      body = JSON.parse(raw.toString("utf8")) as typeof body;
    } catch {
      return fail(400, "invalid_request_error", "the body is not JSON");
    }
    if (typeof body !== "object" || body === null || Array.isArray(body)) return fail(400, "invalid_request_error", "the body must be a JSON object");
    if (typeof body.model !== "string") return fail(400, "invalid_request_error", "model: Field required");
    if (!Array.isArray(body.messages)) return fail(400, "invalid_request_error", "messages: Field required");
    if (path === "/v1/messages" && !(typeof body.max_tokens === "number" && Number.isSafeInteger(body.max_tokens) && body.max_tokens >= 1)) return fail(400, "invalid_request_error", "max_tokens: Field required");
    const input = Math.max(1, Math.ceil(raw.length / 4));
    if (path === "/v1/messages/count_tokens") {
      res.writeHead(200, { "content-type": "application/json", "request-id": requestId });
      return void res.end(JSON.stringify({ input_tokens: input }));
    }
    const id = `msg_canned${String(this.n).padStart(8, "0")}`;
    const usage = { input_tokens: input, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: OUTPUT_TOKENS, service_tier: "standard", server_tool_use: null };
    if (body.stream !== true) {
      res.writeHead(200, { "content-type": "application/json", "request-id": requestId });
      return void res.end(JSON.stringify({ id, type: "message", role: "assistant", model: body.model, content: [{ type: "text", text: TEXT }], stop_reason: "end_turn", stop_sequence: null, usage }));
    }
    const events: [string, unknown][] = [
      ["message_start", { type: "message_start", message: { id, type: "message", role: "assistant", model: body.model, content: [], stop_reason: null, stop_sequence: null, usage: { ...usage, output_tokens: 1 } } }],
      ["content_block_start", { type: "content_block_start", index: 0, content_block: { type: "text", text: "" } }],
      ["content_block_delta", { type: "content_block_delta", index: 0, delta: { type: "text_delta", text: TEXT } }],
      ["content_block_stop", { type: "content_block_stop", index: 0 }],
      ["message_delta", { type: "message_delta", delta: { stop_reason: "end_turn", stop_sequence: null }, usage: { input_tokens: input, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: OUTPUT_TOKENS, server_tool_use: null } }],
      ["message_stop", { type: "message_stop" }],
    ];
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", "request-id": requestId });
    for (const [event, data] of events) res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    res.end();
  }
}
