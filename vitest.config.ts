// SPDX-License-Identifier: GPL-2.0-only
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/**/*.test.ts'],
          exclude: ['test/**/*.vm.test.ts'],
          testTimeout: 60_000,
        },
      },
      {
        // Tests that boot the real Debian kernel under QEMU (and fetch it first if the cache is cold).
        test: {
          name: 'vm',
          include: ['test/**/*.vm.test.ts'],
          testTimeout: 300_000,
          hookTimeout: 1_800_000,
          // One VM at a time on a 2-core machine; files run one after another.
          fileParallelism: false,
        },
      },
    ],
  },
});
