// The proxy in workerd against the fake Anthropic upstream: forwarding byte for byte,
// SSE relayed event by event, auth, body limits, routes, CORS, operator status and
// metrics. Ends with a scan of every response and log line for the secrets.
import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { request as httpRequest } from "node:http";
import { frame, message, messageEvents, MODEL } from "./fake-anthropic.ts";
import { Harness, useHarness, MESSAGE, STREAM } from "./harness.ts";

let h: Harness;
let key: string;
let tenantId: string;

useHarness(
  { MAX_BODY_BYTES: String(6 * 1024 * 1024), CORS_ORIGINS: "https://app.example, https://admin.example" },
  async (started) => {
    h = started;
    ({ key, id: tenantId } = await h.tenant({ name: "acme" }));
  },
  { reset: true },
);

describe("forwarding", () => {
  // Bodies whose bytes change if anything parses and re-serialises them.
  const odd: [string, Buffer][] = [
    ["keys out of order, odd whitespace", Buffer.from('{  "stream":false,\n\t"model" : "claude-x","max_tokens":5,   "messages":[{"role":"user","content":"hi"}] }\n\n')],
    ["\\u escapes and escaped slashes", Buffer.from('{"model":"claude-x","messages":[{"role":"user","content":"caf\\u00e9 \\ud83d\\ude00 a\\/b \\"q\\""}],"max_tokens":1}')],
    ["raw UTF-8, BOM and CRLF", Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"model":"claude-x",\r\n"messages":[{"role":"user","content":"日本語 — ünïcödé 😀"}],"max_tokens":1}\r\n')])],
    ["duplicate keys and big numbers", Buffer.from('{"model":"a","model":"claude-x","max_tokens":1.0000000000000000001e0,"n":12345678901234567890,"messages":[{"role":"user","content":"x"}]}')],
  ];
  for (const [name, body] of odd) {
    it(`forwards the body byte for byte: ${name}`, async () => {
      h.fake.enqueue({ kind: "json", body: message("ok") });
      const r = await h.call("/v1/messages", { key, body });
      expect(r.status).toBe(200);
      expect(h.fake.received).toHaveLength(1);
      expect(h.fake.received[0]!.body.equals(body)).toBe(true);
    });
  }

  it("the fake upstream refuses a Messages body the API refuses, before any scripted answer (a test cannot pass on one)", async () => {
    for (const [body, why] of [
      ['{"model":"claude-x","max_tokens":1,"messages":[]}', "messages: at least one message is required"],
      ['{"model":"claude-x","messages":[{"role":"user","content":"x"}]}', "max_tokens: Field required"],
      ['{"max_tokens":1,"messages":[{"role":"user","content":"x"}]}', "model: Field required"],
    ] as const) {
      h.fake.reset();
      h.fake.enqueue({ kind: "json", body: message("never sent") });
      const r = await h.call("/v1/messages", { key, body });
      expect(r.status, body).toBe(400);
      expect(JSON.parse(r.text).error, body).toMatchObject({ type: "invalid_request_error", message: why });
    }
  });

  it("forwards a 5 MB body byte for byte", async () => {
    const filler = Buffer.alloc(5 * 1024 * 1024 - 200, "a");
    for (let i = 0; i < filler.length; i += 997) filler[i] = 0x20 + (i % 90); // vary the bytes
    const body = Buffer.concat([Buffer.from('{"model":"claude-x","max_tokens":1,"messages":[{"role":"user","content":"x"}],"x":"'), filler.map((b) => (b === 0x22 || b === 0x5c ? 0x61 : b)), Buffer.from('"}')]);
    const r = await h.call("/v1/messages", { key, body });
    expect(r.status).toBe(200);
    const got = h.fake.received[0]!.body;
    expect(got.length).toBe(body.length);
    expect(createHash("sha256").update(got).digest("hex")).toBe(createHash("sha256").update(body).digest("hex"));
  });

  it("attaches the provider key, passes anthropic-version/beta, never forwards the tenant key", async () => {
    const r = await h.call("/v1/messages", {
      body: '{"model":"claude-x","max_tokens":1,"messages":[{"role":"user","content":"x"}]}',
      headers: { authorization: `Bearer ${key}`, "anthropic-version": "2023-06-01", "anthropic-beta": "prompt-caching-2024-07-31,output-128k-2025-02-19", cookie: "a=b" },
    });
    expect(r.status).toBe(200);
    const got = h.fake.received[0]!;
    expect(got.headers["x-api-key"]).toBe(h.secrets.ANTHROPIC_API_KEY);
    expect(got.headers["anthropic-version"]).toBe("2023-06-01");
    expect(got.headers["anthropic-beta"]).toBe("prompt-caching-2024-07-31,output-128k-2025-02-19");
    expect(got.headers.authorization).toBeUndefined();
    expect(got.headers.cookie).toBeUndefined();
    expect(JSON.stringify(got.headers)).not.toContain(key);
  });

  it("passes a JSON answer through unchanged, with the upstream request-id", async () => {
    const raw = '{"id":"msg_1","type":"message","model":"claude-x","content":[{"type":"text","text":"caf\\u00e9"}],  "usage":{"input_tokens":1,"output_tokens":2}}';
    h.fake.enqueue({ kind: "raw", body: raw, headers: { "request-id": "req_upstream_7", "anthropic-organization-id": "org-secret-ish" } });
    const r = await h.call("/v1/messages", { key, body: MESSAGE });
    expect(r.text).toBe(raw);
    expect(r.headers.get("request-id")).toBe("req_upstream_7");
    expect(r.headers.get("edgefleet-request-id")).toMatch(/^req_ef_[0-9a-f]{32}$/);
    expect(r.headers.get("anthropic-organization-id")).toBeNull();
    expect(r.headers.get("ratelimit-limit")).toBe("1000");
  });

  it("passes upstream client errors through without retrying", async () => {
    h.fake.enqueue({ kind: "error", status: 400, type: "invalid_request_error", message: "max_tokens: field required" });
    const r = await h.call("/v1/messages", { key, body: MESSAGE });
    expect(r.status).toBe(400);
    expect(JSON.parse(r.text)).toEqual({ type: "error", error: { type: "invalid_request_error", message: "max_tokens: field required" }, request_id: r.headers.get("request-id") });
    expect(h.fake.received).toHaveLength(1);
  });

  it("forwards /v1/messages/count_tokens", async () => {
    const r = await h.call("/v1/messages/count_tokens", { key, body: '{"model":"claude-x","messages":[{"role":"user","content":"hi"}]}' });
    expect(r.status).toBe(200);
    expect(JSON.parse(r.text)).toEqual({ input_tokens: 42 });
    expect(h.fake.received[0]!.path).toBe("/v1/messages/count_tokens");
  });
});

