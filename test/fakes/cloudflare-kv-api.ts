// FAKE: a stateful stand-in for Cloudflare Workers KV on 127.0.0.1: the REST API the
// publisher uses (through the official `cloudflare` SDK) and, for the router's tests, the
// read side a Worker's binding sees in one location. The router in workerd reads through
// a wrapped binding (test/fakes/kv-reader-binding.ts) that calls /__location/<name>/... here.
//
// The contract it enforces, and where it comes from (all checked 2026-11-27):
// - Wire format: paths, Bearer auth, the {success, errors, messages, result} envelope,
//   cursor pagination (result_info.cursor), bulk write/delete/get
//   (https://developers.cloudflare.com/api/resources/kv/subresources/namespaces/ and the
//   SDK's typings, node_modules/cloudflare/resources/kv/namespaces/namespaces.d.ts v7.3.0:
//   "up to 10,000 key-value pairs", "The entire request must be 100 megabytes or less",
//   bulk get "maximum of 100" keys, text/json only).
// - Limits (cloudflare-docs src/content/docs/kv/platform/limits.mdx): key 512 bytes, value
//   25 MiB, metadata 1024 bytes, 1 write per second to the same key. The write page
//   (kv/api/write-key-value-pairs.mdx, cloudflare-docs PR #18041) says writes to one key
//   within a second fail with 429. What the REST bulk endpoint answers to that is not
//   documented; this fake refuses the whole request with 429 and retry-after: 1 (the
//   stricter reading). miniflare's own KVLimits (node_modules/miniflare, 4.20260730.0)
//   agree on 512 / 25 MiB / 1024 and also refuse the key names "." and "..".
// - Consistency (kv/concepts/how-kv-works.mdx, kv/api/read-key-value-pairs.mdx): writes go
//   to central stores; a location serves what it cached for the read's `cacheTtl` (default
//   60 s; the docs give the minimum as 60 s, miniflare 4.20260730 accepts 30: the fake
//   refuses below 60, the stricter of the two); "Negative lookups indicating that the key
//   does not exist are also cached"; a later read with a lower cacheTtl re-checks a cached
//   entry older than that ("The effective cacheTtl of an already cached item can be
//   reduced by getting it again with a lower cacheTtl"); changes "may take up to 60 seconds
//   or more to be visible in other global network locations". Modelled per location: a
//   location reads central state as it was `lagMs` ago (replication delay), then caches
//   the answer, hit or miss, keyed by key, until a read asks for a shorter cacheTtl.
// - Every response carries the fake's clock in `Date`, as Cloudflare's API does; the
//   clock is injectable so a test can put the operator's machine and the server apart.
// Faults on request: a 500 from the Nth bulk write or bulk delete on, a 429 with
// retry-after, a slow answer.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface StoredValue {
  value: Buffer;
  metadata?: unknown;
}

export interface RecordedRequest {
  method: string;
  path: string;
  /** Keys written, deleted or read by a bulk request. */
  keys?: number;
  /** The fake's clock when the request arrived. */
  at: number;
}

export const BULK_MAX_PAIRS = 10_000;
/** "100 megabytes": decimal, the stricter reading of MB. */
export const BULK_MAX_BYTES = 100 * 1000 * 1000;
export const BULK_GET_MAX_KEYS = 100;
export const MAX_KEY_BYTES = 512;
export const MAX_VALUE_BYTES = 25 * 1024 * 1024;
export const MAX_METADATA_BYTES = 1024;
/** One write per second to the same key. */
export const SAME_KEY_WRITE_INTERVAL_MS = 1000;
export const DEFAULT_CACHE_TTL_S = 60;
export const MIN_CACHE_TTL_S = 60;

/** One version of a key in the central store; `value` undefined means deleted. */
interface Version {
  at: number;
  stored: StoredValue | undefined;
}

interface CachedRead {
  stored: StoredValue | undefined;
  cachedAt: number;
}

