// Reads a Cloudflare account's zones and DNS records through the official SDK
// (`cloudflare` v7) for `npm run import`: page by page, a few zones at a time, every
// request through the client-side rate limiter. Records come back as plain data in
// the model's terms (relative owner names, CAA/SRV fields).
import { cloudflareClient } from "../../../stacks/model/cloudflare-client.ts";
import Cloudflare from "cloudflare";
import { relativeName } from "../../../stacks/model/dns.ts";
import type { DnsRec } from "../../../stacks/model/posture.ts";
import { CLOUDFLARE_LIMIT, limitedFetch, SlidingWindowLimiter } from "./rate-limit.ts";

export interface AccountRecord {
  id: string;
  type: string;
  /** Owner name relative to the zone ('@' for the apex). */
  name: string;
  content?: string;
  priority?: number;
  ttl: number;
  proxied?: boolean;
  caa?: { flags: number; tag: string; value: string };
  srv?: { priority: number; weight: number; port: number; target: string };
  comment?: string;
}

export interface AccountZone {
  id: string;
  name: string;
  records: AccountRecord[];
}

export interface ClientOptions {
  apiToken: string;
  baseURL?: string;
  limiter?: SlidingWindowLimiter;
  /** SDK retries on 429/5xx (it sleeps for retry-after); the limiter pauses everyone meanwhile. */
  maxRetries?: number;
}

export function client(opts: ClientOptions): Cloudflare {
  const limiter = opts.limiter ?? new SlidingWindowLimiter(CLOUDFLARE_LIMIT.requests, CLOUDFLARE_LIMIT.windowMs);
  return cloudflareClient({
    apiToken: opts.apiToken,
    baseURL: opts.baseURL,
    maxRetries: opts.maxRetries ?? 4,
    fetch: limitedFetch(limiter),
  });
}

interface Paged<T> {
  result: T[];
  result_info?: { page?: number; total_pages?: number };
  hasNextPage(): boolean;
  getNextPage(): Promise<Paged<T>>;
}

/** Every item of a page-paginated list; stops at total_pages instead of asking for an empty page. */
async function all<T>(first: Promise<Paged<T>>): Promise<T[]> {
  let page = await first;
  const items = [...page.result];
  while (page.result.length > 0 && (page.result_info?.page ?? 1) < (page.result_info?.total_pages ?? Infinity) && page.hasNextPage()) {
    page = await page.getNextPage();
    items.push(...page.result);
  }
  return items;
}

/** Strips the quotes the API may put around TXT content ("a" "b" -> ab). */
export function unquoteTxt(content: string): string {
  const t = content.trim();
  if (!/^"(?:[^"\\]|\\.)*"(\s+"(?:[^"\\]|\\.)*")*$/.test(t)) return content;
  return [...t.matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((m) => m[1]!.replace(/\\(.)/g, "$1")).join("");
}

type RawRecord = { id: string; type: string; name: string; content?: string; priority?: number; ttl: number; proxied?: boolean; data?: Record<string, unknown>; comment?: string | null };

export function toAccountRecord(raw: RawRecord, zone: string): AccountRecord {
  const r: AccountRecord = { id: raw.id, type: raw.type, name: relativeName(raw.name, zone), ttl: raw.ttl };
  if (raw.comment) r.comment = raw.comment;
  if (raw.proxied !== undefined && ["A", "AAAA", "CNAME"].includes(raw.type)) r.proxied = raw.proxied;
  const d = raw.data ?? {};
  if (raw.type === "CAA") r.caa = { flags: Number(d.flags ?? 0), tag: String(d.tag ?? ""), value: String(d.value ?? "") };
  else if (raw.type === "SRV") {
    r.srv = { priority: Number(d.priority ?? raw.priority ?? 0), weight: Number(d.weight ?? 0), port: Number(d.port ?? 0), target: String(d.target ?? "").replace(/\.$/, "") };
  } else {
    r.content = raw.type === "TXT" ? unquoteTxt(raw.content ?? "") : (raw.content ?? "");
    if (["CNAME", "MX", "NS"].includes(raw.type)) r.content = r.content.replace(/\.$/, "").toLowerCase() || ".";
    if (raw.type === "MX") r.priority = raw.priority ?? 0;
  }
  return r;
}

export interface ReadOptions {
  accountId?: string;
  /** Only these zones (by name). */
  zones?: string[];
  concurrency?: number;
  onZone?: (zone: string, done: number, total: number) => void;
}

export async function readAccount(cf: Cloudflare, opts: ReadOptions = {}): Promise<AccountZone[]> {
  const query = { per_page: 50, ...(opts.accountId ? { account: { id: opts.accountId } } : {}) };
  let zones = (await all(cf.zones.list(query) as unknown as Promise<Paged<{ id: string; name: string }>>)).map((z) => ({ id: z.id, name: z.name }));
  if (opts.zones) {
    const wanted = new Set(opts.zones);
    zones = zones.filter((z) => wanted.has(z.name));
  }
  zones.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const out: AccountZone[] = new Array(zones.length);
  let next = 0;
  let done = 0;
  const worker = async () => {
    while (next < zones.length) {
      const i = next++;
      const z = zones[i]!;
      const raw = await all(cf.dns.records.list({ zone_id: z.id, per_page: 5000 } as never) as unknown as Promise<Paged<RawRecord>>);
      out[i] = { id: z.id, name: z.name, records: raw.map((r) => toAccountRecord(r, z.name)) };
      opts.onZone?.(z.name, ++done, zones.length);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(opts.concurrency ?? 4, zones.length)) }, worker));
  return out;
}

/** The record as the model's DnsRec, for comparing with the desired state. */
export function asDnsRec(r: AccountRecord, zone: string): DnsRec {
  return {
    zone,
    type: r.type as DnsRec["type"],
    name: r.name,
    ttl: r.ttl,
    content: r.content,
    priority: r.priority,
    proxied: r.proxied,
    caa: r.caa,
    srv: r.srv,
    comment: r.comment,
    source: "extra",
    what: `${r.type} record`,
  };
}
