// Unit tests (Node) of spend budgets' pure parts: UTC windows, the Durable Object's
// admission arithmetic (reserve, give back, roll over, lease bounds), the reservation's
// upper bound against every way a prompt can be billed, the settled cost against the
// ledger's, and exactness across isolates with leases, settles and delayed flushes.
import { describe, expect, it, vi } from "vitest";
import { costBoundMicros, costMicros, dollarsToMicros, lookupPrice, priceTableFromJson, tokensOf, type PriceTable } from "../../../shared/cost.ts";
import { inventoryVars } from "../../local/miniflare.ts";
import {
  addGive,
  applyGive,
  budgetWindow,
  capGive,
  checkBudget,
  commitBudget,
  holderOf,
  holdingAfter,
  LEGACY_HOLDER,
  expireHoldings,
  chargeAfter,
  reservationMicros,
  settledCostMicros,
  usesCache,
  type BudgetGive,
  type BudgetLimits,
  type BudgetRows,
} from "../../src/policy/budget.ts";
import { flushMoneyLater, LocalLimits, rateLimit } from "../../src/policy/rate-limit.ts";
import { admit, type Bucket, type TakeResult, type TokenAsk, type TokenBuckets } from "../../src/policy/token-bucket.ts";
import { emptyUsage } from "../../src/usage.ts";
import { config } from "../../src/config.ts";
import type { Env } from "../../src/env.ts";

const prices = priceTableFromJson(inventoryVars().PRICES) as PriceTable;
const T0 = Date.UTC(2026, 10, 27, 12, 0, 0); // 2026-11-27 12:00 UTC
const DAILY: BudgetLimits = { dailyMicros: 1000, monthlyMicros: 0 };

describe("budget windows (fixed, UTC)", () => {
  it("days and months, across a year's end and a leap day", () => {
    expect(budgetWindow("daily", T0)).toEqual({ start: Date.UTC(2026, 10, 27), end: Date.UTC(2026, 10, 28) });
    expect(budgetWindow("monthly", T0)).toEqual({ start: Date.UTC(2026, 10, 1), end: Date.UTC(2026, 11, 1) });
    const nye = Date.UTC(2026, 11, 31, 23, 59, 59, 999);
    expect(budgetWindow("daily", nye).end).toBe(Date.UTC(2027, 0, 1));
    expect(budgetWindow("monthly", nye).end).toBe(Date.UTC(2027, 0, 1));
    expect(budgetWindow("daily", Date.UTC(2027, 0, 1)).start).toBe(Date.UTC(2027, 0, 1));
    expect(budgetWindow("monthly", Date.UTC(2028, 1, 29, 5)).end).toBe(Date.UTC(2028, 2, 1));
  });
});

