// A fake of Anthropic's Messages API on 127.0.0.1 (node:http), speaking the real wire
// format: JSON Messages, SSE streams (message_start ... message_stop), error envelopes
// with request-id, 429/529 with retry-after, connection resets. Tests script what the
// next requests get; every request is recorded byte for byte.
import type { IncomingMessage, ServerResponse } from "node:http";
import { LoopbackServer } from "../../../test/support/loopback.ts";
import { frame, message, messageEvents, type SseEvent } from "./wire.ts";
import { countTokensBodyProblem, messagesBodyProblem } from "../../../test/support/anthropic-request.ts";

export { frame, message, messageEvents, MODEL, overloadedEvent, serverToolEvents, type SseEvent } from "./wire.ts";

export interface Received {
  method: string;
  path: string;
  headers: IncomingMessage["headers"];
  body: Buffer;
}

export type Behaviour =
  | {
      kind: "json";
      status?: number;
      headers?: Record<string, string>;
      body: unknown;
      /** Headers only after this long (a slow upstream, still within a timeout). */
      headersAfterMs?: number;
      /** The body's first 20 bytes at once, the rest after this long. */
      restAfterMs?: number;
    }
  | { kind: "raw"; status?: number; headers?: Record<string, string>; body: Buffer | string }
  | {
      kind: "sse";
      events: SseEvent[];
      /** Awaited before event i is written (lets a test prove events arrive one by one). */
      before?: (i: number) => Promise<void>;
      /** Destroy the connection after this many events (a mid-stream network error). */
      resetAfter?: number;
      /** Reports each event written and the socket's close (a paced upstream that notices
       *  when the proxy cancels it). */
      probe?: SseProbe;
    }
  /** Never answers (headers never come); the socket stays open until the peer closes it. */
  | { kind: "hang"; probe?: SseProbe }
  | { kind: "reset" }
  /** A JSON answer that sends its headers and `bytes` of its body, then nothing: the
   *  socket stays open until the peer closes it (reported to `probe`). */
  | { kind: "stall"; body: string; bytes: number; probe?: SseProbe }
  /** A JSON answer (200 unless `status`) whose connection is destroyed after `bytes` of its declared length. */
  | { kind: "truncated"; body: string; bytes: number; status?: number }
  | { kind: "error"; status: number; type: string; message: string; headers?: Record<string, string> };

/** What a paced SSE answer saw: events written, and whether (and when) its socket closed. */
export class SseProbe {
  written = 0;
  /** Events written when the socket closed; -1 while open. */
  closedAfter = -1;
  private readonly closedCb: (() => void)[] = [];
  readonly closed = new Promise<void>((r) => this.closedCb.push(r));
  close(): void {
    if (this.closedAfter >= 0) return;
    this.closedAfter = this.written;
    for (const f of this.closedCb) f();
  }
}

const B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
let rid = 0;
/** `req_` + 24 base62 characters, like Anthropic's (e.g. req_018EeWyXxfu5pfWkrYcMdjWG). */
function requestIdOf(n: number): string {
  let x = "";
  let v = n;
  for (let i = 0; i < 24; i++) {
    x = B62[v % 62]! + x;
    v = Math.floor(v / 62);
  }
  return "req_" + x;
}

/** Headers about the organisation and the edge that every answer carries (the fake's own
 *  quota values); none of them may reach a tenant. */
export function orgHeaders(): Record<string, string> {
  const reset = new Date(Date.now() + 60_000).toISOString().replace(/\.\d+Z$/, "Z");
  const h: Record<string, string> = {
    "anthropic-organization-id": "0b5f0a3e-6f7c-4c1e-9a57-6f1f0e0c2d11",
    server: "cloudflare",
    "cf-ray": "8f1e2d3c4b5a6978-FRA",
    via: "1.1 google",
    "x-envoy-upstream-service-time": "412",
  };
  const q: Record<string, [number, number]> = { requests: [4000, 3999], tokens: [2_000_000, 1_987_000], "input-tokens": [2_000_000, 1_990_000], "output-tokens": [400_000, 397_000] };
  for (const [k, [limit, remaining]] of Object.entries(q)) {
    h[`anthropic-ratelimit-${k}-limit`] = String(limit);
    h[`anthropic-ratelimit-${k}-remaining`] = String(remaining);
    h[`anthropic-ratelimit-${k}-reset`] = reset;
  }
  return h;
}

