// A FAKE of Anthropic's Messages API on 127.0.0.1 for tests: it records every raw
// request (method, path, headers, body bytes) and answers /v1/messages with scripted
// replies in the real wire format (message objects with tool_use blocks, the error
// envelope with request-id, 429/529 with retry-after), and count_tokens with a count.
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";

export interface RecordedRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
}

export type Reply =
  | { kind: "tool"; input: unknown; name?: string }
  | { kind: "text"; text: string }
  | { kind: "error"; status: number; type: string; message: string; retryAfterMs?: number };

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
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      requests.push({ method: req.method ?? "", path: req.url ?? "", headers: req.headers, body });
      const requestId = `req_fake_${++ids}`;
      const send = (status: number, payload: unknown, headers: Record<string, string> = {}) => {
        res.writeHead(status, { "content-type": "application/json", "request-id": requestId, ...headers });
        res.end(JSON.stringify(payload));
      };
      const path = (req.url ?? "").split("?")[0];
      if (req.method !== "POST") return send(405, { type: "error", error: { type: "invalid_request_error", message: "method not allowed" } });
      // The SDK authenticates with x-api-key or, in its newer versions, Authorization: Bearer.
      if (req.headers["x-api-key"] === undefined && !/^Bearer \S+/.test(req.headers.authorization ?? "")) {
        return send(401, { type: "error", error: { type: "authentication_error", message: "missing API key" } });
      }
      if (path === "/v1/messages/count_tokens") return send(200, { input_tokens: tokenCount ?? Math.ceil(body.length / 4) });
      if (path !== "/v1/messages") return send(404, { type: "error", error: { type: "not_found_error", message: `no route ${path}` } });
      const reply = replies.length > 1 ? replies.shift()! : replies[0];
      if (!reply) return send(500, { type: "error", error: { type: "api_error", message: "the fake has no scripted reply" } });
      if (reply.kind === "error") {
        const headers: Record<string, string> = {};
        if (reply.retryAfterMs !== undefined) {
          headers["retry-after-ms"] = String(reply.retryAfterMs);
          headers["retry-after"] = String(Math.ceil(reply.retryAfterMs / 1000));
        }
        return send(reply.status, { type: "error", error: { type: reply.type, message: reply.message } }, headers);
      }
      const { model } = JSON.parse(body) as { model: string };
      const content =
        reply.kind === "tool"
          ? [{ type: "tool_use", id: `toolu_fake_${ids}`, name: reply.name ?? "propose_inventory_edits", input: reply.input }]
          : [{ type: "text", text: reply.text }];
      send(200, {
        id: `msg_fake_${ids}`,
        type: "message",
        role: "assistant",
        model,
        content,
        stop_reason: reply.kind === "tool" ? "tool_use" : "end_turn",
        stop_sequence: null,
        usage: { input_tokens: 40, output_tokens: 120, cache_creation_input_tokens: 0, cache_read_input_tokens: 5000 },
      });
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    script: (r) => {
      replies = [...r];
    },
    tokens: (n) => {
      tokenCount = n;
    },
    close: () => new Promise((r) => server.close(() => r())),
  };
}
