// The token bucket arithmetic the RateLimiter Durable Object applies (pure, so it is
// unit-tested without a runtime). Tokens refill continuously at ratePerMinute/60 per
// second up to `burst`; a request takes one token. A tenant's spend budgets (budget.ts)
// are admitted in the same call, all or nothing with the rest.
import { checkBudget, commitBudget, type BudgetAsk, type BudgetKind, type BudgetResult, type BudgetRows } from "./budget.ts";

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
  /** When denied: which limits refused (requests first). */
  limited?: LimitName[];
  /** When denied: this call's reservation exceeds a limit outright; waiting cannot help. */
  impossible?: boolean;
  /** The token buckets, when the call carried a TokenAsk. */
  tokens?: TokenResult;
  /** The budgets, when the call carried a BudgetAsk. */
  budget?: BudgetResult;
  /** When denied: which budgets refused (exhausted for this window). */
  budgetLimited?: BudgetKind[];
  /** With budgetLimited: what refuses the call is money reserved by calls in flight, not
   *  money spent (checkBudget `held`): it fits once they settle. */
  budgetHeld?: true;
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

// ---- Token limits (input and output tokens per minute), next to the request bucket ----
// Two more buckets in the same Durable Object, refilled continuously at limit/60 per
// second up to the limit (Anthropic's own rate limits are token buckets of this shape:
// platform.claude.com/docs/en/api/rate-limits, checked 2026-11-27). A call reserves an
// upper bound of what it may use; settling to the actual amount gives the difference back
// (or, when a call used more than it reserved, takes it: the bucket may then go below
// zero and the tenant waits until it refills).

export type LimitName = "requests" | "input_tokens" | "output_tokens";

/** Per-minute token limits of a tenant; 0 = no limit on that side. */
export interface TokenLimits {
  inputPerMinute: number;
  outputPerMinute: number;
}

export interface Tokens {
  input: number;
  output: number;
}

/** What an isolate hands back: unspent lease tokens and settled differences (a negative
 *  number takes tokens: a call that used more than it reserved). */
export interface GiveBack {
  requests: number;
  input: number;
  output: number;
}

/** The token part of a Durable Object call. */
export interface TokenAsk {
  limits: TokenLimits;
  /** This call's reservation; a lease may add whole multiples of it. */
  want: Tokens;
  give: GiveBack;
  /** The tenant's budgets, this call's reservation in micro-dollars and what is given
   *  back to them; absent for a tenant without budgets. */
  budget?: BudgetAsk;
}

export interface TokenBuckets {
  input?: Bucket;
  output?: Bucket;
}

export interface TokenResult {
  /** Tokens taken by this call: the reservation plus the lease (`granted - 1` more
   *  reservations of the same size, like the request lease). */
  granted: Tokens;
  /** Whole tokens left in the Durable Object after this call (never below 0 here). */
  remaining: Tokens;
  limit: Tokens;
  /** ms until each bucket is full again. */
  resetMs: Tokens;
}

export const NO_TOKEN_LIMITS: TokenLimits = { inputPerMinute: 0, outputPerMinute: 0 };

function level(prev: Bucket | undefined, nowMs: number, perMinute: number, cap: number): number {
  if (prev === undefined) return cap;
  const elapsed = Math.max(0, nowMs - prev.updatedMs);
  return Math.min(cap, prev.tokens + (elapsed * perMinute) / 60_000);
}

function checkLimit(v: number, name: string): number {
  if (!Number.isFinite(v) || v < 0) throw new RangeError(`${name} must be a number >= 0`);
  return v;
}

/** Tokens handed back (or taken) outside a call: a settle. Refill first, then add. */
export function giveBack(prev: TokenBuckets, nowMs: number, limits: TokenLimits, give: Tokens): TokenBuckets {
  const out: TokenBuckets = {};
  const li = checkLimit(limits.inputPerMinute, "inputPerMinute");
  const lo = checkLimit(limits.outputPerMinute, "outputPerMinute");
  if (li > 0) out.input = { tokens: Math.min(li, level(prev.input, nowMs, li, li) + give.input), updatedMs: nowMs };
  if (lo > 0) out.output = { tokens: Math.min(lo, level(prev.output, nowMs, lo, lo) + give.output), updatedMs: nowMs };
  return out;
}

/**
 * The whole admission: one request token and the call's token reservation, all or
 * nothing. `give` is added first (refunds, unspent leases). A lease of `n` more requests
 * comes with `n` more reservations of the same size, bounded so that it takes at most
 * 1/16 of what each token bucket holds after this call.
 */
