// Reservations whose isolate is gone (budget.ts, "Holders"), in workerd: the tenant's
// Durable Object records what each isolate holds and when it last heard from it, and
// expires a silent holder's money after BUDGET_HOLD_TTL_MS (2 s here, 5 minutes by
// default): what its calls held (its last money report) is charged, an unspent lease
// freed. Before, money an evicted or crashed isolate held stayed reserved until the window
// ended: for a monthly budget, up to a month of refusals. A live isolate with a long call
// in flight is heard from while the call runs, so its reservation holds; and a late give
// frees nothing another isolate holds.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Miniflare } from "miniflare";
import { describe, expect, it } from "vitest";
import { miniflareKv } from "../../../scripts/lib/tenants/local.ts";
import { createTenant } from "../../../scripts/lib/tenants/store.ts";
import { startLocalProxy } from "../local/miniflare.ts";
import { budgetWindow, type BudgetGive, type BudgetRows } from "../src/policy/budget.ts";
import type { TakeResult, TokenAsk } from "../src/policy/token-bucket.ts";
import { FakeAnthropic } from "./fake-anthropic.ts";
import { Harness, useHarness } from "./harness.ts";

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const HAIKU = "claude-haiku-4-5";
const TTL = 2000;
const DAILY = 1_000_000;
const limits = { dailyMicros: DAILY, monthlyMicros: 0 };
const NO_TOKENS = { inputPerMinute: 0, outputPerMinute: 0 };

interface Stub {
  take(rate: number, burst: number, leaseCap: number, ask: TokenAsk): Promise<TakeResult>;
  settle(l: typeof NO_TOKENS, give: { input: number; output: number }, budget: { limits: typeof limits; give: BudgetGive; holder?: string; charge?: number; seq?: number }): Promise<void>;
  touch(holder: string, charge?: number, seq?: number): Promise<void>;
  budgetState(): Promise<BudgetRows>;
}

async function limiter(h: Harness, tenantId: string): Promise<Stub> {
  const ns = await h.mf.getDurableObjectNamespace("RATE_LIMITER", "llm-proxy");
  return ns.get(ns.idFromName(tenantId)) as unknown as Stub;
}

/** A budgeted take as an isolate sends it (rate-limit.ts `send`): `want` micro-dollars for
 *  a call it admits, a lease of up to `lease` more, its money report `charge`. */
const take = (s: Stub, holder: string | undefined, want: number, lease: number, charge?: number) =>
  s.take(6000, 1000, lease, {
    limits: NO_TOKENS,
    want: { input: 0, output: 0 },
    give: { requests: 0, input: 0, output: 0 },
    budget: { limits, want, admits: true, ...(holder !== undefined ? { holder } : {}), ...(charge !== undefined ? { charge } : {}) },
  });

const give = (release: number, spend: number): BudgetGive => ({ daily: { start: budgetWindow("daily", Date.now()).start, release, spend } });
const settle = (s: Stub, holder: string | undefined, release: number, spend: number, charge?: number) =>
  s.settle(NO_TOKENS, { input: 0, output: 0 }, { limits, give: give(release, spend), ...(holder !== undefined ? { holder } : {}), ...(charge !== undefined ? { charge } : {}) });

/** `holder` says it is alive (with no call out) for `ms`; nothing else reaches the object. */
async function alive(s: Stub, holder: string, ms: number, charge = 0): Promise<void> {
  for (let t = 0; t < ms; t += TTL / 5) {
    await s.touch(holder, charge);
    await sleep(TTL / 5);
  }
}

