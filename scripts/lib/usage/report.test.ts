// The report's numbers from rollup rows (the ledger's real schema in SQLite): cache hit
// rate as defined, and budget used per tenant and UTC day / month to date, over all the
// tenant's models, with the month restarting on the 1st.
import { describe, expect, it } from "vitest";
import { rollupSource, type Rollup } from "../../../test/support/usage-rollups.ts";
import type { BudgetLookup, TenantBudget } from "./budgets.ts";
import { buildTenantDayQuery, hitRate, monthStart, usageReport } from "./report.ts";

const budget = (daily: number | null, monthly: number | null, problems: string[] = []): TenantBudget => ({ name: "n", dailyBudgetMicros: daily, monthlyBudgetMicros: monthly, problems });
const budgets = (m: Record<string, TenantBudget>): BudgetLookup => ({ available: true, source: "test tenants", byTenant: new Map(Object.entries(m)) });

const ROWS: Rollup[] = [
  { day: "2026-10-30", tenant: "a", model: "m1", cost: 100 },
  { day: "2026-10-31", tenant: "a", model: "m1", cost: 200, input: 100, w5: 10, w1: 20, read: 870, output: 999 },
  { day: "2026-10-31", tenant: "a", model: "m2", cost: 50, input: 1000 },
  { day: "2026-10-31", tenant: "b", model: "m1", cost: 10 },
  { day: "2026-11-01", tenant: "a", model: "m1", cost: 400 },
  { day: "2026-11-02", tenant: "a", model: "m2", cost: 1000 },
  { day: "2026-11-03", tenant: "a", model: "m2", cost: 7 },
];
const FILTER = { from: "2026-10-31", to: "2026-11-02" };

describe("cache hit rate", () => {
  it("is cache read over all prompt tokens (input, both writes, reads); output does not count", () => {
    expect(hitRate(100, 10, 20, 870)).toBe(0.87);
    expect(hitRate(0, 0, 0, 0)).toBeNull();
    expect(hitRate(0, 5, 0, 0)).toBe(0);
  });

  it("totals weigh by tokens, not by averaging the lines' rates", async () => {
    const r = await usageReport(rollupSource(ROWS), FILTER, budgets({}));
    const line = r.lines.find((l) => l.day === "2026-10-31" && l.model === "m1" && l.tenant === "a")!;
    expect(line.cacheHitRate).toBe(0.87);
    // prompt tokens in range: 1000 (a m1) + 1000 (a m2 input) = 2000, reads 870
    expect(r.total.cacheHitRate).toBe(870 / 2000);
    expect(r.lines.find((l) => l.tenant === "b")!.cacheHitRate).toBeNull();
  });
});

