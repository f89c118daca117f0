// Renders a usage report as a terminal table, JSON or CSV (RFC 4180).
import Table from "cli-table3";
import { dollars, type UsageLine, type UsageReport } from "./report.ts";

const pct = (r: number | null) => (r === null ? "-" : `${(r * 100).toFixed(1)}%`);
const int = (n: number) => n.toLocaleString("en-US");

export function renderTable(r: UsageReport): string {
  const t = new Table({
    head: ["day", "tenant", "model", "calls", "input", "cache write 5m", "cache write 1h", "cache read", "output", "cache hit", "cost USD"],
    colAligns: ["left", "left", "left", "right", "right", "right", "right", "right", "right", "right", "right"],
    style: { head: [], border: [] },
  });
  const row = (l: Omit<UsageLine, "day" | "tenant" | "model">, day: string, tenant: string, model: string) => [
    day,
    tenant,
    l.unknownModelCalls > 0 ? `${model} (!)` : model,
    int(l.calls),
    int(l.inputTokens),
    int(l.cacheWrite5mTokens),
    int(l.cacheWrite1hTokens),
    int(l.cacheReadTokens),
    int(l.outputTokens),
    pct(l.cacheHitRate),
    dollars(l.costMicros),
  ];
  for (const l of r.lines) t.push(row(l, l.day, l.tenant, l.model));
  t.push(row(r.total, "total", "", ""));
  const notes = [`${r.lines.length} row(s), ${r.filter.from} to ${r.filter.to}, from ${r.source}`];
  if (r.total.unknownModelCalls > 0) {
    notes.push(`(!) ${r.total.unknownModelCalls} call(s) used a model missing from fleet/metering.yaml; they are priced at the table's highest rates. Add the model's price.`);
  }
  return `${t.toString()}\n${notes.join("\n")}\n`;
}

export function renderJson(r: UsageReport): string {
  const withUsd = <T extends { costMicros: number }>(l: T) => ({ ...l, costUsd: dollars(l.costMicros) });
  return `${JSON.stringify({ filter: r.filter, source: r.source, lines: r.lines.map(withUsd), total: withUsd(r.total) }, null, 2)}\n`;
}

const CSV_HEAD = ["day", "tenant", "model", "calls", "input_tokens", "cache_write_5m_tokens", "cache_write_1h_tokens", "cache_read_tokens", "output_tokens", "cache_hit_rate", "cost_micros", "cost_usd", "unknown_model_calls"];

/** A CSV field: quoted when it holds a comma, quote or line break; a leading =, +, - or @
 * is prefixed with ' so a spreadsheet never runs it as a formula (OWASP CSV injection). */
function field(v: string): string {
  const safe = /^[=+\-@\t\r]/.test(v) ? `'${v}` : v;
  return /[",\r\n]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
}

export function renderCsv(r: UsageReport): string {
  const lines = [CSV_HEAD.join(",")];
  for (const l of r.lines) {
    lines.push(
      [l.day, l.tenant, l.model, l.calls, l.inputTokens, l.cacheWrite5mTokens, l.cacheWrite1hTokens, l.cacheReadTokens, l.outputTokens, l.cacheHitRate === null ? "" : l.cacheHitRate.toFixed(6), l.costMicros, dollars(l.costMicros), l.unknownModelCalls]
        .map((v) => field(String(v)))
        .join(","),
    );
  }
  return `${lines.join("\r\n")}\r\n`;
}
