// The usage report for people (`npm run usage -- --html [--out FILE]`): one self-contained
// page, like the verify report (scripts/lib/verify/html.ts): inline CSS, charts drawn here
// as inline SVG (no script, no chart library, no outside request; the page's CSP forbids
// them), every tenant id, name and model escaped. Charts: cost per UTC day per tenant
// (stacked bars) and cache hit rate per day (a line per tenant and one for all tenants),
// then budget use per tenant and day, and every line of the report.
import { escapeHtml } from "../verify/html.ts";
import { budgetNotes, markNotes, modelMarks, pct } from "./format.ts";
import { dollars, hitRate, type UsageLine, type UsageReport } from "./report.ts";

/** Tenants drawn as their own series; the rest are summed into "other tenants". */
export const MAX_SERIES = 8;
// Tableau 10 without its grey, which "other tenants" uses.
const PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f"];
const OTHER_COLOUR = "#8c8c8c";
const ALL_COLOUR = "#1d2433";

const W = 900;
const H = 300;
const M = { left: 76, right: 16, top: 14, bottom: 36 };
const PW = W - M.left - M.right;
const PH = H - M.top - M.bottom;

const e = escapeHtml;
const int = (n: number) => n.toLocaleString("en-US");
const px = (n: number) => String(Math.round(n * 100) / 100);

/** Every UTC day from `from` to `to`, inclusive. */
export function eachDay(from: string, to: string): string[] {
  const out: string[] = [];
  for (let t = Date.parse(`${from}T00:00:00Z`); t <= Date.parse(`${to}T00:00:00Z`); t += 86_400_000) out.push(new Date(t).toISOString().slice(0, 10));
  return out;
}

/** A chart series: one tenant, or the sum of the tenants beyond MAX_SERIES. */
export interface Series {
  /** The tenant id; null for "other tenants". */
  tenant: string | null;
  label: string;
  colour: string;
  tenants: Set<string>;
}

/** Tenants by cost in the report (highest first, then by id); the first MAX_SERIES get
 * their own series. */
export function seriesOf(r: UsageReport): Series[] {
  const cost = new Map<string, number>();
  for (const l of r.lines) cost.set(l.tenant, (cost.get(l.tenant) ?? 0) + l.costMicros);
  const names = new Map(r.budgets.tenants.map((t) => [t.tenant, t.name]));
  const ranked = [...cost.keys()].sort((a, b) => cost.get(b)! - cost.get(a)! || (a < b ? -1 : a > b ? 1 : 0));
  const own = ranked.length > MAX_SERIES + 1 ? ranked.slice(0, MAX_SERIES) : ranked;
  const series: Series[] = own.map((t, i) => {
    const name = names.get(t);
    return { tenant: t, label: name ? `${t} (${name})` : t, colour: PALETTE[i % PALETTE.length]!, tenants: new Set([t]) };
  });
  const rest = ranked.slice(own.length);
  if (rest.length > 0) series.push({ tenant: null, label: `other tenants (${rest.length})`, colour: OTHER_COLOUR, tenants: new Set(rest) });
  return series;
}

/** 1, 2 or 5 times a power of ten, in micro-dollars: the tick step for a maximum. */
export function niceStep(max: number, ticks = 4): number {
  const raw = Math.max(1, max / ticks);
  let p = 1;
  while (p * 10 <= raw) p *= 10;
  for (const m of [1, 2, 5, 10]) if (m * p >= raw) return m * p;
  return 10 * p;
}

/** Micro-dollars as "$1.25" (trailing zeros trimmed, at least two decimals). */
function usd(micros: number): string {
  const [whole, frac] = dollars(micros).split(".");
  return `$${whole}.${frac!.replace(/0+$/, "").padEnd(2, "0")}`;
}

function dataSeries(s: Series): string {
  return s.tenant === null ? 'data-other=""' : `data-tenant="${e(s.tenant)}"`;
}

/** x of a day's slot (its left edge) and the slot's width. */
function slots(days: string[]) {
  const slot = PW / Math.max(1, days.length);
  return { slot, left: (i: number) => M.left + i * slot, centre: (i: number) => M.left + (i + 0.5) * slot };
}

function xLabels(days: string[]): string {
  const { centre } = slots(days);
  const every = Math.ceil(days.length / 12);
  return days
    .map((d, i) => (i % every === 0 ? `<text class="xl" x="${px(centre(i))}" y="${H - M.bottom + 16}" text-anchor="middle">${e(d.slice(5))}</text>` : ""))
    .join("");
}

