// The HTML report renders in a real browser: headless Chromium (Debian's package, or
// the browser at $EDGEFLEET_CHROMIUM, e.g. CI's /usr/bin/google-chrome; driven by
// playwright-core) loads the page written by `verify --html` for a fleet with drift,
// and the screenshot's pixels show the grid: drift cells red, passing cells green.
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { chromium, type Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadInventoryOrThrow } from "../../../stacks/model/load.ts";
import { KNOTD } from "../../../test/support/knot.ts";
import { CHECKS } from "./checks.ts";
import { runVerify, VERIFY_EXIT } from "./cli.ts";
import { escapeHtml } from "./html.ts";
import { serveFleet, servePolicies } from "../../../test/fakes/knot-fleet.ts";
import { screenshotPixels } from "../../../test/support/screenshot-pixels.ts";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
const CHROMIUM = process.env.EDGEFLEET_CHROMIUM || "/usr/bin/chromium";
const ZONES = ["alpine-craft.example", "alpine-design.example", "amber-home.example", "ops-mail.example", "llm-gateway.example"];

describe("escapeHtml", () => {
  it("escapes markup in zone names and explanations", () => {
    expect(escapeHtml(`<b a="1">&'`)).toBe("&lt;b a=&quot;1&quot;&gt;&amp;&#39;");
  });
});

describe.skipIf((!KNOTD || !existsSync(CHROMIUM)) && !process.env.CI)("HTML report in headless Chromium", () => {
  let browser: Browser;
  let file: string;
  const dir = mkdtempSync(join(tmpdir(), "edgefleet-verify-report-"));

  beforeAll(async () => {
    const inventory = loadInventoryOrThrow(join(ROOT, "fleet"));
    const { knot } = await serveFleet(inventory, {
      "alpine-craft.example": (t) => t.replace("; p=reject;", "; p=none;"),
      "alpine-design.example": (t) => `${t}@\t3600\tIN\tMX\t10 mail.alpine-design.example.\n`,
    });
    file = join(dir, "report.html");
    const argv = ZONES.flatMap((z) => ["--zone", z]);
    // ops-mail.example receives mail: its MTA-STS policy comes from the real router.
    const policies = await servePolicies(inventory);
    const code = await runVerify([...argv, "--resolver", `127.0.0.1:${knot.port}`, "--mta-sts-origin", policies.origin, "--html", file], { out: () => {}, err: () => {}, root: ROOT });
    await knot.stop();
    await policies.mf.dispose();
    expect(code).toBe(VERIFY_EXIT.drift);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    });
  }, 120_000);
  afterAll(async () => browser?.close());

  it("renders the grid, the summary and the failing cell's explanation, with no outside requests", async () => {
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    const requests: string[] = [];
    page.on("request", (r) => requests.push(r.url()));
    // Nothing may leave the machine even if the page asked: outside requests are aborted (and still seen above).
    await page.route(/^(?!file:|data:)/, (route) => route.abort());
    await page.goto(pathToFileURL(file).href);

    expect(await page.locator("#grid tbody tr").count()).toBe(ZONES.length);
    expect(await page.locator("#grid tbody td.check").count()).toBe(ZONES.length * CHECKS.length);
    expect(await page.locator("#grid thead th").count()).toBe(CHECKS.length + 1);
    await expect.poll(() => page.locator('[data-summary="drift"] b').textContent()).toBe("2");

    const cell = page.locator('tr[data-zone="alpine-craft.example"] td[data-check="dmarc"]');
    expect(await cell.getAttribute("class")).toBe("check drift");
    const why = cell.locator("li").first();
    expect(await why.isVisible()).toBe(true);
    expect(await why.textContent()).toMatch(/policy p=none: receivers take no action on mail that fails DMARC; declared p=reject/);
    expect(await cell.getAttribute("title")).toContain("DMARC: v=DMARC1; p=none");
    const mx = page.locator('tr[data-zone="alpine-design.example"] td[data-check="mx"] li');
    expect(await mx.textContent()).toMatch(/null MX must be the only MX/);
    expect(await page.locator('tr[data-zone="ops-mail.example"] td.check.pass').count()).toBe(CHECKS.length - 1); // report-auth is n/a
    // The cell's colours differ from a passing cell's: the state is visible, not only written.
    const bg = (sel: string) => page.locator(sel).evaluate((el) => (globalThis as never as { getComputedStyle(e: unknown): { backgroundColor: string } }).getComputedStyle(el).backgroundColor);
    expect(await bg('tr[data-zone="alpine-craft.example"] td[data-check="dmarc"]')).not.toBe(await bg('tr[data-zone="alpine-craft.example"] td[data-check="mx"]'));

    const shot = join(dir, "report.png");
    await page.screenshot({ path: shot });
    const png = readFileSync(shot);
    expect(png.subarray(1, 4).toString()).toBe("PNG");
    expect([png.readUInt32BE(16), png.readUInt32BE(20)]).toEqual([1400, 900]);
    // Where the layout put the cells, and which colour the screenshot has there: a point
    // inside each cell's padding (top-right corner, clear of the text).
    const probe = async (sel: string) => {
      const box = (await page.locator(sel).boundingBox())!;
      expect(box.width, sel).toBeGreaterThan(20);
      expect(box.height, sel).toBeGreaterThan(10);
      expect(box.y + box.height, sel).toBeLessThan(900); // on the screenshot
      return { sel, x: Math.floor(box.x + box.width - 4), y: Math.floor(box.y + 3) };
    };
    const points = [
      await probe('tr[data-zone="alpine-craft.example"] td[data-check="dmarc"]'),
      await probe('tr[data-zone="alpine-design.example"] td[data-check="mx"]'),
      await probe('tr[data-zone="alpine-craft.example"] td[data-check="mx"]'),
      await probe('tr[data-zone="ops-mail.example"] td[data-check="caa"]'),
      await probe('tr[data-zone="ops-mail.example"] td[data-check="report-auth"]'),
      await probe("#grid thead th:nth-child(2)"),
    ];
    // Decode the screenshot in the browser (on a blank page: the report's own CSP forbids
    // images) and read the pixels at those points, plus a colour census.
    const seen = await screenshotPixels(browser, png, points);
    // The CSS colours of html.ts: drift #fde8e8, pass #e6f4ea, n/a #f7f7f7, header #f2f4f8.
    const expected = [
      [253, 232, 232],
      [253, 232, 232],
      [230, 244, 234],
      [230, 244, 234],
      [247, 247, 247],
      [242, 244, 248],
    ];
    seen.pixels.forEach((px, i) => {
      const diff = Math.max(...px.map((v, k) => Math.abs(v - expected[i]![k]!)));
      expect(diff, `${points[i]!.sel} is rgb(${px.join(",")}), expected rgb(${expected[i]!.join(",")})`).toBeLessThanOrEqual(3);
    });
    expect(seen.colours).toBeGreaterThan(20); // text and borders drawn, not a flat page
    // Only the report itself was loaded: no outside requests.
    expect(requests.filter((u) => !u.startsWith("file:") && !u.startsWith("data:"))).toEqual([]);
    await page.close();
  });
});
