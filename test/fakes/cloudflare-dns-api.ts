// A stateful FAKE of the Cloudflare API v4 (zones and DNS records, read side) on
// 127.0.0.1 for `npm run import`'s tests: page-based pagination, the real envelope
// ({success, errors, messages, result, result_info}), token auth, and a 429 with
// `retry-after` on demand. It records every request so tests can count them.
// Contract: node_modules/cloudflare 7.3.0: `zones.list` and `dns.records.list` return
// V4PagePaginationArray (core/pagination.js reads `result` and `result_info` and asks
// for page+1), resources/zones/zones.d.ts, resources/dns/records.d.ts; error codes 971
// (rate limited), 10000 (authentication), 7003 (unknown object), as widely reported (not
// re-checked against the live API, unreachable here);
// the 1,200 requests / 5 minutes limit from FINDINGS.md. Checked 2026-11-27.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface FakeZone {
  id: string;
  name: string;
  account: { id: string; name: string };
  status: "active" | "pending";
}

/** A DNS record as the API returns it (v4 `dns_records`). */
export interface FakeRecord {
  id: string;
  zone_id: string;
  zone_name: string;
  name: string;
  type: string;
  content?: string;
  priority?: number;
  ttl: number;
  proxied?: boolean;
  proxiable?: boolean;
  data?: Record<string, unknown>;
  comment?: string | null;
  tags?: string[];
}

export interface FakeOptions {
  token: string;
  /** Answer the n-th request (1-based, counting all requests) with 429 and this retry-after (seconds). */
  rateLimitAt?: { request: number; retryAfter: number }[];
  /** Largest per_page the fake serves (Cloudflare: 50 for zones); small values force pagination. */
  maxPerPage?: { zones?: number; records?: number };
}

export interface LoggedRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  status: number;
  at: number;
}

export interface FakeCloudflare {
  baseURL: string;
  zones: FakeZone[];
  records: Map<string, FakeRecord[]>;
  requests: LoggedRequest[];
  close: () => Promise<void>;
}

const envelope = (result: unknown, info?: object) => ({ success: true, errors: [], messages: [], result, ...(info ? { result_info: info } : {}) });
const failure = (code: number, message: string) => ({ success: false, errors: [{ code, message }], messages: [], result: null });

function page<T>(items: T[], query: URLSearchParams, max: number) {
  const perPage = Math.min(Math.max(Number(query.get("per_page") ?? 20) || 20, 1), max);
  const pageNo = Math.max(Number(query.get("page") ?? 1) || 1, 1);
  const slice = items.slice((pageNo - 1) * perPage, pageNo * perPage);
  return envelope(slice, { page: pageNo, per_page: perPage, count: slice.length, total_count: items.length, total_pages: Math.max(1, Math.ceil(items.length / perPage)) });
}

export async function startFakeCloudflare(opts: FakeOptions, zones: FakeZone[] = [], records = new Map<string, FakeRecord[]>()): Promise<FakeCloudflare> {
  const requests: LoggedRequest[] = [];
  const send = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
    res.writeHead(status, { "content-type": "application/json", "cf-ray": "0000000000000000-LHR", ...headers });
    res.end(JSON.stringify(body));
  };
  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    const log: LoggedRequest = { method: req.method ?? "GET", path: url.pathname, query: Object.fromEntries(url.searchParams), status: 200, at: Date.now() };
    requests.push(log);
    const reply = (status: number, body: unknown, headers?: Record<string, string>) => {
      log.status = status;
      send(res, status, body, headers);
    };
    const limited = opts.rateLimitAt?.find((r) => r.request === requests.length);
    if (limited) return reply(429, failure(971, "Please wait and consider throttling your request speed"), { "retry-after": String(limited.retryAfter) });
    if (req.headers.authorization !== `Bearer ${opts.token}`) return reply(403, failure(10000, "Authentication error"));
    if (req.method !== "GET") return reply(405, failure(10405, "Method not allowed by this fake"));
    if (url.pathname === "/client/v4/zones") {
      const account = url.searchParams.get("account.id");
      const name = url.searchParams.get("name");
      const list = zones.filter((z) => (!account || z.account.id === account) && (!name || z.name === name));
      return reply(200, page(list, url.searchParams, opts.maxPerPage?.zones ?? 50));
    }
    const m = /^\/client\/v4\/zones\/([0-9a-f]{32})\/dns_records$/.exec(url.pathname);
    if (m) {
      if (!zones.some((z) => z.id === m[1])) return reply(404, failure(7003, `Could not route to ${url.pathname}, perhaps your object identifier is invalid?`));
      return reply(200, page(records.get(m[1]!) ?? [], url.searchParams, opts.maxPerPage?.records ?? 5000));
    }
    return reply(404, failure(7000, "No route for that URI"));
  };
  const server: Server = createServer(handle);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as AddressInfo;
  return {
    baseURL: `http://127.0.0.1:${port}/client/v4`,
    zones,
    records,
    requests,
    close: () => new Promise((r) => server.close(() => r())),
  };
}
