// What the proxy's bundle carries: the shared modules it imports must not bring zod (the
// usage event's schema lives in workers/shared/usage-event.ts for the ledger and the
// tests; the proxy builds events valid by construction). zod would grow the script the
// fleet uploads and every isolate loads about sevenfold.
import { describe, expect, it } from "vitest";
import { bundleWorker } from "../local/miniflare.ts";

describe("the proxy's bundle", () => {
  it("carries no zod, and stays small", async () => {
    const script = await bundleWorker();
    expect(script).not.toMatch(/ZodError|ZodType/);
    expect(script.length).toBeLessThan(150_000);
  });
});
