// The usage report: per UTC day, tenant and model, the calls, tokens by kind, cache hit
// rate, cost and budget used, read from the ledger's daily rollups (usage_daily) through a
// UsageSource (local Miniflare D1 or the Cloudflare D1 API) and the tenants' budgets
// (budgets.ts). Pure apart from the source.
import { z } from "zod";
import { escapeControls } from "../../../workers/shared/printable.ts";
import { isUtcDay } from "../cli.ts";
import type { BudgetLookup } from "./budgets.ts";

/** Runs one read-only SQL statement with string parameters; returns its rows. */
export interface UsageSource {
  query(sql: string, params: string[]): Promise<unknown[]>;
  /** Where the rows come from, for messages. */
  where: string;
  close(): Promise<void>;
}

export interface UsageFilter {
  from: string;
  to: string;
  tenant?: string;
  model?: string;
}

const Int = z.number().int().nonnegative();
/** held_micros: a budget's charge minus the priced cost, which can be below 0. */
const Signed = z.number().int();
/** A day as the ledger writes it: a row whose day is not a UTC day was not written by
 *  the ledger, and is refused by name. Read as text, it was in the totals and the table
 *  but on no day of the chart, whose bars then disagreed with the total. (Tenants and
 *  models are shown whatever they hold: every format escapes them.) */
const Day = z.string().refine(isUtcDay, "a UTC day YYYY-MM-DD");
const RollupRow = z.object({
  day: Day,
  tenant: z.string(),
  model: z.string(),
  calls: Int,
  input_tokens: Int,
  cache_write_5m_tokens: Int,
  cache_write_1h_tokens: Int,
  cache_read_tokens: Int,
  output_tokens: Int,
  cost_micros: Int,
  unknown_model_calls: Int,
  cut_calls: Int,
  no_answer_calls: Int,
  held_micros: Signed,
  maybe_billed_attempts: Int,
});

export interface UsageLine {
  day: string;
  tenant: string;
  model: string;
  calls: number;
  inputTokens: number;
  cacheWrite5mTokens: number;
  cacheWrite1hTokens: number;
  cacheReadTokens: number;
  outputTokens: number;
  /** cache reads / all prompt tokens (input + writes + reads); null with no prompt tokens. */
  cacheHitRate: number | null;
  costMicros: number;
  /** Calls priced by the unknown-model rule (the table's ceiling): add the model's price. */
  unknownModelCalls: number;
  /** Streams cut short (the client left, the upstream broke, went silent or sent an error
   *  event before its final usage): their output tokens, and so the cost, count what the
   *  stream reported before the cut (migration 0002). */
  cutCalls: number;
  /** Calls that got no answer after an upstream attempt that may have been billed (its
   *  headers never came, its connection was lost, its answer broke off): their tokens are
   *  unknown, so they add no tokens and no cost (migration 0003). */
  noAnswerCalls: number;
  /** What spend budgets charged these calls minus their priced usage (a cut stream's whole
   *  max_tokens, a call with no answer's whole reservation; below 0 where a budget charged
   *  less, e.g. with other prices): counted in budget used, so it is what budgets charged. */
  heldMicros: number;
  /** Attempts the proxy retried after the upstream may have billed them (no usage was
   *  reported for them): what they cost, if anything, is not in costMicros (migration 0003). */
  maybeBilledAttempts: number;
  // Budget used: the TENANT's, for the whole UTC day / month (all its models, whatever
  // --model says), so every line of a tenant and day carries the same values.
  /** The tenant's cost that UTC day, all models. */
  tenantDayCostMicros: number;
  /** What budgets held beyond the tenant's cost that UTC day, all models. */
  tenantDayHeldMicros: number;
  /** The tenant's cost from the 1st of the day's UTC month through the day, all models. */
  monthToDateCostMicros: number;
  /** What budgets held beyond the cost over the same days. */
  monthToDateHeldMicros: number;
  /** null: no budget (absent or 0 in the tenant record) or budgets not readable. */
  dailyBudgetMicros: number | null;
  /** (tenantDayCostMicros + tenantDayHeldMicros) / dailyBudgetMicros (1 = the whole
   *  budget): what the budget charged, as the proxy does; null without a budget. */
  dailyBudgetUsed: number | null;
  monthlyBudgetMicros: number | null;
  /** (monthToDateCostMicros + monthToDateHeldMicros) / monthlyBudgetMicros; null without a budget. */
  monthlyBudgetUsed: number | null;
}