function frame(id: string, title: string, body: string): string {
  return `<svg id="${id}" class="chart" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-labelledby="${id}-title"><title id="${id}-title">${e(title)}</title>${body}</svg>`;
}

function gridLine(y: number, label: string): string {
  return `<line class="grid" x1="${M.left}" x2="${W - M.right}" y1="${px(y)}" y2="${px(y)}"/><text class="yl" x="${M.left - 6}" y="${px(y + 4)}" text-anchor="end">${e(label)}</text>`;
}

export function costChart(r: UsageReport, days: string[], series: Series[]): string {
  const cost = new Map<string, number>(); // [day, series index] -> micros
  const dayTotal = new Map<string, number>();
  for (const l of r.lines) {
    const si = series.findIndex((s) => s.tenants.has(l.tenant));
    const k = JSON.stringify([l.day, si]);
    cost.set(k, (cost.get(k) ?? 0) + l.costMicros);
    dayTotal.set(l.day, (dayTotal.get(l.day) ?? 0) + l.costMicros);
  }
  const max = Math.max(0, ...dayTotal.values());
  const step = niceStep(max);
  const top = Math.max(step, Math.ceil(max / step) * step);
  const y = (micros: number) => M.top + PH - (micros / top) * PH;
  const grid: string[] = [];
  for (let v = 0; v <= top; v += step) grid.push(gridLine(y(v), usd(v)));
  const { slot, left } = slots(days);
  const bw = Math.max(1, slot * 0.78);
  const bars: string[] = [];
  days.forEach((d, i) => {
    let base = 0;
    series.forEach((s, si) => {
      const c = cost.get(JSON.stringify([d, si])) ?? 0;
      if (c === 0) return;
      const y0 = y(base);
      const y1 = y(base + c);
      base += c;
      bars.push(
        `<rect class="bar" ${dataSeries(s)} data-day="${d}" data-cost-micros="${c}" x="${px(left(i) + (slot - bw) / 2)}" y="${px(y1)}" width="${px(bw)}" height="${px(y0 - y1)}" fill="${s.colour}"><title>${e(`${d} · ${s.label}: ${usd(c)}`)}</title></rect>`,
      );
    });
  });
  const empty = max === 0 ? `<text class="empty" x="${M.left + PW / 2}" y="${M.top + PH / 2}" text-anchor="middle">no cost in this range</text>` : "";
  return frame("cost-chart", "Cost per UTC day per tenant (USD)", `${grid.join("")}<g class="bars">${bars.join("")}</g>${xLabels(days)}${empty}`);
}

export function cacheChart(r: UsageReport, days: string[], series: Series[]): string {
  type Tok = [number, number, number, number];
  const all: Series = { tenant: null, label: "all tenants", colour: ALL_COLOUR, tenants: new Set(r.lines.map((l) => l.tenant)) };
  const y = (rate: number) => M.top + PH - rate * PH;
  const grid = [0, 0.25, 0.5, 0.75, 1].map((v) => gridLine(y(v), `${v * 100}%`)).join("");
  const { centre } = slots(days);
  const lines: string[] = [];
  const points: string[] = [];
  for (const [s, isAll] of [...series.map((s) => [s, false] as const), [all, true] as const]) {
    const tokens = new Map<string, Tok>();
    for (const l of r.lines) {
      if (!s.tenants.has(l.tenant)) continue;
      const t = tokens.get(l.day) ?? [0, 0, 0, 0];
      tokens.set(l.day, [t[0] + l.inputTokens, t[1] + l.cacheWrite5mTokens, t[2] + l.cacheWrite1hTokens, t[3] + l.cacheReadTokens]);
    }
    let d = "";
    let pen = false;
    days.forEach((day, i) => {
      const t = tokens.get(day);
      const rate = t === undefined ? null : hitRate(...t);
      if (rate === null) {
        pen = false; // a day without prompt tokens breaks the line
        return;
      }
      d += `${pen ? "L" : "M"}${px(centre(i))} ${px(y(rate))}`;
      pen = true;
      const attrs = isAll ? 'data-all=""' : dataSeries(s);
      points.push(`<circle class="point${isAll ? " all" : ""}" ${attrs} data-day="${day}" data-rate="${rate}" cx="${px(centre(i))}" cy="${px(y(rate))}" r="${isAll ? 3.5 : 3}" fill="${s.colour}"><title>${e(`${day} · ${s.label}: ${pct(rate)}`)}</title></circle>`);
    });
    if (d !== "") lines.push(`<path class="line${isAll ? " all" : ""}" ${isAll ? 'data-all=""' : dataSeries(s)} d="${d}" fill="none" stroke="${s.colour}" stroke-width="${isAll ? 2.5 : 1.5}"${isAll ? ' stroke-dasharray="6 4"' : ""}/>`);
  }
  const empty = points.length === 0 ? `<text class="empty" x="${M.left + PW / 2}" y="${M.top + PH / 2}" text-anchor="middle">no prompt tokens in this range</text>` : "";
  return frame("cache-chart", "Cache hit rate per UTC day: cache read / (input + cache writes + cache read)", `${grid}<g class="lines">${lines.join("")}</g><g class="points">${points.join("")}</g>${xLabels(days)}${empty}`);
}

