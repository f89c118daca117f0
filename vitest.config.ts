import { defineConfig } from "vitest/config";

// Keep wrangler and workerd from phoning home in every test run (FINDINGS.md), even
// when the tests are started without ./edgefleet.
Object.assign(process.env, {
  WRANGLER_SEND_METRICS: "false",
  WRANGLER_SEND_ERROR_REPORTS: "false",
  CLOUDFLARE_CF_FETCH_ENABLED: "false",
  WRANGLER_HIDE_BANNER: "true",
});

export default defineConfig({
  test: {
    include: ["bench/**/*.test.ts", "stacks/**/*.test.ts", "scripts/**/*.test.ts", "test/**/*.test.ts", "workers/**/*.test.ts", "policies/**/*.test.ts"],
    // The Pulumi mock run registers thousands of resources; give it room.
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