describe("budget used", () => {
  it("is the tenant's day cost (all models) over its daily budget, and month to date over its monthly budget", async () => {
    const src = rollupSource(ROWS);
    const r = await usageReport(src, FILTER, budgets({ a: budget(1000, 2000), b: budget(null, null) }));
    const pick = (day: string, tenant: string, model: string) => r.lines.find((l) => l.day === day && l.tenant === tenant && l.model === model)!;
    // 10-31: a's day = 200 + 50; month to date includes 10-30, before --from.
    for (const model of ["m1", "m2"]) {
      expect(pick("2026-10-31", "a", model)).toMatchObject({ tenantDayCostMicros: 250, monthToDateCostMicros: 350, dailyBudgetMicros: 1000, dailyBudgetUsed: 0.25, monthlyBudgetMicros: 2000, monthlyBudgetUsed: 0.175 });
    }
    // The month restarts on the 1st (UTC).
    expect(pick("2026-11-01", "a", "m1")).toMatchObject({ tenantDayCostMicros: 400, monthToDateCostMicros: 400, dailyBudgetUsed: 0.4, monthlyBudgetUsed: 0.2 });
    expect(pick("2026-11-02", "a", "m2")).toMatchObject({ tenantDayCostMicros: 1000, monthToDateCostMicros: 1400, dailyBudgetUsed: 1, monthlyBudgetUsed: 0.7 });
    expect(pick("2026-10-31", "b", "m1")).toMatchObject({ tenantDayCostMicros: 10, dailyBudgetMicros: null, dailyBudgetUsed: null, monthlyBudgetUsed: null });
    expect(r.lines.some((l) => l.day === "2026-11-03")).toBe(false);
    expect(r.budgets).toEqual({
      source: "test tenants",
      available: true,
      tenants: [
        { tenant: "a", name: "n", dailyBudgetMicros: 1000, monthlyBudgetMicros: 2000 },
        { tenant: "b", name: "n", dailyBudgetMicros: null, monthlyBudgetMicros: null, note: "no budget set" },
      ],
    });
    // The lines' query reads every model of the range; the month-to-date query only the
    // days of --from's month before --from.
    expect(src.queries.map((q) => q.params)).toEqual([["2026-10-31", "2026-11-02"], ["2026-10-01", "2026-10-31"]]);
  });

  it("counts every model of the tenant even when --model shows one", async () => {
    const r = await usageReport(rollupSource(ROWS), { ...FILTER, model: "m2" }, budgets({ a: budget(1000, null) }));
    expect(r.lines.map((l) => `${l.day} ${l.model} ${l.costMicros} ${l.tenantDayCostMicros} ${l.dailyBudgetUsed}`)).toEqual(["2026-10-31 m2 50 250 0.25", "2026-11-02 m2 1000 1000 1"]);
  });

  it("keeps to --tenant, and says which tenants have no record or an unusable budget", async () => {
    const src = rollupSource(ROWS);
    const r = await usageReport(src, { ...FILTER, tenant: "b" }, budgets({ a: budget(1, 1) }));
    expect(src.queries[1]!.params).toEqual(["2026-10-01", "2026-10-31", "b"]);
    expect(r.lines.map((l) => l.tenant)).toEqual(["b"]);
    expect(r.budgets.tenants).toEqual([{ tenant: "b", name: null, dailyBudgetMicros: null, monthlyBudgetMicros: null, note: "no tenant record with this id" }]);
    const bad = await usageReport(rollupSource(ROWS), FILTER, budgets({ a: budget(null, 5, ["dailyBudgetMicros is not a whole number of micro-dollars >= 0"]) }));
    expect(bad.budgets.tenants[0]).toMatchObject({ tenant: "a", dailyBudgetMicros: null, monthlyBudgetMicros: 5, note: "dailyBudgetMicros is not a whole number of micro-dollars >= 0" });
  });

  it("shows no budget anywhere, with the reason, when budgets could not be read", async () => {
    const r = await usageReport(rollupSource(ROWS), FILTER, { available: false, source: null, reason: "because" });
    expect(r.lines.every((l) => l.dailyBudgetUsed === null && l.monthlyBudgetUsed === null && l.dailyBudgetMicros === null)).toBe(true);
    expect(r.lines[0]!.tenantDayCostMicros).toBe(250); // costs are still there
    expect(r.budgets).toMatchObject({ available: false, reason: "because", source: null });
  });

  it("month start and the tenant-day query", () => {
    expect(monthStart("2026-02-28")).toBe("2026-02-01");
    expect(buildTenantDayQuery({ from: "2026-02-10", to: "2026-03-02", model: "x" })).toEqual({
      sql: "SELECT day, tenant, SUM(cost_micros) AS cost_micros, SUM(held_micros) AS held_micros FROM usage_daily WHERE day >= ? AND day < ? GROUP BY day, tenant ORDER BY day, tenant LIMIT 5000",
      params: ["2026-02-01", "2026-02-10"],
    });
    // From the 1st, the range holds the whole month to date: no query.
    expect(buildTenantDayQuery({ from: "2026-02-01", to: "2026-03-02" })).toBeUndefined();
  });
});

describe("pages", () => {
  it("a report larger than a page reads every row once, page after page (keyset), with the same numbers", async () => {
    const many: Rollup[] = [];
    for (const day of ["2026-10-29", "2026-10-30", "2026-10-31", "2026-11-01", "2026-11-02"]) for (const tenant of ["a", "b", "c"]) for (const model of ["m1", "m2"]) many.push({ day, tenant, model, cost: day.length + tenant.charCodeAt(0) + model.length });
    const src = rollupSource(many);
    const queries: string[] = [];
    const counting = { ...src, query: (sql: string, params: string[]) => (queries.push(sql), src.query(sql, params)) };
    const whole = await usageReport(src, FILTER, budgets({ a: budget(1000, 5000) }));
    const paged = await usageReport(counting, FILTER, budgets({ a: budget(1000, 5000) }), 4);
    expect(paged).toEqual(whole);
    expect(whole.lines).toHaveLength(3 * 3 * 2);
    // 18 lines in pages of 4: 5 queries; 6 tenant-days before --from (the 29th and 30th of
    // October) in 2.
    expect(queries.filter((q) => q.includes("model, calls")).length).toBe(5);
    expect(queries.filter((q) => q.includes("SUM(")).length).toBe(2);
    expect(queries.every((q) => q.endsWith("LIMIT 4"))).toBe(true);
  });
});

