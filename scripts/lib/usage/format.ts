// Renders a usage report as a terminal table, JSON or CSV (RFC 4180); html.ts renders the
// page with charts.
import Table from "cli-table3";
import { escapeControls, safeJson } from "../../../workers/shared/printable.ts";
import { dollars, type UsageReport, type UsageTotals } from "./report.ts";

/** Control and bidirectional characters (a terminal escape, a line break, an override
 * that reorders what the reader sees) in text from the database or the API shown as
 * \uXXXX, so a hostile row cannot rewrite the operator's terminal or the table. */
export const printable = escapeControls;

export const pct = (r: number | null) => (r === null ? "-" : `${(r * 100).toFixed(1)}%`);
const int = (n: number) => n.toLocaleString("en-US");

/** The lines with a problem worth printing under a table: unreadable budgets, tenants
 * without a record, unusable budget fields ("no budget set" is normal and not listed). */
export function budgetNotes(r: UsageReport): string[] {
  if (!r.budgets.available) return [printable(`budget used: - for every tenant: ${r.budgets.reason}`)];
  return r.budgets.tenants.filter((t) => t.note !== undefined && t.note !== "no budget set").map((t) => printable(`budget used: - for tenant ${t.tenant}: ${t.note}`));
}

export function renderTable(r: UsageReport): string {
  const t = new Table({
    head: ["day", "tenant", "model", "calls", "input", "cache write 5m", "cache write 1h", "cache read", "output", "cache hit", "cost USD", "budget day", "budget month"],
    colAligns: ["left", "left", "left", "right", "right", "right", "right", "right", "right", "right", "right", "right", "right"],
    style: { head: [], border: [] },
  });
  const row = (l: UsageTotals, day: string, tenant: string, model: string, budget: [string, string]) => [
    printable(day),
    printable(tenant),
    printable(modelMarks(model, l)),
    int(l.calls),
    int(l.inputTokens),
    int(l.cacheWrite5mTokens),
    int(l.cacheWrite1hTokens),
    int(l.cacheReadTokens),
    int(l.outputTokens),
    pct(l.cacheHitRate),
    dollars(l.costMicros),
    ...budget,
  ];
  for (const l of r.lines) t.push(row(l, l.day, l.tenant, l.model, [pct(l.dailyBudgetUsed), pct(l.monthlyBudgetUsed)]));
  t.push(row(r.total, "total", "", "", ["", ""]));
  const notes = [
    printable(`${r.lines.length} row(s), ${r.filter.from} to ${r.filter.to}, from ${r.source}`),
    "cache hit = cache read / (input + cache writes + cache read). budget day / month = what the tenant's spend budget charged that UTC day / month to date, all models (the cost, plus what it held beyond the cost: see below), over its daily / monthly budget.",
    ...budgetNotes(r),
  ];
  notes.push(...markNotes(r.total));
  return `${t.toString()}\n${notes.join("\n")}\n`;
}

type Marked = Pick<UsageTotals, "unknownModelCalls" | "cutCalls" | "noAnswerCalls" | "heldMicros" | "maybeBilledAttempts">;

/** A line's model with its marks: (!) priced by the unknown-model rule, (*) some calls
 *  were streams cut short (lower-bound cost), (?) some calls got no answer or had attempts
 *  retried that may have been billed (unknown cost). */
export function modelMarks(model: string, l: Marked): string {
  return model + (l.unknownModelCalls > 0 ? " (!)" : "") + (l.cutCalls > 0 ? " (*)" : "") + (l.noAnswerCalls > 0 || l.maybeBilledAttempts > 0 ? " (?)" : "");
}

/** The notes that explain the marks modelMarks puts on lines (table and HTML). */
export function markNotes(t: Marked): string[] {
  const notes: string[] = [];
  if (t.unknownModelCalls > 0) {
    notes.push(`(!) ${t.unknownModelCalls} call(s) used a model missing from fleet/metering.yaml; they are priced at the table's highest rates. Add the model's price.`);
  }
  if (t.cutCalls > 0) {
    notes.push(
      `(*) ${t.cutCalls} call(s) were streams cut short (the client left, the upstream broke or went silent, or the stream ended, with an error event or without one, before its final usage): their output tokens, and so their cost, are what the stream reported before the cut, a lower bound (Anthropic reports a stream's output at its end). Spend budgets charged them their whole max_tokens.`,
    );
  }
  if (t.noAnswerCalls > 0) {
    notes.push(
      `(?) ${t.noAnswerCalls} call(s) got no answer (502/504) after an upstream attempt that may have been billed (its headers never came, its connection was lost, or its answer broke off): Anthropic reported no usage, so their tokens and cost are unknown and count as 0 here. Spend budgets kept their whole reservation.`,
    );
  }
  if (t.maybeBilledAttempts > 0) {
    notes.push(
      `(?) ${t.maybeBilledAttempts} upstream attempt(s) were retried by the proxy after they may have been billed (no headers in time, a lost connection, an answer that broke off), for tenants without a budget or token limits: Anthropic reported no usage for them, so what they cost, if anything, is not in the cost above.`,
    );
  }
  if (t.heldMicros > 0) {
    notes.push(`Spend budgets held $${dollars(t.heldMicros)} beyond the cost above (cut streams' max_tokens, calls with no answer): budget used counts it, as the proxy does.`);
  } else if (t.heldMicros < 0) {
    notes.push(`Spend budgets charged $${dollars(-t.heldMicros)} less than the cost above (they priced with other prices, or the requested model where an answer named none): budget used is what they charged.`);
  }
  return notes;
}