/** The per-line fields that describe the tenant's budget, not the line's own usage. */
export type BudgetFields = "tenantDayCostMicros" | "tenantDayHeldMicros" | "monthToDateCostMicros" | "monthToDateHeldMicros" | "dailyBudgetMicros" | "dailyBudgetUsed" | "monthlyBudgetMicros" | "monthlyBudgetUsed";
export type UsageTotals = Omit<UsageLine, "day" | "tenant" | "model" | BudgetFields>;

/** Whether budgets could be read, and each reported tenant's (present or not, and why). */
export interface BudgetSummary {
  /** Where the tenant records were read; null when they were not. */
  source: string | null;
  available: boolean;
  /** Why budgets show "-" for every tenant (available false). */
  reason?: string;
  tenants: { tenant: string; name: string | null; dailyBudgetMicros: number | null; monthlyBudgetMicros: number | null; note?: string }[];
}

export interface UsageReport {
  filter: UsageFilter;
  source: string;
  lines: UsageLine[];
  total: UsageTotals;
  budgets: BudgetSummary;
}

/**
 * Rows per query. A D1 query's result is bounded (developers.cloudflare.com/d1/platform/limits)
 * and a report over a long range of hundreds of tenants and models would exceed one answer;
 * the report reads pages of this many rows (~1 MB), each after the last row of the one
 * before (keyset on the ORDER BY, which rows written meanwhile cannot shift).
 */
export const PAGE_ROWS = 5000;

/** Every model's rollups over the range (within --tenant): --model is applied to the rows
 *  read, since the tenant-day sums that budget used needs come from the same rows. */
export function buildQuery(f: UsageFilter, after?: readonly [string, string, string], pageRows = PAGE_ROWS): { sql: string; params: string[] } {
  const where = ["day >= ?", "day <= ?"];
  const params = [f.from, f.to];
  if (after !== undefined) {
    where.push("(day, tenant, model) > (?, ?, ?)");
    params.push(...after);
  }
  if (f.tenant !== undefined) {
    where.push("tenant = ?");
    params.push(f.tenant);
  }
  return {
    sql: `SELECT day, tenant, model, calls, input_tokens, cache_write_5m_tokens, cache_write_1h_tokens, cache_read_tokens, output_tokens, cost_micros, unknown_model_calls, cut_calls, no_answer_calls, held_micros, maybe_billed_attempts FROM usage_daily WHERE ${where.join(" AND ")} ORDER BY day, tenant, model LIMIT ${pageRows}`,
    params,
  };
}

/** The first day of the UTC month of a YYYY-MM-DD day. */
export function monthStart(day: string): string {
  return `${day.slice(0, 8)}01`;
}

/** Cost per UTC day and tenant over all models on the days of --from's month before
 * --from (what month-to-date budget use needs beyond the range), within the tenant filter
 * but not the model filter. undefined when --from is the 1st. */
export function buildTenantDayQuery(f: UsageFilter, after?: readonly [string, string], pageRows = PAGE_ROWS): { sql: string; params: string[] } | undefined {
  if (monthStart(f.from) === f.from) return undefined;
  const where = ["day >= ?", "day < ?"];
  const params = [monthStart(f.from), f.from];
  if (after !== undefined) {
    where.push("(day, tenant) > (?, ?)");
    params.push(...after);
  }
  if (f.tenant !== undefined) {
    where.push("tenant = ?");
    params.push(f.tenant);
  }
  return {
    sql: `SELECT day, tenant, SUM(cost_micros) AS cost_micros, SUM(held_micros) AS held_micros FROM usage_daily WHERE ${where.join(" AND ")} GROUP BY day, tenant ORDER BY day, tenant LIMIT ${pageRows}`,
    params,
  };
}

const TenantDayRow = z.object({ day: Day, tenant: z.string(), cost_micros: Int, held_micros: Signed });

/** Cache hit rate: cache_read / (input + cache_write_5m + cache_write_1h + cache_read),
 * i.e. the share of the prompt's tokens served from the cache; output tokens do not
 * count. null with no prompt tokens. Totals are computed from summed tokens (weighted by
 * tokens), never as a mean of rates. */
export function hitRate(input: number, w5: number, w1: number, read: number): number | null {
  const prompt = input + w5 + w1 + read;
  return prompt === 0 ? null : read / prompt;
}

function parseRow<T>(schema: z.ZodType<T>, raw: unknown, i: number, where: string, what: string): T {
  const r = schema.safeParse(raw);
  if (!r.success) {
    // Which row: its keys as they are (escaped, cut short), so the operator can find it.
    const keys = typeof raw === "object" && raw !== null ? (raw as Record<string, unknown>) : {};
    const named = (["day", "tenant", "model"] as const).filter((k) => keys[k] !== undefined).map((k) => `${k} ${JSON.stringify(String(keys[k]).slice(0, 80))}`);
    throw new Error(escapeControls(`row ${i + 1}${named.length > 0 ? ` (${named.join(", ")})` : ""} from ${where} is not ${what}: ${r.error.issues[0]!.path.join(".")}: ${r.error.issues[0]!.message}`));
  }
  return r.data;
}

