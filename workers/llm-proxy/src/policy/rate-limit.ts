// Policy step: may this tenant make a call now? Asks the tenant's RateLimiter Durable
// Object (the source of truth) for one request token and, for a tenant with token
// limits, the call's token reservation, in the same call. Shortcuts in the isolate can
// only deny early or spend what the Durable Object already deducted (a lease): a recent
// denial is remembered, and a busy tenant's admitted call may bring a small lease of
// extra requests and tokens, topped up in the background before it runs out, so that a
// busy tenant's calls rarely wait for the Durable Object. Unspent leases and settled
// differences go back to the object with its next call or in the background. A
// tenant's spend budgets ride on the same call and the same lease (in micro-dollars; see
// budget.ts and docs/llm-proxy.md "Spend budgets"). When it fails, the configured mode
// decides.
import { dollars } from "../../../shared/cost.ts";
import { addGive, BUDGET_KINDS, BUDGET_NEAR_SHARE, budgetWindow, type BudgetGive, type BudgetKind, type BudgetLimits, type BudgetResult } from "./budget.ts";
import { MAX_LEASE, MAX_TOPUP_LEASE, type GiveBack, type LimitName, type TakeResult, type TokenAsk, type TokenLimits, type Tokens } from "./token-bucket.ts";

export type RateVerdict =
  | {
      ok: true;
      headers: Record<string, string>;
      failedOpen: boolean;
      reserved: Tokens;
      /** Micro-dollars reserved for this call, and the budget windows they were reserved
       *  in (the settle gives back into these); absent for a tenant without budgets. */
      money?: { micros: number; windows: Partial<Record<BudgetKind, number>> };
    }
  | { ok: false; status: 429; headers: Record<string, string>; message: string; limited: LimitName[] }
  | {
      ok: false;
      status: 402;
      headers: Record<string, string>;
      message: string;
      budget: BudgetKind[];
      /** The least a refusing budget had left for this call (a smaller estimate may fit it). */
      left: number;
      /** The budget is held by calls in flight, not spent (TakeResult.budgetHeld): the
       *  caller answers 429, to be retried shortly, not 402 (index.ts). */
      held?: true;
    }
  | { ok: false; status: 503; headers: Record<string, string>; message: string }
  /** A body a reserving tenant cannot be sized from (tokens.ts): refused before anything;
   *  `upstream`: the upstream's count_tokens refused it, and its 4xx status and error type
   *  are passed on (tokens.ts countRefused). */
  | { ok: false; status: 400; headers: Record<string, string>; message: string; upstream?: { status: number; type: string } }
  /** A budgeted tenant's call billed beyond tokens (tokens.ts): not permitted. */
  | { ok: false; status: 403; headers: Record<string, string>; message: string };

/** The token side of a call: the tenant's limits and this call's reservation. */
export interface TokenRequest {
  limits: TokenLimits;
  want: Tokens;
  /** The tenant's budgets and this call's reservation in micro-dollars. */
  budget?: { limits: BudgetLimits; want: number };
}

/** After a budget refusal from the Durable Object, an isolate refuses that tenant's
 *  calls that cannot fit for this long without asking again (other isolates' settles may
 *  free money meanwhile: a refusal here can only come early, never an admission late). */
export const BUDGET_DENIAL_MS = 1000;
/** The retry-after of a call refused because the budget is held by calls in flight, not
 *  spent (budgetRefusal): long enough for a short call to settle, short enough that the
 *  SDKs' two retries fit in a client's patience. */
export const BUDGET_HELD_RETRY_S = 2;

const ZERO: Tokens = { input: 0, output: 0 };

function rfc3339(ms: number): string {
  // Whole seconds, like Anthropic's anthropic-ratelimit-*-reset values.
  return new Date(Math.ceil(ms / 1000) * 1000).toISOString().replace(".000Z", "Z");
}

/**
 * The tenant's own limits as headers. `ratelimit-*` (IETF draft) for requests, and,
 * named after Anthropic's `anthropic-ratelimit-{input,output}-tokens-{limit,remaining,
 * reset}` (reset as an RFC 3339 time), `edgefleet-ratelimit-*` for the tenant's token
 * limits. Anthropic's own headers describe the organisation's quota on the provider key
 * and never reach a tenant; these describe the tenant's.
 */
export function rateHeaders(r: TakeResult, nowMs: number = Date.now(), wantMicros?: number): Record<string, string> {
  const h: Record<string, string> = {
    "ratelimit-limit": String(r.limit),
    "ratelimit-remaining": String(r.remaining),
    "ratelimit-reset": String(Math.ceil(r.resetMs / 1000)),
  };
  const t = r.tokens;
  if (t !== undefined) {
    for (const [side, name] of [["input", "input-tokens"], ["output", "output-tokens"]] as const) {
      if (!(t.limit[side] > 0)) continue;
      h[`edgefleet-ratelimit-${name}-limit`] = String(t.limit[side]);
      h[`edgefleet-ratelimit-${name}-remaining`] = String(t.remaining[side]);
      h[`edgefleet-ratelimit-${name}-reset`] = rfc3339(nowMs + t.resetMs[side]);
    }
  }
  if (r.budget !== undefined) Object.assign(h, budgetHeaders(r.budget, wantMicros));
  return h;
}

/**
 * A budgeted tenant's headers: per budget `edgefleet-budget-{daily,monthly}-limit-micros`,
 * `-remaining-micros` (after this call's reservation) and `-reset` (RFC 3339, when the
 * window ends); `edgefleet-budget-remaining-micros`, the least of them; and
 * `edgefleet-estimated-cost-micros`, this call's reservation: the upper bound of its cost
 * held until it settles to the actual cost.
 */
