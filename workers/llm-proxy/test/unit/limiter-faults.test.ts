// Unit tests (Node, fake timers) of the isolate's side of the tenant's Durable Object when
// the object is slow, stuck or answers late, and of the money timer's end: every cent
// the object reserved for a lease must come back, and no call may wait on the object
// without bound. The object here is the real admission arithmetic (`admit`, `applyGive`)
// that rate-limiter.ts runs, called the way tokens.ts calls it.
import { afterEach, describe, expect, it, vi } from "vitest";
import { applyGive, type BudgetGive, type BudgetLimits, type BudgetRows } from "../../src/policy/budget.ts";
import { flushMoneyLater, LATE_CALL_MAX_MS, LIMITER_DEADLINE_MS, LocalLimits, MONEY_TIMER_MAX_MS, rateLimit, type RateVerdict } from "../../src/policy/rate-limit.ts";
import { admit, LEASE_MS, type Bucket, type TakeResult, type TokenAsk, type TokenBuckets } from "../../src/policy/token-bucket.ts";

const T0 = Date.UTC(2026, 10, 27, 12, 0, 0);
const MONTHLY: BudgetLimits = { dailyMicros: 0, monthlyMicros: 100_000_000 }; // $100 a month
const NO_TOKENS = { inputPerMinute: 0, outputPerMinute: 0 };
const ZERO = { input: 0, output: 0 };

/** A tenant's Durable Object in memory: admission and give-backs as rate-limiter.ts runs them. */
function object(budget = MONTHLY) {
  const o = {
    rows: {} as BudgetRows,
    requests: undefined as Bucket | undefined,
    tokens: {} as TokenBuckets,
    takes: 0,
    take: async (leaseCap: number, ask?: TokenAsk): Promise<TakeResult> => {
      o.takes++;
      const r = admit({ requests: o.requests, tokens: o.tokens, budget: o.rows }, Date.now(), 60_000, 5000, leaseCap, ask!);
      o.requests = r.requests;
      o.tokens = { ...o.tokens, ...r.tokens };
      o.rows = r.budget ?? o.rows;
      return r.result;
    },
    settle: async (give: BudgetGive) => void (o.rows = applyGive(o.rows, Date.now(), budget, give)),
  };
  return o;
}

/** One isolate's wiring, as tokens.ts has it: the money timer after admission, after each
 *  settle, and whenever a lease holding money is taken. */
function isolate(
  o: ReturnType<typeof object>,
  opts: { failOpen?: boolean; take?: (cap: number, ask?: TokenAsk) => Promise<TakeResult>; settle?: (give: BudgetGive, report: { charge: number; seq: number }) => Promise<void> } = {},
) {
  const local = new LocalLimits();
  const background = (p: Promise<unknown>) => void p;
  const flushMoney = () => flushMoneyLater("t", local, LEASE_MS + 50, Date.now, opts.settle ?? o.settle, background);
  const admitCall = (want: number): Promise<RateVerdict> =>
    rateLimit("t", opts.take ?? o.take, local, Date.now, opts.failOpen ?? false, LEASE_MS, background, { limits: NO_TOKENS, want: ZERO, budget: { limits: MONTHLY, want } }, flushMoney);
  return { local, flushMoney, admitCall };
}

afterEach(() => vi.useRealTimers());

describe("the money timer's end", () => {
  it("gives back the lease it stops following: a 19 s burst at 250 calls/s, then silence, leaves nothing reserved", async () => {
    vi.useFakeTimers({ now: T0 });
    const o = object();
    const { local, flushMoney, admitCall } = isolate(o);
    let spent = 0;
    const one = async () => {
      const v = await admitCall(1000);
      if (!v.ok) throw new Error("refused");
      flushMoney();
      await new Promise((r) => setTimeout(r, 50)); // the upstream answers in 50 ms
      local.settleMoney("t", v.money!.windows, v.money!.micros, 100);
      spent += 100;
      flushMoney();
    };
    // The burst ends in the last second of the timer's 20 s, while top-ups keep its lease
    // alive: before, 145 reservations (145,000 micro-dollars) stayed reserved until the
    // month's end.
    expect(MONEY_TIMER_MAX_MS).toBe(20_000);
    for (let t = 0; t < 19_060; t += 4) {
      void one();
      await vi.advanceTimersByTimeAsync(4);
    }
    await vi.advanceTimersByTimeAsync(3_600_000);
    expect(o.rows.monthly!.spent).toBe(spent);
    expect(o.rows.monthly!.reserved).toBe(0);
  });
});

