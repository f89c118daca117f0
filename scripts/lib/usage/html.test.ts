// The usage page: escaped whatever the ids and names hold, charts whose SVG carries the
// report's numbers; and, in headless Chromium (Debian's package, or $EDGEFLEET_CHROMIUM,
// driven by playwright-core, as the verify report's test), the page `npm run usage --html
// --out` writes from local ledger and tenant state with hostile names: the bars and points
// are drawn where the numbers say, the tables match the JSON report of the same state, no
// element or script comes from a name, no console error, no request leaves the page.
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import type { D1Database } from "@cloudflare/workers-types";
import { Miniflare } from "miniflare";
import { chromium, type Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { screenshotPixels } from "../../../test/support/screenshot-pixels.ts";
import { rollupSource, type Rollup } from "../../../test/support/usage-rollups.ts";
import { kvKeyFor } from "../../../workers/llm-proxy/src/tenant-record.ts";
import { d1PersistPath, ledgerWorkerOptions, MIGRATIONS_DIR } from "../../../workers/usage-ledger/local/miniflare.ts";
import { applyMigrations } from "../../../workers/usage-ledger/local/migrations.ts";
import { openLocalStore } from "../tenants/local.ts";
import type { BudgetLookup } from "./budgets.ts";
import { runUsage, USAGE_EXIT } from "./cli.ts";
import { eachDay, MAX_SERIES, niceStep, renderHtml, seriesOf } from "./html.ts";
import { usageReport, type UsageReport } from "./report.ts";

const CHROMIUM = process.env.EDGEFLEET_CHROMIUM || "/usr/bin/chromium";

// Ids and names an attacker could get into the ledger or a tenant record (the ledger's
// schema refuses such ids; a row written another way, or a tenant's free-text name, is
// still rendered).
const EVIL_TENANT = `<img src=x onerror="document.title='pwned'">`;
const EVIL_TENANT_2 = `"><svg onload=alert(1)>`;
const EVIL_MODEL = `</title></svg><script>alert(1)</script>`;
const EVIL_NAME = `<script>alert('name')</script>&amp;`;

const FILTER = { from: "2026-10-29", to: "2026-11-02" };
const ROWS: Rollup[] = [
  { day: "2026-10-29", tenant: "acme", model: "claude-sonnet-4-5", cost: 40_000, input: 1000, read: 9000, w5: 0, output: 10 },
  { day: "2026-10-29", tenant: EVIL_TENANT, model: EVIL_MODEL, cost: 12_500, input: 500, read: 500, output: 10, unknown: 1 },
  { day: "2026-10-30", tenant: "acme", model: "claude-sonnet-4-5", cost: 20_000, input: 2000, read: 2000, output: 10, cut: 1 },
  { day: "2026-10-30", tenant: "acme", model: "claude-haiku-4-5", cost: 5_000, input: 0, read: 0, output: 100 }, // no prompt tokens
  { day: "2026-10-30", tenant: EVIL_TENANT_2, model: "claude-haiku-4-5", cost: 7_777, input: 100, w1: 100, read: 800, output: 1 },
  // 2026-10-31: nothing at all
  { day: "2026-11-01", tenant: "acme", model: "claude-sonnet-4-5", cost: 60_000, input: 100, read: 900, output: 10 },
  // Eleven small tenants: MAX_SERIES own series in all, the rest summed as "other tenants".
  ...Array.from({ length: 11 }, (_, i): Rollup => ({ day: "2026-11-02", tenant: `small-${String(i).padStart(2, "0")}`, model: "claude-haiku-4-5", cost: 1000 + i, input: 100, read: i * 10, output: 1 })),
];

const budgets = (m: Record<string, { daily?: number; monthly?: number; name?: string }>): BudgetLookup => ({
  available: true,
  source: "test",
  byTenant: new Map(Object.entries(m).map(([t, b]) => [t, { name: b.name ?? t, dailyBudgetMicros: b.daily ?? null, monthlyBudgetMicros: b.monthly ?? null, problems: [] }])),
});

describe("usage page (no browser)", () => {
  let report: UsageReport;
  let html: string;
  beforeAll(async () => {
    report = await usageReport(rollupSource(ROWS), FILTER, budgets({ acme: { daily: 50_000, monthly: 100_000 }, [EVIL_TENANT]: { name: EVIL_NAME, daily: 10_000 } }));
    html = renderHtml(report, { generated: "2026-11-02T12:00:00Z" });
  });

  it("escapes every id and name: no markup from the data, no script, no outside reference", () => {
    for (const raw of [EVIL_TENANT, EVIL_TENANT_2, EVIL_MODEL, EVIL_NAME]) expect(html).not.toContain(raw);
    expect(html).not.toMatch(/<(script|img|iframe|object|embed|link)\b/i);
    const tags = new Set([...html.matchAll(/<\/?([a-zA-Z][a-zA-Z0-9]*)/g)].map((m) => m[1]!.toLowerCase()));
    expect([...tags].sort()).toEqual(["b", "body", "circle", "div", "g", "h1", "h2", "head", "html", "li", "line", "meta", "p", "path", "rect", "style", "svg", "table", "tbody", "td", "text", "tfoot", "th", "thead", "title", "tr", "ul"]);
    expect(html).not.toMatch(/https?:|\/\//);
    expect(html).toContain("&lt;img src=x onerror=&quot;document.title=&#39;pwned&#39;&quot;&gt;");
    expect(html).toContain("&lt;script&gt;alert(&#39;name&#39;)&lt;/script&gt;&amp;amp;");
    expect(html).toContain(`<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">`);
  });

  it("marks a line with streams cut short and says their cost is a lower bound", () => {
    expect(html).toContain(`<tr data-day="2026-10-30" data-tenant="acme" data-model="claude-sonnet-4-5"><td class="text day">2026-10-30</td><td class="text">acme</td><td class="text">claude-sonnet-4-5 (*)</td>`);
    expect(html.match(/ \(\*\)<\/td>/g)).toHaveLength(1);
    expect(html).toMatch(/<p class="note">\(\*\) 1 call\(s\) were streams cut short [^<]* a lower bound [^<]*<\/p>/);
  });

  it("draws a bar per day and series with cost, and stacks them to the day's total", () => {
    const bars = [...html.matchAll(/<rect class="bar" (data-tenant="[^"]*"|data-other="") data-day="([^"]+)" data-cost-micros="(\d+)" x="[^"]+" y="([^"]+)" width="[^"]+" height="([^"]+)"/g)];
    // Series by cost: acme, EVIL_TENANT, EVIL_TENANT_2, small-10 .. small-06, then
    // small-05 .. small-00 summed as "other tenants".
    // 10-29: acme, evil; 10-30: acme (two models, one bar), evil 2; 11-01: acme; 11-02: five own and other
    expect(bars.map((b) => b[2])).toEqual(["2026-10-29", "2026-10-29", "2026-10-30", "2026-10-30", "2026-11-01", ...Array(6).fill("2026-11-02")]);
    expect(bars.filter((b) => b[2] === "2026-10-30").map((b) => Number(b[3]))).toEqual([25_000, 7_777]);
    const other = bars.find((b) => b[1] === 'data-other=""')!;
    expect(Number(other[3])).toBe(1000 + 1001 + 1002 + 1003 + 1004 + 1005);
    // Heights are proportional to cost: height / cost is the same for every bar.
    const scale = bars.map((b) => Number(b[5]) / Number(b[3]));
    for (const s of scale) expect(s).toBeCloseTo(scale[0]!, 4);
  });

  it("groups tenants beyond MAX_SERIES into one series, ranked by cost", () => {
    const s = seriesOf(report);
    expect(s).toHaveLength(MAX_SERIES + 1);
    expect(s[0]!.tenant).toBe("acme");
    expect(s.at(-1)).toMatchObject({ tenant: null, label: "other tenants (6)" });
    expect([...s.at(-1)!.tenants].sort()).toEqual(["small-00", "small-01", "small-02", "small-03", "small-04", "small-05"]);
    expect(s.find((x) => x.tenant === EVIL_TENANT)!.label).toBe(`${EVIL_TENANT} (${EVIL_NAME})`);
  });

  it("plots the cache hit rate per series and day, with a gap where there were no prompt tokens", () => {
    const acme = [...html.matchAll(/<circle class="point" data-tenant="acme" data-day="([^"]+)" data-rate="([^"]+)"/g)].map((m) => [m[1], Number(m[2])]);
    // 10-30: 2000 read of 4000 prompt tokens (the haiku line has none and adds none)
    expect(acme).toEqual([["2026-10-29", 0.9], ["2026-10-30", 0.5], ["2026-11-01", 0.9]]);
    // 10-31 has no point: the path lifts the pen (two M's) between 10-30 and 11-01.
    const d = /<path class="line" data-tenant="acme" d="([^"]+)"/.exec(html)![1]!;
    expect(d.match(/M/g)).toHaveLength(2);
    const all = [...html.matchAll(/<circle class="point all" data-all="" data-day="([^"]+)" data-rate="([^"]+)"/g)].map((m) => m[1]);
    expect(all).toEqual(["2026-10-29", "2026-10-30", "2026-11-01", "2026-11-02"]);
  });

  it("says so when there is nothing to draw", async () => {
    const empty = renderHtml(await usageReport(rollupSource([]), FILTER, { available: false, source: null, reason: "none here" }), { generated: "x" });
    expect(empty).toContain("no cost in this range");
    expect(empty).toContain("no prompt tokens in this range");
    expect(empty).toContain("budget used: - for every tenant: none here");
  });

  it("picks tick steps of 1, 2 or 5 and lists every day", () => {
    expect([0, 1, 4, 5, 39, 40_000, 60_000, 123_456].map((m) => niceStep(m))).toEqual([1, 1, 1, 2, 10, 10_000, 20_000, 50_000]);
    expect(eachDay("2026-02-27", "2026-03-01")).toEqual(["2026-02-27", "2026-02-28", "2026-03-01"]);
  });
});

describe.skipIf(!existsSync(CHROMIUM) && !process.env.CI)("usage page in headless Chromium", () => {
  const dir = mkdtempSync(join(tmpdir(), "edgefleet-usage-report-"));
  const file = join(dir, "usage.html");
  let browser: Browser;
  let json: { lines: { day: string; tenant: string; model: string; costUsd: string; cacheHitRate: number | null; costMicros: number; inputTokens: number; cacheWrite5mTokens: number; cacheWrite1hTokens: number; cacheReadTokens: number; dailyBudgetUsed: number | null }[]; total: { costUsd: string; calls: number } };

  beforeAll(async () => {
    // The ledger's D1 as `wrangler dev` persists it, with the rows above written straight
    // in (hostile ids cannot come through the ledger's schema); tenant records as
    // `npm run tenants` keeps them, one with a hostile name and budgets.
    const mf = new Miniflare({ cf: false, modules: true, script: "export default { fetch() { return new Response(null, { status: 404 }); } }", d1Databases: ledgerWorkerOptions().d1Databases, d1Persist: d1PersistPath(join(dir, "ledger")) });
    const db = (await mf.getD1Database("DB")) as unknown as D1Database;
    await applyMigrations(db, MIGRATIONS_DIR);
    for (const r of ROWS) {
      await db
        .prepare("INSERT INTO usage_daily VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)")
        .bind(r.day, r.tenant, r.model, r.calls ?? 1, r.input ?? 0, r.w5 ?? 0, r.w1 ?? 0, r.read ?? 0, r.output ?? 0, r.cost, r.unknown ?? 0, r.cut ?? 0, r.noAnswer ?? 0, r.held ?? 0, r.maybeBilled ?? 0)
        .run();
    }
    await mf.dispose();
    const store = await openLocalStore("/", join(dir, "tenants"));
    const rec = { id: EVIL_TENANT, name: EVIL_NAME, ratePerMinute: 60, burst: 10, enabled: true, keyHash: "h1", createdAt: "2026-01-01T00:00:00Z", dailyBudgetMicros: 10_000, monthlyBudgetMicros: 1_000_000 };
    await store.kv.put(kvKeyFor("h1"), JSON.stringify(rec), rec);
    const acme = { ...rec, id: "acme", name: "Acme", keyHash: "h2", dailyBudgetMicros: 50_000, monthlyBudgetMicros: 100_000 };
    await store.kv.put(kvKeyFor("h2"), JSON.stringify(acme), acme);
    // The evil tenant's record above is not a tenant's (the Worker refuses an id the ledger
    // could not bill): the hostile name rides on a valid one.
    const named = { ...rec, id: "small-10", keyHash: "h3", dailyBudgetMicros: 808 };
    await store.kv.put(kvKeyFor("h3"), JSON.stringify(named), named);
    await store.close();

    const io = (sink: { out: string }) => ({ out: (s: string) => (sink.out += s), err: (s: string) => (sink.out += s), env: {} });
    const args = ["--persist", join(dir, "ledger"), "--tenants-persist", join(dir, "tenants"), "--from", FILTER.from, "--to", FILTER.to];
    const j = { out: "" };
    expect(await runUsage([...args, "--json"], io(j))).toBe(USAGE_EXIT.ok);
    json = JSON.parse(j.out);
    const h = { out: "" };
    expect(await runUsage([...args, "--html", "--out", file], io(h))).toBe(USAGE_EXIT.ok);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    });
  }, 120_000);
  afterAll(async () => {
    await browser?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("renders both charts with the report's numbers, the tables match the JSON, and nothing runs or leaves the page", async () => {
    const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
    const requests: string[] = [];
    const problems: string[] = [];
    page.on("request", (r) => requests.push(r.url()));
    page.on("console", (m) => {
      if (m.type() === "error" || m.type() === "warning") problems.push(`${m.type()}: ${m.text()}`);
    });
    page.on("pageerror", (e) => problems.push(`pageerror: ${e.message}`));
    page.on("dialog", (d) => {
      problems.push(`dialog: ${d.message()}`);
      void d.dismiss();
    });
    await page.route(/^(?!file:|data:)/, (route) => route.abort());
    await page.goto(pathToFileURL(file).href);

    // Nothing from the data became an element, a script or a title change.
    expect(await page.title()).not.toContain("pwned");
    expect(await page.locator("script, img, iframe, object, embed, link").count()).toBe(0);
    expect(await page.locator("svg").count()).toBe(2 + 2 * (MAX_SERIES + 1) + 1); // two charts, legend swatches
    const evilRow = page.locator("#lines tbody tr").filter({ has: page.locator(`td:text-is(${JSON.stringify(EVIL_TENANT)})`) });
    expect(await evilRow.count()).toBe(1);
    expect(await evilRow.locator("td").nth(2).textContent()).toBe(`${EVIL_MODEL} (!)`);
    expect(await page.locator(`#cost-chart rect.bar[data-tenant=${JSON.stringify(EVIL_TENANT)}]`).count()).toBe(1);
    expect(await page.locator("ul.legend li").first().textContent()).toBe("acme (Acme)");
    expect(await page.locator("ul.legend li", { hasText: "small-10" }).first().textContent()).toBe(`small-10 (${EVIL_NAME})`);

    // Cost chart: one bar per day and series with cost; each bar's drawn height is
    // proportional to its cost, and a day's bars stack to the day's total.
    const bars = await page.locator("#cost-chart rect.bar").evaluateAll((els) =>
      els.map((el) => {
        const b = el.getBoundingClientRect();
        return { day: el.getAttribute("data-day")!, tenant: el.getAttribute("data-tenant"), cost: Number(el.getAttribute("data-cost-micros")), top: b.top, bottom: b.bottom, height: b.height, width: b.width };
      }),
    );
    expect(bars).toHaveLength(5 + 6);
    const perDay = new Map<string, number>();
    for (const l of json.lines) perDay.set(l.day, (perDay.get(l.day) ?? 0) + l.costMicros);
    for (const [day, cost] of perDay) expect(bars.filter((b) => b.day === day).reduce((n, b) => n + b.cost, 0)).toBe(cost);
    const pxPerMicro = bars[0]!.height / bars[0]!.cost;
    for (const b of bars) {
      expect(b.width).toBeGreaterThan(10);
      expect(Math.abs(b.height - b.cost * pxPerMicro), `${b.day} ${b.tenant}`).toBeLessThan(0.6);
    }
    const d1101 = bars.find((b) => b.day === "2026-11-01")!; // the tallest: 60,000 of a 60,000 axis
    const tallest = Math.max(...bars.map((b) => b.height));
    expect(d1101.height).toBe(tallest);
    const dayBars = bars.filter((b) => b.day === "2026-10-29").sort((a, b) => a.top - b.top);
    expect(Math.abs(dayBars[0]!.bottom - dayBars[1]!.top)).toBeLessThan(0.6); // stacked, touching

    // Cache chart: a point per series and day with prompt tokens, at the height of its rate.
    const points = await page.locator("#cache-chart circle.point").evaluateAll((els) =>
      els.map((el) => {
        const b = el.getBoundingClientRect();
        return { day: el.getAttribute("data-day")!, tenant: el.getAttribute("data-tenant"), all: el.hasAttribute("data-all"), rate: Number(el.getAttribute("data-rate")), y: b.top + b.height / 2 };
      }),
    );
    const expected = new Map<string, number>();
    const tokens = new Map<string, [number, number]>();
    for (const l of json.lines) {
      for (const k of [JSON.stringify([l.day, l.tenant]), JSON.stringify([l.day, "*all"])]) {
        const t = tokens.get(k) ?? [0, 0];
        tokens.set(k, [t[0] + l.inputTokens + l.cacheWrite5mTokens + l.cacheWrite1hTokens + l.cacheReadTokens, t[1] + l.cacheReadTokens]);
      }
    }
    for (const [k, [prompt, read]] of tokens) if (prompt > 0) expected.set(k, read / prompt);
    const own = points.filter((p) => !p.all && p.tenant !== null);
    for (const p of own) expect(p.rate).toBe(expected.get(JSON.stringify([p.day, p.tenant])));
    for (const p of points.filter((p) => p.all)) expect(p.rate).toBe(expected.get(JSON.stringify([p.day, "*all"])));
    expect(points.filter((p) => p.all).map((p) => p.day)).toEqual(["2026-10-29", "2026-10-30", "2026-11-01", "2026-11-02"]);
    // Each point's drawn height is linear in its rate (one axis for all of them).
    const lo = points.reduce((a, b) => (b.rate < a.rate ? b : a));
    const hi = points.reduce((a, b) => (b.rate > a.rate ? b : a));
    expect(hi.rate - lo.rate).toBeGreaterThan(0.5);
    const slope = (hi.y - lo.y) / (hi.rate - lo.rate);
    expect(slope).toBeLessThan(0); // higher rate, higher on the page
    for (const p of points) expect(Math.abs(p.y - (lo.y + slope * (p.rate - lo.rate))), `${p.day} ${p.tenant}`).toBeLessThan(0.6);

    // The tables hold the JSON report's numbers.
    const rows = await page.locator("#lines tbody tr").evaluateAll((els) =>
      els.map((el) => ({ tenant: el.getAttribute("data-tenant"), model: el.getAttribute("data-model"), day: el.getAttribute("data-day"), cost: el.querySelector('[data-col="costUsd"]')!.textContent, hit: el.querySelector('[data-col="cacheHitRate"]')!.textContent, budget: el.querySelector('[data-col="dailyBudgetUsed"]')!.textContent })),
    );
    const pct = (r: number | null) => (r === null ? "-" : `${(r * 100).toFixed(1)}%`);
    expect(rows).toEqual(json.lines.map((l) => ({ tenant: l.tenant, model: l.model, day: l.day, cost: l.costUsd, hit: pct(l.cacheHitRate), budget: pct(l.dailyBudgetUsed) })));
    expect(await page.locator('[data-summary="cost USD"] b').textContent()).toBe(json.total.costUsd);
    // Budgets: small-10 spent 1,010 of 808 on 11-02: over, and marked; the evil tenant's
    // record is refused, so it shows no budget.
    expect(await page.locator(`#budgets tr[data-tenant=${JSON.stringify(EVIL_TENANT)}]`).count()).toBe(0);
    const over = page.locator(`#budgets tr[data-day="2026-11-02"][data-tenant="small-10"] td.over`);
    expect(await over.count()).toBe(1);
    expect(await over.textContent()).toBe("125.0%");

    // The bars are painted in their series' colours (pixels, not only attributes).
    const shot = await page.locator("#cost-chart").screenshot();
    const { histogram: colours } = await screenshotPixels(browser, shot, [], true);
    const fills = await page.locator("#cost-chart rect.bar").evaluateAll((els) => [...new Set(els.map((el) => el.getAttribute("fill")!))]);
    expect(fills).toHaveLength(MAX_SERIES + 1);
    for (const f of fills) expect(colours[f] ?? 0, f).toBeGreaterThan(20);

    expect(problems).toEqual([]);
    expect(requests.filter((u) => !u.startsWith("file:") && !u.startsWith("data:"))).toEqual([]);
    await page.close();
  });
});