export function budgetHeaders(b: BudgetResult, wantMicros?: number): Record<string, string> {
  const h: Record<string, string> = {};
  let least: number | undefined;
  for (const k of BUDGET_KINDS) {
    const limit = b.limit[k];
    if (limit === undefined) continue;
    const left = b.remaining[k] ?? 0;
    h[`edgefleet-budget-${k}-limit-micros`] = String(limit);
    h[`edgefleet-budget-${k}-remaining-micros`] = String(left);
    if (b.resetAtMs[k] !== undefined) h[`edgefleet-budget-${k}-reset`] = rfc3339(b.resetAtMs[k]);
    least = least === undefined ? left : Math.min(least, left);
  }
  if (least !== undefined) h["edgefleet-budget-remaining-micros"] = String(least);
  if (wantMicros !== undefined) h["edgefleet-estimated-cost-micros"] = String(wantMicros);
  return h;
}

interface Lease {
  tokens: number;
  input: number;
  output: number;
  expiresMs: number;
  limit: number;
  remaining: number;
  size: number;
  /** When the Durable Object's request bucket is full again (absolute; item 9: the reset
   *  a lease reports is the Durable Object's, not 0). */
  fullAtMs: number;
  /** The reservation the lease was sized for (top-ups ask for it again). */
  unit: Tokens | undefined;
  tok: { limit: Tokens; remaining: Tokens; fullAtMs: Tokens } | undefined;
  /** Leased micro-dollars (reserved in the Durable Object already) and the budget state
   *  the lease was granted with; calls spend their own reservation from `micros`. */
  micros: number;
  money: BudgetResult | undefined;
  /** The per-call money reservation the lease was sized for (top-ups ask for it again). */
  moneyUnit: number | undefined;
}

/**
 * The longest a call waits for the tenant's Durable Object (its own call, or the one in
 * flight it waits on), and a flush of what is owed back waits for its answer. An object
 * answers in milliseconds; one that takes seconds is overloaded, stuck or unreachable.
 */
export const LIMITER_DEADLINE_MS = 5_000;

const DEADLINE = Symbol("deadline");

/** How long an object call past its deadline counts as still out (the money report is
 *  "all" meanwhile). It lives as long as its request's context: a response that streams
 *  for minutes, then 30 s of ctx.waitUntil. Past this it is taken as cut off, and the
 *  report counts only the calls it knows again. */
export const LATE_CALL_MAX_MS = 15 * 60_000;

/** Past this, a flush's flag is taken as cut off by the runtime (ctx.waitUntil gives a
 *  request 30 s after its response; a money timer stops following its lease at 20 s). */
const STALE_FLUSH_MS = 60_000;

/** Thrown when the Durable Object did not answer within LIMITER_DEADLINE_MS. */
export class LimiterDeadline extends Error {
  constructor() {
    super("the rate limiter did not answer in time");
    this.name = "LimiterDeadline";
  }
}

/** `p`, or DEADLINE once `ms` have passed (the timer is cleared when `p` settles first). */
function within<T>(p: Promise<T>, ms: number): Promise<T | typeof DEADLINE> {
  let t: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([p, new Promise<typeof DEADLINE>((r) => (t = setTimeout(r, ms, DEADLINE)))]).finally(() => {
    if (t !== undefined) clearTimeout(t);
  });
}

/** Sends a give-back, waiting at most LIMITER_DEADLINE_MS for it: a flush that never
 *  answers must not hold its flag (and every later flush of the tenant) for good. A late
 *  or failed give is not sent again: sent twice, a release could free money twice. */
async function sendGive<G>(flush: (g: G) => Promise<void>, g: G, landed?: () => void): Promise<void> {
  await within(
    flush(g).then(
      () => landed?.(),
      () => {},
    ),
    LIMITER_DEADLINE_MS,
  );
}

/** Adds `delta` to a tenant's micro-dollars in `m`; a tenant left with none leaves the map. */
function addMicros(m: Map<string, number>, tenantId: string, delta: number): void {
  const n = (m.get(tenantId) ?? 0) + delta;
  if (n > 0) m.set(tenantId, n);
  else m.delete(tenantId);
}

/**
 * What this isolate knows about each tenant's buckets: a denial, leased requests and
 * tokens (already taken from the Durable Object), and what it owes back. All of it can
 * only deny early or spend what the Durable Object granted: never admit more.
 */
export class LocalLimits {
  private readonly denied = new Map<string, { untilMs: number; limit: number; fullAtMs: number }>();
  private readonly tokDenied = new Map<string, { atMs: number; avail: Tokens; limit: Tokens; fullAtMs: Tokens; reqRemaining: number; reqLimit: number; reqFullAtMs: number }>();
  private readonly leases = new Map<string, Lease>();
  private readonly owed = new Map<string, GiveBack>();
  private readonly owedMoney = new Map<string, BudgetGive>();
  private readonly budgetDenied = new Map<string, { untilMs: number; result: TakeResult }>();
  /** The budgets as the Durable Object last described them (for "near the budget"). */
  private readonly lastBudget = new Map<string, BudgetResult>();
  private readonly inflight = new Map<string, Promise<TakeResult>>();
  /** Flags of the flushes and money timers running, with when each started. */
  private readonly flushing = new Map<string, number>();
  /** When this isolate last sent each tenant's Durable Object a call (heartbeats). */
  private readonly contacts = new Map<string, number>();
  /** Micro-dollars of each tenant's admitted calls whose settle has not reached the
   *  object yet (admitted here; settled here, still owed; or in a give that failed), and
   *  of those settled here and not yet handed to a send. What the object should charge
   *  if it takes this isolate for dead (moneyReport). */
  private readonly callMoney = new Map<string, number>();
  private readonly owedCallMoney = new Map<string, number>();
  private holderId: string | undefined;
  private reportSeq = 0;
  /** Object calls past their deadline still out, per tenant, and until when to count
   *  them (LATE_CALL_MAX_MS: a call the runtime cut off with its request never settles). */
  private readonly lateOut = new Map<string, { n: number; untilMs: number }>();

  /** This isolate's id as a holder of reservations (budget.ts, "Holders"). Made on first
   *  use: workerd refuses random values at global scope, where a LocalLimits is built. */
  holder(): string {
    return (this.holderId ??= crypto.randomUUID());
  }

  /** A call to the tenant's Durable Object is being sent now. */
  contacted(tenantId: string, nowMs: number): void {
    this.contacts.set(tenantId, nowMs);
  }

