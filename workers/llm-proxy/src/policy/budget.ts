// Spend budgets per tenant (issue 16.2): a daily and/or a monthly budget in integer
// micro-dollars, over fixed UTC windows, held in the tenant's RateLimiter Durable Object
// next to its request and token buckets. Pure: the object's arithmetic (admit, give
// back, roll a window over), the reservation's upper bound and the settled cost, so all
// of it is unit-tested on a test clock. The cost is computed by workers/shared/cost.ts,
// the same costMicros/tokensOf the usage ledger uses, so a budget and the ledger agree
// to the micro-dollar on every completed call.
import { costBoundMicros, costMicros, lookupPrice, tokensOf, type PriceTable } from "../../../shared/cost.ts";
import type { Usage } from "../usage.ts";

export type BudgetKind = "daily" | "monthly";
export const BUDGET_KINDS: readonly BudgetKind[] = ["daily", "monthly"];

/** Whether a stored kind is a budget's (the object's rows name it as text). */
export function isBudgetKind(k: string): k is BudgetKind {
  return k === "daily" || k === "monthly";
}

/** A tenant's budgets in micro-dollars; 0 = no budget of that kind. */
export interface BudgetLimits {
  dailyMicros: number;
  monthlyMicros: number;
}

export const NO_BUDGET: BudgetLimits = { dailyMicros: 0, monthlyMicros: 0 };

export function hasBudget(l: BudgetLimits): boolean {
  return l.dailyMicros > 0 || l.monthlyMicros > 0;
}

export function budgetOf(l: BudgetLimits, kind: BudgetKind): number {
  return kind === "daily" ? l.dailyMicros : l.monthlyMicros;
}

/** The fixed UTC window holding `nowMs`: [start, end). */
export function budgetWindow(kind: BudgetKind, nowMs: number): { start: number; end: number } {
  const d = new Date(nowMs);
  const y = d.getUTCFullYear();
  const m = d.getUTCMonth();
  if (kind === "daily") {
    const start = Date.UTC(y, m, d.getUTCDate());
    return { start, end: Date.UTC(y, m, d.getUTCDate() + 1) };
  }
  return { start: Date.UTC(y, m, 1), end: Date.UTC(y, m + 1, 1) };
}

/** A window's state in the Durable Object: what settled calls cost (`spent`) and what
 *  admitted calls and leases hold (`reserved`), both in micro-dollars. */
export interface BudgetRow {
  start: number;
  spent: number;
  reserved: number;
}

export type BudgetRows = Partial<Record<BudgetKind, BudgetRow>>;

/** Money handed back for one window: `release` leaves `reserved`, `spend` joins `spent`
 *  (a settle releases the call's reservation and spends its actual cost; an unspent
 *  lease only releases). Tagged with the window it was reserved in: a give for a window
 *  that has ended is dropped (that window is closed; the new one never held it). */
export interface WindowGive {
  start: number;
  release: number;
  spend: number;
}

export type BudgetGive = Partial<Record<BudgetKind, WindowGive>>;

/** Adds `b` to `a` per window; of two gives for different windows of one kind, the
 *  later window's is kept (the earlier window has ended: its give is moot). */
export function addGive(a: BudgetGive | undefined, b: BudgetGive | undefined): BudgetGive | undefined {
  if (b === undefined) return a;
  if (a === undefined) return cloneGive(b);
  const out = cloneGive(a)!;
  for (const k of BUDGET_KINDS) {
    const x = b[k];
    if (x === undefined) continue;
    const y = out[k];
    if (y === undefined || x.start > y.start) out[k] = { ...x };
    else if (x.start === y.start) out[k] = { start: y.start, release: y.release + x.release, spend: y.spend + x.spend };
  }
  return out;
}

function cloneGive(g: BudgetGive | undefined): BudgetGive | undefined {
  if (g === undefined) return undefined;
  const out: BudgetGive = {};
  for (const k of BUDGET_KINDS) if (g[k] !== undefined) out[k] = { ...g[k] };
  return out;
}

/** The give of `micros` released and `spend` spent in the windows a reservation was made in. */
export function giveFor(windows: Partial<Record<BudgetKind, number>>, release: number, spend: number): BudgetGive | undefined {
  let out: BudgetGive | undefined;
  for (const k of BUDGET_KINDS) {
    const start = windows[k];
    if (start !== undefined && (release !== 0 || spend !== 0)) (out ??= {})[k] = { start, release, spend };
  }
  return out;
}