describe("streaming", () => {
  it("relays SSE events one by one, before the upstream has sent the next", async () => {
    const events = messageEvents(["one", "two", "three"]);
    const gates: (() => void)[] = [];
    const opened: Promise<void>[] = events.map((_, i) => (i === 0 ? Promise.resolve() : new Promise<void>((r) => (gates[i] = r))));
    h.fake.enqueue({ kind: "sse", events, before: (i) => opened[i]! });
    const res = await fetch(new URL("/v1/messages", h.url), {
      method: "POST",
      headers: { "x-api-key": key, "content-type": "application/json", "anthropic-version": "2023-06-01" },
      body: STREAM,
    });
    expect(res.headers.get("content-type")).toContain("text/event-stream");
    expect(res.headers.get("cache-control")).toBe("no-cache");
    const reader = res.body!.getReader();
    const dec = new TextDecoder();
    let got = "";
    for (let i = 0; i < events.length; i++) {
      // The upstream holds event i+1 until the client has seen event i: a proxy that
      // buffered would deadlock here.
      const want = frame(events[i]!);
      while (!got.endsWith(want)) {
        const { done, value } = await reader.read();
        if (done) throw new Error(`stream ended before event ${i}`);
        got += dec.decode(value, { stream: true });
      }
      gates[i + 1]?.();
    }
    expect((await reader.read()).done).toBe(true);
    expect(got).toBe(events.map(frame).join(""));
    h.record(res, got);
  });
});