  /** A budgeted call was admitted holding `micros` (from the object or a lease). */
  callAdmitted(tenantId: string, micros: number): void {
    if (micros > 0) addMicros(this.callMoney, tenantId, micros);
  }

  /** A give carrying `micros` of settled calls reached the object. A give that fails
   *  leaves them counted: the object then charges them if it takes this isolate for dead
   *  (their cost, unknown to it, is at most that). */
  callsGiven(tenantId: string, micros: number): void {
    if (micros > 0) addMicros(this.callMoney, tenantId, -micros);
  }

  /** The money owed back, to send now, and how much of it releases settled calls (hand
   *  that to callsGiven once the send has reached the object). */
  takeMoneyToSend(tenantId: string): { give: BudgetGive | undefined; calls: number } {
    const calls = this.owedCallMoney.get(tenantId) ?? 0;
    this.owedCallMoney.delete(tenantId);
    return { give: this.takeOwedMoney(tenantId), calls };
  }

  /**
   * What the tenant's object should charge (as spent) of what this isolate holds, should
   * it stop hearing from it (budget.ts, "Holders"): the reservations of its calls not yet
   * settled there, less `sending` (settled by the give this report rides with). -1 (all)
   * while a lease holds money (calls may spend it without a word to the object), and while
   * a call of the object is out for the tenant, also one past its deadline (it may admit a
   * call, or bring a lease, that this report cannot know of yet).
   */
  moneyReport(tenantId: string, nowMs: number, sending = 0): number {
    const l = this.leases.get(tenantId);
    if (l !== undefined && l.money !== undefined && l.micros > 0 && nowMs < l.expiresMs) return -1;
    if (this.inflight.has(tenantId)) return -1;
    const late = this.lateOut.get(tenantId);
    if (late !== undefined) {
      if (nowMs < late.untilMs) return -1;
      this.lateOut.delete(tenantId); // cut off by the runtime: it will never land
    }
    return Math.max(0, (this.callMoney.get(tenantId) ?? 0) - sending);
  }

  /** A money report to send (moneyReport), numbered: the object keeps the one made last,
   *  whatever order reports arrive in (one made before a call that admitted or leased can
   *  arrive after it, and would understate what to charge). */
  report(tenantId: string, nowMs: number, sending = 0): { charge: number; seq: number } {
    return { charge: this.moneyReport(tenantId, nowMs, sending), seq: ++this.reportSeq };
  }

  /** When this isolate last sent the tenant's Durable Object a call (0: never). */
  lastContact(tenantId: string): number {
    return this.contacts.get(tenantId) ?? 0;
  }

  private leaseResult(l: Lease, nowMs: number, want: Tokens | undefined): TakeResult {
    const r: TakeResult = { allowed: true, granted: 1, remaining: l.remaining + l.tokens, limit: l.limit, retryAfterMs: 0, resetMs: Math.max(0, l.fullAtMs - nowMs) };
    if (l.money !== undefined) {
      // What the object had left when it granted the lease, plus what the lease still holds.
      const remaining: BudgetResult["remaining"] = {};
      for (const k of BUDGET_KINDS) if (l.money.remaining[k] !== undefined) remaining[k] = l.money.remaining[k] + Math.max(0, l.micros);
      r.budget = { ...l.money, remaining };
    }
    if (l.tok !== undefined) {
      const t = l.tok;
      r.tokens = {
        granted: want ?? ZERO,
        remaining: { input: t.remaining.input + Math.max(0, Math.floor(l.input)), output: t.remaining.output + Math.max(0, Math.floor(l.output)) },
        limit: t.limit,
        resetMs: { input: Math.max(0, t.fullAtMs.input - nowMs), output: Math.max(0, t.fullAtMs.output - nowMs) },
      };
    }
    return r;
  }

  /** `want`: the call's token reservation (undefined: the tenant has no token limits);
   *  `wantMicros`: its money reservation (undefined: the tenant has no budget). */
  check(tenantId: string, nowMs: number, want?: Tokens, wantMicros?: number): TakeResult | undefined {
    // Leased tokens first: they were deducted already, even if the bucket is empty now.
    const l = this.leases.get(tenantId);
    if (l !== undefined) {
      const fits =
        (want === undefined || (l.input >= want.input && l.output >= want.output)) &&
        (wantMicros === undefined || wantMicros === 0 || (l.money !== undefined && l.micros >= wantMicros));
      if (l.tokens > 0 && nowMs < l.expiresMs && fits) {
        l.tokens--;
        if (want !== undefined) {
          l.input -= want.input;
          l.output -= want.output;
        }
        if (wantMicros !== undefined) l.micros -= wantMicros;
        return this.leaseResult(l, nowMs, want);
      }
      // Expired, used up, or too small for this call: what is left goes back to the
      // Durable Object with the next call (it was deducted there and never spent).
      this.dropLease(tenantId, l);
    }
    const bd = this.budgetDenied.get(tenantId);
    if (bd !== undefined && wantMicros !== undefined && wantMicros > 0) {
      if (nowMs < bd.untilMs) {
        const b = bd.result.budget;
        const short = BUDGET_KINDS.filter((k) => b?.limit[k] !== undefined && (b.remaining[k] ?? 0) < wantMicros);
        if (short.length > 0) return { ...bd.result, budgetLimited: short, retryAfterMs: Math.max(...short.map((k) => (b?.resetAtMs[k] ?? nowMs) - nowMs)) };
      } else this.budgetDenied.delete(tenantId);
    }
    const d = this.denied.get(tenantId);
    if (d !== undefined) {
      if (nowMs < d.untilMs) {
        return { allowed: false, granted: 0, remaining: 0, limit: d.limit, retryAfterMs: d.untilMs - nowMs, resetMs: Math.max(0, d.fullAtMs - nowMs), limited: ["requests"] };
      }
      this.denied.delete(tenantId);
    }
    const td = this.tokDenied.get(tenantId);
    if (td !== undefined && want !== undefined) {
      // The buckets held `avail` at `atMs` and refill at limit/min: a call that cannot
      // fit yet is refused here (this isolate's own refunds clear the memory).
      const limited: LimitName[] = [];
      let wait = 0;
      for (const [side, name] of [["input", "input_tokens"], ["output", "output_tokens"]] as const) {
        const lim = td.limit[side];
        if (!(lim > 0) || want[side] > lim) continue; // a call above the limit goes to the object, which says so
        const have = Math.min(lim, td.avail[side] + ((nowMs - td.atMs) * lim) / 60_000);
        if (have < want[side]) {
          limited.push(name);
          wait = Math.max(wait, Math.ceil(((want[side] - have) * 60_000) / lim));
        }
      }
      if (limited.length > 0) {
        return {
          allowed: false,
          granted: 0,
          remaining: td.reqRemaining,
          limit: td.reqLimit,
          retryAfterMs: wait,
          resetMs: Math.max(0, td.reqFullAtMs - nowMs),
          limited,
          tokens: {
            granted: ZERO,
            remaining: { input: Math.floor(td.avail.input), output: Math.floor(td.avail.output) },
            limit: td.limit,
            resetMs: { input: Math.max(0, td.fullAtMs.input - nowMs), output: Math.max(0, td.fullAtMs.output - nowMs) },
          },
        };
      }
    }
    return undefined;
  }