// RFC 9110 reason phrases for what the fake sends; 529 has none (see the header).
const REASON: Record<number, string> = { 200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 413: "Request Entity Too Large", 429: "Too Many Requests", 500: "Internal Server Error", 503: "Service Unavailable", 529: "" };

export const MODELS = {
  data: [
    { type: "model", id: "claude-sonnet-5-5", display_name: "Claude Sonnet 5.5", created_at: "2026-09-01T00:00:00Z" },
    { type: "model", id: "claude-haiku-5-1", display_name: "Claude Haiku 5.1", created_at: "2026-06-01T00:00:00Z" },
  ],
  has_more: false,
  first_id: "claude-sonnet-5-5",
  last_id: "claude-haiku-5-1",
};

export class FakeAnthropic {
  readonly received: Received[] = [];
  private readonly queue: Behaviour[] = [];
  private readonly server = new LoopbackServer(
    (req, body, res) => {
      if (this.recording) this.received.push({ method: req.method ?? "", path: req.url ?? "", headers: req.headers, body });
      return this.respond(req, res, body);
    },
    // Idle connections are kept 30 s (the LoopbackServer default; it was 1 s): workerd
    // reuses pooled connections, and one the fake closed just as a request went out fails
    // that request with a lost connection, which a call holding a budget reservation does
    // not retry (it may have been billed: forward.ts `again`). The proxy's retry of such a
    // failure is tested with `reset`.
    { keepAliveMs: 30_000 },
  );
  url = "";
  /** Keep a copy of every request (off in benchmarks). */
  recording = true;
  /** When set, answers every valid count_tokens request with this count of its body,
   *  without taking a scripted answer from the queue (tests whose concurrent calls may or
   *  may not count first). */
  countTokens: ((body: Record<string, unknown>) => number) | undefined;

  /** The next requests get these behaviours, in order; then the default (echo) one. */
  enqueue(...b: Behaviour[]): void {
    this.queue.push(...b);
  }

  reset(): void {
    this.received.length = 0;
    this.queue.length = 0;
    this.countTokens = undefined;
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
    if (req.headers["anthropic-version"] === undefined) return { kind: "error", status: 400, type: "invalid_request_error", message: "anthropic-version: header is required" };
    const path = (req.url ?? "").split("?")[0] ?? "";
    if (req.method === "GET" && path === "/v1/models") return { kind: "json", body: MODELS };
    if (req.method === "GET" && path.startsWith("/v1/models/")) {
      const id = path.slice("/v1/models/".length);
      const m = MODELS.data.find((x) => x.id === id);
      return m ? { kind: "json", body: m } : { kind: "error", status: 404, type: "not_found_error", message: `model: ${id}` };
    }
    if (req.method !== "POST") return { kind: "error", status: 405, type: "invalid_request_error", message: "method not allowed" };
    if (path === "/v1/messages/count_tokens") {
      // count_tokens takes the counted fields only: Messages-only ones are refused
      // (test/support/anthropic-request.ts).
      const c = countTokensBodyProblem(body);
      if ("problem" in c) return { kind: "error", status: 400, type: "invalid_request_error", message: c.problem };
      return { kind: "json", body: { input_tokens: this.countTokens?.(c.body) ?? 42 } };
    }
    let stream = false;
    try {
      // As the body rules read it: TextDecoder drops a leading byte order mark.
      stream = (JSON.parse(new TextDecoder().decode(body)) as { stream?: boolean }).stream === true;
    } catch {
      return { kind: "error", status: 400, type: "invalid_request_error", message: "body is not JSON" };
    }
    return stream ? { kind: "sse", events: messageEvents(["Hello", ", world"]) } : { kind: "json", body: message("Hello, world") };
  }

