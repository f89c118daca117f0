// The report's machine formats: CSV is RFC 4180 with formula guards, whatever the ids
// hold; JSON keeps a stable, versioned shape; the table carries the budget columns and
// says why a budget shows "-".
import { describe, expect, it } from "vitest";
import { rollupSource } from "../../../test/support/usage-rollups.ts";
import type { BudgetLookup } from "./budgets.ts";
import { csvField, renderCsv, renderJson, renderTable } from "./format.ts";
import { usageReport } from "./report.ts";

const HOSTILE = [`=cmd|' /C calc'!A0`, `a,"b"\nc`, "+1", "-2", "@x", "\tt", "plain"];
const FILTER = { from: "2026-11-01", to: "2026-11-02" };
const budgets: BudgetLookup = {
  available: true,
  source: "test tenants",
  byTenant: new Map([["plain", { name: "P", dailyBudgetMicros: 4000, monthlyBudgetMicros: 10_000, problems: [] }]]),
};

async function report(b: BudgetLookup = budgets) {
  const rows = HOSTILE.map((t, i) => ({ day: "2026-11-02", tenant: t, model: `m${i}`, cost: 1000 + i, input: 10, read: 30, output: 5 }));
  rows.push({ day: "2026-11-01", tenant: "plain", model: `x,"y"`, cost: 500, input: 0, read: 0, output: 0 });
  return usageReport(rollupSource(rows), FILTER, b);
}

