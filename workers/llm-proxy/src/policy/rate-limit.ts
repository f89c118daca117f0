// Policy step: may this tenant make a call now? Asks the tenant's RateLimiter Durable
// Object (the source of truth). Shortcuts in the isolate can only deny early or spend
// tokens the Durable Object already deducted (a lease): a recent denial is remembered
// until its retry-after, and a busy tenant's admitted call may bring a small lease of
// extra tokens. When the Durable Object fails, the configured mode decides.
import type { TakeResult } from "./token-bucket.ts";

export type RateVerdict =
  | { ok: true; headers: Record<string, string>; failedOpen: boolean }
  | { ok: false; status: 429; headers: Record<string, string>; message: string }
  | { ok: false; status: 503; headers: Record<string, string>; message: string };

export function rateHeaders(r: TakeResult): Record<string, string> {
  return {
    "ratelimit-limit": String(r.limit),
    "ratelimit-remaining": String(r.remaining),
    "ratelimit-reset": String(Math.ceil(r.resetMs / 1000)),
  };
}

/**
 * What this isolate knows about each tenant's bucket: a denial (until when the bucket
 * cannot have a token) and leased tokens (already taken from the Durable Object). Both
 * only ever deny early or spend what the Durable Object granted: never admit more.
 */
export class LocalLimits {
  private readonly denied = new Map<string, { untilMs: number; limit: number }>();
  private readonly leases = new Map<string, { tokens: number; expiresMs: number; limit: number; remaining: number }>();
  private readonly inflight = new Map<string, Promise<TakeResult>>();

  check(tenantId: string, nowMs: number): TakeResult | undefined {
    const d = this.denied.get(tenantId);
    if (d !== undefined) {
      if (nowMs < d.untilMs) {
        return { allowed: false, granted: 0, remaining: 0, limit: d.limit, retryAfterMs: d.untilMs - nowMs, resetMs: d.untilMs - nowMs };
      }
      this.denied.delete(tenantId);
    }
    const l = this.leases.get(tenantId);
    if (l !== undefined) {
      if (l.tokens > 0 && nowMs < l.expiresMs) {
        l.tokens--;
        return { allowed: true, granted: 1, remaining: l.remaining + l.tokens, limit: l.limit, retryAfterMs: 0, resetMs: 0 };
      }
      this.leases.delete(tenantId);
    }
    return undefined;
  }

  remember(tenantId: string, nowMs: number, r: TakeResult, leaseMs: number): void {
    if (!r.allowed && r.retryAfterMs > 0) this.denied.set(tenantId, { untilMs: nowMs + r.retryAfterMs, limit: r.limit });
    if (r.allowed && r.granted > 1) {
      const l = this.leases.get(tenantId);
      const tokens = (l !== undefined && nowMs < l.expiresMs ? l.tokens : 0) + r.granted - 1;
      this.leases.set(tenantId, { tokens, expiresMs: nowMs + leaseMs, limit: r.limit, remaining: r.remaining });
    }
  }

  /** One Durable Object call at a time per tenant per isolate; concurrent requests
   *  wait for it, then try the (possibly new) lease before asking again. */
  async ask(tenantId: string, call: () => Promise<TakeResult>): Promise<{ result: TakeResult; own: boolean }> {
    const pending = this.inflight.get(tenantId);
    if (pending !== undefined) {
      await pending.catch(() => {});
      return { result: undefined as unknown as TakeResult, own: false };
    }
    const p = call();
    this.inflight.set(tenantId, p);
    try {
      return { result: await p, own: true };
    } finally {
      this.inflight.delete(tenantId);
    }
  }
}

export async function rateLimit(
  tenantId: string,
  call: () => Promise<TakeResult>,
  local: LocalLimits,
  nowMs: () => number,
  failOpen: boolean,
  leaseMs: number,
): Promise<RateVerdict> {
  let r: TakeResult | undefined;
  for (;;) {
    r = local.check(tenantId, nowMs());
    if (r !== undefined) break;
    let asked: { result: TakeResult; own: boolean };
    try {
      asked = await local.ask(tenantId, call);
    } catch {
      if (failOpen) return { ok: true, headers: {}, failedOpen: true };
      return { ok: false, status: 503, headers: { "retry-after": "1" }, message: "rate limiter unavailable; try again shortly" };
    }
    if (!asked.own) continue; // another request's call finished: look at what it left
    r = asked.result;
    local.remember(tenantId, nowMs(), r, leaseMs);
    break;
  }
  const headers = rateHeaders(r);
  if (r.allowed) return { ok: true, headers, failedOpen: false };
  headers["retry-after"] = String(Math.max(1, Math.ceil(r.retryAfterMs / 1000)));
  return { ok: false, status: 429, headers, message: "rate limit exceeded for this API key" };
}