describe("a Durable Object that does not answer", () => {
  it("a call gets its fail mode's answer after LIMITER_DEADLINE_MS, as do the calls waiting on the same object call", async () => {
    vi.useFakeTimers({ now: T0 });
    const stuck = () => new Promise<TakeResult>(() => {});
    const closed = isolate(object(), { take: stuck });
    const verdicts: RateVerdict[] = [];
    for (let i = 0; i < 3; i++) void closed.admitCall(1000).then((v) => verdicts.push(v));
    await vi.advanceTimersByTimeAsync(LIMITER_DEADLINE_MS - 1);
    expect(verdicts).toEqual([]);
    await vi.advanceTimersByTimeAsync(2);
    expect(verdicts).toHaveLength(3);
    for (const v of verdicts) expect(v).toMatchObject({ ok: false, status: 503 });

    const open = isolate(object(), { take: stuck, failOpen: true });
    const v = open.admitCall(1000);
    await vi.advanceTimersByTimeAsync(LIMITER_DEADLINE_MS + 1);
    await expect(v).resolves.toMatchObject({ ok: true, failedOpen: true });
  });

  it("a call that never settles (workerd cancels a subrequest its request stopped awaiting) does not stay the tenant's call in flight: the next call asks the object again", async () => {
    vi.useFakeTimers({ now: T0 });
    const local = new LocalLimits();
    const ok: TakeResult = { allowed: true, granted: 1, remaining: 10, limit: 60, retryAfterMs: 0, resetMs: 0 };
    let calls = 0;
    const call = () => (calls++ === 0 ? new Promise<TakeResult>(() => {}) : Promise.resolve(ok));
    const first = rateLimit("t", call, local, Date.now, false, LEASE_MS);
    await vi.advanceTimersByTimeAsync(LIMITER_DEADLINE_MS + 1);
    await expect(first).resolves.toMatchObject({ ok: false, status: 503 });
    // Before, every later call waited on the cancelled one and got the fail mode, for good.
    await expect(rateLimit("t", call, local, Date.now, false, LEASE_MS)).resolves.toMatchObject({ ok: true });
    expect(calls).toBe(2);
  });

  it("the deadline is the call's, not each wait's: calls queued behind slow object calls get their fail mode by LIMITER_DEADLINE_MS", async () => {
    vi.useFakeTimers({ now: T0 });
    const local = new LocalLimits();
    // A tenant with no lease (granted 1): each call needs an object call, which takes 4 s.
    const ok: TakeResult = { allowed: true, granted: 1, remaining: 3, limit: 60, retryAfterMs: 0, resetMs: 0 };
    const call = () => new Promise<TakeResult>((r) => setTimeout(r, 4000, ok));
    const answered: { ms: number; ok: boolean }[] = [];
    for (let i = 0; i < 4; i++) void rateLimit("t", call, local, Date.now, false, LEASE_MS).then((v) => answered.push({ ms: Date.now() - T0, ok: v.ok }));
    await vi.advanceTimersByTimeAsync(60_000);
    expect(answered).toHaveLength(4);
    // Before, they were admitted at 4, 8, 12 and 16 s, one behind the other.
    for (const a of answered) expect(a.ms).toBeLessThanOrEqual(LIMITER_DEADLINE_MS);
    expect(answered.filter((a) => a.ok)).toHaveLength(1);
  });

  it("an answer that comes after the deadline is not lost: what it granted becomes a lease, and its unspent money goes back", async () => {
    vi.useFakeTimers({ now: T0 });
    const o = object();
    let calls = 0;
    // The first object call answers 2 s past the deadline (the object deducted the grant).
    const slow = (cap: number, ask?: TokenAsk) => (calls++ === 0 ? new Promise<TakeResult>((r) => setTimeout(() => void o.take(cap, ask).then(r), LIMITER_DEADLINE_MS + 2000)) : o.take(cap, ask));
    const { admitCall } = isolate(o, { take: slow });
    const v = admitCall(1000);
    await vi.advanceTimersByTimeAsync(LIMITER_DEADLINE_MS + 1);
    await expect(v).resolves.toMatchObject({ ok: false, status: 503 });
    await vi.advanceTimersByTimeAsync(2000);
    // The object reserved the call's share and a lease for the isolate...
    expect(o.rows.monthly!.reserved).toBeGreaterThan(1000);
    // ...and nothing of it stays reserved once the lease has expired and the timer ran.
    await vi.advanceTimersByTimeAsync(60_000);
    expect(o.rows.monthly!.reserved).toBe(0);
    expect(o.rows.monthly!.spent).toBe(0);
  });

  it("a give-back that never answers holds its flush for LIMITER_DEADLINE_MS, not for good: a later settle is still sent", async () => {
    vi.useFakeTimers({ now: T0 });
    const local = new LocalLimits();
    const sent: BudgetGive[] = [];
    let n = 0;
    const flush = (g: BudgetGive) => (n++ === 0 ? new Promise<void>(() => {}) : (sent.push(g), Promise.resolve()));
    const day = Date.UTC(2026, 10, 27);
    local.settleMoney("t", { daily: day }, 1000, 10);
    flushMoneyLater("t", local, 5, Date.now, flush, () => {});
    await vi.advanceTimersByTimeAsync(50);
    local.settleMoney("t", { daily: day }, 2000, 20);
    flushMoneyLater("t", local, 5, Date.now, flush, () => {});
    await vi.advanceTimersByTimeAsync(LIMITER_DEADLINE_MS + 100);
    // The second settle was owed while the first give hung; the timer drained it once the
    // first gave up waiting.
    expect(sent).toEqual([{ daily: { start: day, release: 2000, spend: 20 } }]);
  });
});