describe("CSV", () => {
  it("quotes commas, quotes and line breaks, and defuses formulas", () => {
    expect(csvField("plain")).toBe("plain");
    expect(csvField(`a,"b"\nc`)).toBe(`"a,""b""\nc"`);
    expect(csvField("=1+1")).toBe("'=1+1");
    expect(csvField("=a,b")).toBe(`"'=a,b"`);
    expect(csvField("a;b")).toBe(`"a;b"`);
    expect(csvField("\0=cmd")).toBe("'\0=cmd");
    for (const p of ["+", "-", "@", "\t", "\r"]) expect(csvField(`${p}x`).replace(/^"/, "")).toMatch(/^'/);
  });

  it("writes a budget used below 0 (a negative charge) as a number, not as text defused like a formula", async () => {
    const src = rollupSource([{ day: "2026-11-02", tenant: "plain", model: "m", cost: 1000, held: -5000 }]);
    const csv = renderCsv(await usageReport(src, FILTER, budgets));
    const [head, line] = csv.split("\r\n");
    const cell = (name: string) => line!.split(",")[head!.split(",").indexOf(name)];
    expect(cell("daily_budget_used")).toBe("-1.000000");
    expect(cell("monthly_budget_used")).toBe("-0.400000");
    expect(cell("held_micros")).toBe("-5000");
  });

  it("has one header and one record per line, all of the header's width, with CRLF ends", async () => {
    const csv = renderCsv(await report());
    expect(csv.endsWith("\r\n")).toBe(true);
    // Parse it back as RFC 4180 and compare with the report.
    const records: string[][] = [];
    let field = "";
    let rec: string[] = [];
    let quoted = false;
    for (let i = 0; i < csv.length; i++) {
      const c = csv[i]!;
      if (quoted) {
        if (c === '"' && csv[i + 1] === '"') (field += '"'), i++;
        else if (c === '"') quoted = false;
        else field += c;
      } else if (c === '"') quoted = true;
      else if (c === ",") rec.push(field), (field = "");
      else if (c === "\r" && csv[i + 1] === "\n") rec.push(field), records.push(rec), (rec = []), (field = ""), i++;
      else field += c;
    }
    const [head, ...body] = records;
    expect(head).toEqual([
      "day", "tenant", "model", "calls", "input_tokens", "cache_write_5m_tokens", "cache_write_1h_tokens", "cache_read_tokens", "output_tokens", "cache_hit_rate", "cost_micros", "cost_usd", "unknown_model_calls",
      "tenant_day_cost_micros", "daily_budget_micros", "daily_budget_used", "month_to_date_cost_micros", "monthly_budget_micros", "monthly_budget_used",
      "cut_calls",
      "no_answer_calls", "held_micros", "tenant_day_held_micros", "month_to_date_held_micros", "maybe_billed_attempts",
    ]);
    expect(body).toHaveLength(HOSTILE.length + 1);
    for (const r of body) expect(r).toHaveLength(head!.length);
    const tenants = body.map((r) => r[1]);
    expect(tenants).toContain(`'=cmd|' /C calc'!A0`);
    expect(tenants).toContain(`a,"b"\nc`);
    expect(tenants).toContain("'+1");
    expect(tenants).toContain("'-2");
    expect(tenants).toContain("'@x");
    expect(tenants).toContain("'\tt");
    expect(body.find((r) => r[2] === `x,"y"`)).toEqual(["2026-11-01", "plain", `x,"y"`, "1", "0", "0", "0", "0", "0", "", "500", "0.000500", "0", "500", "4000", "0.125000", "500", "10000", "0.050000", "0", "0", "0", "0", "0", "0"]);
    const plain = body.find((r) => r[1] === "plain" && r[0] === "2026-11-02")!;
    expect(plain.slice(9)).toEqual(["0.750000", "1006", "0.001006", "0", "1006", "4000", "0.251500", "1506", "10000", "0.150600", "0", "0", "0", "0", "0", "0"]);
    // No budget: empty cells, not zeros.
    expect(body.find((r) => r[1] === "'+1")!.slice(13)).toEqual(["1002", "", "", "1002", "", "", "0", "0", "0", "0", "0", "0"]);
  });

  it("writes a negative amount as a number (held_micros is signed), never as formula-guarded text", async () => {
    const r = await usageReport(rollupSource([{ day: "2026-11-02", tenant: "plain", model: "m", cost: 5000, held: -1200, input: 10, output: 5 }]), FILTER, budgets);
    const record = renderCsv(r).split("\r\n")[1]!.split(",");
    expect(record.slice(21, 24)).toEqual(["-1200", "-1200", "-1200"]);
    // A tenant id that starts like a formula is still guarded (the text columns).
    expect(csvField("-2")).toBe("'-2");
  });
});

describe("JSON", () => {
  it("keeps its shape: version, filter, source, budgets, lines, total, with these keys", async () => {
    const j = JSON.parse(renderJson(await report()));
    expect(Object.keys(j)).toEqual(["version", "filter", "source", "budgets", "lines", "total"]);
    expect(j.version).toBe(2);
    expect(Object.keys(j.lines[0])).toEqual([
      "day", "tenant", "model", "calls", "inputTokens", "cacheWrite5mTokens", "cacheWrite1hTokens", "cacheReadTokens", "outputTokens", "cacheHitRate", "costMicros", "unknownModelCalls", "cutCalls", "noAnswerCalls", "heldMicros", "maybeBilledAttempts",
      "tenantDayCostMicros", "tenantDayHeldMicros", "monthToDateCostMicros", "monthToDateHeldMicros", "dailyBudgetMicros", "dailyBudgetUsed", "monthlyBudgetMicros", "monthlyBudgetUsed", "costUsd",
    ]);
    expect(Object.keys(j.total)).toEqual(["calls", "inputTokens", "cacheWrite5mTokens", "cacheWrite1hTokens", "cacheReadTokens", "outputTokens", "cacheHitRate", "costMicros", "unknownModelCalls", "cutCalls", "noAnswerCalls", "heldMicros", "maybeBilledAttempts", "costUsd"]);
    expect(Object.keys(j.budgets)).toEqual(["source", "available", "tenants"]);
    expect(j.budgets.tenants.find((t: { tenant: string }) => t.tenant === "plain")).toEqual({ tenant: "plain", name: "P", dailyBudgetMicros: 4000, monthlyBudgetMicros: 10_000 });
    expect(j.budgets.tenants.find((t: { tenant: string }) => t.tenant === "+1")).toEqual({ tenant: "+1", name: null, dailyBudgetMicros: null, monthlyBudgetMicros: null, note: "no tenant record with this id" });
    // Ids come back exactly as stored (JSON needs no guard).
    expect(j.lines.map((l: { tenant: string }) => l.tenant)).toContain(`=cmd|' /C calc'!A0`);
    const none = JSON.parse(renderJson(await report({ available: false, source: null, reason: "why" })));
    expect(none.budgets).toEqual({ source: null, available: false, reason: "why", tenants: expect.any(Array) });
    expect(none.lines[0].dailyBudgetUsed).toBeNull();
  });

  it("escapes what JSON.stringify leaves raw (C1 controls, bidirectional overrides, U+2028) in ids and names: the same JSON value", async () => {
    const name = "Acme\u202e\u2028\u0085\u001b[2J";
    const hostile: BudgetLookup = { available: true, source: "test tenants", byTenant: new Map([["t\u2066x", { name, dailyBudgetMicros: 4000, monthlyBudgetMicros: null, problems: [] }]]) };
    const r = await usageReport(rollupSource([{ day: "2026-11-02", tenant: "t\u2066x", model: "m\u009b", cost: 1 }]), FILTER, hostile);
    const text = renderJson(r);
    expect(text).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202e\u2028\u2066]/);
    expect(text).toContain("Acme\\u202e\\u2028\\u0085\\u001b[2J");
    const j = JSON.parse(text);
    expect(j.budgets.tenants[0]).toMatchObject({ tenant: "t\u2066x", name });
    expect(j.lines[0]).toMatchObject({ tenant: "t\u2066x", model: "m\u009b" });
  });
});