/** A Cloudflare location: its replication lag and its cache of reads (hits and misses). */
export class KvLocation {
  /** How far behind central this location's uncached reads are, per key (ms). */
  lagMs: (key: string) => number;
  readonly cache = new Map<string, CachedRead>();
  readonly reads: { key: string; cacheTtl: number; hit: boolean; found: boolean; at: number }[] = [];
  readonly name: string;
  private readonly kv: FakeKvApi;
  constructor(name: string, kv: FakeKvApi, lagMs: number | ((key: string) => number) = 0) {
    this.name = name;
    this.kv = kv;
    this.lagMs = typeof lagMs === "number" ? () => lagMs : lagMs;
  }

  /** A binding's get(key, {cacheTtl}) in this location. Throws on a cacheTtl KV refuses. */
  get(key: string, cacheTtl = DEFAULT_CACHE_TTL_S): StoredValue | null {
    if (!Number.isInteger(cacheTtl) || cacheTtl < MIN_CACHE_TTL_S) {
      throw new KvError(400, `Invalid cache_ttl of ${cacheTtl}. Cache TTL must be at least ${MIN_CACHE_TTL_S}.`);
    }
    checkKey(key);
    const now = this.kv.now();
    const cached = this.cache.get(key);
    if (cached && now - cached.cachedAt < cacheTtl * 1000) {
      this.reads.push({ key, cacheTtl, hit: true, found: !!cached.stored, at: now });
      return cached.stored ?? null;
    }
    const stored = this.kv.versionAt(key, now - this.lagMs(key));
    this.cache.set(key, { stored, cachedAt: now });
    this.reads.push({ key, cacheTtl, hit: false, found: !!stored, at: now });
    return stored ?? null;
  }
}

export class KvError extends Error {
  readonly status: number;
  readonly code: number;
  constructor(status: number, message: string, code = 10026) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function checkKey(key: string): void {
  if (key === "" || key === "." || key === "..") throw new KvError(400, `Illegal key name '${key}'`);
  const n = Buffer.byteLength(key);
  if (n > MAX_KEY_BYTES) throw new KvError(414, `UTF-8 encoded length of ${n} exceeds key length limit of ${MAX_KEY_BYTES}.`);
}

export class FakeKvApi {
  readonly token: string;
  readonly accountId: string;
  readonly namespaceId: string;
  /** The central store's current contents (what the REST API reads). */
  readonly store = new Map<string, StoredValue>();
  readonly requests: RecordedRequest[] = [];
  readonly locations = new Map<string, KvLocation>();
  /** The fake's clock (ms); sent as `Date` and used for visibility and the write limit. */
  now: () => number = () => Date.now();
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
  /** Called before each bulk write is applied (a test can interleave work here). */
  beforeBulkWrite: ((keys: string[]) => void | Promise<void>) | undefined;
  /** Enforce one write per second per key (on by default, as Cloudflare). */
  enforceSameKeyLimit = true;
  /**
   * How stale the REST API's single-value reads may be (ms). Cloudflare does not document
   * the REST read path's consistency; a test of the lease sets this to KV's bound to model
   * a read served by a location that has not seen a write yet.
   */
  apiReadLagMs = 0;
  private readonly history = new Map<string, Version[]>();
  private readonly lastWrite = new Map<string, number>();
  private bulkWrites = 0;
  private bulkDeletes = 0;
  private server: Server | undefined;
  private origin = "";

  constructor(opts: { token?: string; accountId?: string; namespaceId?: string } = {}) {
    this.token = opts.token ?? "fake-token-not-a-secret";
    this.accountId = opts.accountId ?? "0123456789abcdef0123456789abcdef";
    this.namespaceId = opts.namespaceId ?? "fedcba9876543210fedcba9876543210";
  }

