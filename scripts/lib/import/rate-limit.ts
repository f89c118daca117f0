// Client-side limit on Cloudflare API requests for `npm run import`: a sliding
// window (the account-wide 1,200 requests per 5 minutes, FINDINGS.md, last verified
// 2026-11) and a pause when the API answers 429 with retry-after. Exceeding the
// limit blocks every token of the account for 5 minutes, so we never get there.

import { retryAfterMs } from "../../../workers/shared/retry-after.ts";

export const CLOUDFLARE_LIMIT = { requests: 1200, windowMs: 5 * 60_000 } as const;

/** The import's default share of that budget: the rest stays for Pulumi, the dashboard and other tools. */
export const DEFAULT_IMPORT_BUDGET = 1000;

export class SlidingWindowLimiter {
  private readonly sent: number[] = [];
  private pausedUntil = 0;
  readonly limit: number;
  readonly windowMs: number;

  constructor(limit: number, windowMs: number) {
    this.limit = limit;
    this.windowMs = windowMs;
  }

  /** Resolves when one more request fits in the window (and no pause is on), and counts it. */
  async acquire(): Promise<void> {
    for (;;) {
      const now = Date.now();
      while (this.sent.length > 0 && this.sent[0]! <= now - this.windowMs) this.sent.shift();
      const wait = Math.max(this.pausedUntil - now, this.sent.length >= this.limit ? this.sent[0]! + this.windowMs - now : 0);
      if (wait <= 0) {
        this.sent.push(now);
        return;
      }
      await new Promise((r) => setTimeout(r, wait));
    }
  }

  /** Holds every request back for `ms` (the API said retry-after). */
  pause(ms: number): void {
    this.pausedUntil = Math.max(this.pausedUntil, Date.now() + ms);
  }
}

/** A fetch that waits for the limiter before each request, and pauses it on 429. */
export function limitedFetch(limiter: SlidingWindowLimiter, inner: typeof fetch = fetch): typeof fetch {
  return async (input, init) => {
    await limiter.acquire();
    const res = await inner(input, init);
    if (res.status === 429) {
      const after = retryAfterMs(res.headers, Date.now());
      limiter.pause(after !== undefined && after > 0 ? after : 1000);
    }
    return res;
  };
}
