// Cloudflare's account-wide API rate limit, for the loopback fakes of its REST API:
// 1,200 requests per 5 minutes per user, counted on arrival across every token and the
// dashboard; past it, every call is refused with HTTP 429 for the next five minutes
// (developers.cloudflare.com/fundamentals/api/reference/limits/, FINDINGS.md; checked
// 2026-11-27). The refusal is Cloudflare's v4 envelope with code 10000 ("Rate limited")
// and a `retry-after` in seconds. The clock is the fake's, so a test can move it.

export interface AccountLimitOptions {
  /** Requests allowed per window (1,200). */
  limit?: number;
  /** The window (5 minutes). */
  windowMs?: number;
  /** How long a client that went past the limit is refused (the window). */
  blockMs?: number;
}

export const CLOUDFLARE_ACCOUNT_LIMIT = { limit: 1200, windowMs: 300_000 } as const;

export class AccountRateLimit {
  private readonly arrivals: number[] = [];
  private blockedUntil = 0;
  /** The most requests seen in any window (a paced client keeps this at or under the limit). */
  maxInWindow = 0;
  /** How many times the limit was crossed (each starts a block). */
  hits = 0;
  private readonly o: Required<AccountLimitOptions>;

  constructor(o: AccountLimitOptions = {}) {
    const windowMs = o.windowMs ?? CLOUDFLARE_ACCOUNT_LIMIT.windowMs;
    this.o = { limit: o.limit ?? CLOUDFLARE_ACCOUNT_LIMIT.limit, windowMs, blockMs: o.blockMs ?? windowMs };
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
    return undefined;
  }
}

/** The v4 error Cloudflare answers a rate-limited call with. */
export const RATE_LIMITED = { code: 10000, message: "Rate limited. Please wait and consider throttling your request speed" } as const;
