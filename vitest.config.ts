import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Kernel tests spawn worker threads inside the native addon; one fork per file keeps them isolated.
    pool: 'forks',
    maxWorkers: 2,
  },
});
