// Reads a screenshot's pixels in the browser itself (tests only): a PNG is decoded on a
// blank page through an <img> and a canvas (report pages forbid images by their CSP, so
// never on the page under test). Returns the colours at given points, the number of
// distinct colours (every 7th pixel: a flat page has few) and, if asked, how many pixels
// have each colour. Used by the verify and usage HTML report tests.
import type { Browser } from "playwright-core";

export interface Pixels {
  /** [r, g, b] at each point asked for. */
  pixels: [number, number, number][];
  /** Distinct colours among every 7th pixel. */
  colours: number;
  /** Pixels per colour ("#rrggbb"), when `histogram` was asked for. */
  histogram: Record<string, number>;
}

export async function screenshotPixels(browser: Browser, png: Buffer, at: { x: number; y: number }[] = [], histogram = false): Promise<Pixels> {
  const blank = await browser.newPage();
  try {
    return await blank.evaluate(
      async ({ dataUrl, at, histogram }: { dataUrl: string; at: { x: number; y: number }[]; histogram: boolean }) => {
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
        const colours = new Set<number>();
        for (let i = 0; i < data.length; i += 4 * 7) colours.add((data[i]! << 16) | (data[i + 1]! << 8) | data[i + 2]!);
        const counts: Record<string, number> = {};
        if (histogram) {
          for (let i = 0; i < data.length; i += 4) {
            const hex = `#${[data[i]!, data[i + 1]!, data[i + 2]!].map((v) => v.toString(16).padStart(2, "0")).join("")}`;
            counts[hex] = (counts[hex] ?? 0) + 1;
          }
        }
        const rgb = (p: { x: number; y: number }): [number, number, number] => {
          const i = (p.y * img.width + p.x) * 4;
          return [data[i]!, data[i + 1]!, data[i + 2]!];
        };
        return { colours: colours.size, pixels: at.map(rgb), histogram: counts };
      },
      { dataUrl: `data:image/png;base64,${png.toString("base64")}`, at, histogram },
    );
  } finally {
    await blank.close();
  }
}
