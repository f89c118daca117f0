// A stateful fake of the Cloudflare API's Workers KV endpoints on 127.0.0.1, speaking
// the real envelope ({success, errors, messages, result, result_info}): values (GET raw,
// PUT multipart with a JSON `metadata` field) and key listing with cursors. Test only.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";

export class FakeCloudflare {
  readonly store = new Map<string, { value: string; metadata: unknown }>();
  readonly requests: { method: string; path: string; authorization: string | undefined }[] = [];
  /** Page size of key listings (small, so the client must follow cursors). */
  pageSize = 2;
  private server: Server | undefined;
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
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => void this.handle(req.method ?? "", req.url ?? "", req.headers, Buffer.concat(chunks)).then(([status, body, type]) => {
        res.writeHead(status, { "content-type": type ?? "application/json", "cf-ray": "fake-ray" });
        res.end(body);
      }));
    });
    await new Promise<void>((r) => this.server!.listen(0, "127.0.0.1", r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/client/v4`;
    return this;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((r) => this.server?.close(() => r()) ?? r());
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
        this.store.set(key, { value, metadata: typeof metadata === "string" ? JSON.parse(metadata) : null });
        return this.envelope(200, {});
      }
    }
    return this.envelope(405, null, [{ code: 10405, message: "method not allowed" }]);
  }
}
