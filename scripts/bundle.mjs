// SPDX-License-Identifier: GPL-2.0-only
// The CLI as a few ESM files (dist/bundle/): node loads one file and a chunk
// per command group instead of some hundred modules, which halves start-up
// where it matters most (a production host, a TCG guest, early boot). The
// host commands' chunk holds no kernel, VM or build code (main.ts imports those
// lazily). dist/bundle/ sits two levels below the package root, as dist/<dir>/
// does, so paths found from import.meta.url (libexec/, include/) are the same.
import { build } from 'esbuild';
import { rmSync } from 'node:fs';

rmSync('dist/bundle', { recursive: true, force: true });
await build({
  entryPoints: ['src/cli/main.ts'],
  outdir: 'dist/bundle',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  // commander is CommonJS: its require() of node's own modules needs a require in ESM.
  banner: { js: "import { createRequire as __sutureRequire } from 'node:module'; const require = __sutureRequire(import.meta.url);" },
  legalComments: 'none',
  logLevel: 'warning',
});