  /** A lease that can no longer be spent: its unspent requests, tokens and money are owed
   *  back to the Durable Object (they were deducted there and never spent). */
  private dropLease(tenantId: string, l: Lease): void {
    this.owe(tenantId, { requests: Math.max(0, l.tokens), input: Math.max(0, l.input), output: Math.max(0, l.output) });
    if (l.money !== undefined && l.micros > 0) {
      const g: BudgetGive = {};
      for (const k of BUDGET_KINDS) if (l.money.windows[k] !== undefined) g[k] = { start: l.money.windows[k], release: l.micros, spend: 0 };
      this.oweMoney(tenantId, g);
    }
    this.leases.delete(tenantId);
  }

  /** Drops the tenant's lease if it has expired (its unspent part is then owed). */
  expireLease(tenantId: string, nowMs: number): void {
    const l = this.leases.get(tenantId);
    if (l !== undefined && nowMs >= l.expiresMs) this.dropLease(tenantId, l);
  }

  /** Keeps what a Durable Object call returned. `used` requests of it were spent by the
   *  caller (1 for a request, 0 for a top-up), with `want` tokens and `wantMicros` each;
   *  the rest of the grant joins the lease. */
  remember(tenantId: string, nowMs: number, r: TakeResult, leaseMs: number, used = 1, want?: Tokens, wantMicros?: number): void {
    if (!r.allowed && r.budgetLimited !== undefined && r.budgetLimited.length > 0) {
      this.budgetDenied.set(tenantId, { untilMs: nowMs + BUDGET_DENIAL_MS, result: r });
    }
    if (r.allowed) this.budgetDenied.delete(tenantId);
    if (r.budget !== undefined) this.lastBudget.set(tenantId, r.budget);
    if (!r.allowed && r.retryAfterMs > 0) {
      const limited = r.limited ?? ["requests"];
      if (limited.includes("requests")) this.denied.set(tenantId, { untilMs: nowMs + r.retryAfterMs, limit: r.limit, fullAtMs: nowMs + r.resetMs });
      else if (r.tokens !== undefined) {
        this.tokDenied.set(tenantId, {
          atMs: nowMs,
          avail: r.tokens.remaining,
          limit: r.tokens.limit,
          fullAtMs: { input: nowMs + r.tokens.resetMs.input, output: nowMs + r.tokens.resetMs.output },
          reqRemaining: r.remaining,
          reqLimit: r.limit,
          reqFullAtMs: nowMs + r.resetMs,
        });
      }
    }
    if (r.allowed) this.tokDenied.delete(tenantId);
    if (r.allowed && r.granted > used) {
      // An expired lease still held gives its unspent part back before the new one takes
      // its place (check() does the same before asking; a grant that lands late, or a
      // top-up, comes without a check, and replaced it with its money unreturned).
      const old = this.leases.get(tenantId);
      if (old !== undefined && nowMs >= old.expiresMs) this.dropLease(tenantId, old);
      const l = this.leases.get(tenantId);
      const alive = l !== undefined && nowMs < l.expiresMs;
      const gi = (r.tokens?.granted.input ?? 0) - used * (want?.input ?? 0);
      const go = (r.tokens?.granted.output ?? 0) - used * (want?.output ?? 0);
      const gm = (r.budget?.granted ?? 0) - used * (wantMicros ?? 0);
      const t = r.tokens;
      // Money of one window is never spent in the next: the lease ends with the earliest
      // budget window it was granted in (the daily one, when there is one).
      let expiresMs = nowMs + leaseMs;
      for (const k of BUDGET_KINDS) if (r.budget?.resetAtMs[k] !== undefined) expiresMs = Math.min(expiresMs, r.budget.resetAtMs[k]);
      if (alive && ((l.money === undefined) !== (r.budget === undefined) || (l.money !== undefined && r.budget !== undefined && BUDGET_KINDS.some((k) => l.money!.windows[k] !== r.budget!.windows[k])))) {
        // The old lease's money belongs to another window, or only one of the two holds
        // money (a budgeted tenant's GET /v1/models asks without a budget): give the old
        // one back, keep the new. Merged, a lease without `money` kept the old micros
        // with nothing to give them back by, and they stayed reserved in the object until
        // the window ended.
        this.dropLease(tenantId, l);
        this.remember(tenantId, nowMs, r, leaseMs, used, want, wantMicros);
        return;
      }
      this.leases.set(tenantId, {
        tokens: (alive ? l.tokens : 0) + r.granted - used,
        input: (alive ? l.input : 0) + gi,
        output: (alive ? l.output : 0) + go,
        micros: (alive ? l.micros : 0) + gm,
        money: r.budget,
        moneyUnit: wantMicros,
        expiresMs,
        limit: r.limit,
        remaining: r.remaining,
        size: r.granted - 1,
        fullAtMs: nowMs + r.resetMs,
        unit: want,
        tok: t === undefined ? undefined : { limit: t.limit, remaining: t.remaining, fullAtMs: { input: nowMs + t.resetMs.input, output: nowMs + t.resetMs.output } },
      });
    }
  }