describe("table", () => {
  it("shows budget used per line as the tenant's share, and why budgets are missing", async () => {
    const t = renderTable(await report());
    expect(t).toMatch(/budget day/);
    // plain on 11-02: 1006 of 4000 a day (25.15%), 1506 of 10000 this month
    expect(t).toMatch(/│ 2026-11-02 │ plain .*│\s+25\.1% │\s+15\.1% │$/m);
    // Nor do bidirectional overrides (they reorder what the reader sees).
    const bidi = renderTable(await usageReport(rollupSource([{ day: "2026-11-02", tenant: "\u202eemca", model: "m\u2066", cost: 1 }]), FILTER, budgets));
    expect(bidi).not.toMatch(/[\u202e\u2066]/);
    expect(bidi).toContain("\\u202eemca");
    // Control characters from the database never reach the terminal raw.
    expect(t).not.toMatch(/[\t\u001b]/);
    expect(t).toContain(`a,"b"\\u000ac`);
    expect(t).toContain("\\u0009t");
    expect(t).toMatch(/budget used: - for tenant \+1: no tenant record with this id/);
    const none = renderTable(await report({ available: false, source: null, reason: "no tenant state here" }));
    expect(none).toMatch(/budget used: - for every tenant: no tenant state here/);
  });
});

describe("streams cut short (usage_daily.cut_calls)", () => {
  it("marks the lines that hold them, counts them in every format and says their cost is a lower bound", async () => {
    const rows = [
      { day: "2026-11-02", tenant: "plain", model: "m-cut", calls: 5, cost: 900, output: 40, cut: 2 },
      { day: "2026-11-02", tenant: "plain", model: "m-whole", calls: 3, cost: 700, output: 90 },
    ];
    const r = await usageReport(rollupSource(rows), FILTER, budgets);
    expect(r.lines.map((l) => [l.model, l.cutCalls])).toEqual([["m-cut", 2], ["m-whole", 0]]);
    expect(r.total.cutCalls).toBe(2);
    const t = renderTable(r);
    expect(t).toMatch(/│ m-cut \(\*\)\s+│/);
    expect(t).toMatch(/│ m-whole\s+│/);
    expect(t).toMatch(/\(\*\) 2 call\(s\) were streams cut short .* a lower bound/);
    expect(renderTable(await report())).not.toMatch(/\(\*\)/);
    const csv = renderCsv(r).split("\r\n");
    expect(csv[1]!.endsWith(",2,0,0,0,0,0")).toBe(true);
    expect(csv[2]!.endsWith(",0,0,0,0,0,0")).toBe(true);
    const j = JSON.parse(renderJson(r));
    expect(j.lines.map((l: { cutCalls: number }) => l.cutCalls)).toEqual([2, 0]);
    expect(j.total.cutCalls).toBe(2);
  });
});

