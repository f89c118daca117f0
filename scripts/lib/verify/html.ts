// The verify report for people (`npm run verify -- --html FILE`): one self-contained
// page (inline CSS, no scripts, no external requests) with the summary on top and a
// grid of zones by checks, each failing cell carrying its explanation.
import { CHECKS, type ZoneResult } from "./checks.ts";
import type { Summary } from "./run.ts";

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);
}

const LABEL = { pass: "pass", drift: "DRIFT", error: "cannot verify", skip: "n/a" } as const;

const CSS = `
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#1d2433;background:#fff}
h1{font-size:20px;margin:0 0 4px}
.meta{color:#5b6475;margin-bottom:16px}
.summary{display:flex;gap:12px;flex-wrap:wrap;margin-bottom:16px}
.card{border:1px solid #d5dae3;border-radius:6px;padding:8px 14px;min-width:110px}
.card b{display:block;font-size:22px}
table{border-collapse:collapse;width:100%}
th,td{border:1px solid #d5dae3;padding:6px 8px;vertical-align:top;text-align:left}
th{background:#f2f4f8;position:sticky;top:0}
td.zone{font-weight:600;white-space:nowrap}
td.zone small{display:block;font-weight:400;color:#5b6475}
td.pass{background:#e6f4ea;color:#1e6b34}
td.drift{background:#fde8e8;color:#8a1c1c}
td.error{background:#fff4d6;color:#7a5200}
td.skip{background:#f7f7f7;color:#8a8f99}
td .st{font-weight:700}
td ul{margin:4px 0 0;padding-left:16px}
td li{margin:2px 0}
tr.drift td.zone{border-left:4px solid #c62828}
tr.error td.zone{border-left:4px solid #e0a800}
tr.pass td.zone{border-left:4px solid #2e7d32}
`;

export function renderHtml(results: ZoneResult[], summary: Summary, meta: { generated: string; resolvers: string[]; seed?: number; inventory: string }): string {
  const cards = [
    ["zones checked", summary.zones, ""],
    ["pass", summary.byResult.pass, "pass"],
    ["drift", summary.byResult.drift, "drift"],
    ["cannot verify", summary.byResult.error, "error"],
    ["DNS queries", summary.queries, ""],
  ]
    .map(([label, n, cls]) => `<div class="card ${cls}" data-summary="${escapeHtml(String(label))}"><b>${n}</b>${escapeHtml(String(label))}</div>`)
    .join("");
  const failing = CHECKS.map((c) => `<th scope="col">${escapeHtml(c)}<br><small>${summary.byCheck[c].drift} drift, ${summary.byCheck[c].error} unverified</small></th>`).join("");
  const rows = results
    .map((r) => {
      const cells = r.checks
        .map((c) => {
          const text = c.problems.length > 0 ? c.problems : [];
          const title = [...c.problems, ...c.details].join("\n");
          const list = text.length > 0 ? `<ul class="why">${text.map((p) => `<li>${escapeHtml(p)}</li>`).join("")}</ul>` : "";
          return `<td class="check ${c.status}" data-check="${c.check}" title="${escapeHtml(title)}"><span class="st">${LABEL[c.status]}</span>${list}</td>`;
        })
        .join("");
      return `<tr class="${r.status}" data-zone="${escapeHtml(r.zone)}"><td class="zone">${escapeHtml(r.zone)}<small>${escapeHtml(r.profile)}</small></td>${cells}</tr>`;
    })
    .join("\n");
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>edgefleet verify: ${summary.byResult.drift} zone(s) with drift</title>
<style>${CSS}</style></head>
<body>
<h1>edgefleet DNS posture verification</h1>
<div class="meta">${escapeHtml(meta.generated)} &middot; inventory ${escapeHtml(meta.inventory)} &middot; resolvers ${escapeHtml(meta.resolvers.join(", "))}${meta.seed !== undefined ? ` &middot; sample seed ${meta.seed}` : ""}</div>
<div class="summary">${cards}</div>
<table id="grid"><thead><tr><th scope="col">zone</th>${failing}</tr></thead>
<tbody>
${rows}
</tbody></table>
</body></html>
`;
}