describe("admission against a budget (the Durable Object's arithmetic)", () => {
  const ask = (want: number, give?: BudgetGive, limits = DAILY) => ({ limits, want, ...(give ? { give } : {}) });

  it("reserves while spent + reserved + want fits, refuses the rest (until the window ends), and says when a call can never fit", () => {
    let rows: BudgetRows = {};
    for (let i = 0; i < 3; i++) {
      const c = checkBudget(rows, T0, ask(300));
      expect(c.limited).toEqual([]);
      rows = commitBudget(c, 1).rows;
    }
    expect(rows.daily).toEqual({ start: Date.UTC(2026, 10, 27), spent: 0, reserved: 900 });
    const c = checkBudget(rows, T0, ask(101));
    expect(c).toMatchObject({ limited: ["daily"], impossible: false, waitMs: Date.UTC(2026, 10, 28) - T0 });
    expect(commitBudget(c, 0).result.remaining.daily).toBe(100);
    expect(checkBudget(rows, T0, ask(100)).limited).toEqual([]);
    // A call that costs nothing (count_tokens) is never refused, even with nothing left.
    expect(checkBudget({ daily: { start: Date.UTC(2026, 10, 27), spent: 1200, reserved: 0 } }, T0, ask(0)).limited).toEqual([]);
    expect(checkBudget({}, T0, ask(1001))).toMatchObject({ limited: ["daily"], impossible: true });
  });

  it("a settle releases the reservation and spends the actual cost, in its own window only; a new window starts empty", () => {
    const start = Date.UTC(2026, 10, 27);
    const rows: BudgetRows = { daily: { start, spent: 100, reserved: 600 } };
    expect(applyGive(rows, T0, DAILY, { daily: { start, release: 300, spend: 120 } }).daily).toEqual({ start, spent: 220, reserved: 300 });
    // A give for yesterday's window is dropped: yesterday is closed, today never held it.
    expect(applyGive(rows, T0, DAILY, { daily: { start: start - 86_400_000, release: 300, spend: 120 } }).daily).toEqual({ start, spent: 100, reserved: 600 });
    // Tomorrow: the window rolls over, and today's late settle does not charge it.
    const tomorrow = T0 + 86_400_000;
    expect(applyGive(rows, tomorrow, DAILY, { daily: { start, release: 300, spend: 120 } }).daily).toEqual({ start: start + 86_400_000, spent: 0, reserved: 0 });
    // The monthly window of the same call keeps it: it has not ended.
    const both = { dailyMicros: 1000, monthlyMicros: 5000 };
    const m = Date.UTC(2026, 10, 1);
    const next = applyGive({ ...rows, monthly: { start: m, spent: 100, reserved: 600 } }, tomorrow, both, { daily: { start, release: 300, spend: 120 }, monthly: { start: m, release: 300, spend: 120 } });
    expect(next.monthly).toEqual({ start: m, spent: 220, reserved: 300 });
    // Kinds without a budget are left as they are.
    expect(applyGive(rows, T0, { dailyMicros: 0, monthlyMicros: 10 }, { daily: { start, release: 300, spend: 1 } }).daily).toEqual(rows.daily);
  });

  it("merges gives per window; of two windows of one kind the later wins", () => {
    const a: BudgetGive = { daily: { start: 1, release: 10, spend: 3 }, monthly: { start: 0, release: 10, spend: 3 } };
    expect(addGive(a, { daily: { start: 1, release: 5, spend: 1 }, monthly: { start: 0, release: 5, spend: 1 } })).toEqual({
      daily: { start: 1, release: 15, spend: 4 },
      monthly: { start: 0, release: 15, spend: 4 },
    });
    expect(addGive(a, { daily: { start: 2, release: 5, spend: 1 } })!.daily).toEqual({ start: 2, release: 5, spend: 1 });
    expect(addGive({ daily: { start: 2, release: 5, spend: 1 } }, a)!.daily).toEqual({ start: 2, release: 5, spend: 1 });
  });

  it("leases at most 1/16 of what is left, none within 20% of the budget; all or nothing with the request and token buckets", () => {
    const big: BudgetLimits = { dailyMicros: 1_000_000, monthlyMicros: 0 };
    const none = { requests: 0, input: 0, output: 0 };
    const tokenAsk = (want: number, rows?: BudgetRows): [{ tokens: TokenBuckets; budget?: BudgetRows }, TokenAsk] => [
      { tokens: {}, ...(rows ? { budget: rows } : {}) },
      { limits: { inputPerMinute: 0, outputPerMinute: 0 }, want: { input: 0, output: 0 }, give: none, budget: { limits: big, want } },
    ];
    const [p1, a1] = tokenAsk(1000);
    const r1 = admit(p1, T0, 6000, 1000, 32, a1);
    // Requests would lease 32; money: (1,000,000 - 1000) / 16 / 1000 = 62, so 32.
    expect(r1.result).toMatchObject({ allowed: true, granted: 33 });
    expect(r1.result.budget).toMatchObject({ granted: 33_000, remaining: { daily: 967_000 }, limit: { daily: 1_000_000 } });
    expect(r1.budget!.daily!.reserved).toBe(33_000);
    const [p2, a2] = tokenAsk(20_000);
    expect(admit(p2, T0, 6000, 1000, 32, a2).result.granted).toBe(1 + Math.floor((1_000_000 - 20_000) / 16 / 20_000));
    // Within 20%: the call alone.
    const near = { daily: { start: Date.UTC(2026, 10, 27), spent: 810_000, reserved: 0 } };
    const [p3, a3] = tokenAsk(1000, near);
    expect(admit(p3, T0, 6000, 1000, 32, a3).result.granted).toBe(1);
    // Refused by the budget: no request token is taken either.
    const [p4, a4] = tokenAsk(300_000, near);
    const r4 = admit({ ...p4, requests: { tokens: 5, updatedMs: T0 } as Bucket }, T0, 6000, 1000, 32, a4);
    expect(r4.result).toMatchObject({ allowed: false, granted: 0, budgetLimited: ["daily"], limited: [] });
    expect(r4.requests.tokens).toBe(5);
    expect(r4.budget!.daily).toEqual(near.daily);
  });

  it("a refusal says whether the budget is spent or only held by calls in flight, and a budget's wait never becomes the request bucket's", () => {
    const big: BudgetLimits = { dailyMicros: 1_000_000, monthlyMicros: 0 };
    const start = Date.UTC(2026, 10, 27);
    const ask = (want: number): TokenAsk => ({ limits: { inputPerMinute: 0, outputPerMinute: 0 }, want: { input: 0, output: 0 }, give: { requests: 0, input: 0, output: 0 }, budget: { limits: big, want } });
    // 900,000 reserved by calls in flight, nothing spent: 200,000 does not fit now, but will.
    const heldRows = { daily: { start, spent: 0, reserved: 900_000 } };
    expect(checkBudget(heldRows, T0, { limits: big, want: 200_000 })).toMatchObject({ limited: ["daily"], held: true });
    expect(admit({ tokens: {}, budget: heldRows }, T0, 6000, 1000, 32, ask(200_000)).result).toMatchObject({ allowed: false, budgetLimited: ["daily"], budgetHeld: true });
    // 900,000 spent: exhausted, not held.
    const spentRows = { daily: { start, spent: 900_000, reserved: 0 } };
    expect(checkBudget(spentRows, T0, { limits: big, want: 200_000 })).toMatchObject({ limited: ["daily"], held: false });
    expect(admit({ tokens: {}, budget: spentRows }, T0, 6000, 1000, 32, ask(200_000)).result.budgetHeld).toBeUndefined();
    // Refused by the request bucket and the budget at once: retryAfterMs is the bucket's
    // (what an isolate remembers as a request denial for every call), not the hours to
    // midnight (the 402 takes its retry-after from resetAtMs).
    const both = admit({ requests: { tokens: 0, updatedMs: T0 } as Bucket, tokens: {}, budget: spentRows }, T0, 60, 1, 32, ask(200_000)).result;
    expect(both).toMatchObject({ allowed: false, limited: ["requests"], budgetLimited: ["daily"] });
    expect(both.retryAfterMs).toBe(1000);
    expect(both.budget!.resetAtMs.daily).toBe(Date.UTC(2026, 10, 28));
  });
});