export function admit(
  prev: { requests?: Bucket; tokens: TokenBuckets; budget?: BudgetRows },
  nowMs: number,
  ratePerMinute: number,
  burst: number,
  leaseCap: number,
  ask: TokenAsk,
): { requests: Bucket; tokens: TokenBuckets; budget?: BudgetRows; result: TakeResult } {
  if (!(ratePerMinute > 0) || !(burst >= 1) || !Number.isFinite(ratePerMinute) || !Number.isFinite(burst)) {
    throw new RangeError("rate limit needs ratePerMinute > 0 and burst >= 1");
  }
  const li = checkLimit(ask.limits.inputPerMinute, "inputPerMinute");
  const lo = checkLimit(ask.limits.outputPerMinute, "outputPerMinute");
  const wi = li > 0 ? Math.max(0, Math.ceil(ask.want.input)) : 0;
  const wo = lo > 0 ? Math.max(0, Math.ceil(ask.want.output)) : 0;
  const perMs = ratePerMinute / 60_000;
  const req = Math.min(burst, level(prev.requests, nowMs, ratePerMinute, burst) + Math.max(0, ask.give.requests));
  const inp = li > 0 ? Math.min(li, level(prev.tokens.input, nowMs, li, li) + ask.give.input) : 0;
  const out = lo > 0 ? Math.min(lo, level(prev.tokens.output, nowMs, lo, lo) + ask.give.output) : 0;

  const limited: LimitName[] = [];
  let wait = 0;
  let impossible = false;
  if (req < 1) {
    limited.push("requests");
    wait = Math.max(wait, Math.ceil((1 - req) / perMs));
  }
  if (li > 0 && inp < wi) {
    limited.push("input_tokens");
    if (wi > li) impossible = true;
    else wait = Math.max(wait, Math.ceil(((wi - inp) * 60_000) / li));
  }
  if (lo > 0 && out < wo) {
    limited.push("output_tokens");
    if (wo > lo) impossible = true;
    else wait = Math.max(wait, Math.ceil(((wo - out) * 60_000) / lo));
  }
  // A budget's refusal keeps its own wait (b.waitMs, until its window ends: the 402's
  // retry-after, from resetAtMs): folded into retryAfterMs it became the request
  // denial an isolate remembers when the request bucket refused too, and the tenant's
  // every call, free ones included, was refused for hours.
  const b = ask.budget !== undefined ? checkBudget(prev.budget ?? {}, nowMs, ask.budget) : undefined;
  const budgetRefused = b !== undefined && b.limited.length > 0;
  const allowed = limited.length === 0 && !budgetRefused;
  let n = allowed ? leaseSize(req - 1, ratePerMinute, leaseCap) : 0;
  if (n > 0 && wi > 0) n = Math.min(n, Math.floor((inp - wi) / 16 / wi));
  if (n > 0 && wo > 0) n = Math.min(n, Math.floor((out - wo) / 16 / wo));
  if (n > 0 && b !== undefined) n = Math.min(n, b.leaseMax);
  n = Math.max(0, n);
  const granted = allowed ? 1 + n : 0;
  const money = b !== undefined ? commitBudget(b, granted) : undefined;
  const gi = allowed ? wi * granted : 0;
  const go = allowed ? wo * granted : 0;
  const requests = { tokens: req - granted, updatedMs: nowMs };
  const tokens: TokenBuckets = {};
  if (li > 0) tokens.input = { tokens: inp - gi, updatedMs: nowMs };
  if (lo > 0) tokens.output = { tokens: out - go, updatedMs: nowMs };
  const full = (left: number, cap: number) => (cap > 0 ? Math.max(0, Math.ceil(((cap - left) * 60_000) / cap)) : 0);
  return {
    requests,
    tokens,
    ...(money !== undefined ? { budget: money.rows } : {}),
    result: {
      allowed,
      granted,
      remaining: Math.max(0, Math.floor(requests.tokens)),
      limit: burst,
      retryAfterMs: allowed ? 0 : limited.length > 0 ? (impossible ? 60_000 : wait) : b!.impossible ? 60_000 : b!.waitMs,
      resetMs: Math.ceil((burst - requests.tokens) / perMs),
      ...(allowed ? {} : { limited, ...(impossible || (limited.length === 0 && b?.impossible) ? { impossible: true } : {}) }),
      ...(money !== undefined ? { budget: money.result } : {}),
      ...(budgetRefused ? { budgetLimited: b.limited, ...(b.held ? { budgetHeld: true as const } : {}) } : {}),
      tokens: {
        granted: { input: gi, output: go },
        remaining: { input: Math.max(0, Math.floor(inp - gi)), output: Math.max(0, Math.floor(out - go)) },
        limit: { input: li, output: lo },
        resetMs: { input: full(inp - gi, li), output: full(out - go, lo) },
      },
    },
  };
}