describe("streaming, client gone", () => {
  it("a client that leaves mid-stream still gets its data point (client_closed, usage so far)", async () => {
    const events = messageEvents(["one", "two", "three"], { input_tokens: 31, output_tokens: 5, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 });
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    // Event 0 (message_start) and 1 flow; the rest waits until the client has left.
    h.fake.enqueue({ kind: "sse", events, before: (i) => (i < 2 ? Promise.resolve() : gate) });
    const ac = new AbortController();
    const res = await fetch(new URL("/v1/messages", h.url), {
      method: "POST",
      headers: { "x-api-key": key, "content-type": "application/json", "anthropic-version": "2023-06-01" },
      body: STREAM,
      signal: ac.signal,
    });
    const reader = res.body!.getReader();
    const first = frame(events[0]!);
    let got = "";
    while (!got.includes(first)) got += new TextDecoder().decode((await reader.read()).value);
    ac.abort();
    await reader.cancel().catch(() => {});
    setTimeout(open, 300);
    // The guarantee: the call still gets its data point, with the usage seen so far.
    // Whether workerd has noticed the disconnect before the next chunk arrives (then
    // "client_closed") or buffers that chunk first (then the stream ends normally) is a
    // race inside the runtime, so both outcomes are accepted; never a lost point.
    // This call's point (earlier tests' points may still be arriving): by request id.
    const rid = res.headers.get("edgefleet-request-id") ?? res.headers.get("request-id");
    let p: (typeof h.points)[number] | undefined;
    for (let i = 0; i < 500 && !(p = h.points.find((x) => x.blobs[5] === rid)); i++) await new Promise((r) => setTimeout(r, 10));
    expect(p, `a data point for ${rid}`).toBeDefined();
    expect(["client_closed", ""]).toContain(p!.blobs[4]);
    expect(p!.doubles[1]).toBe(31);
  });
});

describe("auth and request checks", () => {
  it("401 without a key, with a wrong key, and with a disabled tenant's key", async () => {
    const none = await h.call("/v1/messages", { body: MESSAGE });
    expect(none.status).toBe(401);
    expect(JSON.parse(none.text).error.type).toBe("authentication_error");
    expect(none.headers.get("request-id")).toMatch(/^req_ef_/);
    const wrong = await h.call("/v1/messages", { key: "efk_not-a-real-key", body: MESSAGE });
    expect(wrong.status).toBe(401);
    expect(wrong.text).not.toContain("efk_not-a-real-key");
    const other = await h.tenant({ name: "to-disable" });
    expect((await h.call("/v1/messages", { key: other.key, body: MESSAGE })).status).toBe(200);
    await h.disable(other.id);
    const disabled = await h.call("/v1/messages", { key: other.key, body: MESSAGE });
    expect(disabled.status).toBe(401);
    expect(JSON.parse(disabled.text).error.message).toBe("API key is disabled");
    expect(h.fake.received).toHaveLength(1);
  });

  it("answers 401 before reading the body", async () => {
    // Send the headers and a first chunk of a body that is never finished: only a proxy
    // that answers before reading the body can reply.
    const status = await new Promise<number>((resolve, reject) => {
      const req = httpRequest(new URL("/v1/messages", h.url), {
        method: "POST",
        headers: { "x-api-key": "efk_wrong", "content-type": "application/json", "transfer-encoding": "chunked" },
      });
      req.on("response", (res) => {
        let text = "";
        res.on("data", (c: Buffer) => (text += c.toString()));
        res.on("end", () => {
          h.transcript.push(text, JSON.stringify(res.headers));
          req.destroy();
          resolve(res.statusCode ?? 0);
        });
      });
      req.on("error", reject);
      req.write('{"model":"claude-x","messages":[');
    });
    expect(status).toBe(401);
    expect(h.fake.received).toHaveLength(0);
  });

  // Each on its own connection, and the client stops sending once the proxy must have
  // answered: bytes the server never reads would make its close a TCP reset, which can
  // destroy the answer before the client reads it.
  function rawPost(headers: Record<string, string>, send: (req: ReturnType<typeof httpRequest>) => void): Promise<{ status: number; text: string }> {
    return new Promise((resolve, reject) => {
      const req = httpRequest(new URL("/v1/messages", h.url), { method: "POST", agent: false, headers });
      req.on("response", (res) => {
        let text = "";
        res.on("data", (c: Buffer) => (text += c.toString()));
        res.on("end", () => {
          h.transcript.push(text, JSON.stringify(res.headers));
          req.destroy();
          resolve({ status: res.statusCode ?? 0, text });
        });
      });
      req.on("error", reject);
      send(req);
    });
  }

  it("413 for a declared length over the limit (before any byte of it); 411 for a body without a length past BUFFER_BODY_BYTES", async () => {
    // Only the headers are sent: a proxy that waited for the body would never answer.
    const declared = await rawPost({ "x-api-key": key, "content-length": String(6 * 1024 * 1024 + 1) }, (req) => req.flushHeaders());
    expect(declared.status).toBe(413);
    expect(JSON.parse(declared.text).error.type).toBe("request_too_large");
    // One byte over the buffer limit (1 MiB by default), then the body stays open: only a
    // proxy that counts as it reads can answer. Without a declared length it could only
    // learn that the body is too large after admitting it, so it asks for the length.
    const chunked = await rawPost({ "x-api-key": key, "transfer-encoding": "chunked" }, (req) => {
      req.write(Buffer.alloc(1024 * 1024, 0x61));
      req.write("a");
    });
    expect(chunked.status).toBe(411);
    expect(JSON.parse(chunked.text).error).toEqual({ type: "invalid_request_error", message: "a request body over 1048576 bytes needs a content-length header" });
    expect(h.fake.received).toHaveLength(0);
  });

  it("404 for unknown routes and 405 for wrong methods, in Anthropic's envelope", async () => {
    const nf = await h.call("/v1/complete", { key, body: MESSAGE });
    expect(nf.status).toBe(404);
    expect(JSON.parse(nf.text)).toMatchObject({ type: "error", error: { type: "not_found_error" } });
    const get = await h.call("/v1/messages", { key, method: "GET" });
    expect(get.status).toBe(405);
    expect(get.headers.get("allow")).toBe("POST, OPTIONS");
    expect(h.fake.received).toHaveLength(0);
  });
});