/** Version of the JSON shape: bumped when a field is renamed or removed, or its meaning
 *  changes (added ones keep it). 2 (2026-11-28): dailyBudgetUsed and monthlyBudgetUsed
 *  count what budgets held beyond the cost (heldMicros), as the budgets do. */
export const JSON_VERSION = 2;

/** The report as JSON; safeJson escapes what JSON.stringify leaves raw (C1 controls,
 *  bidirectional overrides, U+2028/9: a tenant's name can hold them), the same JSON value. */
export function renderJson(r: UsageReport): string {
  const withUsd = <T extends { costMicros: number }>(l: T) => ({ ...l, costUsd: dollars(l.costMicros) });
  return `${safeJson({ version: JSON_VERSION, filter: r.filter, source: r.source, budgets: r.budgets, lines: r.lines.map(withUsd), total: withUsd(r.total) }, 2)}\n`;
}

// Columns are only ever appended, so a reader by position keeps working.
const CSV_HEAD = [
  "day", "tenant", "model", "calls", "input_tokens", "cache_write_5m_tokens", "cache_write_1h_tokens", "cache_read_tokens", "output_tokens", "cache_hit_rate", "cost_micros", "cost_usd", "unknown_model_calls",
  "tenant_day_cost_micros", "daily_budget_micros", "daily_budget_used", "month_to_date_cost_micros", "monthly_budget_micros", "monthly_budget_used",
  "cut_calls",
  "no_answer_calls", "held_micros", "tenant_day_held_micros", "month_to_date_held_micros", "maybe_billed_attempts",
];

/** A CSV field: quoted when it holds a comma, a semicolon (the separator Excel uses in
 * many locales), a quote or a line break; a leading =, +, -, @, tab, CR or NUL is prefixed
 * with ' so a spreadsheet never runs it as a formula (OWASP CSV injection). */
export function csvField(v: string): string {
  const safe = /^[=+\-@\t\r\0]/.test(v) ? `'${v}` : v;
  return /[",;\r\n]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
}

const fraction = (r: number | null) => (r === null ? "" : r.toFixed(6));
/** A fraction as `fraction` writes it: a number to a spreadsheet, not a formula. */
const NUMBER = /^-?\d+\.\d+$/;
const orEmpty = (n: number | null) => (n === null ? "" : n);

export function renderCsv(r: UsageReport): string {
  const lines = [CSV_HEAD.join(",")];
  for (const l of r.lines) {
    const cells: (string | number)[] = [
      l.day, l.tenant, l.model, l.calls, l.inputTokens, l.cacheWrite5mTokens, l.cacheWrite1hTokens, l.cacheReadTokens, l.outputTokens, fraction(l.cacheHitRate), l.costMicros, dollars(l.costMicros), l.unknownModelCalls,
      l.tenantDayCostMicros, orEmpty(l.dailyBudgetMicros), fraction(l.dailyBudgetUsed), l.monthToDateCostMicros, orEmpty(l.monthlyBudgetMicros), fraction(l.monthlyBudgetUsed),
      l.cutCalls,
      l.noAnswerCalls, l.heldMicros, l.tenantDayHeldMicros, l.monthToDateHeldMicros, l.maybeBilledAttempts,
    ];
    // A number is written as a number (held_micros is signed: "-1200", never "'-1200";
    // a budget used below 0, from a negative charge, "-0.040000"); the formula guard is
    // for text.
    lines.push(
      cells
        .map((v) => {
          const text = String(v);
          return (typeof v === "number" && Number.isFinite(v)) || NUMBER.test(text) ? text : csvField(text);
        })
        .join(","),
    );
  }
  return `${lines.join("\r\n")}\r\n`;
}