describe("rows that are not rollups", () => {
  it("fail with the row and field named", async () => {
    const src = rollupSource([]);
    const bad = { ...src, query: async (sql: string) => (sql.includes("SUM(") ? [] : [{ day: "2026-10-31", tenant: "a", model: "m", calls: -1 }]) };
    await expect(usageReport(bad, FILTER, budgets({}))).rejects.toThrow(/^row 1 \(day "2026-10-31", tenant "a", model "m"\) from test rollups is not a usage rollup: calls:/);
  });

  it("refuse a row whose day is not a UTC day, naming it with its escape sequences escaped (read as text, it was in the total but on no day of the chart)", async () => {
    // Inside the filter's days as text ("2026-11-01..." sorts before "2026-11-02").
    const bad = rollupSource([{ day: "2026-11-01\u001b[2J\u001b[31mPWNED", tenant: "a", model: "m", cost: 1000 }]);
    const err = await usageReport(bad, FILTER, budgets({})).then(
      () => undefined,
      (e: Error) => e.message,
    );
    expect(err).toMatch(/^row 1 \(day "2026-11-01\\u001b\[2J\\u001b\[31mPWNED", tenant "a", model "m"\) from test rollups is not a usage rollup: day: a UTC day YYYY-MM-DD$/);
    expect(err).not.toContain("\u001b");
  });

  it("agree with budget used while the ledger writes between the report's queries and pages: the day sums come from the lines' own rows", async () => {
    const rows: Rollup[] = [];
    for (const day of ["2026-10-30", "2026-10-31", "2026-11-01"]) for (const model of ["m1", "m2", "m3"]) rows.push({ day, tenant: "a", model, cost: 1000 });
    const src = rollupSource(rows);
    const query = src.query.bind(src);
    // The ledger's consumer commits a batch after every query the report makes (every page
    // of 2 rows, and the month-to-date query): a busy fleet seen from a slow link.
    src.query = async (sql, params) => {
      const got = await query(sql, params);
      src.db.exec("UPDATE usage_daily SET calls = calls + 1, cost_micros = cost_micros + 4000");
      return got;
    };
    const r = await usageReport(src, FILTER, budgets({ a: budget(100_000, null) }), 2);
    for (const day of ["2026-10-31", "2026-11-01"]) {
      const lines = r.lines.filter((l) => l.day === day);
      expect(lines).toHaveLength(3);
      const sum = lines.reduce((n, l) => n + l.costMicros, 0);
      for (const l of lines) expect(l).toMatchObject({ tenantDayCostMicros: sum, dailyBudgetUsed: sum / 100_000 });
    }
    // The rows were read at different moments (later pages saw more writes), and no read
    // was repeated.
    expect(new Set(r.lines.map((l) => l.costMicros)).size).toBeGreaterThan(1);
    expect(src.queries).toHaveLength(5); // 6 rows in pages of 2 (the last one empty), then the 30th
    // --model picks its lines from the same rows: budget used still counts every model.
    const m2 = await usageReport(rollupSource(rows), { ...FILTER, model: "m2" }, budgets({ a: budget(100_000, null) }));
    expect(m2.lines.map((l) => [l.day, l.model, l.costMicros, l.tenantDayCostMicros, l.monthToDateCostMicros])).toEqual([
      ["2026-10-31", "m2", 1000, 3000, 6000],
      ["2026-11-01", "m2", 1000, 3000, 3000],
    ]);
  });

  it("refuse sums past 2^53 instead of rounding them", async () => {
    const big = Number.MAX_SAFE_INTEGER;
    const src = rollupSource([{ day: "2026-10-31", tenant: "a", model: "m", cost: big }, { day: "2026-11-01", tenant: "b", model: "m", cost: 3 }]);
    await expect(usageReport(src, FILTER, budgets({}))).rejects.toThrow(/past 2\^53/);
  });
});
