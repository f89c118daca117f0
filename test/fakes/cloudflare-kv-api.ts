// FAKE: a stateful stand-in for Cloudflare's Workers KV REST API on 127.0.0.1, for the
// publisher's tests and the router's tests. It speaks the real wire format (paths,
// Bearer auth, the {success, errors, messages, result} envelope, cursor pagination with
// result_info.cursor, the bulk limits) and can fail on request: a 500 from the Nth bulk
// write or bulk delete on, or a 429 with retry-after. Verified against the API reference, 2026-11:
// https://developers.cloudflare.com/api/resources/kv/subresources/namespaces/
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface StoredValue {
  value: Buffer;
  metadata?: unknown;
}

export interface RecordedRequest {
  method: string;
  path: string;
  /** Keys written or deleted by a bulk request. */
  keys?: number;
}

export const BULK_MAX_PAIRS = 10_000;
export const BULK_MAX_BYTES = 100 * 1024 * 1024;

export class FakeKvApi {
  readonly token: string;
  readonly accountId: string;
  readonly namespaceId: string;
  /** The namespace's contents. */
  readonly store = new Map<string, StoredValue>();
  readonly requests: RecordedRequest[] = [];
  /** Fail (500) every bulk write from this 1-based one on (an outage), until cleared. */
  failBulkWritesFrom: number | undefined;
  /** Fail (500) every bulk delete from this 1-based one on, until cleared. */
  failBulkDeletesFrom: number | undefined;
  /**
   * A retry-after (seconds) to send with the injected 500s, so a test need not sit out
   * the SDK's back-off (0.5 s doubling per retry) to see a run fail; unset, none is sent.
   */
  failureRetryAfter: string | undefined;
  /** Answer the next this-many requests with 429 and this retry-after (seconds). */
  rateLimit: { count: number; retryAfter: string } | undefined;
  private bulkWrites = 0;
  private bulkDeletes = 0;
  private server: Server | undefined;

  constructor(opts: { token?: string; accountId?: string; namespaceId?: string } = {}) {
    this.token = opts.token ?? "fake-token-not-a-secret";
    this.accountId = opts.accountId ?? "0123456789abcdef0123456789abcdef";
    this.namespaceId = opts.namespaceId ?? "fedcba9876543210fedcba9876543210";
  }