describe("the reservation and the settled cost", () => {
  const haiku = lookupPrice(prices, "claude-haiku-4-5").price;

  it("is never below the ledger's cost of any usage the call can have (property test)", () => {
    let seed = 7;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % (n + 1);
    };
    for (let i = 0; i < 2000; i++) {
      const model = Object.keys(prices.models)[rnd(Object.keys(prices.models).length - 1)]!;
      const p = prices.models[model]!;
      const input = rnd(200_000);
      const output = rnd(64_000);
      // Split the prompt any way into the billed categories (caching on), or all plain input.
      const caching = rnd(1) === 1;
      const w5 = caching ? rnd(input) : 0;
      const w1 = caching ? rnd(input - w5) : 0;
      const cr = caching ? rnd(input - w5 - w1) : 0;
      const usedOut = rnd(output);
      const split = rnd(1) === 1;
      const u = { input_tokens: input - w5 - w1 - cr, output_tokens: usedOut, cache_creation_input_tokens: w5 + w1, cache_read_input_tokens: cr, ...(split ? { cache_creation: { ephemeral_5m_input_tokens: w5, ephemeral_1h_input_tokens: w1 } } : {}) };
      expect(costMicros(tokensOf(u), p)).toBeLessThanOrEqual(costBoundMicros(p, input, output, caching));
    }
    // And it is tight: every prompt token a 1-hour write, every output token used.
    const u = { input_tokens: 0, output_tokens: 64, cache_creation_input_tokens: 1000, cache_read_input_tokens: 0 };
    expect(costMicros(tokensOf(u), haiku)).toBe(costBoundMicros(haiku, 1000, 64, true));
  });

  it("prices by the requested model (an unknown one at the table's highest rates), caching only when the body asks for it", () => {
    const body = { model: "claude-haiku-4-5", max_tokens: 10, messages: [{ role: "user", content: "hi" }] };
    expect(reservationMicros(prices, body, 100, 10)).toBe(100 * 1 + 10 * 5);
    const cached = { ...body, messages: [{ role: "user", content: [{ type: "text", text: "hi", cache_control: { type: "ephemeral" } }] }] };
    expect(usesCache(cached)).toBe(true);
    expect(usesCache({ ...body, cache_control: { type: "ephemeral", ttl: "1h" } })).toBe(true);
    expect(usesCache(body)).toBe(false);
    expect(reservationMicros(prices, cached, 100, 10)).toBe(100 * 2 + 10 * 5);
    const unknown = reservationMicros(prices, { ...body, model: "claude-nova-9" }, 100, 10);
    const ceiling = lookupPrice(prices, "claude-nova-9").price;
    expect(unknown).toBe(costBoundMicros(ceiling, 100, 10, false));
    expect(reservationMicros(prices, undefined, 100, 0)).toBe(costBoundMicros(ceiling, 100, 0, true));
  });

  it("settles to exactly the ledger's cost of the usage; an interrupted stream is charged its whole max_tokens", () => {
    const raw = { input_tokens: 30, output_tokens: 7, cache_creation_input_tokens: 1500, cache_read_input_tokens: 20_000, cache_creation: { ephemeral_5m_input_tokens: 500, ephemeral_1h_input_tokens: 900 } };
    const u = { ...emptyUsage(), model: "claude-haiku-4-5-20251001", inputTokens: 30, outputTokens: 7, cacheCreationTokens: 1500, cacheWrite5mTokens: 500, cacheWrite1hTokens: 900, cacheReadTokens: 20_000 };
    const ledger = costMicros(tokensOf(raw), lookupPrice(prices, raw.cache_creation ? "claude-haiku-4-5-20251001" : "").price);
    expect(settledCostMicros(prices, u, "claude-haiku-4-5", 100, false)).toBe(ledger);
    // No split reported: both price the writes as 1-hour writes.
    const { cache_creation: _, ...unsplit } = raw;
    expect(settledCostMicros(prices, { ...u, cacheWrite5mTokens: 0, cacheWrite1hTokens: 0 }, "x", 100, false)).toBe(costMicros(tokensOf(unsplit), lookupPrice(prices, "claude-haiku-4-5").price));
    // The model the upstream reported, else the requested one.
    expect(settledCostMicros(prices, { ...u, model: "" }, "claude-opus-4-5", 100, false)).toBe(costMicros(tokensOf(raw), lookupPrice(prices, "claude-opus-4-5").price));
    expect(settledCostMicros(prices, u, "claude-haiku-4-5", 5000, true)).toBe(costMicros(tokensOf({ ...raw, output_tokens: 5000 }), lookupPrice(prices, "claude-haiku-4-5").price));
    expect(settledCostMicros(prices, emptyUsage(), "claude-haiku-4-5", 5000, false)).toBe(0);
  });

  it("dollars as text to micro-dollars, no float", () => {
    expect(dollarsToMicros("12.50")).toBe(12_500_000);
    expect(dollarsToMicros("0.000001")).toBe(1);
    expect(dollarsToMicros(" 7 ")).toBe(7_000_000);
    expect(dollarsToMicros("123456789.123456", 9)).toBe(123_456_789_123_456);
    for (const bad of ["", ".5", "1.", "1e3", "-1", "1.0000001", "1,5", "1234567"]) expect(dollarsToMicros(bad), bad).toBeUndefined();
  });
});

