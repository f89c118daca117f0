// Reservations whose isolate is gone (budget.ts, "Holders"), in workerd: the tenant's
// Durable Object records what each isolate holds and when it last heard from it, and
// releases a silent holder's money after BUDGET_HOLD_TTL_MS (2 s here, 5 minutes by
// default). Before, money an evicted or crashed isolate held (a lease, a call in flight)
// stayed reserved until the window ended: for a monthly budget, up to a month of refusals.
// A live isolate with a long call in flight is heard from while the call runs, so its
// reservation holds; and a late give frees nothing another isolate holds.
import { describe, expect, it } from "vitest";
import { budgetWindow, type BudgetGive, type BudgetRows } from "../src/policy/budget.ts";
import type { TakeResult, TokenAsk } from "../src/policy/token-bucket.ts";
import { Harness, useHarness } from "./harness.ts";

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const HAIKU = "claude-haiku-4-5";
const TTL = 2000;
const DAILY = 1_000_000;
const limits = { dailyMicros: DAILY, monthlyMicros: 0 };
const NO_TOKENS = { inputPerMinute: 0, outputPerMinute: 0 };

interface Stub {
  take(rate: number, burst: number, leaseCap: number, ask: TokenAsk): Promise<TakeResult>;
  settle(l: typeof NO_TOKENS, give: { input: number; output: number }, budget: { limits: typeof limits; give: BudgetGive; holder?: string }): Promise<void>;
  touch(holder: string): Promise<void>;
  budgetState(): Promise<BudgetRows>;
}

async function limiter(h: Harness, tenantId: string): Promise<Stub> {
  const ns = await h.mf.getDurableObjectNamespace("RATE_LIMITER", "llm-proxy");
  return ns.get(ns.idFromName(tenantId)) as unknown as Stub;
}

/** A budgeted take as an isolate sends it: `want` micro-dollars, a lease of up to `lease` more. */
const take = (s: Stub, holder: string | undefined, want: number, lease: number) =>
  s.take(6000, 1000, lease, { limits: NO_TOKENS, want: { input: 0, output: 0 }, give: { requests: 0, input: 0, output: 0 }, budget: { limits, want, ...(holder !== undefined ? { holder } : {}) } });

const give = (release: number, spend: number): BudgetGive => ({ daily: { start: budgetWindow("daily", Date.now()).start, release, spend } });

describe("reservations of an isolate that is gone (BUDGET_HOLD_TTL_MS=2000)", () => {
  let h: Harness;
  useHarness({ METRICS_SAMPLE_RATE: "0", BUDGET_HOLD_TTL_MS: String(TTL) }, (started) => {
    h = started;
  });

  it("a dead isolate's lease comes back once the object has not heard from it; its late settle frees nothing another isolate holds", async () => {
    const { id } = await h.tenant({ dailyBudgetMicros: DAILY });
    const s = await limiter(h, id);
    // The dead isolate takes a call's 1,000 and a lease of 8 more, then is never heard from.
    const dead = await take(s, "dead-isolate", 1000, 8);
    expect(dead.allowed).toBe(true);
    expect(dead.budget!.granted).toBe(9000);
    const live = await take(s, "live-isolate", 2000, 0);
    expect(live.budget!.granted).toBe(2000);
    expect((await s.budgetState()).daily).toMatchObject({ reserved: 11_000, spent: 0 });
    // The live isolate has a call in flight and says so; the dead one says nothing.
    for (let t = 0; t < TTL + 500; t += TTL / 5) {
      await s.touch("live-isolate");
      await sleep(TTL / 5);
    }
    expect((await s.budgetState()).daily).toMatchObject({ reserved: 2000, spent: 0 });
    // The dead isolate's settle arrives after all (it was not dead, only cut off): its
    // spend counts, its release frees nothing (its holding is gone; the 2,000 left are
    // the live isolate's).
    await s.settle(NO_TOKENS, { input: 0, output: 0 }, { limits, give: give(9000, 700), holder: "dead-isolate" });
    expect((await s.budgetState()).daily).toMatchObject({ reserved: 2000, spent: 700 });
    // A give sent twice frees the holder's own money once.
    await s.settle(NO_TOKENS, { input: 0, output: 0 }, { limits, give: give(2000, 1500), holder: "live-isolate" });
    const other = await take(s, "other-isolate", 3000, 0);
    expect(other.budget!.granted).toBe(3000);
    await s.settle(NO_TOKENS, { input: 0, output: 0 }, { limits, give: give(2000, 0), holder: "live-isolate" });
    expect((await s.budgetState()).daily).toMatchObject({ reserved: 3000, spent: 2200 });
    // What is left for a new call counts only live holdings.
    const next = await take(s, "live-isolate", 1000, 0);
    expect(next.budget!.remaining.daily).toBe(DAILY - 2200 - 3000 - 1000);
  });

  it("a take and a settle without a holder (an isolate of an earlier version) are the legacy holder's, and expire the same way", async () => {
    const { id } = await h.tenant({ dailyBudgetMicros: DAILY });
    const s = await limiter(h, id);
    await take(s, undefined, 4000, 0);
    await take(s, undefined, 1000, 0);
    await s.settle(NO_TOKENS, { input: 0, output: 0 }, { limits, give: give(4000, 3000) });
    expect((await s.budgetState()).daily).toMatchObject({ reserved: 1000, spent: 3000 });
    await sleep(TTL + 300);
    expect((await s.budgetState()).daily).toMatchObject({ reserved: 0, spent: 3000 });
  });

  it("a budgeted call in flight for several times BUDGET_HOLD_TTL_MS keeps its reservation, and settles to its cost", async () => {
    const { key, id } = await h.tenant({ dailyBudgetMicros: DAILY });
    const s = await limiter(h, id);
    h.fake.reset();
    const usage = { input_tokens: 12, output_tokens: 30, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 };
    h.fake.enqueue({
      kind: "json",
      headersAfterMs: 3 * TTL,
      body: { id: "msg_h", type: "message", role: "assistant", model: HAIKU, content: [{ type: "text", text: "ok" }], stop_reason: "end_turn", stop_sequence: null, usage },
    });
    const body = JSON.stringify({ model: HAIKU, max_tokens: 100, messages: [{ role: "user", content: "Hello" }] });
    const pending = h.call("/v1/messages", { key, body });
    // The isolate's own contacts (the admission; the money timer returning the lease's
    // unspent part about a second later) end well before this: only the heartbeat keeps
    // the call's reservation held.
    await sleep(2 * TTL + 1000);
    const during = (await s.budgetState()).daily!;
    const r = await pending;
    expect(r.status).toBe(200);
    const estimate = Number(r.headers.get("edgefleet-estimated-cost-micros"));
    expect(estimate).toBeGreaterThan(0);
    expect(during.reserved).toBeGreaterThanOrEqual(estimate);
    // Settled: 12 input and 30 output tokens at $1 / $5 per million.
    let after = (await s.budgetState()).daily!;
    for (let i = 0; i < 100 && after.reserved !== 0; i++) {
      await sleep(20);
      after = (await s.budgetState()).daily!;
    }
    expect(after).toMatchObject({ reserved: 0, spent: 12 * 1 + 30 * 5 });
  });
});