/** a + b, refused past 2^53: a sum of integer micro-dollars or tokens that a double can
 *  no longer hold exactly is an error, never a silently rounded total. */
function add(a: number, b: number): number {
  const n = a + b;
  if (!Number.isSafeInteger(n)) throw new Error(`a sum of the ledger's rows is past 2^53 (${a} + ${b}): it cannot be added exactly`);
  return n;
}

const ratio = (cost: number, budget: number | null) => (budget === null ? null : cost / budget);

/** Every row of a keyset-paged query: pages until one comes back short. `keyOf` reads
 *  the ORDER BY columns of a page's last row (strings in the ledger's schema). */
async function allRows<K extends readonly string[]>(source: UsageSource, build: (after: K | undefined) => { sql: string; params: string[] }, keyOf: (row: Record<string, unknown>) => K, pageRows: number): Promise<unknown[]> {
  const out: unknown[] = [];
  let after: K | undefined;
  for (;;) {
    const { sql, params } = build(after);
    const page = await source.query(sql, params);
    out.push(...page);
    if (page.length < pageRows) return out;
    const last = page[page.length - 1] as Record<string, unknown>;
    const key = keyOf(last);
    if (key.some((k) => typeof k !== "string")) throw new Error(`row ${out.length} from ${source.where} has no day, tenant and model to page after`);
    after = key;
  }
}

/**
 * The report reads the range's rollups of every model in one paged query and takes each
 * tenant's day sums (budget used) from those same rows, so budget used always agrees with
 * the lines, whatever the ledger writes meanwhile. It used to read the sums with a second
 * query and compare: on a busy fleet (a batch committed every second or so, each REST
 * round trip hundreds of milliseconds) the two disagreed on most attempts and the remote
 * report gave up (a review). Only the days of --from's month before --from come from a
 * query of their own: past days, which the ledger writes again only for late events.
 */
