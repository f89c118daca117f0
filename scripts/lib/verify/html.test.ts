// The HTML report renders in a real browser: headless Chromium (Debian's package,
// driven by playwright-core) loads the page written by `verify --html` for a fleet
// with drift, and a screenshot shows the grid with the failing cell explained.
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
import { serveFleet } from "./test-fleet.ts";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
const CHROMIUM = "/usr/bin/chromium";
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
    const code = await runVerify([...argv, "--resolver", `127.0.0.1:${knot.port}`, "--html", file], { out: () => {}, err: () => {}, root: ROOT });
    await knot.stop();
    expect(code).toBe(VERIFY_EXIT.drift);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    });
  }, 60_000);
  afterAll(async () => browser?.close());

  it("renders the grid, the summary and the failing cell's explanation, with no outside requests", async () => {
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    const requests: string[] = [];
    page.on("request", (r) => requests.push(r.url()));
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
    await page.screenshot({ path: shot, fullPage: true });
    const png = readFileSync(shot);
    expect(png.subarray(1, 4).toString()).toBe("PNG");
    const width = png.readUInt32BE(16);
    const height = png.readUInt32BE(20);
    expect(width).toBe(1400);
    expect(height).toBeGreaterThan(300);
    // Decode the screenshot's pixels in the browser itself (on a blank page: the
    // report's own CSP forbids images) and count distinct colours.
    const blank = await browser.newPage();
    const colours = await blank.evaluate(async (dataUrl: string) => {
      const g = globalThis as never as { Image: new () => { src: string; decode(): Promise<void>; width: number; height: number }; document: { createElement(t: string): { width: number; height: number; getContext(t: string): { drawImage(i: unknown, x: number, y: number): void; getImageData(x: number, y: number, w: number, h: number): { data: Uint8ClampedArray } } } } };
      const img = new g.Image();
      img.src = dataUrl;
      await img.decode();
      const canvas = g.document.createElement("canvas");
      canvas.width = img.width;
      canvas.height = img.height;
      const ctx = canvas.getContext("2d");
      ctx.drawImage(img, 0, 0);
      const data = ctx.getImageData(0, 0, img.width, img.height).data;
      const seen = new Set<number>();
      for (let i = 0; i < data.length; i += 4 * 7) seen.add((data[i]! << 16) | (data[i + 1]! << 8) | data[i + 2]!);
      return seen.size;
    }, `data:image/png;base64,${png.toString("base64")}`);
    await blank.close();
    expect(colours).toBeGreaterThan(20);
    // Only the report itself was loaded: no outside requests.
    expect(requests.filter((u) => !u.startsWith("file:") && !u.startsWith("data:"))).toEqual([]);
    await page.close();
  });
});