describe("a grant that comes without a check (late, or a top-up)", () => {
  it("gives back the unspent money of an expired lease it replaces", () => {
    const local = new LocalLimits();
    const month = Date.UTC(2026, 10, 1);
    const grant = (micros: number): TakeResult => ({
      allowed: true,
      granted: 10,
      remaining: 10,
      limit: 60,
      retryAfterMs: 0,
      resetMs: 0,
      budget: { granted: micros, windows: { monthly: month }, remaining: { monthly: 1_000_000 }, limit: { monthly: 100_000_000 }, resetAtMs: { monthly: Date.UTC(2026, 11, 1) } },
    });
    // A lease of 10,000 micro-dollars (none of it used: used 0), expiring at T0 + LEASE_MS.
    local.remember("t", T0, grant(10_000), LEASE_MS, 0, undefined, 1000);
    expect(local.takeOwedMoney("t")).toBeUndefined();
    // Past its expiry, before anything dropped it, a late grant lands.
    local.remember("t", T0 + LEASE_MS + 1, grant(5_000), LEASE_MS, 0, undefined, 1000);
    // The first lease's 10,000 are owed back (before, the new lease replaced it and they
    // stayed reserved in the object until the window ended).
    expect(local.takeOwedMoney("t")).toEqual({ monthly: { start: month, release: 10_000, spend: 0 } });
    expect(local.moneyLeaseExpiry("t")).toBe(T0 + 2 * LEASE_MS + 1);
  });

  it("gives back a live lease's money when a grant without a budget lands on it (a budgeted tenant's GET /v1/models)", () => {
    const local = new LocalLimits();
    const month = Date.UTC(2026, 10, 1);
    const budget = { granted: 10_000, windows: { monthly: month }, remaining: { monthly: 1_000_000 }, limit: { monthly: 100_000_000 }, resetAtMs: { monthly: Date.UTC(2026, 11, 1) } };
    local.remember("t", T0, { allowed: true, granted: 10, remaining: 10, limit: 60, retryAfterMs: 0, resetMs: 0, budget }, LEASE_MS, 0, undefined, 1000);
    // A grant of 5 requests, no money, while the money lease is alive.
    local.remember("t", T0 + 10, { allowed: true, granted: 5, remaining: 10, limit: 60, retryAfterMs: 0, resetMs: 0 }, LEASE_MS, 0);
    // Before, the merged lease kept the 10,000 micro-dollars with no budget to give them
    // back by: they stayed reserved until the month ended.
    expect(local.takeOwedMoney("t")).toEqual({ monthly: { start: month, release: 10_000, spend: 0 } });
    expect(local.moneyLeaseExpiry("t")).toBeUndefined();
  });
});

