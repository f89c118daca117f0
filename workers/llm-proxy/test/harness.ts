// Test support: the proxy Worker in workerd (Miniflare, bindings from wrangler.jsonc)
// in front of the fake Anthropic upstream, with a recorder for metrics, the Worker's
// log lines, and every response the suite sees (for the secret scan).
import type { Miniflare } from "miniflare";
import { afterAll, beforeAll, beforeEach, expect } from "vitest";
import { randomBytes } from "node:crypto";
import { miniflareKv } from "../../../scripts/lib/tenants/local.ts";
import { createTenant, disableTenant, type TenantKv } from "../../../scripts/lib/tenants/store.ts";
import { kvKeyFor, sha256Hex } from "../src/tenant-record.ts";
import { startLocalProxy, type DataPoint } from "../local/miniflare.ts";
import { FakeAnthropic } from "./fake-anthropic.ts";

export interface Seen {
  status: number;
  statusText: string;
  headers: Headers;
  text: string;
}

export class Harness {
  readonly fake = new FakeAnthropic();
  readonly points: DataPoint[] = [];
  readonly logs: string[] = [];
  /** Every response body and header the suite received, for the secret scan. */
  readonly transcript: string[] = [];
  readonly secrets = {
    ANTHROPIC_API_KEY: `sk-ant-api03-${randomBytes(24).toString("base64url")}`,
    OPERATOR_TOKEN: `op_${randomBytes(24).toString("base64url")}`,
  };
  readonly tenantKeys: string[] = [];
  mf!: Miniflare;
  url!: URL;
  kv!: TenantKv;

  /** `noProviderKey`: start without ANTHROPIC_API_KEY (a misconfigured deploy). */
  static async start(vars: Record<string, string> = {}, opts: { noProviderKey?: boolean } = {}): Promise<Harness> {
    const h = new Harness();
    await h.fake.start();
    const { mf, url } = await startLocalProxy({
      vars: { UPSTREAM_BASE_URL: h.fake.url, RETRY_BASE_MS: "5", RETRY_MAX_BACKOFF_MS: "20", TENANT_CACHE_SECONDS: "0", ...vars },
      secrets: opts.noProviderKey ? { OPERATOR_TOKEN: h.secrets.OPERATOR_TOKEN } : h.secrets,
      onDataPoint: (p) => h.points.push(p),
      onLog: (l) => h.logs.push(l),
    });
    h.mf = mf;
    h.url = url;
    h.kv = miniflareKv(await mf.getKVNamespace("TENANTS"));
    return h;
  }

  async tenant(
    opts: { ratePerMinute?: number; burst?: number; name?: string; inputTokensPerMinute?: number; outputTokensPerMinute?: number; dailyBudgetMicros?: number; monthlyBudgetMicros?: number } = {},
  ): Promise<{ key: string; id: string }> {
    const { name, ratePerMinute, burst, ...rest } = opts;
    const { key, record } = await createTenant(this.kv, { name: name ?? "acme", ratePerMinute: ratePerMinute ?? 6000, burst: burst ?? 1000, ...rest });
    this.tenantKeys.push(key);
    return { key, id: record.id };
  }

  /** A tenant whose record the Durable Object refuses (rate 0: `take` throws), the way to
   *  make the limiter fail; `extra` adds fields (a budget). */
  async brokenTenant(id = "t_00000000000000bb", extra: Record<string, unknown> = {}): Promise<string> {
    const key = `efk_broken-limit-test-key-${id}-000000000000000000000`;
    this.tenantKeys.push(key);
    const keyHash = await sha256Hex(key);
    const rec = { id, name: "broken", ratePerMinute: 0, burst: 1, enabled: true, keyHash, createdAt: "", ...extra };
    await this.kv.put(kvKeyFor(keyHash), JSON.stringify(rec), rec);
    return key;
  }

  disable(id: string) {
    return disableTenant(this.kv, id, false);
  }

  record(res: { status: number; headers: Headers }, text: string): void {
    this.transcript.push(String(res.status), ...[...res.headers].map(([k, v]) => `${k}: ${v}`), text);
  }

  /** Calls the proxy and reads the whole answer. */
  async call(path: string, init: RequestInit & { key?: string } = {}): Promise<Seen> {
    const headers = new Headers(init.headers);
    if (init.key !== undefined) headers.set("x-api-key", init.key);
    if (init.method === undefined || init.method === "POST") {
      if (!headers.has("content-type")) headers.set("content-type", "application/json");
    }
    if (!headers.has("anthropic-version")) headers.set("anthropic-version", "2023-06-01");
    const res = await fetch(new URL(path, this.url), { method: "POST", ...init, headers });
    const text = await res.text();
    this.record(res, text);
    return { status: res.status, statusText: res.statusText, headers: res.headers, text };
  }

  /** Waits until `n` metrics points arrived (they are written after the response). */
  async pointsAtLeast(n: number): Promise<DataPoint[]> {
    for (let i = 0; i < 500 && this.points.length < n; i++) await new Promise((r) => setTimeout(r, 10));
    return this.points;
  }

  /** Every place a secret must never appear. Returns the leaks found. */
  leaks(): string[] {
    const secrets = [this.secrets.ANTHROPIC_API_KEY, this.secrets.OPERATOR_TOKEN, ...this.tenantKeys];
    const haystack = [...this.transcript, ...this.logs, ...this.points.map((p) => JSON.stringify(p))];
    const out: string[] = [];
    for (const s of secrets) for (const h of haystack) if (h.includes(s)) out.push(`${s.slice(0, 6)}… in ${h.slice(0, 80)}`);
    return out;
  }

  async dispose(): Promise<void> {
    await this.mf?.dispose();
    await this.fake.stop();
  }
}

/**
 * A suite's (or describe block's) proxy: started with `vars` before its tests and handed
 * to `ready` (which keeps it and makes tenants); after them, the secret scan must come
 * out empty and everything is shut down. With `reset`, the fake's script and the metrics
 * are cleared before each test.
 */
export function useHarness(vars: Record<string, string>, ready: (h: Harness) => Promise<void> | void, opts: { reset?: boolean; noProviderKey?: boolean } = {}): void {
  let h: Harness | undefined;
  beforeAll(async () => {
    h = await Harness.start(vars, { noProviderKey: opts.noProviderKey });
    await ready(h);
  });
  afterAll(async () => {
    expect(h?.leaks()).toEqual([]);
    await h?.dispose();
  });
  if (opts.reset) {
    beforeEach(() => {
      h?.fake.reset();
      if (h) h.points.length = 0;
    });
  }
}
