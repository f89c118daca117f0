// Tenant lookups for auth, with the isolate's caches and their settings. A key's record
// is read from KV (`key:<sha256>`), then its tenant's marker (`tenant:<id>`, written by
// `tenants disable`). Known keys, unknown keys and markers are cached apart, each as an
// LRU with its own bound, so spraying random keys only churns the unknown-key cache and
// never evicts a working tenant's entry (issue 14.7).
import { num } from "./config.ts";
import type { Env } from "./env.ts";
import { kvKeyFor, parseTenantMarker, parseTenantRecord, tenantMarkerKey, type TenantMarker, type TenantRecord } from "./tenant-record.ts";

export interface TenantSettings {
  /** How long an isolate keeps a known key's record and a tenant's marker. */
  tenantCacheMs: number;
  /** How long an isolate remembers that a key is unknown (short: a new key works soon). */
  unknownKeyCacheMs: number;
  /** KV `cacheTtl` of the reads, seconds (>= 30, KV's minimum: miniflare's
   *  KVLimits.MIN_CACHE_TTL_SECONDS, checked 2026-11-27); 0 leaves KV's default. */
  kvCacheTtlS: number;
  knownEntries: number;
  unknownEntries: number;
  /** Failed authentications per client address: sustained rate per minute and burst. */
  authFailPerMinute: number;
  authFailBurst: number;
}

const settingsCache = new WeakMap<Env, TenantSettings>();

export function tenantSettings(env: Env): TenantSettings {
  let s = settingsCache.get(env);
  if (s !== undefined) return s;
  const ttl = Math.floor(num(env.KV_CACHE_TTL_SECONDS, 60, 0, 3600));
  s = {
    tenantCacheMs: num(env.TENANT_CACHE_SECONDS, 30, 0, 3600) * 1000,
    unknownKeyCacheMs: num(env.UNKNOWN_KEY_CACHE_SECONDS, 5, 0, 60) * 1000,
    kvCacheTtlS: ttl === 0 ? 0 : Math.max(30, ttl),
    knownEntries: Math.floor(num(env.TENANT_CACHE_ENTRIES, 10_000, 1, 1_000_000)),
    unknownEntries: Math.floor(num(env.UNKNOWN_KEY_CACHE_ENTRIES, 1_000, 1, 1_000_000)),
    authFailPerMinute: num(env.FAILED_KEYS_PER_MINUTE, 60, 1, 1_000_000),
    authFailBurst: Math.floor(num(env.FAILED_KEYS_BURST, 30, 1, 1_000_000)),
  };
  settingsCache.set(env, s);
  return s;
}

/** A bounded LRU with per-entry expiry: Map keeps insertion order, a hit moves to the end. */
export class Lru<V> {
  private readonly m = new Map<string, { v: V; expires: number }>();
  private readonly max: number;
  constructor(max: number) {
    this.max = max;
  }

  get(key: string, nowMs: number): V | undefined {
    const e = this.m.get(key);
    if (e === undefined) return undefined;
    this.m.delete(key);
    if (e.expires <= nowMs) return undefined;
    this.m.set(key, e);
    return e.v;
  }

  has(key: string, nowMs: number): boolean {
    const e = this.m.get(key);
    return e !== undefined && e.expires > nowMs;
  }

  set(key: string, v: V, ttlMs: number, nowMs: number): void {
    if (ttlMs <= 0) return;
    this.m.delete(key);
    while (this.m.size >= this.max) {
      const oldest = this.m.keys().next().value;
      if (oldest === undefined) break;
      this.m.delete(oldest);
    }
    this.m.set(key, { v, expires: nowMs + ttlMs });
  }

  get size(): number {
    return this.m.size;
  }
}

let known: Lru<TenantRecord> | undefined;
let unknown: Lru<true> | undefined;
let markers: Lru<TenantMarker | null> | undefined;

function caches(s: TenantSettings) {
  if (known === undefined) known = new Lru(s.knownEntries);
  if (unknown === undefined) unknown = new Lru(s.unknownEntries);
  if (markers === undefined) markers = new Lru(s.knownEntries);
  return { known, unknown, markers };
}

// Concurrent reads of one KV key share one read: a burst of one tenant's calls on a cold
// isolate costs one record read and one marker read, not one of each per call.
const reading = new Map<string, Promise<unknown>>();

function readJson(env: Env, key: string, s: TenantSettings): Promise<unknown> {
  const pending = reading.get(key);
  if (pending !== undefined) return pending;
  const p = (s.kvCacheTtlS > 0 ? env.TENANTS.get(key, { type: "json", cacheTtl: s.kvCacheTtlS }) : env.TENANTS.get(key, { type: "json" })).finally(() =>
    reading.delete(key),
  );
  reading.set(key, p);
  return p;
}

/**
 * The record of a key (by its hash), with `enabled: false` when its tenant's marker says
 * disabled. `cachedOnly`: answer from the known-key cache alone (a throttled address
 * costs no KV read).
 */
export async function lookupTenant(env: Env, keyHash: string, cachedOnly = false): Promise<TenantRecord | undefined> {
  const s = tenantSettings(env);
  const c = caches(s);
  const now = Date.now();
  let record = c.known.get(keyHash, now);
  if (record === undefined) {
    if (cachedOnly || c.unknown.has(keyHash, now)) return undefined;
    record = parseTenantRecord(await readJson(env, kvKeyFor(keyHash), s));
    if (record === undefined) {
      c.unknown.set(keyHash, true, s.unknownKeyCacheMs, now);
      return undefined;
    }
    c.known.set(keyHash, record, s.tenantCacheMs, now);
  }
  if (!record.enabled) return record;
  let marker = c.markers.get(record.id, now);
  if (marker === undefined) {
    if (cachedOnly) return undefined;
    marker = parseTenantMarker(await readJson(env, tenantMarkerKey(record.id), s)) ?? null;
    c.markers.set(record.id, marker, s.tenantCacheMs, now);
  }
  return marker !== null && marker.disabled ? { ...record, enabled: false } : record;
}