describe("flush flags", () => {
  it("one flush per key at a time; a flag older than any waitUntil is taken over, and its late release does not free the new one", () => {
    vi.useFakeTimers({ now: T0 });
    const local = new LocalLimits();
    const first = local.startFlush("k");
    expect(first).toBeDefined();
    expect(local.startFlush("k")).toBeUndefined();
    vi.advanceTimersByTime(59_000);
    expect(local.startFlush("k")).toBeUndefined();
    vi.advanceTimersByTime(1_000);
    const second = local.startFlush("k");
    expect(second).toBeDefined();
    expect(second).not.toBe(first);
    local.endFlush("k", first!);
    expect(local.startFlush("k")).toBeUndefined();
    local.endFlush("k", second!);
    expect(local.startFlush("k")).toBeDefined();
  });
});

describe("the money report (what the object charges should it stop hearing from this isolate)", () => {
  it("all (-1) while a lease holds money; then the calls not yet settled there; a give that fails leaves its calls in it", async () => {
    vi.useFakeTimers({ now: T0 });
    const o = object();
    const asks: TokenAsk[] = [];
    const charges: number[] = [];
    let failSettle = false;
    const seqs: number[] = [];
    const settle = async (give: BudgetGive, report: { charge: number; seq: number }) => {
      if (failSettle) throw new Error("object unreachable");
      charges.push(report.charge);
      seqs.push(report.seq);
      await o.settle(give);
    };
    let reportDuringTake: number | undefined;
    const take = (cap: number, ask?: TokenAsk) => {
      asks.push(ask!);
      // Made while this call is out: it may admit or lease what no report can know of yet.
      queueMicrotask(() => (reportDuringTake = local.moneyReport("t", Date.now())));
      return o.take(cap, ask);
    };
    const { local, flushMoney, admitCall } = isolate(o, { take, settle });
    const v = await admitCall(1000);
    expect(v.ok).toBe(true);
    // Sent before anything was held: nothing to charge; this take admits a call.
    expect(asks[0]!.budget).toMatchObject({ charge: 0, seq: 1, admits: true });
    expect(reportDuringTake).toBe(-1);
    expect(o.rows.monthly!.reserved).toBeGreaterThan(1000); // a lease came with it
    expect(local.moneyReport("t", Date.now())).toBe(-1);
    flushMoney();
    // The lease expires and the timer gives its money back, saying one call of 1,000 is
    // still out.
    await vi.advanceTimersByTimeAsync(LEASE_MS + 100);
    expect(charges).toEqual([1000]);
    expect(o.rows.monthly!.reserved).toBe(1000);
    expect(local.moneyReport("t", Date.now())).toBe(1000);
    // The call settles; until its give has reached the object it stays in the report.
    local.settleMoney("t", (v as { money: { windows: Record<string, number> } }).money.windows, 1000, 300);
    expect(local.moneyReport("t", Date.now())).toBe(1000);
    flushMoney();
    await vi.advanceTimersByTimeAsync(LEASE_MS + 100);
    expect(charges).toEqual([1000, 0]);
    // Numbered in the order they were made.
    expect(seqs).toEqual([2, 3]);
    expect(local.moneyReport("t", Date.now())).toBe(0);
    expect(o.rows.monthly).toMatchObject({ reserved: 0, spent: 300 });
    // A second call, from the object again; its settle's give fails: the object still
    // holds its 1,000, and this isolate keeps reporting it (charged should it fall silent).
    const v2 = await admitCall(1000);
    expect(v2.ok).toBe(true);
    await vi.advanceTimersByTimeAsync(LEASE_MS + 100); // its lease goes back
    local.settleMoney("t", (v2 as { money: { windows: Record<string, number> } }).money.windows, 1000, 200);
    failSettle = true;
    flushMoney();
    await vi.advanceTimersByTimeAsync(LEASE_MS + 100);
    expect(local.moneyReport("t", Date.now())).toBe(1000);
  });
});

