// The router Worker: serves every static zone of the fleet from one KV content map
// (format: ./table.ts, built from fleet/sites by `npm run sites build`). The hot path
// is two Map lookups and a Response: route tables and file bytes are kept in the
// isolate, tables for ROUTER_CACHE_TTL_MS, content (immutable, content-addressed) until
// evicted by size.
//
// Across a publish, KV is eventually consistent per location and caches misses too
// (kv/concepts/how-kv-works.mdx, checked 2026-11-27). The publisher writes content, waits
// KV's propagation bound, then writes tables; this Worker adds two defences for when a
// location still cannot see content its table names: it re-reads a missing key with the
// minimum cacheTtl (a miss cached under a day-long cacheTtl is re-checked after 60 s,
// kv/api/read-key-value-pairs.mdx: "The effective cacheTtl of an already cached item can
// be reduced by getting it again with a lower cacheTtl"), and it serves the page from the
// table this isolate held before (kept PREVIOUS_TABLE_MS) whose content the publisher keeps
// for the grace period.
import { compileRule, contentKey, findRedirect, hostKey, withQuery, type CompiledRule, type FileEntry, type HostTable } from "./table.ts";

/** A host's table as the isolate keeps it: pattern rules compiled once per read, not per request. */
interface Host {
  table: HostTable;
  patterns: CompiledRule[];
}

interface CachedTable {
  host: Host | null;
  expires: number;
  /** The table's JSON as read, to tell a changed table from the same one. */
  raw: string | null;
  /** The table this isolate served before the current one, while it may still be needed. */
  previous?: { host: Host; until: number } | undefined;
}

/** Content reads: a day, as content under a hash never changes (KV's cacheTtl, seconds). */
const CONTENT_CACHE_TTL_S = 86400;
/** KV's minimum cacheTtl (kv/platform/limits.mdx: 60 s; miniflare accepts 30): re-checks a cached miss. */
const MIN_CACHE_TTL_S = 60;
/**
 * How long a replaced table stays usable as a fallback. Longer than KV's propagation bound
 * (the window in which new content may be invisible here), shorter than the publisher's
 * grace period (10 minutes by default), after which the content it names may be deleted.
 */
const PREVIOUS_TABLE_MS = 3 * 60 * 1000;

// Module scope lives as long as the isolate: this is the in-isolate cache.
const tables = new Map<string, CachedTable>();
const contents = new Map<string, ArrayBuffer>();
let contentBytes = 0;

// Parsed once per isolate; vars are fixed for a deployment.
let settings: { ttl: number; maxBytes: number } | undefined;
function config(env: Env): { ttl: number; maxBytes: number } {
  if (!settings) {
    const ttl = Number(env.ROUTER_CACHE_TTL_MS);
    const maxBytes = Number(env.ROUTER_CACHE_MAX_BYTES);
    settings = { ttl: Number.isFinite(ttl) && ttl > 0 ? ttl : 0, maxBytes: Number.isFinite(maxBytes) && maxBytes > 0 ? maxBytes : 0 };
  }
  return settings;
}

