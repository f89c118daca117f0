import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["stacks/**/*.test.ts", "scripts/**/*.test.ts", "test/**/*.test.ts"],
    // The Pulumi mock run registers thousands of resources; give it room.
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
