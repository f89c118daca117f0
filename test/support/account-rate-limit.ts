// Cloudflare's account-wide API rate limit, for the loopback fakes of its REST API:
// 1,200 requests per 5 minutes per user, counted on arrival across every token and the
// dashboard, plus 200 requests a second per IP; past the first, every call is refused with
// HTTP 429 for the next five minutes (developers.cloudflare.com/fundamentals/api/reference/limits/,
// FINDINGS.md; checked 2026-11-27). The refusal is Cloudflare's v4 envelope with code 971
// ("Please wait and consider throttling your request speed", as the DNS, KV and secrets
// fakes answer a throttle) and a `retry-after` in seconds. The clock is the fake's, so a
// test can move it. Each fake counts alone: the real limit is shared by every endpoint.
// The 200 requests a second are off unless `perSecond` is given: on loopback, where an
// answer takes a millisecond, a client's few parallel requests reach rates that the same
// client cannot reach across the internet, so the limit would fail tests of code that is
// fine in production.

export interface AccountLimitOptions {
  /** Requests allowed per window (1,200). */
  limit?: number;
  /** The window (5 minutes). */
  windowMs?: number;
  /** How long a client that went past the limit is refused (the window). */
  blockMs?: number;
  /** Requests allowed in any one second (200 per IP). */
  perSecond?: number;
}

export const CLOUDFLARE_ACCOUNT_LIMIT = { limit: 1200, windowMs: 300_000, perSecond: 200 } as const;

export class AccountRateLimit {
  private readonly arrivals: number[] = [];
  private blockedUntil = 0;
  /** The most requests seen in any window (a paced client keeps this at or under the limit). */
  maxInWindow = 0;
  /** How many times the limit was crossed (each starts a block). */
  hits = 0;
  /** Requests refused by the per-second limit. */
  secondHits = 0;
  private readonly o: Required<AccountLimitOptions>;

  constructor(o: AccountLimitOptions = {}) {
    const windowMs = o.windowMs ?? CLOUDFLARE_ACCOUNT_LIMIT.windowMs;
    this.o = { limit: o.limit ?? CLOUDFLARE_ACCOUNT_LIMIT.limit, windowMs, blockMs: o.blockMs ?? windowMs, perSecond: o.perSecond ?? Number.POSITIVE_INFINITY };
  }

  /**
   * Counts a request arriving at `now`: undefined when it may go on, else the seconds for
   * its `retry-after` (it is refused with 429; a refused request counts too).
   */
  arrive(now: number): number | undefined {
    this.arrivals.push(now);
    while (this.arrivals.length > 0 && this.arrivals[0]! <= now - this.o.windowMs) this.arrivals.shift();
    this.maxInWindow = Math.max(this.maxInWindow, this.arrivals.length);
    if (now < this.blockedUntil || this.arrivals.length > this.o.limit) {
      if (now >= this.blockedUntil) {
        this.blockedUntil = now + this.o.blockMs;
        this.hits++;
      }
      return Math.max(1, Math.ceil((this.blockedUntil - now) / 1000));
    }
    // The per-second limit refuses only the request over it (no block).
    let inSecond = 0;
    for (let i = this.arrivals.length - 1; i >= 0 && this.arrivals[i]! > now - 1000; i--) inSecond++;
    if (inSecond > this.o.perSecond) {
      this.arrivals.pop();
      this.secondHits++;
      return 1;
    }
    return undefined;
  }
}

/** The v4 error Cloudflare answers a rate-limited call with. */
export const RATE_LIMITED = { code: 971, message: "Please wait and consider throttling your request speed" } as const;