export async function usageReport(source: UsageSource, filter: UsageFilter, budgets: BudgetLookup, pageRows = PAGE_ROWS): Promise<UsageReport> {
  const raw = await allRows(source, (after: readonly [string, string, string] | undefined) => buildQuery(filter, after, pageRows), (r) => [r.day, r.tenant, r.model] as unknown as readonly [string, string, string], pageRows);
  const every = raw.map((r, i) => parseRow(RollupRow, r, i, source.where, "a usage rollup"));
  const earlier = buildTenantDayQuery(filter, undefined, pageRows) === undefined
    ? []
    : (await allRows(source, (after: readonly [string, string] | undefined) => buildTenantDayQuery(filter, after, pageRows)!, (r) => [r.day, r.tenant] as unknown as readonly [string, string], pageRows)).map((r, i) =>
        parseRow(TenantDayRow, r, i, source.where, "a tenant's daily cost"),
      );
  // In the range: each tenant's day over all its models, summed from the lines' rows (in
  // day order, as the running month sums below need).
  const inRange = new Map<string, z.infer<typeof TenantDayRow>>();
  for (const r of every) {
    const k = JSON.stringify([r.day, r.tenant]);
    const d = inRange.get(k);
    if (d === undefined) inRange.set(k, { day: r.day, tenant: r.tenant, cost_micros: r.cost_micros, held_micros: r.held_micros });
    else {
      d.cost_micros = add(d.cost_micros, r.cost_micros);
      d.held_micros = add(d.held_micros, r.held_micros);
    }
  }
  const dayRows = [...earlier, ...inRange.values()];
  const rows = filter.model === undefined ? every : every.filter((r) => r.model === filter.model);
  // Month-to-date per tenant and day: running sums that restart each UTC month.
  const dayCost = new Map<string, { cost: number; held: number }>();
  const monthToDate = new Map<string, { cost: number; held: number }>();
  const running = new Map<string, { month: string; cost: number; held: number }>();
  for (const r of dayRows) {
    const k = JSON.stringify([r.day, r.tenant]);
    const month = r.day.slice(0, 7);
    const prev = running.get(r.tenant);
    const same = prev?.month === month;
    const next = { month, cost: add(same ? prev.cost : 0, r.cost_micros), held: add(same ? prev.held : 0, r.held_micros) };
    running.set(r.tenant, next);
    dayCost.set(k, { cost: r.cost_micros, held: r.held_micros });
    monthToDate.set(k, { cost: next.cost, held: next.held });
  }
  const budgetOf = (tenant: string) => (budgets.available ? budgets.byTenant.get(tenant) : undefined);
  const lines: UsageLine[] = rows.map((d) => {
    const k = JSON.stringify([d.day, d.tenant]);
    const b = budgetOf(d.tenant);
    const day = dayCost.get(k) ?? { cost: d.cost_micros, held: d.held_micros };
    const mtd = monthToDate.get(k) ?? day;
    const dailyBudgetMicros = b?.dailyBudgetMicros ?? null;
    const monthlyBudgetMicros = b?.monthlyBudgetMicros ?? null;
    return {
      day: d.day,
      tenant: d.tenant,
      model: d.model,
      calls: d.calls,
      inputTokens: d.input_tokens,
      cacheWrite5mTokens: d.cache_write_5m_tokens,
      cacheWrite1hTokens: d.cache_write_1h_tokens,
      cacheReadTokens: d.cache_read_tokens,
      outputTokens: d.output_tokens,
      cacheHitRate: hitRate(d.input_tokens, d.cache_write_5m_tokens, d.cache_write_1h_tokens, d.cache_read_tokens),
      costMicros: d.cost_micros,
      unknownModelCalls: d.unknown_model_calls,
      cutCalls: d.cut_calls,
      noAnswerCalls: d.no_answer_calls,
      heldMicros: d.held_micros,
      maybeBilledAttempts: d.maybe_billed_attempts,
      tenantDayCostMicros: day.cost,
      tenantDayHeldMicros: day.held,
      monthToDateCostMicros: mtd.cost,
      monthToDateHeldMicros: mtd.held,
      dailyBudgetMicros,
      dailyBudgetUsed: ratio(day.cost + day.held, dailyBudgetMicros),
      monthlyBudgetMicros,
      monthlyBudgetUsed: ratio(mtd.cost + mtd.held, monthlyBudgetMicros),
    };
  });
  const sum = (k: "calls" | "inputTokens" | "cacheWrite5mTokens" | "cacheWrite1hTokens" | "cacheReadTokens" | "outputTokens" | "costMicros" | "unknownModelCalls" | "cutCalls" | "noAnswerCalls" | "heldMicros" | "maybeBilledAttempts") => lines.reduce((n, l) => add(n, l[k]), 0);
  const total: UsageTotals = {
    calls: sum("calls"),
    inputTokens: sum("inputTokens"),
    cacheWrite5mTokens: sum("cacheWrite5mTokens"),
    cacheWrite1hTokens: sum("cacheWrite1hTokens"),
    cacheReadTokens: sum("cacheReadTokens"),
    outputTokens: sum("outputTokens"),
    cacheHitRate: null,
    costMicros: sum("costMicros"),
    unknownModelCalls: sum("unknownModelCalls"),
    cutCalls: sum("cutCalls"),
    noAnswerCalls: sum("noAnswerCalls"),
    heldMicros: sum("heldMicros"),
    maybeBilledAttempts: sum("maybeBilledAttempts"),
  };
  total.cacheHitRate = hitRate(total.inputTokens, total.cacheWrite5mTokens, total.cacheWrite1hTokens, total.cacheReadTokens);
  return { filter, source: source.where, lines, total, budgets: summarise(budgets, lines) };
}

function summarise(budgets: BudgetLookup, lines: UsageLine[]): BudgetSummary {
  const tenants = [...new Set(lines.map((l) => l.tenant))].sort();
  if (!budgets.available) {
    return { source: budgets.source, available: false, reason: budgets.reason, tenants: tenants.map((tenant) => ({ tenant, name: null, dailyBudgetMicros: null, monthlyBudgetMicros: null })) };
  }
  return {
    source: budgets.source,
    available: true,
    tenants: tenants.map((tenant) => {
      const b = budgets.byTenant.get(tenant);
      if (b === undefined) return { tenant, name: null, dailyBudgetMicros: null, monthlyBudgetMicros: null, note: "no tenant record with this id" };
      const note = [...b.problems, ...(b.dailyBudgetMicros === null && b.monthlyBudgetMicros === null && b.problems.length === 0 ? ["no budget set"] : [])].join("; ");
      return { tenant, name: b.name, dailyBudgetMicros: b.dailyBudgetMicros, monthlyBudgetMicros: b.monthlyBudgetMicros, ...(note ? { note } : {}) };
    }),
  };
}

// Micro-dollars as dollars, from the integer (shared with the proxy's budget messages).
export { dollars } from "../../../workers/shared/cost.ts";
