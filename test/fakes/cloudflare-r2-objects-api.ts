// A loopback fake of the two R2 object endpoints of Cloudflare's REST API that
// `npm run archive --remote` uses, in Cloudflare's v4 envelope:
//   GET /client/v4/accounts/{a}/r2/buckets/{bucket}/objects[?prefix=&cursor=&per_page=&start_after=]
//       list (r2.buckets.objects.list, CursorPagination: result[], result_info.cursor)
//   GET /client/v4/accounts/{a}/r2/buckets/{bucket}/objects/{key}
//       one object's raw bytes, the key's slashes as they are (wrangler 4.153's
//       getR2Object, wrangler-dist/cli.js, sends it so)
//
// Where each rule comes from (read 2026-11-28):
// - Paths, parameters and shapes: the official SDK, node_modules/cloudflare,
//   resources/r2/buckets/objects.{js,d.ts}: list's query (prefix, delimiter, start_after,
//   cursor, per_page) and items (key, size, etag, last_modified, http_metadata,
//   custom_metadata, storage_class); get's binary answer. CursorPagination
//   (core/pagination.js) asks for the next page while `result_info.cursor` is set. A
//   listed etag is "the raw hex digest (without surrounding quotes)" in JSON; only the
//   GET's ETag header is quoted (RFC 7232) (ObjectListResponse.etag in objects.d.ts,
//   cloudflare 7.3.0, generated from the API reference).
// - A key in the path: the API reference for the object GET says "Slashes (/) within the
//   key MUST be sent literally and MUST NOT be percent-encoded (i.e. %2F); other reserved
//   characters should be percent-encoded as usual" (developers.cloudflare.com/api/
//   resources/r2/subresources/buckets/subresources/objects/methods/get), as wrangler sends
//   it. The SDK's own objects.get encodes them as %2F (encodeURIPath,
//   internal/utils/path.js), against that rule; the fake does not decode a %2F: it stays in
//   the key, which is then not found. Code that relies on the SDK's form fails here.
// - Jurisdictions: a bucket in one (eu, fedramp) is addressed with the
//   `cf-r2-jurisdiction` header (the SDK's params, wrangler's --jurisdiction); without it,
//   or with another, the bucket does not exist (10006).
// - A list returns keys in lexicographic (UTF-8 byte) order, at most 1,000 per call (R2's
//   Workers API and S3 ListObjects: "maximum of 1000"); per_page above that is refused
//   here (400, 10000-series code chosen: not documented), and the fake's default page is
//   small (20), so a client that pages wrongly fails in tests.
// - Errors: developers.cloudflare.com/r2/api/error-codes/: 10006 NoSuchBucket, 10007
//   NoSuchKey, both 404. A bad token answers 403 with 10000, a request carrying a global
//   API key is refused like one (as the D1, KV and Queues fakes), and the account-wide
//   limit of 1,200 requests / 5 minutes applies (test/support/account-rate-limit.ts).
import type { IncomingMessage, ServerResponse } from "node:http";
import { AccountRateLimit, RATE_LIMITED } from "../support/account-rate-limit.ts";
import { json, LoopbackFake, LoopbackServer } from "../support/fake-http.ts";

export interface StoredObject {
  body: Uint8Array;
  contentType?: string;
  customMetadata: Record<string, string>;
  uploaded: number;
}

/** A stand-in etag: hex digits, as R2's are (raw in JSON, quoted in the GET's ETag header). */
function etagOf(key: string, o: StoredObject): string {
  return `${key.length.toString(16)}${o.body.byteLength.toString(16)}`;
}

const PATH = /^\/client\/v4\/accounts\/([^/]+)\/r2\/buckets\/([^/]+)\/objects(?:\/(.+))?$/;
const MAX_PAGE = 1000;

export class FakeR2ObjectsApi extends LoopbackFake {
  readonly token: string;
  readonly accountId: string;
  /** Every request: the action and its query. */
  readonly requests: { action: "list" | "get"; bucket: string; key?: string; query: Record<string, string> }[] = [];
  /** Keys per list page when the client gives no per_page. */
  defaultPageSize = 20;
  /** Answer a missing key's GET with a 404 that carries no error code (see the GET). */
  bareNotFound = false;
  readonly account = new AccountRateLimit();
  private readonly buckets = new Map<string, Map<string, StoredObject>>();
  private readonly jurisdictions = new Map<string, string>();
  protected readonly server = new LoopbackServer((req, _body, res) => this.handle(req, res));

  constructor(o: { token: string; accountId: string }) {
    super();
    this.token = o.token;
    this.accountId = o.accountId;
  }

  get baseURL(): string {
    return `${this.server.url}/client/v4`;
  }

  addBucket(name: string, jurisdiction = "default"): void {
    if (!this.buckets.has(name)) this.buckets.set(name, new Map());
    this.jurisdictions.set(name, jurisdiction);
  }

