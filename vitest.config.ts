import { defineConfig } from "vitest/config";

// Unit tests sit beside the source (src/**/*.spec.ts); integration and
// end-to-end suites live in test/ and start real servers on loopback.
export default defineConfig({
  test: {
    include: ["src/**/*.spec.ts", "test/**/*.test.ts"],
    testTimeout: 20_000,
    hookTimeout: 120_000,
    pool: "forks",
    reporters: ["default"],
  },
});
