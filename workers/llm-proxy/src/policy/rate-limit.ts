// Policy step: may this tenant make a call now? Asks the tenant's RateLimiter Durable
// Object (the source of truth). Shortcuts in the isolate can only deny early or spend
// tokens the Durable Object already deducted (a lease): a recent denial is remembered
// until its retry-after, and a busy tenant's admitted call may bring a small lease of
// extra tokens, topped up in the background before it runs out so that a busy tenant's
// calls rarely wait for the Durable Object. When it fails, the configured mode decides.
import { MAX_LEASE, MAX_TOPUP_LEASE, type TakeResult } from "./token-bucket.ts";

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
  private readonly leases = new Map<string, { tokens: number; expiresMs: number; limit: number; remaining: number; size: number }>();
  private readonly inflight = new Map<string, Promise<TakeResult>>();

  check(tenantId: string, nowMs: number): TakeResult | undefined {
    // Leased tokens first: they were deducted already, even if the bucket is empty now.
    const l = this.leases.get(tenantId);
    if (l !== undefined) {
      if (l.tokens > 0 && nowMs < l.expiresMs) {
        l.tokens--;
        return { allowed: true, granted: 1, remaining: l.remaining + l.tokens, limit: l.limit, retryAfterMs: 0, resetMs: 0 };
      }
      this.leases.delete(tenantId);
    }
    const d = this.denied.get(tenantId);
    if (d !== undefined) {
      if (nowMs < d.untilMs) {
        return { allowed: false, granted: 0, remaining: 0, limit: d.limit, retryAfterMs: d.untilMs - nowMs, resetMs: d.untilMs - nowMs };
      }
      this.denied.delete(tenantId);
    }
    return undefined;
  }

  /** Keeps what a Durable Object call returned. `used` tokens of it were spent by the caller
   *  (1 for a request, 0 for a top-up); the rest of the grant joins the lease. */
  remember(tenantId: string, nowMs: number, r: TakeResult, leaseMs: number, used = 1): void {
    if (!r.allowed && r.retryAfterMs > 0) this.denied.set(tenantId, { untilMs: nowMs + r.retryAfterMs, limit: r.limit });
    if (r.allowed && r.granted > used) {
      const l = this.leases.get(tenantId);
      const tokens = (l !== undefined && nowMs < l.expiresMs ? l.tokens : 0) + r.granted - used;
      this.leases.set(tenantId, { tokens, expiresMs: nowMs + leaseMs, limit: r.limit, remaining: r.remaining, size: r.granted - 1 });
    }
  }

  /** The lease a top-up asks for: the isolate spent three quarters of its lease within its
   *  lifetime, so it may ask for twice as much (the Durable Object still caps it at 1/16
   *  of the bucket and half a second of the rate). Fewer Durable Object calls for a busy
   *  tenant; an isolate that does not spend its lease never gets past MAX_LEASE. */
  topUpCap(tenantId: string): number {
    const l = this.leases.get(tenantId);
    return Math.min(MAX_TOPUP_LEASE, Math.max(MAX_LEASE, 2 * (l?.size ?? 0)));
  }

  /** Whether the lease is down to its last quarter with no call in flight: time to top up. */
  wantsTopUp(tenantId: string, nowMs: number): boolean {
    const l = this.leases.get(tenantId);
    return l !== undefined && nowMs < l.expiresMs && l.tokens * 4 <= l.size && !this.inflight.has(tenantId);
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
  /** The Durable Object call; `leaseCap` bounds the lease it hands out. */
  call: (leaseCap: number) => Promise<TakeResult>,
  local: LocalLimits,
  nowMs: () => number,
  failOpen: boolean,
  leaseMs: number,
  /** Runs a lease top-up without holding this request up (ctx.waitUntil). */
  background?: (p: Promise<unknown>) => void,
): Promise<RateVerdict> {
  let r: TakeResult | undefined;
  for (;;) {
    r = local.check(tenantId, nowMs());
    if (r !== undefined) break;
    let asked: { result: TakeResult; own: boolean };
    try {
      asked = await local.ask(tenantId, () => call(MAX_LEASE));
    } catch {
      if (failOpen) return { ok: true, headers: {}, failedOpen: true };
      return { ok: false, status: 503, headers: { "retry-after": "1" }, message: "rate limiter unavailable; try again shortly" };
    }
    if (!asked.own) continue; // another request's call finished: look at what it left
    r = asked.result;
    local.remember(tenantId, nowMs(), r, leaseMs);
    break;
  }
  if (r.allowed && background !== undefined && local.wantsTopUp(tenantId, nowMs())) {
    // Every token of the top-up is deducted in the Durable Object before it is spent
    // here; a failed or refused top-up only means the next call asks for itself.
    const cap = local.topUpCap(tenantId);
    background(
      local.ask(tenantId, () => call(cap)).then(
        (a) => (a.own ? local.remember(tenantId, nowMs(), a.result, leaseMs, 0) : undefined),
        () => {},
      ),
    );
  }
  const headers = rateHeaders(r);
  if (r.allowed) return { ok: true, headers, failedOpen: false };
  headers["retry-after"] = String(Math.max(1, Math.ceil(r.retryAfterMs / 1000)));
  return { ok: false, status: 429, headers, message: "rate limit exceeded for this API key" };
}