describe("exactness across isolates, with leases, settles and delayed flushes", () => {
  it("never reserves beyond the budget, and ends with spent = the sum of actual costs and nothing reserved", async () => {
    const clock = { now: T0 };
    let rows: BudgetRows = {};
    let requests: Bucket | undefined;
    let tokens: TokenBuckets = {};
    let peak = 0;
    const budget: BudgetLimits = { dailyMicros: 2_000_000, monthlyMicros: 3_000_000 };
    const check = () => {
      for (const k of ["daily", "monthly"] as const) {
        const r = rows[k];
        if (r === undefined) continue;
        const b = k === "daily" ? budget.dailyMicros : budget.monthlyMicros;
        expect(r.spent + r.reserved).toBeLessThanOrEqual(b);
        peak = Math.max(peak, r.spent + r.reserved);
      }
    };
    const take = async (leaseCap: number, ask?: TokenAsk): Promise<TakeResult> => {
      await new Promise((r) => setImmediate(r));
      const r = admit({ requests, tokens, budget: rows }, clock.now, 60_000, 5000, leaseCap, ask!);
      requests = r.requests;
      tokens = { ...tokens, ...r.tokens };
      rows = r.budget ?? rows;
      check();
      return r.result;
    };
    const settle = async (give: BudgetGive) => {
      await new Promise((r) => setImmediate(r));
      rows = applyGive(rows, clock.now, budget, give);
      check();
    };
    const pending: Promise<unknown>[] = [];
    const background = (p: Promise<unknown>) => void pending.push(p);
    const isolates = [new LocalLimits(), new LocalLimits(), new LocalLimits()];
    let seed = 3;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    let admitted = 0;
    let actual = 0;
    const one = async (i: number) => {
      const local = isolates[i % 3]!;
      const want = 500 + rnd(5000);
      const flush = () => flushMoneyLater("t", local, 5, () => clock.now, settle, background);
      const v = await rateLimit("t", take, local, () => clock.now, false, 1000, background, { limits: { inputPerMinute: 0, outputPerMinute: 0 }, want: { input: 0, output: 0 }, budget: { limits: budget, want } }, flush);
      if (!v.ok) {
        expect(v.status).toBe(402);
        return;
      }
      admitted++;
      flush();
      await new Promise((r) => setTimeout(r, rnd(3)));
      const cost = rnd(want + 1);
      actual += cost;
      local.settleMoney("t", v.money!.windows, v.money!.micros, cost);
      flush();
    };
    await Promise.all(Array.from({ length: 3000 }, (_, i) => one(i)));
    // The clock moves past every lease; the timers give back what is left.
    clock.now += 2000;
    for (let i = 0; i < 50 && pending.length > 0; i++) await Promise.all(pending.splice(0));
    // A last round of calls picks up anything still owed.
    for (const local of isolates) {
      local.expireLease("t", clock.now);
      const owed = local.takeOwedMoney("t");
      if (owed !== undefined) await settle(owed);
    }
    expect(admitted).toBeGreaterThan(500);
    expect(admitted).toBeLessThan(3000);
    expect(rows.daily).toMatchObject({ spent: actual, reserved: 0 });
    expect(rows.monthly).toMatchObject({ spent: actual, reserved: 0 });
    expect(peak).toBeGreaterThan(budget.dailyMicros * 0.9);
  });

  it("a settle that comes while the money timer's flush is on its way is sent by that timer, not left owed", async () => {
    const local = new LocalLimits();
    const day = Date.UTC(2026, 10, 28);
    const sent: BudgetGive[] = [];
    const pending: Promise<unknown>[] = [];
    let release!: () => void;
    // The first flush waits for its round trip; the second answers at once.
    const flush = async (g: BudgetGive) => {
      sent.push(g);
      if (sent.length === 1) await new Promise<void>((r) => (release = r));
    };
    local.settleMoney("t", { daily: day }, 1000, 10);
    flushMoneyLater("t", local, 5, Date.now, flush, (p) => void pending.push(p));
    await vi.waitFor(() => expect(sent).toHaveLength(1));
    // A second call settles during the first flush; its timer finds the flag held.
    local.settleMoney("t", { daily: day }, 2000, 20);
    flushMoneyLater("t", local, 5, Date.now, flush, (p) => void pending.push(p));
    release();
    await Promise.all(pending);
    expect(sent).toEqual([{ daily: { start: day, release: 1000, spend: 10 } }, { daily: { start: day, release: 2000, spend: 20 } }]);
    expect(local.takeOwedMoney("t")).toBeUndefined();
  });

  it("a lease ends with its budget window: money of one day is never spent the next", () => {
    const local = new LocalLimits();
    const end = Date.UTC(2026, 10, 28);
    const now = end - 200;
    const r = admit({ tokens: {} }, now, 60_000, 5000, 32, {
      limits: { inputPerMinute: 0, outputPerMinute: 0 },
      want: { input: 0, output: 0 },
      give: { requests: 0, input: 0, output: 0 },
      budget: { limits: { dailyMicros: 1_000_000, monthlyMicros: 0 }, want: 100 },
    }).result;
    expect(r.granted).toBeGreaterThan(1);
    local.remember("t", now, r, 1000, 1, undefined, 100);
    expect(local.check("t", end - 1, undefined, 100)?.allowed).toBe(true);
    expect(local.check("t", end, undefined, 100)).toBeUndefined();
    // What the lease held goes back, tagged with the day it was reserved in.
    expect(local.takeOwedMoney("t")).toEqual({ daily: { start: Date.UTC(2026, 10, 27), release: 100 * (r.granted - 2), spend: 0 } });
  });
});

