import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

// SDK tests (sdk/test) and React binding tests (react/test) against a real parleyd.
export default defineConfig({
  root: fileURLToPath(new URL('..', import.meta.url)),
  test: {
    include: ['sdk/test/**/*.test.ts', 'react/test/**/*.test.tsx'],
    environment: 'node',
    pool: 'forks',
    fileParallelism: false,
    testTimeout: 40_000,
    hookTimeout: 30_000,
    teardownTimeout: 10_000,
    globalSetup: ['sdk/test/global-setup.ts'],
  },
});