  /** A remembered request denial (peek: spends nothing): ms until it ends, or undefined. */
  deniedFor(id: string, nowMs: number): number | undefined {
    const d = this.denied.get(id);
    if (d === undefined || nowMs >= d.untilMs) return undefined;
    return d.untilMs - nowMs;
  }

  /** Money owed back to the Durable Object (settled calls, unspent leases), per window. */
  oweMoney(tenantId: string, g: BudgetGive | undefined): void {
    const next = addGive(this.owedMoney.get(tenantId), g);
    if (next !== undefined) this.owedMoney.set(tenantId, next);
  }

  /** Whether money is owed back to the tenant's Durable Object (not yet handed to a flush). */
  owesMoney(tenantId: string): boolean {
    return this.owedMoney.has(tenantId);
  }

  takeOwedMoney(tenantId: string): BudgetGive | undefined {
    const g = this.owedMoney.get(tenantId);
    this.owedMoney.delete(tenantId);
    return g;
  }

  /** A settled call's money: its reservation released and its actual cost spent, in the
   *  windows it was reserved in. Always owed to the Durable Object (never spent from a
   *  lease, so the object's `spent` stays the sum of actual costs, but for what an
   *  expiry charges: budget.ts "Holders"); a refund clears a remembered budget refusal.
   *  Its reservation stays in this isolate's money report until the give lands. */
  settleMoney(tenantId: string, windows: Partial<Record<BudgetKind, number>>, reserved: number, actual: number): void {
    const g: BudgetGive = {};
    for (const k of BUDGET_KINDS) if (windows[k] !== undefined) g[k] = { start: windows[k], release: reserved, spend: actual };
    this.oweMoney(tenantId, g);
    if (reserved > 0) addMicros(this.owedCallMoney, tenantId, reserved);
    // A refund frees money; any settle turns a reservation into spent money, which
    // changes a refusal remembered as "held by calls in flight" (it may now be exhausted).
    if (actual < reserved || this.budgetDenied.get(tenantId)?.result.budgetHeld === true) this.budgetDenied.delete(tenantId);
  }

  /** Whether the tenant had less than 20% of a budget left when the Durable Object last
   *  said (its calls are then estimated from count_tokens), and the least any budget had
   *  left. Unknown: not near. */
  budgetNear(tenantId: string): { near: boolean; left: number } {
    const b = this.lastBudget.get(tenantId);
    if (b === undefined) return { near: false, left: Number.POSITIVE_INFINITY };
    const kinds = BUDGET_KINDS.filter((k) => b.limit[k] !== undefined);
    return {
      near: kinds.some((k) => (b.remaining[k] ?? 0) * BUDGET_NEAR_SHARE < b.limit[k]!),
      left: Math.min(...kinds.map((k) => b.remaining[k] ?? 0)),
    };
  }

  /** The money reservation the current lease was sized for (what a top-up asks for). */
  leaseMoneyUnit(tenantId: string): number | undefined {
    return this.leases.get(tenantId)?.moneyUnit;
  }

  /** When the tenant's lease expires, if it holds money (undefined: no such lease). */
  moneyLeaseExpiry(tenantId: string): number | undefined {
    const l = this.leases.get(tenantId);
    return l !== undefined && l.micros > 0 ? l.expiresMs : undefined;
  }

  owe(tenantId: string, g: GiveBack): void {
    if (g.requests === 0 && g.input === 0 && g.output === 0) return;
    const o = this.owed.get(tenantId);
    if (o === undefined) this.owed.set(tenantId, { ...g });
    else {
      o.requests += g.requests;
      o.input += g.input;
      o.output += g.output;
    }
  }

  /** What this isolate owes the Durable Object, handed over (and forgotten) for a call. */
  takeOwed(tenantId: string): GiveBack {
    const o = this.owed.get(tenantId);
    this.owed.delete(tenantId);
    return o ?? { requests: 0, input: 0, output: 0 };
  }

  hasOwed(tenantId: string): boolean {
    return this.owed.has(tenantId);
  }

  /** A settled call's difference (reserved - used; negative: it used more). A refund
   *  joins a live lease (spent here, no Durable Object call); anything else is owed.
   *  Returns whether tokens are owed now. */
  settle(tenantId: string, nowMs: number, delta: Tokens): boolean {
    const l = this.leases.get(tenantId);
    const alive = l !== undefined && nowMs < l.expiresMs && l.tok !== undefined;
    let rest = { requests: 0, input: delta.input, output: delta.output };
    if (alive) {
      if (delta.input > 0) {
        l.input += delta.input;
        rest.input = 0;
      }
      if (delta.output > 0) {
        l.output += delta.output;
        rest.output = 0;
      }
    }
    this.owe(tenantId, rest);
    // Our own refund makes the remembered availability stale (too low): forget it.
    if (delta.input > 0 || delta.output > 0) this.tokDenied.delete(tenantId);
    const o = this.owed.get(tenantId);
    return o !== undefined && (o.input !== 0 || o.output !== 0);
  }

  /** Starts a flush unless one runs (the flush takes the owed tokens when it sends):
   *  the flag to hand back to endFlush, or undefined. */
  startFlush(key: string): number | undefined {
    const since = this.flushing.get(key);
    // A flag older than any ctx.waitUntil can run is stale: the runtime cut its flush off
    // before its `finally` released it. Held for good, no flush of the tenant would run
    // again in this isolate.
    if (since !== undefined && Date.now() - since < STALE_FLUSH_MS) return undefined;
    const flag = Math.max(Date.now(), (since ?? 0) + 1);
    this.flushing.set(key, flag);
    return flag;
  }

  /** Releases a flush's flag, unless a later flush took it over as stale. */
  endFlush(key: string, flag: number): void {
    if (this.flushing.get(key) === flag) this.flushing.delete(key);
  }