  /** Starts listening on 127.0.0.1; returns the base URL (…/client/v4) for the SDK. */
  async start(): Promise<string> {
    this.server = createServer((req, res) => {
      this.handle(req, res).catch((e: unknown) => envelope(res, 500, null, [{ code: 10001, message: `fake: ${String(e)}` }]));
    });
    await new Promise<void>((resolve) => this.server!.listen(0, "127.0.0.1", resolve));
    const { port } = this.server.address() as AddressInfo;
    return `http://127.0.0.1:${port}/client/v4`;
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  private internalError(res: ServerResponse): void {
    if (this.failureRetryAfter !== undefined) res.setHeader("retry-after", this.failureRetryAfter);
    envelope(res, 500, null, [{ code: 10001, message: "Internal error" }]);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    const method = req.method ?? "GET";
    const body = await readBody(req);
    const record: RecordedRequest = { method, path: url.pathname };
    this.requests.push(record);

    if (this.rateLimit && this.rateLimit.count > 0) {
      this.rateLimit.count--;
      res.setHeader("retry-after", this.rateLimit.retryAfter);
      return envelope(res, 429, null, [{ code: 971, message: "Please wait and consider throttling your request speed" }]);
    }
    if (req.headers.authorization !== `Bearer ${this.token}`) {
      return envelope(res, 401, null, [{ code: 10000, message: "Authentication error" }]);
    }
    const base = `/client/v4/accounts/${this.accountId}/storage/kv/namespaces/${this.namespaceId}`;
    if (!url.pathname.startsWith(`${base}/`)) {
      return envelope(res, 404, null, [{ code: 10013, message: "list keys: 'namespace not found'" }]);
    }
    const rest = url.pathname.slice(base.length);

    if (method === "GET" && rest === "/keys") {
      const limit = Number(url.searchParams.get("limit") ?? "1000");
      if (!Number.isInteger(limit) || limit < 10 || limit > 1000) {
        return envelope(res, 400, null, [{ code: 10004, message: "limit must be between 10 and 1000" }]);
      }
      const prefix = url.searchParams.get("prefix") ?? "";
      const cursor = url.searchParams.get("cursor") ?? "";
      const names = [...this.store.keys()].filter((k) => k.startsWith(prefix)).sort();
      const start = cursor ? Number(Buffer.from(cursor, "base64url").toString()) : 0;
      const page = names.slice(start, start + limit);
      const next = start + limit < names.length ? Buffer.from(String(start + limit)).toString("base64url") : "";
      const result = page.map((name) => ({ name, ...(this.store.get(name)!.metadata !== undefined ? { metadata: this.store.get(name)!.metadata } : {}) }));
      return envelope(res, 200, result, [], { count: result.length, cursor: next });
    }

    if (method === "GET" && rest.startsWith("/values/")) {
      const stored = this.store.get(decodeURIComponent(rest.slice("/values/".length)));
      if (!stored) return envelope(res, 404, null, [{ code: 10009, message: "get: 'key not found'" }]);
      res.writeHead(200, { "content-type": "application/octet-stream" });
      res.end(stored.value);
      return;
    }

    if (method === "PUT" && rest === "/bulk") {
      this.bulkWrites++;
      if (body.length > BULK_MAX_BYTES) return envelope(res, 413, null, [{ code: 10012, message: "request body too large" }]);
      const pairs = parseJson(body);
      if (!Array.isArray(pairs)) return envelope(res, 400, null, [{ code: 10026, message: "body must be a JSON array" }]);
      if (pairs.length > BULK_MAX_PAIRS) return envelope(res, 400, null, [{ code: 10026, message: `at most ${BULK_MAX_PAIRS} pairs` }]);
      record.keys = pairs.length;
      if (this.failBulkWritesFrom !== undefined && this.bulkWrites >= this.failBulkWritesFrom) {
        return this.internalError(res);
      }
      for (const p of pairs as { key?: unknown; value?: unknown; base64?: unknown; metadata?: unknown }[]) {
        if (typeof p.key !== "string" || p.key === "" || Buffer.byteLength(p.key) > 512 || typeof p.value !== "string") {
          return envelope(res, 400, null, [{ code: 10026, message: "each pair needs a key (1-512 bytes) and a string value" }]);
        }
      }
      for (const p of pairs as { key: string; value: string; base64?: boolean; metadata?: unknown }[]) {
        const value = p.base64 ? Buffer.from(p.value, "base64") : Buffer.from(p.value, "utf8");
        this.store.set(p.key, { value, ...(p.metadata !== undefined ? { metadata: p.metadata } : {}) });
      }
      return envelope(res, 200, { successful_key_count: pairs.length, unsuccessful_keys: [] }, []);
    }

    if (method === "POST" && rest === "/bulk/delete") {
      const keys = parseJson(body);
      if (!Array.isArray(keys) || keys.some((k) => typeof k !== "string")) {
        return envelope(res, 400, null, [{ code: 10026, message: "body must be a JSON array of key names" }]);
      }
      if (keys.length > BULK_MAX_PAIRS) return envelope(res, 400, null, [{ code: 10026, message: `at most ${BULK_MAX_PAIRS} keys` }]);
      record.keys = keys.length;
      this.bulkDeletes++;
      if (this.failBulkDeletesFrom !== undefined && this.bulkDeletes >= this.failBulkDeletesFrom) {
        return this.internalError(res);
      }
      for (const k of keys as string[]) this.store.delete(k);
      return envelope(res, 200, { successful_key_count: keys.length, unsuccessful_keys: [] }, []);
    }

    return envelope(res, 404, null, [{ code: 7003, message: "Could not route to the requested path" }]);
  }
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

function parseJson(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString("utf8"));
  } catch {
    return undefined;
  }
}

function envelope(
  res: ServerResponse,
  status: number,
  result: unknown,
  errors: { code: number; message: string }[],
  resultInfo?: Record<string, unknown>,
): void {
  const success = status < 400;
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify({ success, errors, messages: [], result, ...(resultInfo ? { result_info: resultInfo } : {}) }));
}