describe("CORS", () => {
  it("answers an allowed preflight itself, without calling the upstream", async () => {
    const r = await h.call("/v1/messages", {
      method: "OPTIONS",
      headers: { origin: "https://app.example", "access-control-request-method": "POST", "access-control-request-headers": "x-api-key, content-type, anthropic-version" },
    });
    expect(r.status).toBe(204);
    expect(r.headers.get("access-control-allow-origin")).toBe("https://app.example");
    expect(r.headers.get("access-control-allow-headers")).toBe("x-api-key, content-type, anthropic-version");
    expect(r.headers.get("access-control-allow-methods")).toContain("POST");
    expect(h.fake.received).toHaveLength(0);
  });

  it("refuses a preflight from an origin not on the list", async () => {
    const r = await h.call("/v1/messages", { method: "OPTIONS", headers: { origin: "https://evil.example", "access-control-request-method": "POST" } });
    expect(r.status).toBe(403);
    expect(r.headers.get("access-control-allow-origin")).toBeNull();
    expect(h.fake.received).toHaveLength(0);
  });

  it("adds allow-origin to answers for allowed origins only", async () => {
    const ok = await h.call("/v1/messages", { key, body: MESSAGE, headers: { origin: "https://admin.example" } });
    expect(ok.headers.get("access-control-allow-origin")).toBe("https://admin.example");
    expect(ok.headers.get("access-control-expose-headers")).toContain("request-id");
    const denied = await h.call("/v1/messages", { key, body: MESSAGE, headers: { origin: "https://evil.example" } });
    expect(denied.headers.get("access-control-allow-origin")).toBeNull();
    const err = await h.call("/v1/messages", { body: MESSAGE, headers: { origin: "https://app.example" } });
    expect(err.status).toBe(401);
    expect(err.headers.get("access-control-allow-origin")).toBe("https://app.example");
  });
});