export interface BudgetAsk {
  limits: BudgetLimits;
  /** This call's reservation in micro-dollars (an upper bound of its cost; 0 for a call
   *  that costs nothing, such as count_tokens, which no budget refuses). */
  want: number;
  give?: BudgetGive;
  /** Whose reservation this is and whose money `give` releases: the asking isolate's id
   *  (LocalLimits.holder). Absent: LEGACY_HOLDER. */
  holder?: string;
  /** What the object charges of the holder's holding should it stop hearing from it,
   *  as of before this call: LocalLimits.moneyReport (-1: all of it). Absent: all. */
  charge?: number;
  /** The report's number (LocalLimits.report): one older than the object's last is ignored. */
  seq?: number;
  /** The call asks for a call the isolate admits now (not a lease top-up): its own
   *  reservation joins what is charged. */
  admits?: boolean;
}

/** What the Durable Object answers about the budgets of a call. */
export interface BudgetResult {
  /** Micro-dollars reserved by this call: its own reservation plus the lease's. */
  granted: number;
  /** The windows reserved in (their starts): a settle gives back into these. */
  windows: Partial<Record<BudgetKind, number>>;
  /** Left after this call's reservation (never below 0 here). */
  remaining: Partial<Record<BudgetKind, number>>;
  limit: Partial<Record<BudgetKind, number>>;
  /** When each window ends (ms since the epoch): its budget starts afresh. */
  resetAtMs: Partial<Record<BudgetKind, number>>;
}

/** Rolls each budgeted window over to the current one and applies what is given back
 *  (refunds, actual costs, unspent leases) to the window it belongs to. Kinds without a
 *  budget are left as they are. */
export function applyGive(prev: BudgetRows, nowMs: number, limits: BudgetLimits, give: BudgetGive | undefined): BudgetRows {
  const out: BudgetRows = { ...prev };
  for (const k of BUDGET_KINDS) {
    const b = budgetOf(limits, k);
    if (!(b > 0)) continue;
    const { start } = budgetWindow(k, nowMs);
    const row = prev[k] !== undefined && prev[k].start === start ? { ...prev[k] } : { start, spent: 0, reserved: 0 };
    const g = give?.[k];
    if (g !== undefined && g.start === start) {
      row.reserved = Math.max(0, row.reserved - g.release);
      row.spent += g.spend;
    }
    out[k] = row;
  }
  return out;
}

// ---- Holders: whose money is reserved ----
//
// The object records what each isolate (a holder, by a random id it makes once) holds
// reserved in each window, what of it to charge should the isolate fall silent (its last
// money report: its calls' reservations, or all while it holds a live lease), and when it
// last heard from it. An isolate that dies holding a lease or an unsettled call (evicted,
// crashed, its request cancelled by a client that hung up) never gives that money back;
// once the object has not heard from a holder for BUDGET_HOLD_TTL_MS, its calls' money is
// charged (they may have been billed) and the rest freed. A live isolate with a call in
// flight is heard from within two fifths of that time (tokens.ts), so only a dead one,
// or one cut off from the object for the whole time, is expired (docs/llm-proxy.md,
// "Reservations of an isolate that is gone").

/** The holder of reservations made without an id (isolates of an earlier version, and
 *  what an object held before it recorded holders). */
export const LEGACY_HOLDER = "legacy";

/** A holder id as the object keeps it: LEGACY_HOLDER for none, or one it cannot store. */
export function holderOf(id: unknown): string {
  return typeof id === "string" && /^[A-Za-z0-9-]{1,64}$/.test(id) ? id : LEGACY_HOLDER;
}

/** What one holder holds reserved, per budget window. */
export type Holding = Partial<Record<BudgetKind, { start: number; reserved: number }>>;

/** A holder's give with each release capped at what that holder holds in the window: a
 *  release never frees money another isolate holds (a settle arriving after its holder's
 *  reservations expired, or one sent twice). Spends are kept whole. */
export function capGive(give: BudgetGive | undefined, held: Holding): BudgetGive | undefined {
  if (give === undefined) return undefined;
  const out: BudgetGive = {};
  for (const k of BUDGET_KINDS) {
    const g = give[k];
    if (g === undefined) continue;
    const h = held[k];
    const have = h !== undefined && h.start === g.start ? h.reserved : 0;
    out[k] = { start: g.start, release: Math.min(Math.max(0, g.release), have), spend: g.spend };
  }
  return out;
}