  /** The lease a top-up asks for: the isolate spent three quarters of its lease within its
   *  lifetime, so it may ask for twice as much (the Durable Object still caps it at 1/16
   *  of the bucket and half a second of the rate). Fewer Durable Object calls for a busy
   *  tenant; an isolate that does not spend its lease never gets past MAX_LEASE. */
  topUpCap(tenantId: string): number {
    const l = this.leases.get(tenantId);
    return Math.min(MAX_TOPUP_LEASE, Math.max(MAX_LEASE, 2 * (l?.size ?? 0)));
  }

  /** The reservation the current lease was sized for (what a top-up asks for). */
  leaseUnit(tenantId: string): Tokens | undefined {
    return this.leases.get(tenantId)?.unit;
  }

  /** Whether the lease is down to its last quarter with no call in flight: time to top up. */
  wantsTopUp(tenantId: string, nowMs: number): boolean {
    const l = this.leases.get(tenantId);
    return l !== undefined && nowMs < l.expiresMs && l.tokens * 4 <= l.size && !this.inflight.has(tenantId);
  }

  /**
   * One Durable Object call at a time per tenant per isolate; concurrent requests wait for
   * it, then try the (possibly new) lease before asking again.
   * Nobody waits past `deadlineMs` (what is left of the caller's LIMITER_DEADLINE_MS): past
   * it, the wait throws and the caller's fail mode answers (RATE_LIMIT_FAIL_MODE,
   * BUDGET_FAIL_MODE), as for an object that cannot be reached. Without it, an object that
   * does not answer held every call of the tenant in the isolate for as long as it did,
   * and no fail mode applied.
   * A call past its deadline stops being the tenant's call in flight (the next caller asks
   * afresh: a call the runtime cancelled with its request never settles, and waiting on it
   * would fail every later call of the tenant in this isolate), and is handed to
   * `background` (ctx.waitUntil), since workerd cancels a subrequest its request no longer
   * awaits: if it answers, `late` receives what it granted, which was deducted in the
   * object and must not be lost.
   */
  async ask(
    tenantId: string,
    call: () => Promise<TakeResult>,
    late?: (r: TakeResult) => void,
    deadlineMs = LIMITER_DEADLINE_MS,
    background?: (p: Promise<unknown>) => void,
  ): Promise<{ result: TakeResult; own: boolean }> {
    if (deadlineMs <= 0) throw new LimiterDeadline();
    const pending = this.inflight.get(tenantId);
    if (pending !== undefined) {
      if ((await within(pending.catch(() => undefined), deadlineMs)) === DEADLINE) throw new LimiterDeadline();
      return { result: undefined as unknown as TakeResult, own: false };
    }
    const p = call();
    this.inflight.set(tenantId, p);
    const done = () => {
      if (this.inflight.get(tenantId) === p) this.inflight.delete(tenantId);
    };
    p.then(done, done);
    const r = await within(p, deadlineMs);
    if (r === DEADLINE) {
      done();
      // Out still, and no longer in `inflight`: the money report says "all" until it
      // lands (its grant may admit a call, or become a lease calls spend unreported).
      let out = this.lateOut.get(tenantId);
      if (out === undefined) this.lateOut.set(tenantId, (out = { n: 0, untilMs: 0 }));
      out.n++;
      out.untilMs = Date.now() + LATE_CALL_MAX_MS;
      const mine = out;
      const kept = p
        .then((x) => late?.(x), () => {})
        .finally(() => {
          // Only the entry it joined (one dropped as too old, then made anew, is another's).
          if (this.lateOut.get(tenantId) === mine && --mine.n <= 0) this.lateOut.delete(tenantId);
        });
      background?.(kept);
      throw new LimiterDeadline();
    }
    return { result: r, own: true };
  }
}

function limitMessage(r: TakeResult): string {
  const limited = r.limited ?? ["requests"];
  const t = r.tokens;
  const parts = limited.map((n) =>
    n === "requests"
      ? `requests (${r.limit} at once)`
      : n === "input_tokens"
        ? `input tokens per minute (${t?.limit.input ?? "?"})`
        : `output tokens per minute (${t?.limit.output ?? "?"})`,
  );
  if (r.impossible) {
    return `this request's token reservation exceeds this API key's limit of ${parts.join(" and ")}: it can never be admitted; lower max_tokens or the prompt`;
  }
  return `rate limit exceeded for this API key: ${parts.join(" and ")}`;
}

