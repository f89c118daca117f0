// A FAKE of the Anthropic API on 127.0.0.1 (tests and benchmark only): GET /v1/models
// (the rotation's free check that a key works) and the Admin API's key endpoints
//   GET  /v1/organizations/api_keys?limit&after_id   (paginated: data, has_more, first_id, last_id)
//   GET  /v1/organizations/api_keys/{id}
//   POST /v1/organizations/api_keys/{id}  {"status":"inactive"}
// Keys authenticate the way the real API documents, with `x-api-key`; `Authorization:
// Bearer` (what @anthropic-ai/sdk 1.12 sends by default) is accepted too and counted,
// so a test can see which one the client used. Admin endpoints need an admin key.
import { createHash } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { json, LoopbackFake, LoopbackServer } from "../support/fake-http.ts";

export interface FakeKey {
  id: string;
  name: string;
  value: string;
  status: "active" | "inactive" | "archived" | "expired";
}

/** The real API's hint shape: the first 16 characters, "...", the last 4. */
export function hintOf(value: string): string {
  return `${value.slice(0, 16)}...${value.slice(-4)}`;
}

export class FakeAnthropicApi extends LoopbackFake {
  readonly keys: FakeKey[] = [];
  readonly adminKeys = new Set<string>();
  readonly server: LoopbackServer;
  /** Page size of the key list (small, so the client must follow after_id). */
  pageSize = 2;
  readonly requests: { method: string; path: string; auth: "x-api-key" | "bearer" | "none"; status: number }[] = [];
  /** Ids disabled through the API, in order. */
  readonly revoked: string[] = [];
  /** Called on a status update before it applies (the property test checks its invariant here). */
  onUpdate?: (key: FakeKey, status: string) => void;

  constructor() {
    super();
    this.server = new LoopbackServer((req, body, res) => this.handle(req, body, res));
  }

  get url(): string {
    return this.server.url;
  }

  addKey(value: string, name = "key", status: FakeKey["status"] = "active"): FakeKey {
    const k: FakeKey = { id: `apikey_${createHash("sha256").update(value).digest("hex").slice(0, 24)}`, name, value, status };
    this.keys.push(k);
    return k;
  }

  private view(k: FakeKey) {
    return {
      id: k.id,
      type: "api_key",
      name: k.name,
      status: k.status,
      partial_key_hint: hintOf(k.value),
      created_at: "2026-01-01T00:00:00Z",
      created_by: { id: "user_1", type: "user" },
      expires_at: null,
      principal: null,
      scope: { type: "workspace", workspace_id: "wrkspc_1" },
    };
  }

  private handle(req: IncomingMessage, body: Buffer, res: ServerResponse): void {
    const url = new URL(req.url ?? "/", "http://fake");
    const method = req.method ?? "";
    const xKey = typeof req.headers["x-api-key"] === "string" ? req.headers["x-api-key"] : undefined;
    const bearer = /^Bearer (\S+)$/.exec(req.headers.authorization ?? "")?.[1];
    const cred = xKey ?? bearer;
    const rec = { method, path: url.pathname, auth: (xKey ? "x-api-key" : bearer ? "bearer" : "none") as "x-api-key" | "bearer" | "none", status: 0 };
    this.requests.push(rec);
    const reply = (status: number, b: unknown) => {
      rec.status = status;
      json(res, status, b, { "request-id": `req_fake_${this.requests.length}` });
    };
    const error = (status: number, type: string, message: string) => reply(status, { type: "error", error: { type, message } });
    if (!req.headers["anthropic-version"]) return error(400, "invalid_request_error", "anthropic-version: header is required");

    if (url.pathname === "/v1/models" && method === "GET") {
      const k = this.keys.find((x) => x.value === cred);
      if (!k || k.status !== "active") return error(401, "authentication_error", "invalid x-api-key");
      return reply(200, { data: [{ type: "model", id: "claude-sonnet-5-5", display_name: "Claude Sonnet 5.5", created_at: "2026-01-01T00:00:00Z" }], has_more: false, first_id: "claude-sonnet-5-5", last_id: "claude-sonnet-5-5" });
    }
    if (!url.pathname.startsWith("/v1/organizations/api_keys")) return error(404, "not_found_error", "Not found");
    if (!cred || !this.adminKeys.has(cred)) return error(401, "authentication_error", "invalid x-api-key");

    if (url.pathname === "/v1/organizations/api_keys" && method === "GET") {
      const limit = Math.min(Number(url.searchParams.get("limit") ?? "20"), this.pageSize);
      const after = url.searchParams.get("after_id");
      const status = url.searchParams.get("status");
      const all = this.keys.filter((k) => !status || k.status === status);
      const start = after ? all.findIndex((k) => k.id === after) + 1 : 0;
      const page = all.slice(start, start + limit);
      return reply(200, { data: page.map((k) => this.view(k)), has_more: start + limit < all.length, first_id: page[0]?.id ?? null, last_id: page.at(-1)?.id ?? null });
    }
    const m = /^\/v1\/organizations\/api_keys\/([^/]+)$/.exec(url.pathname);
    const k = m ? this.keys.find((x) => x.id === m[1]) : undefined;
    if (!k) return error(404, "not_found_error", "API key not found");
    if (method === "GET") return reply(200, this.view(k));
    if (method === "POST") {
      let p: { status?: string; name?: string };
      try {
        p = JSON.parse(body.toString("utf8")) as typeof p;
      } catch {
        return error(400, "invalid_request_error", "body is not JSON");
      }
      if (p.status !== undefined && !["active", "inactive", "archived"].includes(p.status)) return error(400, "invalid_request_error", "status: invalid");
      if (p.status) {
        this.onUpdate?.(k, p.status);
        k.status = p.status as FakeKey["status"];
        if (p.status === "inactive") this.revoked.push(k.id);
      }
      if (p.name) k.name = p.name;
      return reply(200, this.view(k));
    }
    return error(405, "invalid_request_error", "method not allowed");
  }
}
