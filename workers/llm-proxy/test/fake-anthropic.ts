// A fake of Anthropic's Messages API on 127.0.0.1 (node:http), speaking the real wire
// format: JSON Messages, SSE streams (message_start ... message_stop), error envelopes
// with request-id, 429/529 with retry-after, connection resets. Tests script what the
// next requests get; every request is recorded byte for byte.
import type { IncomingMessage, ServerResponse } from "node:http";
import { LoopbackServer } from "../../../test/support/loopback.ts";
import { frame, message, messageEvents, type SseEvent } from "./wire.ts";

export { frame, message, messageEvents, MODEL, overloadedEvent, type SseEvent } from "./wire.ts";

export interface Received {
  method: string;
  path: string;
  headers: IncomingMessage["headers"];
  body: Buffer;
}

export type Behaviour =
  | { kind: "json"; status?: number; headers?: Record<string, string>; body: unknown }
  | { kind: "raw"; status?: number; headers?: Record<string, string>; body: Buffer | string }
  | {
      kind: "sse";
      events: SseEvent[];
      /** Awaited before event i is written (lets a test prove events arrive one by one). */
      before?: (i: number) => Promise<void>;
      /** Destroy the connection after this many events (a mid-stream network error). */
      resetAfter?: number;
    }
  | { kind: "reset" }
  /** A JSON answer whose connection is destroyed after `bytes` of its declared length. */
  | { kind: "truncated"; body: string; bytes: number }
  | { kind: "error"; status: number; type: string; message: string; headers?: Record<string, string> };

let rid = 0;

export class FakeAnthropic {
  readonly received: Received[] = [];
  private readonly queue: Behaviour[] = [];
  private readonly server = new LoopbackServer(
    (req, body, res) => {
      if (this.recording) this.received.push({ method: req.method ?? "", path: req.url ?? "", headers: req.headers, body });
      return this.respond(req, res, body);
    },
    { keepAliveMs: 1000 },
  );
  url = "";
  /** Keep a copy of every request (off in benchmarks). */
  recording = true;

  /** The next requests get these behaviours, in order; then the default (echo) one. */
  enqueue(...b: Behaviour[]): void {
    this.queue.push(...b);
  }

  reset(): void {
    this.received.length = 0;
    this.queue.length = 0;
  }

  async start(): Promise<this> {
    await this.server.start();
    this.url = this.server.url;
    return this;
  }

  stop(): Promise<void> {
    return this.server.stop();
  }

  private defaultBehaviour(req: IncomingMessage, body: Buffer): Behaviour {
    if (req.headers["x-api-key"] === undefined) return { kind: "error", status: 401, type: "authentication_error", message: "invalid x-api-key" };
    if (req.url === "/v1/messages/count_tokens") {
      // count_tokens takes the counted fields only: Messages-only ones are refused
      // (MessageCountTokensParams in node_modules/@anthropic-ai/sdk/resources/messages/messages.d.ts).
      let b: Record<string, unknown>;
      try {
        b = JSON.parse(body.toString("utf8")) as Record<string, unknown>;
      } catch {
        return { kind: "error", status: 400, type: "invalid_request_error", message: "body is not JSON" };
      }
      for (const f of ["max_tokens", "stream", "temperature", "top_p", "top_k", "stop_sequences", "metadata"]) {
        if (f in b) return { kind: "error", status: 400, type: "invalid_request_error", message: `${f}: Extra inputs are not permitted` };
      }
      if (!Array.isArray(b.messages) || typeof b.model !== "string") return { kind: "error", status: 400, type: "invalid_request_error", message: "model and messages: Field required" };
      return { kind: "json", body: { input_tokens: 42 } };
    }
    let stream = false;
    try {
      stream = (JSON.parse(body.toString("utf8")) as { stream?: boolean }).stream === true;
    } catch {
      return { kind: "error", status: 400, type: "invalid_request_error", message: "body is not JSON" };
    }
    return stream ? { kind: "sse", events: messageEvents(["Hello", ", world"]) } : { kind: "json", body: message("Hello, world") };
  }

  private async respond(req: IncomingMessage, res: ServerResponse, body: Buffer): Promise<void> {
    const b = this.queue.shift() ?? this.defaultBehaviour(req, body);
    const requestId = `req_fake_${++rid}`;
    switch (b.kind) {
      case "reset":
        req.socket.destroy();
        return;
      case "json":
        res.writeHead(b.status ?? 200, { "content-type": "application/json", "request-id": requestId, ...b.headers });
        res.end(JSON.stringify(b.body));
        return;
      case "truncated":
        res.writeHead(200, { "content-type": "application/json", "request-id": requestId, "content-length": String(Buffer.byteLength(b.body)) });
        res.write(Buffer.from(b.body).subarray(0, b.bytes), () => setTimeout(() => res.socket?.destroy(), 20));
        return;
      case "raw":
        res.writeHead(b.status ?? 200, { "content-type": "application/json", "request-id": requestId, ...b.headers });
        res.end(b.body);
        return;
      case "error":
        res.writeHead(b.status, { "content-type": "application/json", "request-id": requestId, ...b.headers });
        res.end(JSON.stringify({ type: "error", error: { type: b.type, message: b.message } }));
        return;
      case "sse": {
        res.writeHead(200, { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache", "request-id": requestId });
        res.flushHeaders();
        for (let i = 0; i < b.events.length; i++) {
          if (b.resetAfter !== undefined && i === b.resetAfter) {
            await new Promise((r) => setTimeout(r, 20)); // let the kernel deliver what was written
            res.socket?.destroy();
            return;
          }
          await b.before?.(i);
          // Wait until the event is handed to the socket, so a reset comes after it.
          await new Promise<void>((r) => res.write(frame(b.events[i]!), () => r()));
        }
        res.end();
        return;
      }
    }
  }
}