describe("calls with no answer, and what budgets held beyond the cost (migration 0003)", () => {
  it("marks the lines, counts them in every format, and charges what budgets held to budget used", async () => {
    // plain's budgets: 4,000 a day, 10,000 a month. On 11-01 a cut stream's held max_tokens
    // (300); on 11-02 two calls with no answer whose reservations were kept (2,000).
    const rows = [
      { day: "2026-11-01", tenant: "plain", model: "m-cut", calls: 2, cost: 500, output: 40, cut: 1, held: 300 },
      { day: "2026-11-02", tenant: "plain", model: "unknown", calls: 2, cost: 0, noAnswer: 2, held: 2000 },
      { day: "2026-11-02", tenant: "plain", model: "m-whole", calls: 3, cost: 700, output: 90 },
      // A tenant without a budget whose attempts were retried after they may have been billed.
      { day: "2026-11-02", tenant: "+1", model: "m-retried", calls: 4, cost: 300, output: 20, maybeBilled: 3 },
    ];
    const r = await usageReport(rollupSource(rows), FILTER, budgets);
    const on2 = r.lines.filter((l) => l.day === "2026-11-02" && l.tenant === "plain");
    expect(on2.map((l) => [l.model, l.noAnswerCalls, l.heldMicros])).toEqual([["m-whole", 0, 0], ["unknown", 2, 2000]]);
    // Every line of the tenant and day carries the same budget figures: cost + held.
    for (const l of on2) expect(l).toMatchObject({ tenantDayCostMicros: 700, tenantDayHeldMicros: 2000, dailyBudgetUsed: 2700 / 4000, monthToDateCostMicros: 1200, monthToDateHeldMicros: 2300, monthlyBudgetUsed: 3500 / 10_000 });
    expect(r.lines.find((l) => l.day === "2026-11-01")).toMatchObject({ dailyBudgetUsed: 800 / 4000, monthlyBudgetUsed: 800 / 10_000 });
    expect(r.total).toMatchObject({ costMicros: 1500, noAnswerCalls: 2, heldMicros: 2300, maybeBilledAttempts: 3 });
    const t = renderTable(r);
    expect(t).toMatch(/│ unknown \(\?\)\s+│/);
    expect(t).toMatch(/│ m-whole\s+│/);
    expect(t).toMatch(/│ m-retried \(\?\)\s+│/);
    expect(t).toMatch(/\(\?\) 3 upstream attempt\(s\) were retried by the proxy after they may have been billed/);
    expect(t).toMatch(/│ 2026-11-02 │ plain .*│\s+67\.5% │\s+35\.0% │$/m);
    expect(t).toMatch(/\(\?\) 2 call\(s\) got no answer .* tokens and cost are unknown/);
    expect(t).toMatch(/Spend budgets held \$0\.002300 beyond the cost above/);
    // Without any, no mark and no note.
    const plainOnly = renderTable(await report());
    expect(plainOnly).not.toMatch(/\(\?\)|held \$/);
    const csv = renderCsv(r).split("\r\n");
    expect(csv[0]!.endsWith(",no_answer_calls,held_micros,tenant_day_held_micros,month_to_date_held_micros,maybe_billed_attempts")).toBe(true);
    expect(csv.find((x) => x.includes(",unknown,"))!.endsWith(",2,2000,2000,2300,0")).toBe(true);
    expect(csv.find((x) => x.includes(",m-retried,"))!.endsWith(",0,0,0,0,3")).toBe(true);
    const j = JSON.parse(renderJson(r));
    expect(j.total).toMatchObject({ noAnswerCalls: 2, heldMicros: 2300, maybeBilledAttempts: 3 });
  });
});