  private async respond(req: IncomingMessage, res: ServerResponse, body: Buffer): Promise<void> {
    const counting = this.countTokens !== undefined && (req.url ?? "").split("?")[0] === "/v1/messages/count_tokens";
    // A Messages body the API refuses is refused before any scripted answer, as the real
    // API validates a request before it runs it: a test cannot pass on a body production
    // would reject.
    const invalid = req.method === "POST" && (req.url ?? "").split("?")[0] === "/v1/messages" ? invalidMessagesBody(body) : undefined;
    const b = invalid ?? (counting ? undefined : this.queue.shift()) ?? this.defaultBehaviour(req, body);
    const requestId = requestIdOf(++rid);
    const head = (status: number, h: Record<string, string>) => {
      res.statusMessage = REASON[status] ?? "";
      res.writeHead(status, { ...orgHeaders(), "request-id": requestId, ...h });
    };
    switch (b.kind) {
      case "reset":
        req.socket.destroy();
        return;
      case "hang":
        // 'close' of the response (not of the kept-alive socket: one listener per answer
        // on a socket would pile up): here it can only mean the peer went away.
        res.on("close", () => b.probe?.close());
        return;
      case "json": {
        if (b.headersAfterMs !== undefined) await new Promise((r) => setTimeout(r, b.headersAfterMs));
        const text = Buffer.from(JSON.stringify(b.body));
        head(b.status ?? 200, { "content-type": "application/json", ...b.headers });
        if (b.restAfterMs !== undefined) {
          res.write(text.subarray(0, 20));
          await new Promise((r) => setTimeout(r, b.restAfterMs));
          res.end(text.subarray(20));
        } else res.end(text);
        return;
      }
      case "truncated":
        head(b.status ?? 200, { "content-type": "application/json", "content-length": String(Buffer.byteLength(b.body)) });
        res.write(Buffer.from(b.body).subarray(0, b.bytes), () => setTimeout(() => res.socket?.destroy(), 20));
        return;
      case "stall":
        head(200, { "content-type": "application/json", "content-length": String(Buffer.byteLength(b.body)) });
        res.write(Buffer.from(b.body).subarray(0, b.bytes));
        res.on("close", () => b.probe?.close());
        return;
      case "raw":
        head(b.status ?? 200, { "content-type": "application/json", ...b.headers });
        res.end(b.body);
        return;
      case "error":
        head(b.status, { "content-type": "application/json", ...b.headers });
        res.end(JSON.stringify({ type: "error", error: { type: b.type, message: b.message }, request_id: requestId }));
        return;
      case "sse": {
        head(200, { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache" });
        res.flushHeaders();
        const probe = b.probe;
        let closed = false;
        res.on("close", () => {
          if (res.writableFinished) return; // answered in full
          closed = true;
          probe?.close();
        });
        for (let i = 0; i < b.events.length; i++) {
          if (b.resetAfter !== undefined && i === b.resetAfter) {
            await new Promise((r) => setTimeout(r, 20)); // let the kernel deliver what was written
            res.socket?.destroy();
            return;
          }
          await b.before?.(i);
          if (closed) return; // the peer went away: a real server stops generating
          // Wait until the event is handed to the socket, so a reset comes after it.
          await new Promise<void>((r) => res.write(frame(b.events[i]!), () => r()));
          if (probe) probe.written++;
        }
        res.end();
        return;
      }
    }
  }
}

/** Why the Messages API refuses a body, as an error behaviour; undefined when valid
 *  enough (the rules, shared with the draft command's fake: test/support/anthropic-request.ts). */
export function invalidMessagesBody(body: Buffer): Behaviour | undefined {
  const problem = messagesBodyProblem(body);
  return problem === undefined ? undefined : { kind: "error", status: 400, type: "invalid_request_error", message: problem };
}
