// A FAKE of Anthropic's Messages API (POST /v1/messages and /v1/messages/count_tokens)
// on 127.0.0.1 for `npm run draft`'s tests. It records every raw request and answers
// with scripted replies in the real wire format, and can break the wire on purpose.
// Contract, checked 2026-11-27:
// - Shapes: node_modules/@anthropic-ai/sdk 1.12.0 resources/messages/messages.d.ts
//   (Message: id, type "message", role, model, content blocks, stop_reason one of
//   end_turn | max_tokens | stop_sequence | tool_use | pause_turn | refusal |
//   model_context_window_exceeded, stop_sequence, usage; MessageTokensCount:
//   {input_tokens}; MessageCountTokensParams has no max_tokens).
// - Errors: HTTP status + `{"type":"error","error":{"type","message"},"request_id"}` and a
//   `request-id` header on every response (https://docs.anthropic.com/en/api/errors
//   "Error shapes", "Request id"; the body's request_id as in Anthropic's 2026 error-code
//   reference; client.js logs `request-id`); 529
//   overloaded_error; retry-after / retry-after-ms / x-should-retry honoured by the SDK
//   (client.js shouldRetry / retryRequest).
// - Requests: the SDK sends `anthropic-version` and the key as `Authorization: Bearer`
//   (client.js apiKeyAuth) or `x-api-key`; missing ones are refused (400 / 401).
// Fault injection: a body that is not JSON, a body cut off mid-way (Content-Length larger
// than what is sent, then the socket closes), an oversized body, several tool calls,
// stop_reason max_tokens.
import type { IncomingHttpHeaders, ServerResponse } from "node:http";
import { countTokensBodyProblem, messagesBodyProblem } from "../support/anthropic-request.ts";
import { LoopbackServer } from "../support/loopback.ts";

export interface RecordedRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
}

export type Reply =
  | { kind: "tool"; input: unknown; name?: string; stopReason?: string }
  /** Several tool_use blocks in one answer. */
  | { kind: "tools"; calls: { name?: string; input: unknown }[] }
  | { kind: "text"; text: string; stopReason?: string }
  | { kind: "error"; status: number; type: string; message: string; retryAfterMs?: number }
  /** Any status, content type and body bytes, e.g. an HTML error page from a proxy. */
  | { kind: "raw"; status: number; contentType: string; body: string }
  /** A valid message whose body stops after `sendBytes` bytes of a longer Content-Length. */
  | { kind: "truncated"; input: unknown; sendBytes: number }
  /** A valid tool answer padded to at least `bytes` bytes (a long rationale). */
  | { kind: "huge"; bytes: number };

export interface FakeMessagesApi {
  url: string;
  requests: RecordedRequest[];
  /** Replies for /v1/messages, used in order; the last one repeats. */
  script: (replies: Reply[]) => void;
  /** The input_tokens count_tokens reports (default: body length / 4). */
  tokens: (n: number | undefined) => void;
  close: () => Promise<void>;
}

let ids = 0;

