// The rate-limit step of a call, with the tenant's token limits (issue 14.8) and spend
// budgets (issue 16.2): builds the call's token and money reservations
// (policy/token-estimate.ts, policy/budget.ts), takes them together with the request
// token in one Durable Object call (or from the isolate's lease: no extra round trip),
// asks count_tokens when the byte bound is too coarse near a limit or budget, and returns
// the settle that gives back what the call did not use and charges what it cost (in
// ctx.waitUntil).
import type { Config } from "./config.ts";
import type { Env } from "./env.ts";
import { hasBudget, reservationMicros, settledCostMicros, type BudgetLimits } from "./policy/budget.ts";
import { flushMoneyLater, rateLimit, settleTokens, type LocalLimits, type RateVerdict } from "./policy/rate-limit.ts";
import { LEASE_MS, type TakeResult, type TokenAsk, type TokenLimits, type Tokens } from "./policy/token-bucket.ts";
import { COUNT_TIMEOUT_MS, countTokensBody, estimateFromBody, fromCount, unpriced, unsizable, usedTokens, type Estimate } from "./policy/token-estimate.ts";
import type { TenantRecord } from "./tenant-record.ts";
import type { Usage } from "./usage.ts";

export interface Reservation {
  verdict: RateVerdict;
  /** Settles the call: to `usage` (what the answer reported), or to nothing. Idempotent.
   *  Returns what the tenant's spend budget was charged for the call, in micro-dollars
   *  (the usage event's `budget_micros`), or undefined when no budget held a reservation. */
  settle: (usage?: Usage, interrupted?: boolean) => number | undefined;
  /** A tenant with a budget let through unreserved (BUDGET_FAIL_MODE=open). */
  budgetFailedOpen?: boolean;
  /**
   * A billed call holds tokens or money reserved for one upstream attempt: an attempt
   * the upstream may have billed is then not retried (forward.ts `sendWithRetries`).
   */
  holds?: boolean;
  /** The model the body names, when it was read to size the reservation. */
  model?: string;
}

const NOTHING = (): undefined => undefined;

/** The upstream refused the count as a bad request (a 4xx other than 408, 409 and 429):
 *  the call itself would be refused alike, so the client gets that answer, never a
 *  503 "try again" that its SDK retries for nothing. */
export interface CountRefused {
  status: number;
  type: string;
  message: string;
}

/** count_tokens on the upstream for the call's counted fields; undefined if it fails or
 *  takes longer than COUNT_TIMEOUT_MS; CountRefused when it refuses the request. */
async function countTokens(cfg: Config, env: Env, headers: Headers, parsed: Record<string, unknown>): Promise<number | CountRefused | undefined> {
  const key = env.ANTHROPIC_API_KEY;
  if (key === undefined || key === "") return undefined;
  const h = new Headers({ "content-type": "application/json", "x-api-key": key });
  for (const name of ["anthropic-version", "anthropic-beta"]) {
    const v = headers.get(name);
    if (v !== null) h.set(name, v);
  }
  try {
    // Bounded: the signal also ends a body that stalls after its headers. (A signal costs
    // workerd CPU per call, forward.ts Watchdog; a count is rare enough not to matter.)
    const res = await fetch(cfg.upstream + "/v1/messages/count_tokens", { method: "POST", headers: h, body: countTokensBody(parsed), signal: AbortSignal.timeout(COUNT_TIMEOUT_MS) });
    if (!res.ok) {
      if (res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 409 && res.status !== 429) {
        const e = ((await res.json().catch(() => undefined)) as { error?: { type?: unknown; message?: unknown } } | undefined)?.error;
        const printable = (v: unknown, max: number) => (typeof v === "string" && /^[\x20-\x7e]*$/.test(v) ? v.slice(0, max) : undefined);
        return { status: res.status, type: printable(e?.type, 64) ?? "invalid_request_error", message: printable(e?.message, 500) ?? `count_tokens answered ${res.status}` };
      }
      await res.body?.cancel();
      return undefined;
    }
    const j = (await res.json()) as { input_tokens?: unknown };
    return typeof j.input_tokens === "number" && Number.isFinite(j.input_tokens) && j.input_tokens >= 0 ? j.input_tokens : undefined;
  } catch {
    return undefined;
  }
}