describe("a top-up's money report", () => {
  it("counts the call it follows: a call that spent the lease's last money, then a top-up", async () => {
    vi.useFakeTimers({ now: T0 });
    const o = object();
    const asks: TokenAsk[] = [];
    const take = (cap: number, ask?: TokenAsk) => {
      asks.push(ask!);
      return o.take(cap, ask);
    };
    const { admitCall } = isolate(o, { take });
    // $4 calls against $100 a month: the object leases one more ($96 left / 16 / $4).
    const want = 4_000_000;
    const call = () => admitCall(want);
    expect((await call()).ok).toBe(true);
    expect(asks).toHaveLength(1);
    expect(o.rows.monthly!.reserved).toBe(2 * want);
    // The second call spends the lease's last money; the lease is used up, so a top-up
    // goes out at once, its report made after this call was counted.
    expect((await call()).ok).toBe(true);
    expect(asks).toHaveLength(2);
    expect(asks[1]!.budget).toMatchObject({ admits: false, charge: 2 * want });
  });
});

describe("the money report while an object call is past its deadline", () => {
  it("is all (-1) until the late call lands: its grant may admit or lease what no report knows of", async () => {
    vi.useFakeTimers({ now: T0 });
    const o = object();
    let slow = true;
    const take = (cap: number, ask?: TokenAsk) =>
      slow ? new Promise<TakeResult>((r) => setTimeout(() => r(o.take(cap, ask)), LIMITER_DEADLINE_MS + 2000)) : o.take(cap, ask);
    const { local, admitCall } = isolate(o, { take });
    const v = admitCall(1000);
    await vi.advanceTimersByTimeAsync(LIMITER_DEADLINE_MS + 10);
    expect((await v).ok).toBe(false); // the fail mode (closed) answered
    slow = false;
    // Nothing is in flight any more, no lease, no call: but the late call is still out.
    expect(local.moneyReport("t", Date.now())).toBe(-1);
    await vi.advanceTimersByTimeAsync(2000);
    // It landed: its grant is this isolate's lease (all of it: -1 while it lives) ...
    expect(local.moneyReport("t", Date.now())).toBe(-1);
    // ... and once that has expired, the report is what it is: no call out.
    await vi.advanceTimersByTimeAsync(LEASE_MS + 100);
    local.expireLease("t", Date.now());
    expect(local.moneyReport("t", Date.now())).toBe(0);
  });
});

describe("the money report with object calls past their deadline that never land", () => {
  it("is all (-1) while any is out, for LATE_CALL_MAX_MS at most: one the runtime cut off does not hold it for good", async () => {
    vi.useFakeTimers({ now: T0 });
    const local = new LocalLimits();
    const never = () => new Promise<TakeResult>(() => {});
    const pending: Promise<unknown>[] = [];
    // Two calls out at once, both past their deadline (two tenants' worth of isolate
    // state is not needed: the second asks after the first has left `inflight`).
    for (let i = 0; i < 2; i++) {
      const asked = local.ask("t", never, undefined, LIMITER_DEADLINE_MS, (p) => void pending.push(p)).catch((e: unknown) => e);
      await vi.advanceTimersByTimeAsync(LIMITER_DEADLINE_MS + 1);
      expect(await asked).toBeInstanceOf(Error);
    }
    expect(local.moneyReport("t", Date.now())).toBe(-1);
    await vi.advanceTimersByTimeAsync(LATE_CALL_MAX_MS - 10 * LIMITER_DEADLINE_MS);
    expect(local.moneyReport("t", Date.now())).toBe(-1);
    await vi.advanceTimersByTimeAsync(10 * LIMITER_DEADLINE_MS);
    expect(local.moneyReport("t", Date.now())).toBe(0);
    // A call that lands settles only its own count.
    let land!: (r: TakeResult) => void;
    const asked = local.ask("t", () => new Promise<TakeResult>((r) => (land = r)), undefined, LIMITER_DEADLINE_MS, (p) => void pending.push(p)).catch((e: unknown) => e);
    await vi.advanceTimersByTimeAsync(LIMITER_DEADLINE_MS + 1);
    await asked;
    expect(local.moneyReport("t", Date.now())).toBe(-1);
    land({ allowed: false, granted: 0, remaining: 0, limit: 1, retryAfterMs: 1000, resetMs: 1000 });
    await vi.advanceTimersByTimeAsync(1);
    expect(local.moneyReport("t", Date.now())).toBe(0);
  });
});