export async function startFakeMessagesApi(): Promise<FakeMessagesApi> {
  const requests: RecordedRequest[] = [];
  let replies: Reply[] = [];
  let tokenCount: number | undefined;

  const server = new LoopbackServer((req, raw, res) => {
    const body = raw.toString("utf8");
    requests.push({ method: req.method ?? "", path: req.url ?? "", headers: req.headers, body });
    const requestId = `req_fake_${++ids}`;
    const send = (status: number, payload: unknown, headers: Record<string, string> = {}) => {
      res.writeHead(status, { "content-type": "application/json", "request-id": requestId, ...headers });
      res.end(JSON.stringify(payload));
    };
    const error = (status: number, type: string, message: string, headers: Record<string, string> = {}) =>
      send(status, { type: "error", error: { type, message }, request_id: requestId }, headers);

    const path = (req.url ?? "").split("?")[0];
    if (path !== "/v1/messages" && path !== "/v1/messages/count_tokens") return error(404, "not_found_error", `Not found: ${path}`);
    if (req.method !== "POST") return error(405, "invalid_request_error", `Method ${req.method} not allowed`);
    if (req.headers["x-api-key"] === undefined && !/^Bearer \S+/.test(req.headers.authorization ?? "")) {
      return error(401, "authentication_error", "x-api-key header is required");
    }
    if (!req.headers["anthropic-version"]) return error(400, "invalid_request_error", "anthropic-version: header is required");
    // The body rules are the proxy's fake upstream's too (test/support/anthropic-request.ts).
    if (path === "/v1/messages/count_tokens") {
      const c = countTokensBodyProblem(raw);
      if ("problem" in c) return error(400, "invalid_request_error", c.problem);
      return send(200, { input_tokens: tokenCount ?? Math.ceil(body.length / 4) });
    }
    // The bytes, as the proxy's fake reads them (a leading byte order mark is ignored).
    const problem = messagesBodyProblem(raw);
    if (problem !== undefined) return error(400, "invalid_request_error", problem);
    const params = JSON.parse(new TextDecoder().decode(raw)) as Record<string, unknown>;

    const reply = replies.length > 1 ? replies.shift()! : replies[0];
    if (!reply) return error(500, "api_error", "the fake has no scripted reply");
    if (reply.kind === "error") {
      const headers: Record<string, string> = {};
      if (reply.retryAfterMs !== undefined) {
        headers["retry-after-ms"] = String(reply.retryAfterMs);
        headers["retry-after"] = String(Math.ceil(reply.retryAfterMs / 1000));
      }
      return error(reply.status, reply.type, reply.message, headers);
    }
    if (reply.kind === "raw") {
      res.writeHead(reply.status, { "content-type": reply.contentType, "request-id": requestId });
      res.end(reply.body);
      return;
    }
    const model = params.model;
    const toolUse = (name: string | undefined, input: unknown) => ({ type: "tool_use", id: `toolu_fake_${ids}_${Math.random().toString(36).slice(2, 8)}`, name: name ?? "propose_inventory_edits", input });
    const message = (content: unknown[], stopReason: string) => ({
      id: `msg_fake_${ids}`,
      type: "message",
      role: "assistant",
      model,
      content,
      stop_reason: stopReason,
      stop_sequence: null,
      usage: { input_tokens: 40, output_tokens: 120, cache_creation_input_tokens: 0, cache_read_input_tokens: 5000 },
    });
    switch (reply.kind) {
      case "tool":
        return send(200, message([toolUse(reply.name, reply.input)], reply.stopReason ?? "tool_use"));
      case "tools":
        return send(200, message(reply.calls.map((c) => toolUse(c.name, c.input)), "tool_use"));
      case "text":
        return send(200, message([{ type: "text", text: reply.text }], reply.stopReason ?? "end_turn"));
      case "truncated":
        return sendTruncated(res, requestId, JSON.stringify(message([toolUse(undefined, reply.input)], "tool_use")), reply.sendBytes);
      case "huge":
        return send(200, message([toolUse(undefined, { rationale: "x".repeat(reply.bytes), edits: [] })], "tool_use"));
    }
  });
  await server.start();
  return {
    url: server.url,
    requests,
    script: (r) => {
      replies = [...r];
    },
    tokens: (n) => {
      tokenCount = n;
    },
    close: () => server.stop(),
  };
}

/** Declares the whole body's length, sends only its first bytes, then closes the socket. */
function sendTruncated(res: ServerResponse, requestId: string, body: string, sendBytes: number): void {
  const bytes = Buffer.from(body);
  res.writeHead(200, { "content-type": "application/json", "content-length": String(bytes.length), "request-id": requestId });
  res.write(bytes.subarray(0, Math.min(sendBytes, bytes.length - 1)), () => res.socket?.destroy());
}