describe("operator status", () => {
  it("reports the version id and a fingerprint of the provider key, never the key", async () => {
    const r = await h.call("/_edgefleet/status", { method: "GET", headers: { authorization: `Bearer ${h.secrets.OPERATOR_TOKEN}` } });
    expect(r.status).toBe(200);
    const body = JSON.parse(r.text);
    expect(body.version.id).toMatch(/^[0-9a-f-]{36}$/);
    const fp = "sha256:" + createHash("sha256").update(h.secrets.ANTHROPIC_API_KEY).digest("hex").slice(0, 12);
    expect(body.secrets).toEqual({ ANTHROPIC_API_KEY: fp });
  });

  it("401 without the operator token, or with a tenant key", async () => {
    expect((await h.call("/_edgefleet/status", { method: "GET" })).status).toBe(401);
    expect((await h.call("/_edgefleet/status", { method: "GET", headers: { authorization: `Bearer ${key}` } })).status).toBe(401);
    expect((await h.call("/_edgefleet/status", { method: "GET", headers: { authorization: `Bearer ${h.secrets.OPERATOR_TOKEN}x` } })).status).toBe(401);
  });
});

describe("the secret scan itself", () => {
  it("finds a secret wherever the suite keeps what it saw (responses, log lines, data points)", () => {
    const secrets = [h.secrets.ANTHROPIC_API_KEY, h.secrets.OPERATOR_TOKEN, key];
    const places = [h.transcript, h.logs, h.points as unknown as unknown[]];
    for (const [i, s] of secrets.entries()) {
      const place = places[i]!;
      place.push(i === 2 ? { indexes: [], blobs: [`x${s}x`], doubles: [] } : `header: x${s}x`);
      expect(h.leaks()).toHaveLength(1);
      place.pop();
    }
    expect(h.leaks()).toEqual([]);
  });
});

describe("metrics", () => {
  it("records a JSON call: tenant, model, route, status, all four token counts", async () => {
    await h.call("/v1/messages", { key, body: MESSAGE });
    const [p] = await h.pointsAtLeast(1);
    expect(p!.indexes).toEqual([tenantId]);
    expect(p!.blobs.slice(0, 5)).toEqual([tenantId, MODEL, "/v1/messages", "200", ""]);
    // status, input, output, cache creation, cache read, latency, retries, ttfb, weight
    expect(p!.doubles[0]).toBe(200);
    expect(p!.doubles.slice(1, 5)).toEqual([12, 5, 3, 40]);
    expect(p!.doubles[6]).toBe(0);
    expect(p!.doubles[8]).toBe(1);
  });

  it("reads usage from the SSE stream as it passes", async () => {
    h.fake.enqueue({ kind: "sse", events: messageEvents(["a", "b"], { input_tokens: 31, output_tokens: 17, cache_creation_input_tokens: 2, cache_read_input_tokens: 2048 }) });
    await h.call("/v1/messages", { key, body: STREAM });
    const [p] = await h.pointsAtLeast(1);
    expect(p!.blobs.slice(1, 5)).toEqual([MODEL, "/v1/messages", "200", ""]);
    expect(p!.doubles.slice(1, 5)).toEqual([31, 17, 2, 2048]);
  });

  it("writes a point for refused calls too (tenant unknown, status 401)", async () => {
    await h.call("/v1/messages", { key: "efk_nope", body: MESSAGE });
    const [p] = await h.pointsAtLeast(1);
    expect(p!.blobs.slice(0, 5)).toEqual(["", "", "/v1/messages", "401", "authentication_error"]);
  });

  it("logs unusual calls (errors, retries) with ids and numbers only, and no line for plain successes", async () => {
    const before = h.logs.length;
    await h.call("/v1/messages", { key, body: MESSAGE });
    h.fake.enqueue({ kind: "error", status: 500, type: "api_error", message: "boom" });
    await h.call("/v1/messages", { key, body: MESSAGE });
    await h.call("/v1/messages", { key: "efk_nope", body: MESSAGE });
    await h.pointsAtLeast(3);
    const lines = h.logs.slice(before).filter((l) => l.includes('"requestId"')).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatchObject({ tenant: tenantId, route: "/v1/messages", status: 200, retries: 1 });
    expect(lines[1]).toMatchObject({ tenant: "", status: 401, error: "authentication_error", retries: 0 });
    for (const l of lines) expect(Object.keys(l).sort()).toEqual(["latencyMs", "requestId", "retries", "route", "status", "tenant", ...(l.error ? ["error"] : [])].sort());
  });
});
