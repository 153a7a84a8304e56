import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['**/*.test.ts'],
    exclude: ['node_modules/**', 'dist/**'],
    setupFiles: ['test/setup.ts'],
    // Two cores in CI: keep workers bounded so child-process tests are not starved.
    maxWorkers: 2,
    testTimeout: 20_000,
  },
});