  put(bucket: string, key: string, body: string | Uint8Array, o: { contentType?: string; customMetadata?: Record<string, string> } = {}): void {
    if (!this.buckets.has(bucket)) this.addBucket(bucket);
    const bytes = typeof body === "string" ? new TextEncoder().encode(body) : body;
    this.buckets.get(bucket)!.set(key, { body: bytes, ...(o.contentType ? { contentType: o.contentType } : {}), customMetadata: o.customMetadata ?? {}, uploaded: Date.now() });
  }

  /** Deletes an object, as the bucket's lifecycle rule does when its age is reached. */
  remove(bucket: string, key: string): void {
    this.buckets.get(bucket)?.delete(key);
  }

  private afterList: (() => void) | undefined;
  /** Runs `fn` once, right after the next list is answered: an object listed and then
   *  deleted (by the lifecycle rule) before the client reads it. */
  onceAfterList(fn: () => void): void {
    this.afterList = fn;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? "/", "http://fake");
    const fail = (status: number, code: number, message: string, headers: Record<string, string> = {}) =>
      json(res, status, { success: false, errors: [{ code, message }], messages: [], result: null }, headers);
    const blocked = this.account.arrive(Date.now());
    if (blocked !== undefined) return fail(429, RATE_LIMITED.code, RATE_LIMITED.message, { "retry-after": String(blocked) });
    const m = PATH.exec(url.pathname);
    if (!m) return fail(404, 7003, "Could not route to the requested path");
    if (req.method !== "GET") return fail(405, 10405, "Method not allowed");
    const globalKey = req.headers["x-auth-key"] !== undefined || req.headers["x-auth-email"] !== undefined;
    if (globalKey || req.headers.authorization !== `Bearer ${this.token}` || decodeURIComponent(m[1]!) !== this.accountId) return fail(403, 10000, "Authentication error");
    const bucketName = decodeURIComponent(m[2]!);
    // Each segment decoded, except an encoded slash, which stays in the key as sent.
    const key = m[3] === undefined ? undefined : m[3].split("/").map((seg) => decodeURIComponent(seg.replace(/%2F/gi, "%252F"))).join("/");
    const query = Object.fromEntries(url.searchParams);
    this.requests.push({ action: key === undefined ? "list" : "get", bucket: bucketName, ...(key !== undefined ? { key } : {}), query });
    const bucket = this.buckets.get(bucketName);
    const jurisdiction = typeof req.headers["cf-r2-jurisdiction"] === "string" ? req.headers["cf-r2-jurisdiction"] : "default";
    if (bucket === undefined || this.jurisdictions.get(bucketName) !== jurisdiction) return fail(404, 10006, "The specified bucket does not exist.");

    if (key !== undefined) {
      const o = bucket.get(key);
      if (o === undefined) {
        // What the REST endpoint's 404 body holds for a missing key is not documented
        // (10007 is, for the Workers and S3 APIs): `bareNotFound` answers one without an
        // error code, which a client must read as "not found" too.
        if (this.bareNotFound) {
          res.writeHead(404, { "content-type": "application/json" });
          res.end(JSON.stringify({ success: false, errors: [], messages: [], result: null }));
          return;
        }
        return fail(404, 10007, "The specified key does not exist.");
      }
      res.writeHead(200, { "content-type": o.contentType ?? "application/octet-stream", "content-length": String(o.body.byteLength), etag: `"${etagOf(key, o)}"` });
      res.end(o.body);
      return;
    }
    const perPage = query.per_page === undefined ? this.defaultPageSize : Number(query.per_page);
    if (!Number.isInteger(perPage) || perPage < 1 || perPage > MAX_PAGE) return fail(400, 10029, `per_page must be an integer from 1 to ${MAX_PAGE}`);
    const prefix = query.prefix ?? "";
    // The cursor is opaque to clients: here, the base64 of the last key sent.
    const after = query.cursor !== undefined ? Buffer.from(query.cursor, "base64url").toString("utf8") : query.start_after;
    const keys = [...bucket.keys()].filter((k) => k.startsWith(prefix) && (after === undefined || Buffer.compare(Buffer.from(k), Buffer.from(after)) > 0)).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    const page = keys.slice(0, perPage);
    const truncated = keys.length > perPage;
    const result = page.map((k) => {
      const o = bucket.get(k)!;
      return {
        key: k,
        size: o.body.byteLength,
        etag: etagOf(k, o),
        last_modified: new Date(o.uploaded).toISOString(),
        http_metadata: o.contentType ? { contentType: o.contentType } : {},
        custom_metadata: o.customMetadata,
        storage_class: "Standard",
      };
    });
    const cursor = truncated ? Buffer.from(page[page.length - 1]!).toString("base64url") : "";
    json(res, 200, { success: true, errors: [], messages: [], result, result_info: { cursor, is_truncated: truncated, per_page: perPage } });
    const hook = this.afterList;
    this.afterList = undefined;
    hook?.();
  }
}
