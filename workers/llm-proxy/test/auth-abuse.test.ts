// Unauthenticated abuse and tenant disabling in workerd (issues 14.7, 14.10): failed
// authentications are throttled per client address (Durable Object `authfail:<addr>`),
// unknown keys are cached briefly and apart from known ones, the known-key cache is an
// LRU a key spray cannot clear, a tenant-level marker refuses every key of a disabled
// tenant (also one created during the disable), and the KV cache TTL is configurable.
import { describe, expect, it } from "vitest";
import { createTenant, disableTenant } from "../../../scripts/lib/tenants/store.ts";
import { kvKeyFor, newTenantKey, sha256Hex } from "../src/tenant-record.ts";
import { Harness, useHarness, MESSAGE } from "./harness.ts";

const from = (ip: string) => ({ "cf-connecting-ip": ip });

async function spray(h: Harness, n: number, ip: (i: number) => string): Promise<number[]> {
  const statuses: number[] = [];
  for (let i = 0; i < n; i += 25) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(25, n - i) }, (_, j) => h.call("/v1/messages", { key: `efk_spray_${i + j}_${Math.random()}`, body: MESSAGE, headers: from(ip(i + j)) })),
    );
    statuses.push(...batch.map((r) => r.status));
  }
  return statuses;
}

describe("failed authentication is throttled per client address", () => {
  let h: Harness;
  useHarness({ FAILED_KEYS_PER_MINUTE: "1", FAILED_KEYS_BURST: "3" }, (started) => {
    h = started;
  });

  it("after the burst of failures, the address gets 429 (even with a valid key); others are unaffected", async () => {
    const { key } = await h.tenant();
    const ip = "203.0.113.7";
    const wrong = [];
    for (let i = 0; i < 4; i++) wrong.push((await h.call("/v1/messages", { key: `efk_wrong_${i}`, body: MESSAGE, headers: from(ip) })).status);
    // Three failures fit the burst; the fourth empties it (still a 401: it was tried).
    expect(wrong).toEqual([401, 401, 401, 401]);
    const blocked = await h.call("/v1/messages", { key: "efk_wrong_5", body: MESSAGE, headers: from(ip) });
    expect(blocked.status).toBe(429);
    expect(JSON.parse(blocked.text)).toEqual({ type: "error", error: { type: "rate_limit_error", message: "too many failed authentications from this address" }, request_id: blocked.headers.get("request-id") });
    expect(Number(blocked.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    // A valid key the isolate has not cached is not even looked up from there.
    h.fake.reset();
    expect((await h.call("/v1/messages", { key, body: MESSAGE, headers: from(ip) })).status).toBe(429);
    expect(h.fake.received).toHaveLength(0);
    // Another address, and calls without a key (no lookup, nothing counted), are not throttled.
    expect((await h.call("/v1/messages", { key, body: MESSAGE, headers: from("198.51.100.1") })).status).toBe(200);
    expect((await h.call("/v1/messages", { body: MESSAGE, headers: from("198.51.100.2") })).status).toBe(401);
  });

  it("an IPv6 client is counted by its /64: rotating the low bits does not escape", async () => {
    const statuses = [];
    for (let i = 1; i <= 5; i++) statuses.push((await h.call("/v1/messages", { key: "efk_x", body: MESSAGE, headers: from(`2001:db8:1:2::${i.toString(16)}`) })).status);
    expect(statuses).toEqual([401, 401, 401, 401, 429]);
    expect((await h.call("/v1/messages", { key: "efk_x", body: MESSAGE, headers: from("2001:db8:1:3::1") })).status).toBe(401);
  });
});

describe("tenant caches: unknown keys short-lived, known keys an LRU a spray cannot clear", () => {
  let h: Harness;
  useHarness(
    { TENANT_CACHE_SECONDS: "60", UNKNOWN_KEY_CACHE_SECONDS: "1", TENANT_CACHE_ENTRIES: "2", UNKNOWN_KEY_CACHE_ENTRIES: "20", FAILED_KEYS_PER_MINUTE: "100000", FAILED_KEYS_BURST: "100000" },
    (started) => {
      h = started;
    },
  );

  async function forget(key: string) {
    // Gone from KV: from now on only the isolate's cache can admit it.
    await (await h.mf.getKVNamespace("TENANTS")).delete(kvKeyFor(await sha256Hex(key)));
  }

  it("a key unknown a moment ago works within UNKNOWN_KEY_CACHE_SECONDS of its creation", async () => {
    const key = newTenantKey();
    h.tenantKeys.push(key);
    expect((await h.call("/v1/messages", { key, body: MESSAGE })).status).toBe(401);
    const keyHash = await sha256Hex(key);
    const rec = { id: "t_00000000000000cc", name: "late", ratePerMinute: 600, burst: 60, enabled: true, keyHash, createdAt: "" };
    await h.kv.put(kvKeyFor(keyHash), JSON.stringify(rec), rec);
    // Remembered as unknown for 1 s, not the 60 s known keys are kept.
    expect((await h.call("/v1/messages", { key, body: MESSAGE })).status).toBe(401);
    await new Promise((r) => setTimeout(r, 1100));
    expect((await h.call("/v1/messages", { key, body: MESSAGE })).status).toBe(200);
  });

  it("spraying 20x the unknown-key cache in random keys evicts no known key; known keys are evicted least recently used", async () => {
    const a = await h.tenant({ name: "a" });
    const b = await h.tenant({ name: "b" });
    const c = await h.tenant({ name: "c" });
    // Known-key cache of 2: A, B, then A again (most recent), then C evicts B, not A.
    for (const k of [a, b, a, c]) expect((await h.call("/v1/messages", { key: k.key, body: MESSAGE })).status).toBe(200);
    for (const k of [a, b, c]) await forget(k.key);
    const sprayed = await spray(h, 400, () => "192.0.2.1");
    expect(sprayed.every((s) => s === 401)).toBe(true);
    expect((await h.call("/v1/messages", { key: a.key, body: MESSAGE })).status).toBe(200);
    expect((await h.call("/v1/messages", { key: c.key, body: MESSAGE })).status).toBe(200);
    expect((await h.call("/v1/messages", { key: b.key, body: MESSAGE })).status).toBe(401);
  });
});

describe("disabling a tenant", () => {
  let h: Harness;
  useHarness({ KV_CACHE_TTL_SECONDS: "10" }, (started) => {
    h = started;
  });

  it("the tenant marker refuses a key created during the disable (after its listing)", async () => {
    const { key, id } = await h.tenant({ name: "racy" });
    expect((await h.call("/v1/messages", { key, body: MESSAGE })).status).toBe(200);
    await disableTenant(h.kv, id, false);
    // A key written for the tenant after disable listed its keys: enabled in its record,
    // as an older `tenants create --id` (or a race) would have left it.
    const late = newTenantKey();
    h.tenantKeys.push(late);
    const keyHash = await sha256Hex(late);
    const rec = { id, name: "racy", ratePerMinute: 6000, burst: 1000, enabled: true, keyHash, createdAt: new Date().toISOString() };
    await h.kv.put(kvKeyFor(keyHash), JSON.stringify(rec), rec);
    for (const k of [key, late]) {
      const r = await h.call("/v1/messages", { key: k, body: MESSAGE });
      expect(r.status).toBe(401);
      expect(JSON.parse(r.text).error.message).toBe("API key is disabled");
    }
    // And `create --id` refuses it without --reenable; with it, the new key works and the
    // tenant keeps its name and limits.
    await expect(createTenant(h.kv, { id })).rejects.toThrow(/disabled; pass --reenable/);
    const again = await createTenant(h.kv, { id, reenable: true });
    h.tenantKeys.push(again.key);
    expect(again.record).toMatchObject({ id, name: "racy", ratePerMinute: 6000, burst: 1000 });
    expect((await h.call("/v1/messages", { key: again.key, body: MESSAGE })).status).toBe(200);
    expect((await h.call("/v1/messages", { key, body: MESSAGE })).status).toBe(401);
  });

  it("KV_CACHE_TTL_SECONDS below KV's minimum of 30 is raised to it (KV would refuse the read)", async () => {
    // This suite runs with KV_CACHE_TTL_SECONDS=10: miniflare, like KV, rejects a cacheTtl < 30.
    const { key } = await h.tenant();
    expect((await h.call("/v1/messages", { key, body: MESSAGE })).status).toBe(200);
  });
});