function legend(series: Series[], withAll: boolean): string {
  const item = (colour: string, label: string, attrs: string) => `<li ${attrs}><svg width="12" height="12" aria-hidden="true"><rect width="12" height="12" fill="${colour}"/></svg>${e(label)}</li>`;
  return `<ul class="legend">${series.map((s) => item(s.colour, s.label, dataSeries(s))).join("")}${withAll ? item(ALL_COLOUR, "all tenants (dashed)", 'data-all=""') : ""}</ul>`;
}

const CSS = `
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#1d2433;background:#fff}
h1{font-size:20px;margin:0 0 4px}
h2{font-size:16px;margin:24px 0 8px}
.meta{color:#5b6475;margin-bottom:16px}
.summary{display:flex;gap:12px;flex-wrap:wrap;margin-bottom:8px}
.card{border:1px solid #d5dae3;border-radius:6px;padding:8px 14px;min-width:110px}
.card b{display:block;font-size:22px}
.chart{display:block;max-width:100%;height:auto;border:1px solid #e3e7ee;border-radius:6px}
.chart .grid{stroke:#e3e7ee;stroke-width:1}
.chart text{font-size:11px;fill:#5b6475}
.chart .empty{font-size:14px}
.legend{list-style:none;padding:0;margin:6px 0 0;display:flex;flex-wrap:wrap;gap:4px 16px}
.legend li{display:flex;align-items:center;gap:6px;word-break:break-all}
.note{color:#7a5200;background:#fff4d6;border-radius:4px;padding:6px 10px;margin:6px 0}
table{border-collapse:collapse;width:100%;margin-top:4px}
th,td{border:1px solid #d5dae3;padding:4px 8px;text-align:right;white-space:nowrap}
th{background:#f2f4f8;position:sticky;top:0}
td.text{text-align:left;white-space:normal;word-break:break-all}
td.day{white-space:nowrap;word-break:normal}
td.over{background:#fde8e8;color:#8a1c1c;font-weight:600}
tr.total td{font-weight:700;background:#f7f8fa}
`;

const COLUMNS: [string, (l: UsageLine) => string][] = [
  ["calls", (l) => int(l.calls)],
  ["inputTokens", (l) => int(l.inputTokens)],
  ["cacheWrite5mTokens", (l) => int(l.cacheWrite5mTokens)],
  ["cacheWrite1hTokens", (l) => int(l.cacheWrite1hTokens)],
  ["cacheReadTokens", (l) => int(l.cacheReadTokens)],
  ["outputTokens", (l) => int(l.outputTokens)],
  ["cacheHitRate", (l) => pct(l.cacheHitRate)],
  ["costUsd", (l) => dollars(l.costMicros)],
  ["dailyBudgetUsed", (l) => pct(l.dailyBudgetUsed)],
  ["monthlyBudgetUsed", (l) => pct(l.monthlyBudgetUsed)],
];

function linesTable(r: UsageReport): string {
  const head = ["day", "tenant", "model", "calls", "input", "cache write 5m", "cache write 1h", "cache read", "output", "cache hit", "cost USD", "budget day", "budget month"];
  const rows = r.lines.map((l) => {
    const model = modelMarks(l.model, l);
    const cells = COLUMNS.map(([k, f]) => `<td data-col="${k}">${e(f(l))}</td>`).join("");
    return `<tr data-day="${e(l.day)}" data-tenant="${e(l.tenant)}" data-model="${e(l.model)}"><td class="text day">${e(l.day)}</td><td class="text">${e(l.tenant)}</td><td class="text">${e(model)}</td>${cells}</tr>`;
  });
  const t = r.total;
  const totalCells = [int(t.calls), int(t.inputTokens), int(t.cacheWrite5mTokens), int(t.cacheWrite1hTokens), int(t.cacheReadTokens), int(t.outputTokens), pct(t.cacheHitRate), dollars(t.costMicros), "", ""]
    .map((v, i) => `<td data-col="${COLUMNS[i]![0]}">${e(v)}</td>`)
    .join("");
  return `<table id="lines"><thead><tr>${head.map((h) => `<th scope="col">${e(h)}</th>`).join("")}</tr></thead><tbody>
${rows.join("\n")}
</tbody><tfoot><tr class="total"><td class="text">total</td><td></td><td></td>${totalCells}</tr></tfoot></table>`;
}

