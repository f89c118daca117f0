// A stateful fake of the Cloudflare API's Workers KV endpoints on 127.0.0.1, for
// `npm run tenants --remote`, speaking the real envelope ({success, errors, messages,
// result, result_info}): values (GET raw, PUT multipart with a JSON `metadata` field)
// and key listing with cursors. Contract: the official SDK's KV resources,
// node_modules/cloudflare/resources/kv/namespaces/{values,keys}.{js,d.ts} (paths
// /accounts/{a}/storage/kv/namespaces/{n}/values/{key} and /keys, multipart `value` +
// JSON `metadata`), and the KV limits miniflare enforces for the same service
// (node_modules/miniflare/dist/src/workers/kv/constants: keys <= 512 bytes, metadata
// <= 1024 bytes serialised); checked 2026-11-27. Test only: operator code never imports it.
import { LoopbackServer } from "../support/loopback.ts";

export class FakeCloudflare {
  readonly store = new Map<string, { value: string; metadata: unknown }>();
  readonly requests: { method: string; path: string; authorization: string | undefined }[] = [];
  /** Page size of key listings (small, so the client must follow cursors). */
  pageSize = 2;
  private readonly server = new LoopbackServer(
    async (req, body, res) => {
      const [status, text, type] = await this.handle(req.method ?? "", req.url ?? "", req.headers, body);
      res.writeHead(status, { "content-type": type ?? "application/json", "cf-ray": "fake-ray" });
      res.end(text);
    },
    // Node's own default, as before.
    { keepAliveMs: 5000 },
  );
  url = "";

  readonly token: string;
  readonly accountId: string;
  readonly namespaceId: string;

  constructor(token: string, accountId: string, namespaceId: string) {
    this.token = token;
    this.accountId = accountId;
    this.namespaceId = namespaceId;
  }

  async start(): Promise<this> {
    await this.server.start();
    this.url = `${this.server.url}/client/v4`;
    return this;
  }

  stop(): Promise<void> {
    return this.server.stop();
  }

  private envelope(status: number, result: unknown, errors: { code: number; message: string }[] = [], resultInfo?: unknown): [number, string] {
    return [status, JSON.stringify({ success: errors.length === 0, errors, messages: [], result, ...(resultInfo ? { result_info: resultInfo } : {}) })];
  }

  private async handle(method: string, rawPath: string, headers: Record<string, string | string[] | undefined>, body: Buffer): Promise<[number, string, string?]> {
    const auth = typeof headers.authorization === "string" ? headers.authorization : undefined;
    this.requests.push({ method, path: rawPath, authorization: auth });
    if (auth !== `Bearer ${this.token}`) return this.envelope(403, null, [{ code: 10000, message: "Authentication error" }]);
    const url = new URL(rawPath, "http://x");
    const base = `/client/v4/accounts/${this.accountId}/storage/kv/namespaces/${this.namespaceId}`;
    if (!url.pathname.startsWith(base)) return this.envelope(404, null, [{ code: 10013, message: "namespace not found" }]);
    const rest = url.pathname.slice(base.length);
    if (rest === "/keys" && method === "GET") {
      const prefix = url.searchParams.get("prefix") ?? "";
      const names = [...this.store.keys()].filter((k) => k.startsWith(prefix)).sort();
      const start = Number(url.searchParams.get("cursor") ?? "0");
      const page = names.slice(start, start + this.pageSize);
      const next = start + this.pageSize < names.length ? String(start + this.pageSize) : "";
      return this.envelope(200, page.map((name) => ({ name, metadata: this.store.get(name)!.metadata })), [], { count: page.length, cursor: next });
    }
    const m = /^\/values\/(.+)$/.exec(rest);
    if (m) {
      const key = decodeURIComponent(m[1]!);
      if (Buffer.byteLength(key) > 512) return this.envelope(414, null, [{ code: 10033, message: "key too long (max 512 bytes)" }]);
      if (method === "GET") {
        const v = this.store.get(key);
        if (v === undefined) return this.envelope(404, null, [{ code: 10009, message: "get: 'key not found'" }]);
        return [200, v.value, "application/octet-stream"];
      }
      if (method === "PUT") {
        const form = await new Request("http://x", { method: "POST", headers: { "content-type": String(headers["content-type"]) }, body }).formData();
        const value = form.get("value");
        const metadata = form.get("metadata");
        if (typeof value !== "string") return this.envelope(400, null, [{ code: 10001, message: "value required" }]);
        if (typeof metadata === "string" && Buffer.byteLength(metadata) > 1024) return this.envelope(413, null, [{ code: 10023, message: "metadata too large (max 1024 bytes)" }]);
        this.store.set(key, { value, metadata: typeof metadata === "string" ? JSON.parse(metadata) : null });
        return this.envelope(200, {});
      }
    }
    return this.envelope(405, null, [{ code: 10405, message: "method not allowed" }]);
  }
}