const PLAIN_HEADERS = { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" };

type Mode = "cached" | "fresh" | "previous";

async function getHost(env: Env, name: string, now: number, mode: Mode = "cached"): Promise<Host | null> {
  const { ttl } = config(env);
  const hit = ttl > 0 ? tables.get(name) : undefined;
  if (mode === "previous") return hit?.previous && hit.previous.until > now ? hit.previous.host : null;
  if (hit && mode === "cached" && hit.expires > now) return hit.host;
  const raw = await env.SITES.get(hostKey(name));
  if (hit && raw === hit.raw) {
    hit.expires = now + ttl;
    return hit.host;
  }
  const table = raw === null ? null : (JSON.parse(raw) as HostTable);
  const host = table ? { table, patterns: table.patterns.map(compileRule) } : null;
  // Unknown hosts are cached too, so a flood of requests for one costs one KV read.
  if (ttl > 0) {
    const previous = hit?.host ? { host: hit.host, until: now + PREVIOUS_TABLE_MS } : hit?.previous;
    tables.set(name, { host, expires: now + ttl, raw, previous });
  }
  return host;
}

async function getContent(env: Env, hash: string): Promise<ArrayBuffer | null> {
  const { ttl, maxBytes } = config(env);
  const hit = ttl > 0 ? contents.get(hash) : undefined;
  if (hit) {
    // Map keeps insertion order: re-inserting makes this the most recently used. Only
    // worth its cost once the cache is half full and eviction can come near.
    if (contentBytes > maxBytes / 2) {
      contents.delete(hash);
      contents.set(hash, hit);
    }
    return hit;
  }
  // Content under a hash never changes, so edges may keep it long (KV's cacheTtl). A miss
  // is cached under the same cacheTtl, so it is asked again with the minimum: a location
  // that looked before the content reached it learns of it within a minute, not a day.
  const key = contentKey(hash);
  const bytes =
    (await env.SITES.get(key, { type: "arrayBuffer", cacheTtl: CONTENT_CACHE_TTL_S })) ??
    (await env.SITES.get(key, { type: "arrayBuffer", cacheTtl: MIN_CACHE_TTL_S }));
  if (bytes && ttl > 0 && bytes.byteLength <= maxBytes / 4) {
    contents.set(hash, bytes);
    contentBytes += bytes.byteLength;
    for (const [k, v] of contents) {
      if (contentBytes <= maxBytes) break;
      contents.delete(k);
      contentBytes -= v.byteLength;
    }
  }
  return bytes;
}

/** True when If-None-Match names this ETag (weak comparison, RFC 9110 13.1.2). */
function notModified(ifNoneMatch: string | null, etag: string): boolean {
  if (!ifNoneMatch) return false;
  if (ifNoneMatch.trim() === "*") return true;
  return ifNoneMatch.split(",").some((t) => t.trim().replace(/^W\//, "") === etag);
}

function redirect(location: string, status: number): Response {
  return new Response(null, { status, headers: { location, "cache-control": "public, max-age=300" } });
}

async function serveFile(env: Env, req: Request, file: FileEntry, status: number): Promise<Response | null> {
  const etag = `"${file.h.slice(0, 32)}"`;
  const headers = { "content-type": file.t, "cache-control": file.c, etag };
  if (status === 200 && notModified(req.headers.get("if-none-match"), etag)) {
    return new Response(null, { status: 304, headers });
  }
  const body = await getContent(env, file.h);
  if (!body) return null;
  if (req.method === "HEAD") return new Response(null, { status, headers: { ...headers, "content-length": String(file.s) } });
  // workerd copies an ArrayBuffer body, so the cached buffer can be handed out as is
  // (a test serves one cached page repeatedly to keep this true).
  return new Response(body, { status, headers });
}

async function handle(req: Request, env: Env, now: number, mode: Mode): Promise<Response | null> {
  const url = new URL(req.url);
  // URL has already lowercased the host; only a trailing dot (FQDN form) is dropped.
  const name = url.hostname.endsWith(".") ? url.hostname.slice(0, -1) : url.hostname;
  const host = await getHost(env, name, now, mode);
  if (!host && mode === "previous") return null;
  // An unknown host learns nothing: no host name, no hint of what is served here.
  if (!host) return new Response("Not Found\n", { status: 404, headers: PLAIN_HEADERS });
  const { table } = host;
  if (table.canonical) return redirect(`https://${table.canonical}${url.pathname}${url.search}`, 301);

  const path = url.pathname;
  const rule = findRedirect(table, path, host.patterns);
  if (rule) return redirect(withQuery(rule.to, url.search), rule.status);

  let file = table.files[path];
  if (!file && path.endsWith("/")) file = table.files[`${path}index.html`];
  if (!file && table.files[`${path}/index.html`]) return redirect(`${path}/${url.search}`, 301);
  if (file) return serveFile(env, req, file, 200);

  const page = table.notFound ? table.files[table.notFound] : undefined;
  if (page) return serveFile(env, req, page, 404);
  return new Response("Not Found\n", { status: 404, headers: PLAIN_HEADERS });
}

export default {
  async fetch(req, env): Promise<Response> {
    if (req.method !== "GET" && req.method !== "HEAD") {
      return new Response("Method Not Allowed\n", { status: 405, headers: { ...PLAIN_HEADERS, allow: "GET, HEAD" } });
    }
    const now = Date.now();
    // A null answer means the table named content this location cannot read: either the
    // cached table is older than a publish that removed the content (re-read the table),
    // or the table is newer than the content's arrival here (serve the previous table).
    const res =
      (await handle(req, env, now, "cached")) ?? (await handle(req, env, now, "fresh")) ?? (await handle(req, env, now, "previous"));
    return res ?? new Response("Service Unavailable\n", { status: 503, headers: { ...PLAIN_HEADERS, "retry-after": "5" } });
  },
} satisfies ExportedHandler<Env>;
