// Test support: the proxy Worker in workerd (Miniflare, bindings from wrangler.jsonc)
// in front of the fake Anthropic upstream, with a recorder for metrics, the Worker's
// log lines, the usage events it sends (a consumer of the real Queue), and every response
// the suite sees (for the secret scan).
import type { Miniflare, WorkerOptions } from "miniflare";
import { afterAll, beforeAll, beforeEach, expect } from "vitest";
import { randomBytes } from "node:crypto";
import { request as httpRequest } from "node:http";
import { miniflareKv } from "../../../scripts/lib/tenants/local.ts";
import { createTenant, disableTenant, setArchive, type TenantKv } from "../../../scripts/lib/tenants/store.ts";
import { queueRecorder } from "../../../test/support/queue-recorder.ts";
import { kvKeyFor, sha256Hex } from "../src/tenant-record.ts";
import { startLocalProxy, type DataPoint } from "../local/miniflare.ts";
import { FakeAnthropic, frame, MODEL, type SseEvent } from "./fake-anthropic.ts";

/** The least Messages request the API accepts (the fake refuses less: fake-anthropic.ts
 *  invalidMessagesBody), as JSON and streamed. */
export const MESSAGE = JSON.stringify({ model: MODEL, max_tokens: 16, messages: [{ role: "user", content: "hi" }] });
export const STREAM = JSON.stringify({ model: MODEL, max_tokens: 16, stream: true, messages: [{ role: "user", content: "hi" }] });


export interface Seen {
  status: number;
  statusText: string;
  headers: Headers;
  text: string;
}

export class Harness {
  readonly fake = new FakeAnthropic();
  readonly points: DataPoint[] = [];
  /** Usage events the proxy sent, as the Queue delivered them. */
  readonly events: Record<string, unknown>[] = [];
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
  /** `override`: options over the proxy Worker's (e.g. a failing binding); `extraWorkers` beside it. */
  static async start(vars: Record<string, string> = {}, opts: { noProviderKey?: boolean; override?: Partial<WorkerOptions>; extraWorkers?: WorkerOptions[] } = {}): Promise<Harness> {
    const h = new Harness();
    await h.fake.start();
    const { mf, url } = await startLocalProxy({
      vars: { UPSTREAM_BASE_URL: h.fake.url, RETRY_BASE_MS: "5", RETRY_MAX_BACKOFF_MS: "20", TENANT_CACHE_SECONDS: "0", ...vars },
      secrets: opts.noProviderKey ? { OPERATOR_TOKEN: h.secrets.OPERATOR_TOKEN } : h.secrets,
      onDataPoint: (p) => h.points.push(p),
      onLog: (l) => h.logs.push(l),
      ...(opts.override ? { override: opts.override } : {}),
      extraWorkers: [
        // The usage Queue the proxy sends to, consumed into `events`.
        queueRecorder("usage-recorder", "edgefleet-usage", (body) => h.events.push(body as Record<string, unknown>)),
        ...(opts.extraWorkers ?? []),
      ],
    });
    h.mf = mf;
    h.url = url;
    h.kv = miniflareKv(await mf.getKVNamespace("TENANTS"));
    return h;
  }

  async tenant(
    opts: { ratePerMinute?: number; burst?: number; name?: string; inputTokensPerMinute?: number; outputTokensPerMinute?: number; dailyBudgetMicros?: number; monthlyBudgetMicros?: number; archive?: boolean } = {},
  ): Promise<{ key: string; id: string }> {
    const { name, ratePerMinute, burst, archive, ...rest } = opts;
    const { key, record } = await createTenant(this.kv, { name: name ?? "acme", ratePerMinute: ratePerMinute ?? 6000, burst: burst ?? 1000, ...rest });
    this.tenantKeys.push(key);
    if (archive) await setArchive(this.kv, record.id, true, false);
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

  /** Polls until `done` holds on the usage events received (bounded: 500 x 10 ms). */
  async eventsUntil(done: (e: Record<string, unknown>[]) => boolean): Promise<Record<string, unknown>[]> {
    for (let i = 0; i < 500 && !done(this.events); i++) await new Promise((r) => setTimeout(r, 10));
    return this.events;
  }

  /** The usage event of a call, once the Queue delivered it. */
  async eventFor(requestId: string): Promise<Record<string, unknown>> {
    const all = await this.eventsUntil((e) => e.some((x) => x.request_id === requestId));
    const e = all.find((x) => x.request_id === requestId);
    if (e === undefined) throw new Error(`no usage event for ${requestId}`);
    return e;
  }

  /**
   * Posts a streaming call, reads until the first `n` of `events` arrived, then drops the
   * connection (a client that leaves mid-stream).
   */
  leaveAfter(key: string, events: SseEvent[], n: number, body = STREAM): Promise<{ requestId: string; got: string }> {
    const want = events.slice(0, n).map(frame).join("");
    return new Promise((resolve, reject) => {
      const req = httpRequest(new URL("/v1/messages", this.url), {
        method: "POST",
        agent: false,
        headers: { "x-api-key": key, "content-type": "application/json", "anthropic-version": "2023-06-01" },
      });
      req.on("response", (res) => {
        let got = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => {
          got += c;
          if (got.length >= want.length) {
            this.transcript.push(got, JSON.stringify(res.headers));
            req.destroy();
            resolve({ requestId: String(res.headers["edgefleet-request-id"]), got });
          }
        });
      });
      req.on("error", () => {});
      req.on("close", () => reject(new Error("closed before the events arrived")));
      req.end(body);
    });
  }

  /** Every place a secret must never appear. Returns the leaks found. */
  leaks(): string[] {
    const secrets = [this.secrets.ANTHROPIC_API_KEY, this.secrets.OPERATOR_TOKEN, ...this.tenantKeys];
    const haystack = [...this.transcript, ...this.logs, ...this.points.map((p) => JSON.stringify(p)), ...this.events.map((e) => JSON.stringify(e))];
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
export function useHarness(
  vars: Record<string, string>,
  ready: (h: Harness) => Promise<void> | void,
  opts: { reset?: boolean; noProviderKey?: boolean; override?: Partial<WorkerOptions>; extraWorkers?: WorkerOptions[] } = {},
): void {
  let h: Harness | undefined;
  beforeAll(async () => {
    h = await Harness.start(vars, { noProviderKey: opts.noProviderKey, ...(opts.override ? { override: opts.override } : {}), ...(opts.extraWorkers ? { extraWorkers: opts.extraWorkers } : {}) });
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
      if (h) h.events.length = 0;
    });
  }
}