describe("holders: whose money is reserved (budget.ts, the object's side of an isolate that dies)", () => {
  const start = budgetWindow("daily", T0).start;
  const mStart = budgetWindow("monthly", T0).start;

  it("a release is capped at what its holder holds in that window; spends are kept whole", () => {
    const give: BudgetGive = { daily: { start, release: 900, spend: 300 }, monthly: { start: mStart, release: 900, spend: 300 } };
    expect(capGive(give, { daily: { start, reserved: 500 }, monthly: { start: mStart, reserved: 2000 } })).toEqual({
      daily: { start, release: 500, spend: 300 },
      monthly: { start: mStart, release: 900, spend: 300 },
    });
    // Nothing held (its holding expired), or held in another window: frees nothing.
    expect(capGive(give, {})).toEqual({ daily: { start, release: 0, spend: 300 }, monthly: { start: mStart, release: 0, spend: 300 } });
    expect(capGive({ daily: { start, release: 100, spend: 0 } }, { daily: { start: start - 86_400_000, reserved: 100 } })).toEqual({ daily: { start, release: 0, spend: 0 } });
    expect(capGive(undefined, { daily: { start, reserved: 5 } })).toBeUndefined();
  });

  it("a holding follows the holder's gives and grants, in the window of each budget row", () => {
    const both: BudgetLimits = { dailyMicros: 10_000, monthlyMicros: 90_000 };
    const rows: BudgetRows = { daily: { start, spent: 0, reserved: 0 }, monthly: { start: mStart, spent: 0, reserved: 0 } };
    const held = { daily: { start, reserved: 700 }, monthly: { start: mStart, reserved: 700 } };
    const give: BudgetGive = { daily: { start, release: 200, spend: 50 }, monthly: { start: mStart, release: 200, spend: 50 } };
    expect(holdingAfter(held, rows, both, give, 1000, { daily: start, monthly: mStart })).toEqual({ daily: { start, reserved: 1500 }, monthly: { start: mStart, reserved: 1500 } });
    // A new day: the daily holding starts afresh; the monthly one goes on.
    const next = start + 86_400_000;
    const rolled: BudgetRows = { daily: { start: next, spent: 0, reserved: 0 }, monthly: rows.monthly };
    expect(holdingAfter(held, rolled, both, undefined, 10, { daily: next, monthly: mStart })).toEqual({ daily: { start: next, reserved: 10 }, monthly: { start: mStart, reserved: 710 } });
    // A kind whose budget was removed: applyGive leaves its row alone, and so does the
    // holding (released from the holding alone, the row's money would belong to nobody).
    expect(holdingAfter(held, rows, { dailyMicros: 10_000, monthlyMicros: 0 }, give, 0, {})).toEqual({ daily: { start, reserved: 500 } });
  });

  it("a silent holder's holding leaves its window's reserved; what its last report said its calls held is charged, the rest (a lease's) freed", () => {
    const rows: BudgetRows = { daily: { start, spent: 40, reserved: 900 } };
    expect(expireHoldings(rows, [{ kind: "daily", start, reserved: 600, charge: 100 }])).toEqual({ daily: { start, spent: 140, reserved: 300 } });
    // -1 (a lease was live, or nothing was reported): all of it is charged.
    expect(expireHoldings(rows, [{ kind: "daily", start, reserved: 600, charge: -1 }])).toEqual({ daily: { start, spent: 640, reserved: 300 } });
    // A charge above the holding charges the holding; never more than the row holds.
    expect(expireHoldings(rows, [{ kind: "daily", start, reserved: 600, charge: 5000 }, { kind: "daily", start, reserved: 600, charge: 0 }])).toEqual({ daily: { start, spent: 640, reserved: 0 } });
    // A holding of an ended window, or of a kind without a row, changes nothing.
    expect(expireHoldings(rows, [{ kind: "daily", start: start - 86_400_000, reserved: 600, charge: -1 }, { kind: "monthly", start: mStart, reserved: 5, charge: -1 }])).toEqual(rows);
  });

  it("the charge recorded after a call: the report plus the call's own reservation; all (-1) when a lease was just granted or nothing was reported", () => {
    expect(chargeAfter(300, 1000, false)).toBe(1300);
    expect(chargeAfter(300, 0, false)).toBe(300);
    expect(chargeAfter(300, 1000, true)).toBe(-1);
    expect(chargeAfter(-1, 0, false)).toBe(-1);
    expect(chargeAfter(undefined, 0, false)).toBe(-1);
    expect(chargeAfter(Number.NaN, 0, false)).toBe(-1);
  });

  it("BUDGET_HOLD_TTL_MS: 5 minutes unless set; never under 2 s (a lease goes back LEASE_MS + 50 ms after its grant) nor over a day", () => {
    const ttl = (v?: string) => config({ ...(v !== undefined ? { BUDGET_HOLD_TTL_MS: v } : {}) } as unknown as Env).holdTtlMs;
    expect(ttl()).toBe(300_000);
    expect(ttl("2000")).toBe(2000);
    expect(ttl("500")).toBe(2000);
    expect(ttl("1e12")).toBe(86_400_000);
    expect(ttl("soon")).toBe(300_000);
    expect(ttl("")).toBe(300_000);
  });

  it("holder ids: an id the object cannot store, or none, is the legacy holder's", () => {
    expect(holderOf("0b7c1d2e-3f40-4a5b-8c6d-7e8f9a0b1c2d")).toBe("0b7c1d2e-3f40-4a5b-8c6d-7e8f9a0b1c2d");
    for (const bad of [undefined, "", "x".repeat(65), "a b", "é", 7, null]) expect(holderOf(bad)).toBe(LEGACY_HOLDER);
  });
});
