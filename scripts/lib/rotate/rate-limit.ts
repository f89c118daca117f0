// A client-side limiter shared by every Cloudflare API call of a rotation, so the
// rotation stays inside the account-wide limit (1,200 requests per 5 minutes per user,
// shared with every token and the dashboard; exceeding it blocks ALL calls for 5
// minutes; FINDINGS.md "Cloudflare API", last verified November 2026), plus a pause
// shared by all callers when the API answers 429 with retry-after.

export interface RateLimiterOptions {
  /** Requests allowed per window. */
  limit: number;
  /** Window length in ms. */
  windowMs: number;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

export const CLOUDFLARE_LIMIT = { limit: 1200, windowMs: 300_000 } as const;

interface Slot {
  start: number;
  /** When the response arrived; undefined while the request is in flight. */
  end: number | undefined;
}

/**
 * Sliding-window limiter. A request occupies its slot from the moment it is sent
 * until one window after its response arrived: the server counts it at some instant
 * between the two, so counting it for that whole span keeps every window the server
 * can see at or under `limit` whatever the latency.
 */
export class RateLimiter {
  readonly limit: number;
  readonly windowMs: number;
  private readonly now: () => number;
  private readonly sleep: (ms: number) => Promise<void>;
  private slots: Slot[] = [];
  private pausedUntil = 0;
  private waiters: (() => void)[] = [];
  /** Requests sent through the limiter. */
  sent = 0;

  constructor(o: RateLimiterOptions) {
    if (!(o.limit >= 1) || !(o.windowMs > 0)) throw new Error("rate limit: limit must be >= 1 and window > 0");
    this.limit = o.limit;
    this.windowMs = o.windowMs;
    this.now = o.now ?? Date.now;
    this.sleep = o.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
  }

  /** Stop every caller until `ms` from now (a 429's retry-after applies to the account). */
  pause(ms: number): void {
    this.pausedUntil = Math.max(this.pausedUntil, this.now() + ms);
  }

  /** Runs `fn` once a slot is free; the slot is held as described above. */
  async run<T>(fn: () => Promise<T>): Promise<T> {
    const slot = await this.acquire();
    try {
      return await fn();
    } finally {
      slot.end = this.now();
      this.wake();
    }
  }

  private async acquire(): Promise<Slot> {
    for (;;) {
      const now = this.now();
      if (now < this.pausedUntil) {
        await this.sleep(this.pausedUntil - now);
        continue;
      }
      this.slots = this.slots.filter((s) => s.end === undefined || s.end + this.windowMs > now);
      if (this.slots.length < this.limit) {
        const slot: Slot = { start: now, end: undefined };
        this.slots.push(slot);
        this.sent++;
        return slot;
      }
      // Full: wait for the oldest finished slot to leave the window, or for an
      // in-flight request to finish (which only then starts its own countdown).
      const finished = this.slots.filter((s) => s.end !== undefined).map((s) => s.end! + this.windowMs - now);
      const wait = finished.length > 0 ? Math.max(1, Math.min(...finished)) : undefined;
      await new Promise<void>((resolve) => {
        let done = false;
        const go = () => {
          if (done) return;
          done = true;
          resolve();
        };
        this.waiters.push(go);
        if (wait !== undefined) void this.sleep(wait).then(go);
      });
    }
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
}