/** The holder's holding after a call of the object: in each budgeted window of `rows`
 *  (the budgets after the call), what it held there, less what its (capped) `give`
 *  released, plus `granted` in the windows the grant was reserved in. A kind without a
 *  budget now is left as it was (applyGive leaves its row alone too, so the two agree
 *  should the budget come back). */
export function holdingAfter(held: Holding, rows: BudgetRows, limits: BudgetLimits, give: BudgetGive | undefined, granted: number, windows: Partial<Record<BudgetKind, number>>): Holding {
  const out: Holding = {};
  for (const k of BUDGET_KINDS) {
    const row = rows[k];
    if (!(budgetOf(limits, k) > 0) || row === undefined) continue;
    const h = held[k];
    let r = h !== undefined && h.start === row.start ? h.reserved : 0;
    const g = give?.[k];
    if (g !== undefined && g.start === row.start) r -= g.release;
    if (windows[k] === row.start) r += granted;
    out[k] = { start: row.start, reserved: Math.max(0, r) };
  }
  return out;
}

/** What a holder gone silent held leaves `reserved` of its window, and what its last
 *  report said its calls held (`charge`; -1 or absent: all it held) joins `spent`: a call
 *  that got no answer is charged its whole reservation, the most the upstream can have
 *  billed, and a dead isolate's calls may have been billed. Only a lease's unspent money
 *  is freed. A holding of an ended window is moot: that window's row is gone or replaced. */
export function expireHoldings(rows: BudgetRows, gone: ReadonlyArray<{ kind: BudgetKind; start: number; reserved: number; charge: number }>): BudgetRows {
  const out: BudgetRows = { ...rows };
  for (const g of gone) {
    const row = out[g.kind];
    if (row === undefined || row.start !== g.start || !(g.reserved > 0)) continue;
    const held = Math.min(g.reserved, row.reserved);
    const charged = g.charge < 0 ? held : Math.min(Math.max(0, g.charge), held);
    out[g.kind] = { ...row, reserved: row.reserved - held, spent: row.spent + charged };
  }
  return out;
}

/** The charge to record for a holder after a call of the object: what its report said
 *  (-1, absent, or negative: all), plus this call's own reservation when it admitted a
 *  call; all of it when the object just leased it money (`leased`). */
export function chargeAfter(report: number | undefined, admitted: number, leased: boolean): number {
  if (report === undefined || !(report >= 0) || leased) return -1;
  return report + admitted;
}

export interface BudgetCheck {
  rows: BudgetRows;
  limited: BudgetKind[];
  /** The reservation exceeds a whole budget: no window can ever admit it. */
  impossible: boolean;
  /** Every limiting window would admit the call once the reservations of calls in flight
   *  are settled (`spent + want <= budget`): the budget is held, not spent. */
  held: boolean;
  /** ms until the latest limiting window ends (when waiting can help). */
  waitMs: number;
  /** How many more reservations of `want` a lease may take (Infinity: no bound here). */
  leaseMax: number;
  nowMs: number;
  limits: BudgetLimits;
  want: number;
}

/** A lease takes at most this share of what a window has left... */
export const BUDGET_LEASE_SHARE = 16;
/** ...and none once a window has less than this share of its budget left (the last 20%:
 *  every call then goes to the Durable Object, estimated from count_tokens). */
export const BUDGET_NEAR_SHARE = 5;

/** Admission of a call's reservation: `spent + reserved + want <= budget` in every
 *  budgeted window, after what is given back. */
export function checkBudget(prev: BudgetRows, nowMs: number, ask: BudgetAsk): BudgetCheck {
  const want = Math.max(0, Math.ceil(ask.want));
  const rows = applyGive(prev, nowMs, ask.limits, ask.give);
  const limited: BudgetKind[] = [];
  let impossible = false;
  let held = true;
  let waitMs = 0;
  let leaseMax = Number.POSITIVE_INFINITY;
  for (const k of BUDGET_KINDS) {
    const b = budgetOf(ask.limits, k);
    const row = rows[k];
    if (!(b > 0) || row === undefined) continue;
    const avail = b - row.spent - row.reserved;
    if (want > 0 && avail < want) {
      limited.push(k);
      if (want > b) impossible = true;
      if (row.spent + want > b) held = false;
      waitMs = Math.max(waitMs, budgetWindow(k, nowMs).end - nowMs);
    }
    const after = avail - want;
    if (want > 0) leaseMax = Math.min(leaseMax, after * BUDGET_NEAR_SHARE < b ? 0 : Math.floor(after / BUDGET_LEASE_SHARE / want));
  }
  return { rows, limited, impossible, held: held && limited.length > 0, waitMs, leaseMax: Math.max(0, leaseMax), nowMs, limits: ask.limits, want };
}

