import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['@ledgerly/devstack/vitest-infra'],
    testTimeout: 20_000,
    hookTimeout: 60_000,
  },
});