  /** Starts listening on 127.0.0.1; returns the base URL (…/client/v4) for the SDK. */
  async start(): Promise<string> {
    this.server = createServer((req, res) => {
      this.handle(req, res).catch((e: unknown) => {
        if (e instanceof KvError) envelope(res, e.status, null, [{ code: e.code, message: e.message }], undefined, this.now());
        else envelope(res, 500, null, [{ code: 10001, message: `fake: ${String(e)}` }], undefined, this.now());
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, "127.0.0.1", resolve));
    const { port } = this.server.address() as AddressInfo;
    this.origin = `http://127.0.0.1:${port}`;
    return `${this.origin}/client/v4`;
  }

  /** The URL a location's reader binding calls (test/fakes/kv-reader-binding.ts). */
  locationUrl(name: string): string {
    return `${this.origin}/__location/${encodeURIComponent(name)}`;
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  /** A location (created on first use) with its replication lag. */
  location(name: string, lagMs: number | ((key: string) => number) = 0): KvLocation {
    let loc = this.locations.get(name);
    if (!loc) {
      loc = new KvLocation(name, this, lagMs);
      this.locations.set(name, loc);
    } else if (arguments.length > 1) {
      loc.lagMs = typeof lagMs === "number" ? () => lagMs : lagMs;
    }
    return loc;
  }

  /** The central value of a key as it was at time `t` (undefined: absent). */
  versionAt(key: string, t: number): StoredValue | undefined {
    const versions = this.history.get(key);
    if (!versions) return undefined;
    let found: StoredValue | undefined;
    for (const v of versions) {
      if (v.at > t) break;
      found = v.stored;
    }
    return found;
  }

  /** Writes straight into the central store (a test's set-up; no limits, no request). */
  seed(key: string, stored: StoredValue | undefined, at = this.now()): void {
    this.record(key, stored, at);
  }

  private record(key: string, stored: StoredValue | undefined, at: number): void {
    if (stored) this.store.set(key, stored);
    else this.store.delete(key);
    const versions = this.history.get(key) ?? [];
    versions.push({ at, stored });
    this.history.set(key, versions);
  }

  private checkWriteRate(keys: string[], now: number): void {
    if (!this.enforceSameKeyLimit) return;
    for (const k of keys) {
      const last = this.lastWrite.get(k);
      if (last !== undefined && now - last < SAME_KEY_WRITE_INTERVAL_MS) {
        throw new KvError(429, `KV PUT failed: 429 Too Many Requests (key '${k}' written less than 1 s ago)`, 971);
      }
    }
  }

  private internalError(res: ServerResponse): void {
    if (this.failureRetryAfter !== undefined) res.setHeader("retry-after", this.failureRetryAfter);
    envelope(res, 500, null, [{ code: 10001, message: "Internal error" }], undefined, this.now());
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    const method = req.method ?? "GET";
    const body = await readBody(req);
    const now = this.now();
    const send = (status: number, result: unknown, errors: { code: number; message: string }[] = [], info?: Record<string, unknown>) =>
      envelope(res, status, result, errors, info, now);

    // The read side of one location, for the router's wrapped binding (no auth: a binding has none).
    const loc = /^\/__location\/([^/]+)\/values\/(.+)$/.exec(url.pathname);
    if (loc && method === "GET") {
      const location = this.location(decodeURIComponent(loc[1]!));
      const ttl = url.searchParams.get("cacheTtl");
      try {
        const stored = location.get(decodeURIComponent(loc[2]!), ttl === null ? DEFAULT_CACHE_TTL_S : Number(ttl));
        if (!stored) {
          res.writeHead(404, { date: new Date(now).toUTCString() });
          res.end();
          return;
        }
        res.writeHead(200, { "content-type": "application/octet-stream", date: new Date(now).toUTCString() });
        res.end(stored.value);
      } catch (e) {
        if (!(e instanceof KvError)) throw e;
        res.writeHead(e.status, { "content-type": "text/plain" });
        res.end(e.message);
      }
      return;
    }

    const record: RecordedRequest = { method, path: url.pathname, at: now };
    this.requests.push(record);

    if (this.rateLimit && this.rateLimit.count > 0) {
      this.rateLimit.count--;
      res.setHeader("retry-after", this.rateLimit.retryAfter);
      return send(429, null, [{ code: 971, message: "Please wait and consider throttling your request speed" }]);
    }
    // A global API key beside the token wins (cloudflare/cloudflare-typescript#2454): the
    // fake has none, so such a request is refused, as a wrong key is.
    if (req.headers.authorization !== `Bearer ${this.token}` || req.headers["x-auth-key"] !== undefined || req.headers["x-auth-email"] !== undefined) {
      return send(401, null, [{ code: 10000, message: "Authentication error" }]);
    }
    const base = `/client/v4/accounts/${this.accountId}/storage/kv/namespaces/${this.namespaceId}`;
    if (!url.pathname.startsWith(`${base}/`)) {
      return send(404, null, [{ code: 10013, message: "list keys: 'namespace not found'" }]);
    }
    const rest = url.pathname.slice(base.length);

    if (method === "GET" && rest === "/keys") {
      const limit = Number(url.searchParams.get("limit") ?? "1000");
      if (!Number.isInteger(limit) || limit < 10 || limit > 1000) {
        return send(400, null, [{ code: 10004, message: "limit must be between 10 and 1000" }]);
      }
      const prefix = url.searchParams.get("prefix") ?? "";
      const cursor = url.searchParams.get("cursor") ?? "";
      const names = [...this.store.keys()].filter((k) => k.startsWith(prefix)).sort();
      const start = cursor ? Number(Buffer.from(cursor, "base64url").toString()) : 0;
      const page = names.slice(start, start + limit);
      const next = start + limit < names.length ? Buffer.from(String(start + limit)).toString("base64url") : "";
      const result = page.map((name) => ({ name, ...(this.store.get(name)!.metadata !== undefined ? { metadata: this.store.get(name)!.metadata } : {}) }));
      return send(200, result, [], { count: result.length, cursor: next });
    }

    if (method === "GET" && rest.startsWith("/values/")) {
      const key = decodeURIComponent(rest.slice("/values/".length));
      checkKey(key);
      const stored = this.apiReadLagMs > 0 ? this.versionAt(key, now - this.apiReadLagMs) : this.store.get(key);
      if (!stored) return send(404, null, [{ code: 10009, message: "get: 'key not found'" }]);
      res.writeHead(200, { "content-type": "application/octet-stream", date: new Date(now).toUTCString() });
      res.end(stored.value);
      return;
    }

    if (method === "POST" && rest === "/bulk/get") {
      const q = parseJson(body) as { keys?: unknown; type?: unknown; withMetadata?: unknown } | undefined;
      if (!q || !Array.isArray(q.keys) || q.keys.some((k) => typeof k !== "string")) {
        return send(400, null, [{ code: 10026, message: "keys must be an array of key names" }]);
      }
      if (q.keys.length > BULK_GET_MAX_KEYS) return send(400, null, [{ code: 10026, message: `at most ${BULK_GET_MAX_KEYS} keys` }]);
      if (q.type !== undefined && q.type !== "text" && q.type !== "json") return send(400, null, [{ code: 10026, message: "type must be text or json" }]);
      record.keys = q.keys.length;
      const values: Record<string, unknown> = {};
      for (const k of q.keys as string[]) {
        checkKey(k);
        const stored = this.store.get(k);
        let value: unknown = null;
        if (stored) {
          const text = stored.value.toString("utf8");
          if (q.type === "json") {
            try {
              value = JSON.parse(text);
            } catch {
              return send(400, null, [{ code: 10026, message: `value of '${k}' is not JSON` }]);
            }
          } else value = text;
        }
        values[k] = q.withMetadata ? { value, metadata: stored?.metadata ?? null } : value;
      }
      return send(200, { values });
    }

    if (method === "PUT" && rest === "/bulk") {
      this.bulkWrites++;
      if (body.length > BULK_MAX_BYTES) return send(413, null, [{ code: 10012, message: "request body too large" }]);
      const pairs = parseJson(body);
      if (!Array.isArray(pairs)) return send(400, null, [{ code: 10026, message: "body must be a JSON array" }]);
      if (pairs.length > BULK_MAX_PAIRS) return send(400, null, [{ code: 10026, message: `at most ${BULK_MAX_PAIRS} pairs` }]);
      record.keys = pairs.length;
      if (this.failBulkWritesFrom !== undefined && this.bulkWrites >= this.failBulkWritesFrom) {
        return this.internalError(res);
      }
      const decoded: { key: string; stored: StoredValue }[] = [];
      for (const p of pairs as { key?: unknown; value?: unknown; base64?: unknown; metadata?: unknown }[]) {
        if (typeof p.key !== "string" || typeof p.value !== "string") {
          return send(400, null, [{ code: 10026, message: "each pair needs a string key and a string value" }]);
        }
        checkKey(p.key);
        const value = p.base64 ? Buffer.from(p.value, "base64") : Buffer.from(p.value, "utf8");
        if (value.length > MAX_VALUE_BYTES) return send(413, null, [{ code: 10033, message: `value of '${p.key}' exceeds ${MAX_VALUE_BYTES} bytes` }]);
        if (p.metadata !== undefined) {
          const m = Buffer.byteLength(JSON.stringify(p.metadata));
          if (m > MAX_METADATA_BYTES) return send(413, null, [{ code: 10062, message: `metadata of '${p.key}' is ${m} bytes, over the limit of ${MAX_METADATA_BYTES}` }]);
        }
        decoded.push({ key: p.key, stored: { value, ...(p.metadata !== undefined ? { metadata: p.metadata } : {}) } });
      }
      try {
        this.checkWriteRate(decoded.map((d) => d.key), now);
      } catch (e) {
        res.setHeader("retry-after", "1");
        throw e;
      }
      await this.beforeBulkWrite?.(decoded.map((d) => d.key));
      for (const d of decoded) {
        this.record(d.key, d.stored, now);
        this.lastWrite.set(d.key, now);
      }
      return send(200, { successful_key_count: decoded.length, unsuccessful_keys: [] });
    }

    if (method === "POST" && rest === "/bulk/delete") {
      const keys = parseJson(body);
      if (!Array.isArray(keys) || keys.some((k) => typeof k !== "string")) {
        return send(400, null, [{ code: 10026, message: "body must be a JSON array of key names" }]);
      }
      if (keys.length > BULK_MAX_PAIRS) return send(400, null, [{ code: 10026, message: `at most ${BULK_MAX_PAIRS} keys` }]);
      record.keys = keys.length;
      this.bulkDeletes++;
      if (this.failBulkDeletesFrom !== undefined && this.bulkDeletes >= this.failBulkDeletesFrom) {
        return this.internalError(res);
      }
      for (const k of keys as string[]) checkKey(k);
      try {
        this.checkWriteRate(keys as string[], now);
      } catch (e) {
        res.setHeader("retry-after", "1");
        throw e;
      }
      for (const k of keys as string[]) {
        if (this.store.has(k)) this.record(k, undefined, now);
        this.lastWrite.set(k, now);
      }
      return send(200, { successful_key_count: keys.length, unsuccessful_keys: [] });
    }

    return send(404, null, [{ code: 7003, message: "Could not route to the requested path" }]);
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
  resultInfo: Record<string, unknown> | undefined,
  now: number,
): void {
  const success = status < 400;
  res.writeHead(status, { "content-type": "application/json", date: new Date(now).toUTCString() });
  res.end(JSON.stringify({ success, errors, messages: [], result, ...(resultInfo ? { result_info: resultInfo } : {}) }));
}