/** The tenant's token limits and spend budget (0: none). */
function tenantLimits(tenant: TenantRecord): { limits: TokenLimits; budget: BudgetLimits } {
  return {
    limits: { inputPerMinute: tenant.inputTokensPerMinute ?? 0, outputPerMinute: tenant.outputTokensPerMinute ?? 0 },
    budget: { dailyMicros: tenant.dailyBudgetMicros ?? 0, monthlyMicros: tenant.monthlyBudgetMicros ?? 0 },
  };
}

/**
 * Whether the tenant's reservation is sized from the request body (token limits or a spend
 * budget): the handler then reads a streamed body whole before reserving. The one place
 * that says which tenants reserve tokens or money; `reserveTokens` asks the same.
 */
export function reservesFromBody(tenant: TenantRecord): boolean {
  const { limits, budget } = tenantLimits(tenant);
  return limits.inputPerMinute > 0 || limits.outputPerMinute > 0 || hasBudget(budget);
}

export async function reserveTokens(
  env: Env,
  cfg: Config,
  ctx: ExecutionContext,
  local: LocalLimits,
  tenant: TenantRecord,
  route: string,
  headers: Headers,
  /** The body, read already when the tenant has token limits. */
  body: ArrayBuffer | undefined,
): Promise<Reservation> {
  const stub = () => env.RATE_LIMITER.get(env.RATE_LIMITER.idFromName(tenant.id));
  const call = (leaseCap: number, ask?: TokenAsk): Promise<TakeResult> => {
    // Only a call that carries the holder (a budget's) tells the object this isolate lives.
    if (ask?.budget !== undefined) local.contacted(tenant.id, Date.now());
    return stub().take(tenant.ratePerMinute, tenant.burst, leaseCap, ask);
  };
  // A lease top-up or a settle runs after this request may have answered: keep it alive.
  const background = (p: Promise<unknown>) => ctx.waitUntil(p);
  const { limits, budget } = tenantLimits(tenant);
  let budgeted = hasBudget(budget);
  let budgetFailedOpen = false;
  const prices = cfg.prices;
  if (budgeted && typeof prices === "string") {
    // No usable price table (a broken deploy): the budget cannot be enforced.
    console.error(JSON.stringify({ error: "budget_unavailable", reason: prices }));
    if (!cfg.budgetFailOpen) return { verdict: budgetUnavailable(), settle: NOTHING };
    budgeted = false;
    budgetFailedOpen = true;
  }
  // The Durable Object failing lets a budgeted tenant's call through only if both modes
  // say open.
  const failOpen = cfg.failOpen && (!budgeted || cfg.budgetFailOpen);
  const tokenLimited = limits.inputPerMinute > 0 || limits.outputPerMinute > 0;
  if ((!tokenLimited && !budgeted) || body === undefined) {
    const verdict = await rateLimit(tenant.id, call, local, Date.now, failOpen, LEASE_MS, background);
    return { verdict: budgeted && !cfg.budgetFailOpen && !verdict.ok && verdict.status === 503 ? budgetUnavailable() : verdict, settle: NOTHING, budgetFailedOpen: budgetFailedOpen || (budgeted && verdict.ok && verdict.failedOpen) };
  }
  const table = budgeted && typeof prices !== "string" ? prices : undefined;

  // count_tokens calls count as requests, use no tokens upstream and cost nothing.
  const billed = route === "/v1/messages";
  const est: Estimate = billed ? estimateFromBody(body) : { input: 0, output: 0, needsCount: false, counted: false, parsed: undefined };
  // A key named twice: the upstream's parser may read another call than the one sized
  // here (json-keys.ts). Refused, like a body that cannot be sized.
  const why = !billed ? undefined : est.repeated !== undefined ? `${est.repeated}: this key appears more than once in its object; a tenant with token limits or a spend budget must send each key once` : unsizable(est.parsed);
  if (why !== undefined) return { verdict: { ok: false, status: 400, headers: {}, message: why }, settle: NOTHING };
  // Billed beyond tokens: a budget could not hold (docs/llm-proxy.md "Spend budgets").
  const beyond = billed && table !== undefined && est.parsed !== undefined ? unpriced(est.parsed) : undefined;
  if (beyond !== undefined) return { verdict: { ok: false, status: 403, headers: {}, message: `this API key has a spend budget; ${beyond}: send the call without it, or use a key without a budget` }, settle: NOTHING };
  // Content whose bytes bound nothing (images, documents, ...) is counted first, and so
  // is every call of a tenant within 20% of a budget (the byte bound, ~4x the real count,
  // would refuse calls that fit), unless the tenant is refused anyway (no upstream call
  // for a call that cannot go).
  // (Counting cannot help a call whose max_tokens alone no longer fits: that one is
  // refused without asking.)
  const money0 = table !== undefined ? local.budgetNear(tenant.id) : undefined;
  const near = money0 !== undefined && money0.near && table !== undefined && reservationMicros(table, est.parsed, 0, est.output) <= money0.left;
  if ((est.needsCount || near) && est.parsed !== undefined && local.deniedFor(tenant.id, Date.now()) === undefined) {
    const n = await countTokens(cfg, env, headers, est.parsed);
    if (typeof n === "object") return { verdict: countRefused(n), settle: NOTHING };
    if (n !== undefined) {
      // The byte bound holds for text: the count replaces it only when smaller.
      est.input = est.needsCount ? fromCount(n) : Math.min(est.input, fromCount(n));
      est.counted = true;
    } else if (est.needsCount && table !== undefined && !cfg.budgetFailOpen) {
      // Images, documents or MCP tools: their bytes bound nothing (a 200-byte body naming a
      // PDF by URL can be 200,000 tokens), and without the count a budget could be overshot
      // by every such call in flight. Closed, like an unreachable budget (BUDGET_FAIL_MODE);
      // token limits alone keep the byte bound: what a call used beyond it is settled as debt.
      return { verdict: uncountable(), settle: NOTHING };
    }
  }
  const sized = (input: number): Tokens => ({ input: limits.inputPerMinute > 0 ? input : 0, output: limits.outputPerMinute > 0 ? est.output : 0 });
  const priced = (input: number) => (table !== undefined ? { limits: budget, want: billed ? reservationMicros(table, est.parsed, input, est.output) : 0 } : undefined);
  let want = sized(est.input);
  let money = priced(est.input);
  // Money owed back (a call's settle, or a lease left unspent) reaches the object with
  // the tenant's next call, or from this timer if none comes first.
  const flushMoney = () =>
    flushMoneyLater(
      tenant.id,
      local,
      LEASE_MS + 50,
      Date.now,
      (give, report) => {
        local.contacted(tenant.id, Date.now());
        return stub().settle(limits, { input: 0, output: 0 }, { limits: budget, give, holder: local.holder(), ...report });
      },
      background,
    );
  const limit = () =>
    rateLimit(tenant.id, call, local, Date.now, failOpen, LEASE_MS, background, { limits, want, ...(money !== undefined ? { budget: money } : {}) }, table !== undefined ? flushMoney : undefined);
  let verdict = await limit();
  const inputOnly = !verdict.ok && verdict.status === 429 && verdict.limited.length === 1 && verdict.limited[0] === "input_tokens";
  // A budget refusal a smaller input estimate could cure: what is left covers max_tokens.
  const budgetOnly = !verdict.ok && verdict.status === 402 && table !== undefined && reservationMicros(table, est.parsed, 0, est.output) <= verdict.left;
  if ((inputOnly || budgetOnly) && !est.counted && est.parsed !== undefined) {
    // Near the input limit or a budget the byte bound (~4x the real count) refuses calls
    // that fit: count exactly and ask once more.
    const n = await countTokens(cfg, env, headers, est.parsed);
    if (typeof n === "object") return { verdict: countRefused(n), settle: NOTHING };
    if (n !== undefined && fromCount(n) < est.input) {
      est.input = fromCount(n);
      est.counted = true;
      want = sized(est.input);
      money = priced(est.input);
      verdict = await limit();
    }
  }
  if (budgeted && !cfg.budgetFailOpen && !verdict.ok && verdict.status === 503) verdict = budgetUnavailable();
  if (!verdict.ok || verdict.failedOpen) return { verdict, settle: NOTHING, budgetFailedOpen: budgetFailedOpen || (budgeted && verdict.ok && verdict.failedOpen) };
  const reserved = verdict.reserved;
  const reservedMoney = verdict.money;
  if (reservedMoney !== undefined) flushMoney();
  // While the call holds its reservation, and after it until its settle's money has
  // been handed to a flush (riding on the next call, or the money timer's a second
  // later), the object hears from this isolate (a touch with its money report, unless
  // another budgeted call of the tenant went out in the last fifth of BUDGET_HOLD_TTL_MS):
  // it never takes this isolate for dead while a call runs, which would charge the call's
  // whole reservation, and its actual cost again when it settles.
  const beatMs = cfg.holdTtlMs / 5;
  let settled = false;
  if (reservedMoney !== undefined && reservedMoney.micros > 0) {
    const beat = setInterval(() => {
      if (settled && !local.owesMoney(tenant.id)) {
        clearInterval(beat);
        return;
      }
      const now = Date.now();
      if (now - local.lastContact(tenant.id) < beatMs) return;
      local.contacted(tenant.id, now);
      const { charge, seq } = local.report(tenant.id, now);
      background(stub().touch(local.holder(), charge, seq).catch(() => {}));
    }, beatMs);
  }
  const model = typeof est.parsed?.model === "string" ? est.parsed.model : "";
  let charged: number | undefined;
  const settle = (usage?: Usage, interrupted = false): number | undefined => {
    if (settled) return charged;
    settled = true;
    // No answer: with `interrupted` the last attempt may have been billed (it timed out,
    // and the upstream keeps the request until the call ends; its connection was lost; its
    // 2xx answer broke off: forward.ts `again`), up to the whole reservation, so that is
    // what is kept; without it (an error answer) nothing was billed.
    if (tokenLimited) {
      const used = usage === undefined ? (interrupted ? { ...reserved } : { input: 0, output: 0 }) : usedTokens(usage, reserved, interrupted);
      if (limits.inputPerMinute === 0) used.input = 0;
      if (limits.outputPerMinute === 0) used.output = 0;
      settleTokens(tenant.id, local, Date.now(), reserved, used, (give) => stub().settle(limits, give), background);
    }
    if (reservedMoney !== undefined && table !== undefined) {
      // The cost as the ledger computes it (no answer: nothing, or when the attempt may
      // have been billed the whole reservation, the most the upstream can have billed).
      const cost = usage === undefined ? (interrupted ? reservedMoney.micros : 0) : settledCostMicros(table, usage, model, est.output, interrupted);
      local.settleMoney(tenant.id, reservedMoney.windows, reservedMoney.micros, cost);
      flushMoney();
      charged = cost;
    }
    return charged;
  };
  return { verdict, settle, holds: billed, model };
}

function countRefused(r: CountRefused): RateVerdict {
  return { ok: false, status: 400, headers: {}, message: r.message, upstream: { status: r.status, type: r.type } };
}

function uncountable(): RateVerdict {
  return { ok: false, status: 503, headers: { "retry-after": "1" }, message: "cannot size this request for the spend budget: it holds images, documents or MCP tools, and count_tokens did not answer; try again shortly" };
}

function budgetUnavailable(): RateVerdict {
  return { ok: false, status: 503, headers: { "retry-after": "1" }, message: "spend budget check unavailable; try again shortly" };
}