function budgetTable(r: UsageReport): string {
  const seen = new Set<string>();
  const rows: string[] = [];
  for (const l of r.lines) {
    const k = JSON.stringify([l.day, l.tenant]);
    if (seen.has(k) || (l.dailyBudgetMicros === null && l.monthlyBudgetMicros === null)) continue;
    seen.add(k);
    const used = (v: number | null) => `<td${v !== null && v >= 1 ? ' class="over"' : ""}>${e(pct(v))}</td>`;
    const money = (v: number | null) => (v === null ? "-" : dollars(v));
    rows.push(
      `<tr data-day="${e(l.day)}" data-tenant="${e(l.tenant)}"><td class="text day">${e(l.day)}</td><td class="text">${e(l.tenant)}</td><td>${dollars(l.tenantDayCostMicros)}</td><td>${dollars(l.tenantDayHeldMicros)}</td><td>${money(l.dailyBudgetMicros)}</td>${used(l.dailyBudgetUsed)}<td>${dollars(l.monthToDateCostMicros)}</td><td>${dollars(l.monthToDateHeldMicros)}</td><td>${money(l.monthlyBudgetMicros)}</td>${used(l.monthlyBudgetUsed)}</tr>`,
    );
  }
  const notes = budgetNotes(r).map((n) => `<p class="note">${e(n)}</p>`).join("");
  if (rows.length === 0) return `${notes}<p>No tenant in this report has a budget${r.budgets.available ? "" : " that could be read"}.</p>`;
  const head = ["day", "tenant", "day cost USD", "day held USD", "daily budget USD", "day used", "month to date USD", "month held USD", "monthly budget USD", "month used"];
  return `${notes}<table id="budgets"><thead><tr>${head.map((h) => `<th scope="col">${e(h)}</th>`).join("")}</tr></thead><tbody>
${rows.join("\n")}
</tbody></table>`;
}

export function renderHtml(r: UsageReport, meta: { generated: string }): string {
  const days = eachDay(r.filter.from, r.filter.to);
  const series = seriesOf(r);
  const t = r.total;
  const cards = [
    ["cost USD", dollars(t.costMicros)],
    ["calls", int(t.calls)],
    ["cache hit", pct(t.cacheHitRate)],
    ["input tokens", int(t.inputTokens)],
    ["output tokens", int(t.outputTokens)],
    ["tenants", int(new Set(r.lines.map((l) => l.tenant)).size)],
  ]
    .map(([label, v]) => `<div class="card" data-summary="${e(label!)}"><b>${e(v!)}</b>${e(label!)}</div>`)
    .join("");
  const filter = [`${r.filter.from} to ${r.filter.to}`, r.filter.tenant !== undefined ? `tenant ${r.filter.tenant}` : "", r.filter.model !== undefined ? `model ${r.filter.model}` : ""].filter((x) => x !== "").join(" · ");
  const marks = markNotes(t).map((n) => `<p class="note">${e(n)}</p>`).join("");
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>edgefleet usage ${e(r.filter.from)} to ${e(r.filter.to)}: ${e(dollars(t.costMicros))} USD</title>
<style>${CSS}</style></head>
<body>
<h1>edgefleet usage and cost</h1>
<div class="meta">${e(filter)} &middot; from ${e(r.source)} &middot; generated ${e(meta.generated)}</div>
<div class="summary">${cards}</div>
${marks}
<h2>Cost per UTC day per tenant</h2>
${costChart(r, days, series)}
${legend(series, false)}
<h2>Cache hit rate per UTC day</h2>
${cacheChart(r, days, series)}
${legend(series, true)}
<p class="meta">Cache hit rate = cache read / (input + 5-minute cache write + 1-hour cache write + cache read) tokens of the day; output tokens do not count. A gap: no prompt tokens that day.</p>
<h2>Budget used</h2>
<p class="meta">What the tenant's spend budget charged that UTC day, and from the 1st of the month through that day, all models, over its daily and monthly budget: the cost, plus what the budget held beyond it (a cut stream's whole max_tokens, a call with no answer's whole reservation)${r.budgets.source ? ` (tenant records from ${e(r.budgets.source)})` : ""}.</p>
${budgetTable(r)}
<h2>Per day, tenant and model</h2>
${linesTable(r)}
</body></html>
`;
}
