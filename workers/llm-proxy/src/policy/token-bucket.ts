// The token bucket arithmetic the RateLimiter Durable Object applies (pure, so it is
// unit-tested without a runtime). Tokens refill continuously at ratePerMinute/60 per
// second up to `burst`; a request takes one token.

export interface Bucket {
  tokens: number;
  updatedMs: number;
}

export interface TakeResult {
  allowed: boolean;
  /** Tokens handed out by this call: 1 for this request plus a lease the isolate may
   *  spend locally (already deducted here, so a lease can never exceed the limit). */
  granted: number;
  /** Whole tokens left after this request. */
  remaining: number;
  limit: number;
  /** When denied: ms until one token is available. */
  retryAfterMs: number;
  /** ms until the bucket is full again. */
  resetMs: number;
}

/** Largest lease of a call made for a request: bounds how many tokens an isolate that
 *  has not shown it spends them can hold and lose on expiry. */
export const MAX_LEASE = 32;
/** Largest lease of a background top-up: an isolate that spent three quarters of its
 *  lease within LEASE_MS may ask for up to twice its lease, up to this. */
export const MAX_TOPUP_LEASE = 256;
/** A lease is meant to be spent within this time; the isolate drops what is left after it. */
export const LEASE_MS = 1000;

/**
 * Extra tokens to lease with an admitted request: none while the bucket is low or the
 * rate is slow (every call then goes to the Durable Object), at most 1/16 of what is
 * left, half a second of the rate, and `cap` (MAX_LEASE unless a top-up asks for more,
 * never above MAX_TOPUP_LEASE).
 */
export function leaseSize(tokensAfter: number, ratePerMinute: number, cap: number = MAX_LEASE): number {
  const c = Number.isFinite(cap) ? Math.min(MAX_TOPUP_LEASE, Math.max(0, Math.floor(cap))) : MAX_LEASE;
  return Math.max(0, Math.min(Math.floor(tokensAfter / 16), Math.floor((ratePerMinute / 60) * 0.5), c));
}

export function take(
  prev: Bucket | undefined,
  nowMs: number,
  ratePerMinute: number,
  burst: number,
  leaseCap: number = MAX_LEASE,
): { bucket: Bucket; result: TakeResult } {
  if (!(ratePerMinute > 0) || !(burst >= 1) || !Number.isFinite(ratePerMinute) || !Number.isFinite(burst)) {
    throw new RangeError("rate limit needs ratePerMinute > 0 and burst >= 1");
  }
  const perMs = ratePerMinute / 60_000;
  const elapsed = prev === undefined ? 0 : Math.max(0, nowMs - prev.updatedMs);
  const start = prev === undefined ? burst : Math.min(burst, prev.tokens + elapsed * perMs);
  const allowed = start >= 1;
  const lease = allowed ? leaseSize(start - 1, ratePerMinute, leaseCap) : 0;
  const granted = allowed ? 1 + lease : 0;
  const tokens = start - granted;
  const bucket = { tokens, updatedMs: nowMs };
  return {
    bucket,
    result: {
      allowed,
      granted,
      remaining: Math.floor(tokens),
      limit: burst,
      retryAfterMs: allowed ? 0 : Math.ceil((1 - tokens) / perMs),
      resetMs: Math.ceil((burst - tokens) / perMs),
    },
  };
}