/** Reserves `granted` reservations of the checked call (0 when it was refused). */
export function commitBudget(c: BudgetCheck, granted: number): { rows: BudgetRows; result: BudgetResult } {
  const take = c.want * granted;
  const rows: BudgetRows = { ...c.rows };
  const result: BudgetResult = { granted: take, windows: {}, remaining: {}, limit: {}, resetAtMs: {} };
  for (const k of BUDGET_KINDS) {
    const b = budgetOf(c.limits, k);
    const row = rows[k];
    if (!(b > 0) || row === undefined) continue;
    const next = { ...row, reserved: row.reserved + take };
    rows[k] = next;
    result.windows[k] = next.start;
    result.remaining[k] = Math.max(0, b - next.spent - next.reserved);
    result.limit[k] = b;
    result.resetAtMs[k] = budgetWindow(k, c.nowMs).end;
  }
  return { rows, result };
}

// ---- The call's side: what to reserve, and what it cost ----

/** Whether the body asks for prompt caching anywhere (`cache_control` on a block, a tool,
 *  a system part, or the request's top level). Without it nothing is written to or read
 *  from the cache, and every prompt token is billed as plain input. */
export function usesCache(parsed: unknown, depth = 0): boolean {
  if (depth > 64 || typeof parsed !== "object" || parsed === null) return false;
  if (Array.isArray(parsed)) return parsed.some((v) => usesCache(v, depth + 1));
  for (const [k, v] of Object.entries(parsed)) {
    if (k === "cache_control" && v !== null && v !== undefined) return true;
    if (typeof v === "object" && usesCache(v, depth + 1)) return true;
  }
  return false;
}

/** The reservation of a call: at most `inputTokens` prompt tokens and `outputTokens`
 *  (max_tokens) at the requested model's price (an unknown model: the table's highest
 *  rate per category, the unknown-model rule), every prompt token at the dearest input
 *  category the body allows (costBoundMicros). `parsed` undefined (not JSON): the
 *  upstream will refuse it, but it is bounded as if it cached. */
export function reservationMicros(prices: PriceTable, parsed: Record<string, unknown> | undefined, inputTokens: number, outputTokens: number): number {
  const model = typeof parsed?.model === "string" ? parsed.model : "";
  const { price } = lookupPrice(prices, model);
  return costBoundMicros(price, Math.max(0, Math.ceil(inputTokens)), Math.max(0, Math.ceil(outputTokens)), parsed === undefined || usesCache(parsed));
}

const count = (v: number) => (Number.isFinite(v) && v > 0 ? Math.ceil(v) : 0);

/**
 * What a finished call cost, exactly as the usage ledger prices it: Anthropic's usage
 * (the proxy's reading of it) through tokensOf and costMicros, at the price of the model
 * the upstream reported (else the one requested). A stream cut short before its final
 * usage (`interrupted`) is charged its whole `maxTokens` of output: the upstream may have
 * generated that much before it was stopped, and hanging up early must not be a way
 * around a budget (the ledger records only the usage seen, so for such a call the budget
 * charges more than the ledger shows).
 */
export function settledCostMicros(prices: PriceTable, usage: Usage, requestedModel: string, maxTokens: number, interrupted: boolean): number {
  const out = count(usage.outputTokens);
  const t = tokensOf({
    input_tokens: count(usage.inputTokens),
    output_tokens: interrupted ? Math.max(out, count(maxTokens)) : out,
    cache_creation_input_tokens: count(usage.cacheCreationTokens),
    cache_read_input_tokens: count(usage.cacheReadTokens),
    cache_creation: { ephemeral_5m_input_tokens: count(usage.cacheWrite5mTokens), ephemeral_1h_input_tokens: count(usage.cacheWrite1hTokens) },
  });
  return costMicros(t, lookupPrice(prices, usage.model || requestedModel).price);
}