export async function rateLimit(
  tenantId: string,
  /** The Durable Object call; `leaseCap` bounds the lease it hands out; `ask` carries
   *  the token side (and what this isolate gives back). */
  call: (leaseCap: number, ask?: TokenAsk) => Promise<TakeResult>,
  local: LocalLimits,
  nowMs: () => number,
  failOpen: boolean,
  leaseMs: number,
  /** Runs a lease top-up without holding this request up (ctx.waitUntil). */
  background?: (p: Promise<unknown>) => void,
  /** The tenant's token limits and this call's reservation; absent: requests only. */
  tokens?: TokenRequest,
  /** Called whenever this isolate takes a lease holding money (so that its unspent part is
   *  sure to go back: flushMoneyLater). */
  onMoneyLease?: () => void,
  /** Keeps an object call past its deadline alive (ctx.waitUntil); default `background`.
   *  Given alone (no `background`: the auth-failure counter), it does that and no top-ups. */
  keepAlive: ((p: Promise<unknown>) => void) | undefined = background,
): Promise<RateVerdict> {
  const want = tokens?.want;
  const money = tokens?.budget;
  // With no token limits, a call carries a TokenAsk only to give back unspent requests.
  // `admits`: the call asks for a call of this request (not a top-up). Money owed back
  // rides on it, with this isolate's money report (LocalLimits.moneyReport); the settled
  // calls that money releases leave the report once the call has reached the object.
  const send = (cap: number, w: Tokens | undefined, m: number | undefined, admits: boolean): Promise<TakeResult> => {
    let ask: TokenAsk | undefined;
    let calls = 0;
    if (tokens !== undefined) {
      ask = { limits: tokens.limits, want: w ?? ZERO, give: local.takeOwed(tenantId) };
      if (money !== undefined) {
        // A give for an ended window is dropped there.
        const sent = local.takeMoneyToSend(tenantId);
        calls = sent.calls;
        ask.budget = {
          limits: money.limits,
          want: m ?? 0,
          holder: local.holder(),
          ...local.report(tenantId, nowMs(), calls),
          admits,
          ...(sent.give !== undefined ? { give: sent.give } : {}),
        };
      }
    } else if (local.hasOwed(tenantId)) {
      const give = local.takeOwed(tenantId);
      ask = { limits: { inputPerMinute: 0, outputPerMinute: 0 }, want: ZERO, give: { requests: give.requests, input: 0, output: 0 } };
    }
    const p = call(cap, ask);
    return calls > 0
      ? p.then((r) => {
          local.callsGiven(tenantId, calls);
          return r;
        })
      : p;
  };
  /** A grant no call of this request spends (a top-up's, or one that came past the
   *  deadline): all of it becomes the isolate's lease, sized for `unit` and `moneyUnit`. */
  const keepGrant = (got: TakeResult, unit: Tokens | undefined, moneyUnit: number | undefined) => {
    local.remember(tenantId, nowMs(), got, leaseMs, 0, unit, moneyUnit);
    if (got.allowed && (got.budget?.granted ?? 0) > 0) onMoneyLease?.();
  };
  let r: TakeResult | undefined;
  // One deadline for the whole call: a call that waits on one object call and then on the
  // next (a tenant without a lease) waits no longer in all.
  const deadline = nowMs() + LIMITER_DEADLINE_MS;
  for (;;) {
    r = local.check(tenantId, nowMs(), want, money?.want);
    if (r !== undefined) break;
    let asked: { result: TakeResult; own: boolean };
    try {
      asked = await local.ask(
        tenantId,
        () => send(MAX_LEASE, want, money?.want, true),
        // Answered past the deadline: this call did not wait for it (it was answered by the
        // fail mode), so all it granted becomes the isolate's lease, spent by the next
        // calls or given back when it expires.
        (late) => keepGrant(late, want, money?.want),
        deadline - nowMs(),
        keepAlive,
      );
    } catch {
      if (failOpen) return { ok: true, headers: {}, failedOpen: true, reserved: ZERO };
      return { ok: false, status: 503, headers: { "retry-after": "1" }, message: "rate limiter unavailable; try again shortly" };
    }
    if (!asked.own) continue; // another request's call finished: look at what it left
    r = asked.result;
    local.remember(tenantId, nowMs(), r, leaseMs, 1, want, money?.want);
    if (r.allowed && r.budget !== undefined && money !== undefined && r.budget.granted > money.want) {
      onMoneyLease?.();
      // The lease's money is the tenant's still: count it as remaining in the headers.
      const extra = r.budget.granted - money.want;
      const remaining: BudgetResult["remaining"] = {};
      for (const k of BUDGET_KINDS) if (r.budget.remaining[k] !== undefined) remaining[k] = r.budget.remaining[k] + extra;
      r = { ...r, budget: { ...r.budget, remaining } };
    }
    break;
  }
  // The call's money joins this isolate's money report before anything else is sent (a
  // top-up's report must count it).
  if (r.allowed && money !== undefined) local.callAdmitted(tenantId, money.want);
  if (r.allowed && background !== undefined && local.wantsTopUp(tenantId, nowMs())) {
    // Every token of the top-up is deducted in the Durable Object before it is spent
    // here; a failed or refused top-up only means the next call asks for itself.
    const cap = local.topUpCap(tenantId);
    const unit = tokens !== undefined ? (local.leaseUnit(tenantId) ?? want) : undefined;
    const moneyUnit = money !== undefined ? (local.leaseMoneyUnit(tenantId) ?? money.want) : undefined;
    background(
      local
        .ask(tenantId, () => send(cap, unit, moneyUnit, false), (late) => keepGrant(late, unit, moneyUnit), LIMITER_DEADLINE_MS, background)
        .then(
          (a) => {
            if (a.own) keepGrant(a.result, unit, moneyUnit);
          },
          () => {},
        ),
    );
  }
  const headers = rateHeaders(r, nowMs(), money?.want);
  if (r.allowed) {
    const verdict: RateVerdict = { ok: true, headers, failedOpen: false, reserved: tokens !== undefined ? { ...tokens.want } : ZERO };
    if (money !== undefined) verdict.money = { micros: money.want, windows: r.budget?.windows ?? {} };
    return verdict;
  }
  if (r.budgetLimited !== undefined && r.budgetLimited.length > 0) return budgetRefusal(r, money?.want ?? 0, nowMs());
  const limited = r.limited ?? ["requests"];
  headers["retry-after"] = String(Math.max(1, Math.ceil(r.retryAfterMs / 1000)));
  headers["edgefleet-ratelimit-exceeded"] = limited.join(", ");
  // Waiting cannot admit a call larger than the limit: tell the SDKs not to retry
  // (they obey x-should-retry before their own rules: @anthropic-ai/sdk client.js).
  if (r.impossible) headers["x-should-retry"] = "false";
  return { ok: false, status: 429, headers, message: limitMessage(r), limited };
}

/**
 * Settles a finished call: `reserved - used` goes back to this isolate's live lease, or
 * to the Durable Object in the background (`flush`, through ctx.waitUntil). One flush at
 * a time per tenant per isolate; what is owed meanwhile rides on the next one (or on the
 * next admission call).
 */