describe("reservations of an isolate that is gone (BUDGET_HOLD_TTL_MS=2000)", () => {
  let h: Harness;
  useHarness({ METRICS_SAMPLE_RATE: "0", BUDGET_HOLD_TTL_MS: String(TTL) }, (started) => {
    h = started;
  });

  it("a dead isolate's expired lease is freed and its call in flight charged; one that died with a live lease is charged all; a live isolate keeps what it holds", async () => {
    const { id } = await h.tenant({ dailyBudgetMicros: DAILY });
    const s = await limiter(h, id);
    // "a" admits a call of 1,000 with a lease of 8 more; its lease expires and it says so
    // (a touch: one call of 1,000 out), but dies before the lease's money goes back.
    expect((await take(s, "a", 1000, 8, 0)).budget!.granted).toBe(9000);
    await s.touch("a", 1000);
    // "b" dies right after a grant, its lease live: nothing says what of it calls spent.
    expect((await take(s, "b", 500, 4, 0)).budget!.granted).toBe(2500);
    // "c" has a call out and keeps saying so.
    expect((await take(s, "c", 2000, 0, 0)).budget!.granted).toBe(2000);
    expect((await s.budgetState()).daily).toMatchObject({ reserved: 13_500, spent: 0 });
    await alive(s, "c", TTL + 500, 2000);
    // a: 1,000 charged, 8,000 freed; b: all 2,500 charged; c: its 2,000 still held.
    expect((await s.budgetState()).daily).toMatchObject({ reserved: 2000, spent: 3500 });
    const next = await take(s, "c", 1000, 0, 2000);
    expect(next.budget!.remaining.daily).toBe(DAILY - 3500 - 2000 - 1000);
  });

  it("a late settle from a holder taken for dead spends without freeing another's money, also when nothing swept in between; a give sent twice frees no more than its holder holds", async () => {
    const { id } = await h.tenant({ dailyBudgetMicros: DAILY });
    const s = await limiter(h, id);
    await take(s, "dead", 1000, 8, 0);
    await settle(s, "dead", 8000, 0, 1000); // its lease back; one call of 1,000 out
    await take(s, "live", 2000, 0, 0);
    // Only touches reach the object (they sweep nothing), then the dead one's own settle.
    await alive(s, "live", TTL + 500, 2000);
    await settle(s, "dead", 1000, 700, 0);
    // Its 1,000 was charged when it expired (in that settle's own call); the settle's
    // 700 is spent as well; live's 2,000 stay held.
    expect((await s.budgetState()).daily).toMatchObject({ reserved: 2000, spent: 1700 });
    // A give delivered twice frees its holder's money once.
    await settle(s, "live", 2000, 1500, 0);
    await take(s, "other", 3000, 0, 0);
    await settle(s, "live", 2000, 0, 0);
    expect((await s.budgetState()).daily).toMatchObject({ reserved: 3000, spent: 3200 });
  });

  it("a holder taken for dead that comes back with a take holds only what that take granted", async () => {
    const { id } = await h.tenant({ dailyBudgetMicros: DAILY });
    const s = await limiter(h, id);
    await take(s, "a", 5000, 0, 0); // a call of 5,000, whose settle is lost
    await sleep(TTL + 300);
    await take(s, "a", 1000, 0, 5000); // still reporting the lost call
    expect((await s.budgetState()).daily).toMatchObject({ reserved: 1000, spent: 5000 });
    await take(s, "b", 3000, 0, 0);
    await settle(s, "a", 1000, 0, 5000);
    // Only b says it is alive: a's holding (now nothing) expires; b's 3,000 stay held.
    await alive(s, "b", TTL + 500, 3000);
    expect((await s.budgetState()).daily).toMatchObject({ reserved: 3000, spent: 5000 });
  });

  it("a money report older than the one the object keeps is ignored: it cannot understate what a later call admitted or leased", async () => {
    const { id } = await h.tenant({ dailyBudgetMicros: DAILY });
    const s = await limiter(h, id);
    // Report 7 rides on a take that admits a call of 1,000 (no lease): charge 1,000.
    await s.take(6000, 1000, 0, { limits: NO_TOKENS, want: { input: 0, output: 0 }, give: { requests: 0, input: 0, output: 0 }, budget: { limits, want: 1000, holder: "a", charge: 0, seq: 7, admits: true } });
    // Report 6, made before that take was sent (it knew no call), arrives after it.
    await s.settle(NO_TOKENS, { input: 0, output: 0 }, { limits, give: give(0, 0), holder: "a", charge: 0, seq: 6 });
    await s.touch("a", 0, 5);
    await sleep(TTL + 300);
    // Charged as report 7 said: the call's 1,000.
    expect((await s.budgetState()).daily).toMatchObject({ reserved: 0, spent: 1000 });
    // And a newer report is taken: report 9 says the call settled (its give with it).
    await s.take(6000, 1000, 0, { limits: NO_TOKENS, want: { input: 0, output: 0 }, give: { requests: 0, input: 0, output: 0 }, budget: { limits, want: 2000, holder: "b", charge: 0, seq: 8, admits: true } });
    await s.settle(NO_TOKENS, { input: 0, output: 0 }, { limits, give: give(2000, 300), holder: "b", charge: 0, seq: 9 });
    await s.take(6000, 1000, 0, { limits: NO_TOKENS, want: { input: 0, output: 0 }, give: { requests: 0, input: 0, output: 0 }, budget: { limits, want: 500, holder: "b", charge: 0, seq: 10, admits: true } });
    await sleep(TTL + 300);
    expect((await s.budgetState()).daily).toMatchObject({ reserved: 0, spent: 1000 + 300 + 500 });
  });

  it("a take and a settle without a holder (an isolate of an earlier version) are the legacy holder's, charged in full if it falls silent", async () => {
    const { id } = await h.tenant({ dailyBudgetMicros: DAILY });
    const s = await limiter(h, id);
    await take(s, undefined, 4000, 0);
    await take(s, undefined, 1000, 0);
    await settle(s, undefined, 4000, 3000);
    expect((await s.budgetState()).daily).toMatchObject({ reserved: 1000, spent: 3000 });
    await sleep(TTL + 300);
    expect((await s.budgetState()).daily).toMatchObject({ reserved: 0, spent: 4000 });
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

describe("an isolate killed mid-call: workerd stopped, and started again on the same state", () => {
  it("the call's reservation is charged once BUDGET_HOLD_TTL_MS has passed; the lease it had given back stays free", async () => {
    const fake = new FakeAnthropic();
    await fake.start();
    const dir = mkdtempSync(join(tmpdir(), "budget-holds-"));
    const start = () =>
      startLocalProxy({
        vars: { UPSTREAM_BASE_URL: fake.url, BUDGET_HOLD_TTL_MS: String(TTL), TENANT_CACHE_SECONDS: "0", METERING: "off" },
        secrets: { ANTHROPIC_API_KEY: "sk-ant-api03-holds-test-placeholder" },
        persistDir: dir,
        onLog: (l) => logs.push(l),
      });
    const logs: string[] = [];
    let first: Awaited<ReturnType<typeof start>> | undefined;
    let second: Awaited<ReturnType<typeof start>> | undefined;
    try {
      first = await start();
      const { key, record } = await createTenant(miniflareKv(await first.mf.getKVNamespace("TENANTS")), { name: "holds", ratePerMinute: 600, burst: 60, dailyBudgetMicros: DAILY });
      const state = async (mf: Miniflare) => {
        const ns = await mf.getDurableObjectNamespace("RATE_LIMITER", "llm-proxy");
        return (await (ns.get(ns.idFromName(record.id)) as unknown as Stub).budgetState()).daily;
      };
      // An upstream that never answers: the call holds its reservation until it is killed.
      fake.enqueue({ kind: "hang" });
      const body = JSON.stringify({ model: HAIKU, max_tokens: 100, messages: [{ role: "user", content: "Hello" }] });
      const call = fetch(new URL("/v1/messages", first.url), { method: "POST", headers: { "x-api-key": key, "content-type": "application/json", "anthropic-version": "2023-06-01" }, body }).catch((e: unknown) => e);
      let admitted = await state(first.mf);
      for (let i = 0; i < 200 && (admitted?.reserved ?? 0) === 0; i++) {
        await sleep(10);
        admitted = await state(first.mf);
      }
      // Admitted with a lease; the money timer gives the lease back a second later, with a
      // report counting the one call out.
      let reservation = (await state(first.mf))!.reserved;
      for (let i = 0; i < 500 && reservation === admitted!.reserved; i++) {
        await sleep(10);
        reservation = (await state(first.mf))!.reserved;
      }
      expect(reservation).toBeGreaterThan(0);
      expect(admitted!.reserved).toBeGreaterThan(reservation);
      // workerd dies with the call: no settle, no heartbeat, ever.
      await first.mf.dispose();
      first = undefined;
      await call;
      second = await start();
      await sleep(TTL + 500);
      // The call may have been billed: charged its whole reservation; nothing left held.
      // (The holding is the call's money alone by now, so a report of "all" would charge
      // the same: what each report says is the object-level tests' business, above.)
      expect(await state(second.mf), logs.join("\n")).toMatchObject({ reserved: 0, spent: reservation });
    } finally {
      await first?.mf.dispose();
      await second?.mf.dispose();
      await fake.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