export function settleTokens(
  tenantId: string,
  local: LocalLimits,
  nowMs: number,
  reserved: Tokens,
  used: Tokens,
  flush: (give: Tokens) => Promise<void>,
  background: (p: Promise<unknown>) => void,
): void {
  const delta = { input: reserved.input - used.input, output: reserved.output - used.output };
  if (delta.input === 0 && delta.output === 0) return;
  if (!local.settle(tenantId, nowMs, delta)) return;
  const flag = local.startFlush(tenantId);
  if (flag === undefined) return;
  background(
    (async () => {
      try {
        for (let i = 0; i < 100; i++) {
          const owed = local.takeOwed(tenantId);
          // Requests owed stay owed: they ride on the next admission call.
          if (owed.requests !== 0) local.owe(tenantId, { requests: owed.requests, input: 0, output: 0 });
          if (owed.input === 0 && owed.output === 0) break;
          await sendGive(flush, { input: owed.input, output: owed.output });
        }
      } finally {
        local.endFlush(tenantId, flag);
      }
    })(),
  );
}

/**
 * An exhausted budget: 402 with Anthropic's `billing_error` (docs/llm-proxy.md, "Spend
 * budgets", says why not 429), naming the budget, its size and when it starts afresh.
 * `x-should-retry: false` (the SDKs obey it first) and `retry-after` until the window's end.
 */
function budgetRefusal(r: TakeResult, wantMicros: number, nowMs: number): RateVerdict {
  const kinds = r.budgetLimited ?? [];
  const b = r.budget;
  const usd = (m: number) => `$${dollars(m)}`;
  const names = kinds.map((k) => `${k} budget (${b?.limit[k] !== undefined ? usd(b.limit[k]) : "?"}, resets ${rfc3339(b?.resetAtMs[k] ?? budgetWindow(k, nowMs).end)})`);
  const never = kinds.filter((k) => b?.limit[k] !== undefined && wantMicros > b.limit[k]);
  const left = Math.min(...kinds.map((k) => b?.remaining[k] ?? 0));
  // Not spent: held by the reservations of calls in flight (each reserves an upper bound
  // of its cost, settled to what it cost when it ends). Waiting a moment can admit it, so
  // a short retry-after and no x-should-retry: false (the SDKs retry it).
  const held = never.length === 0 && r.budgetHeld === true;
  const headers: Record<string, string> = b !== undefined ? budgetHeaders(b, wantMicros) : {};
  const resetAt = Math.max(...kinds.map((k) => b?.resetAtMs[k] ?? budgetWindow(k, nowMs).end));
  headers["edgefleet-budget-exceeded"] = kinds.join(", ");
  headers["retry-after"] = String(held ? BUDGET_HELD_RETRY_S : Math.max(1, Math.ceil((resetAt - nowMs) / 1000)));
  if (held) {
    const message = `this API key's ${names.join(" and ")} is held by the reservations of calls in flight (this call reserves ${usd(wantMicros)}, from its prompt size and max_tokens; ${usd(left)} is free): retry shortly`;
    return { ok: false, status: 402, headers, message, budget: kinds, left, held: true };
  }
  headers["x-should-retry"] = "false";
  const message =
    never.length > 0
      ? `this request's cost reservation (${usd(wantMicros)}, from its prompt size and max_tokens) exceeds this API key's ${names.join(" and ")}: it can never be admitted; lower max_tokens or the prompt`
      : `this API key's ${names.join(" and ")} is exhausted`;
  return { ok: false, status: 402, headers, message, budget: kinds, left };
}

/** The longest a money timer keeps following a lease that busy calls keep topping up
 *  (well inside the 30 s ctx.waitUntil allows after a response); the next call starts a
 *  new one. */
export const MONEY_TIMER_MAX_MS = 20_000;

/**
 * Money owed back to the Durable Object rides on the tenant's next call from this
 * isolate; so that it never waits for one that does not come, this flushes it after
 * `delayMs`, in the background (ctx.waitUntil), and then follows the isolate's lease
 * until it expires, to give back its unspent money. One timer per tenant per isolate; a
 * busy tenant's gives mostly ride on its calls and the timer finds little to send. A
 * failed flush is not retried: sent twice, a release could free money twice; lost, it
 * only makes the budget refuse early.
 */
export function flushMoneyLater(
  tenantId: string,
  local: LocalLimits,
  delayMs: number,
  nowMs: () => number,
  /** Sends a give with this isolate's money report (LocalLimits.report). */
  flush: (give: BudgetGive, report: { charge: number; seq: number }) => Promise<void>,
  background: (p: Promise<unknown>) => void,
): void {
  // One money timer per tenant per isolate (apart from the token flush's flag).
  const key = "budget:" + tenantId;
  const flag = local.startFlush(key);
  if (flag === undefined) return;
  const started = nowMs();
  background(
    (async () => {
      try {
        let wait = delayMs;
        for (;;) {
          await new Promise((r) => setTimeout(r, wait));
          local.expireLease(tenantId, nowMs());
          // A settle that comes while a flush is on its way finds the flag held and leaves
          // its money owed: drain until nothing is owed, so no give waits for a call (or a
          // month's window) that may not come. No await between the last check and the
          // flag's release below.
          const drain = async () => {
            for (let sent = local.takeMoneyToSend(tenantId); sent.give !== undefined; sent = local.takeMoneyToSend(tenantId)) {
              const { give, calls } = sent;
              // The calls it settles leave the money report once it has landed (also past the
              // deadline: in the background, where the flush is kept alive).
              await sendGive((g: BudgetGive) => flush(g, local.report(tenantId, nowMs(), calls)), give, () => local.callsGiven(tenantId, calls));
            }
          };
          await drain();
          const until = local.moneyLeaseExpiry(tenantId);
          if (until === undefined) break;
          wait = Math.max(10, until - nowMs() + 10);
          if (nowMs() + wait - started > MONEY_TIMER_MAX_MS) {
            // Out of time to follow a lease that busy calls keep topping up: give it back
            // now, with what a top-up landing meanwhile granted. Left alive, nobody would
            // return its money if the tenant's calls stopped before it expired: a settle
            // then finds this timer's flag held, and the money stayed reserved in the
            // object until this isolate served the tenant again, or the window ended.
            for (let i = 0; i < 4 && local.moneyLeaseExpiry(tenantId) !== undefined; i++) {
              local.expireLease(tenantId, Number.POSITIVE_INFINITY);
              await drain();
            }
            break;
          }
        }
      } finally {
        local.endFlush(key, flag);
      }
    })(),
  );
}
