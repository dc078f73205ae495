// SPDX-License-Identifier: GPL-2.0-only
// The host CLI for the Debian package (scripts/package.sh): the same src/cli/main.ts as
// scripts/bundle.mjs, built for Debian 12's nodejs (18.19 and later) as well as Debian 13's
// (20.19), with the builder's command groups (kernel, vm, build, analyze) and the fleet server's
// (server, fleet) replaced by packaging/host/builder-commands.ts. The build refuses any input from
// the build pipeline, kernel fetching, the VM runner, the fleet server, or an npm package but
// commander and zod, so a host never carries them. The fleet agent (suture agent) is a host command:
// its files in src/fleet/ are let through by name (agent, agent-facts, and the protocol and client
// it shares with the server), with zod (its schemas; zod 4 runs on Debian 12's nodejs 18.20).
//
//   node scripts/bundle-host.mjs [OUTDIR]     (default dist/host; writes OUTDIR/meta.json)
import { build } from 'esbuild';
import { rmSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';

const outdir = process.argv[2] ?? 'dist/host';
const stub = resolve('packaging/host/builder-commands.ts');
const BUILDER_COMMANDS = /^\.\/(kernel|vm|build|build-patch|catch-up|server|fleet)\.js$/;

/**
 * What a host bundle must never hold (DESIGN.md, Layout): of src/kernel/ only the readers a host
 * needs (a module file's modinfo, a kernel's build ID), nothing that fetches or prepares kernels.
 */
export const FORBIDDEN = [/^src\/patchbuild\//, /^src\/vm\//, /^src\/fleet\/(?!(agent|agent-facts|protocol|client|errors)\.ts$)/, /^src\/kernel\/(?!(build-id|module-file)\.ts$)/, /^src\/cli\/(kernel|vm|build|build-patch|catch-up|server|fleet)\.ts$/, /^node_modules\/(?!(commander|zod)\/)/];

const hostOnly = {
  name: 'suture-host-only',
  setup(b) {
    b.onResolve({ filter: BUILDER_COMMANDS }, (args) => (args.importer.endsWith('src/cli/main.ts') ? { path: stub } : undefined));
  },
};

rmSync(outdir, { recursive: true, force: true });
const result = await build({
  entryPoints: { main: 'src/cli/main.ts' },
  outdir,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  // Debian 12 ships nodejs 18.19/18.20: syntax is lowered for it (APIs are checked by running it there)
  target: 'node18.19',
  banner: { js: "import { createRequire as __sutureRequire } from 'node:module'; const require = __sutureRequire(import.meta.url);" },
  legalComments: 'none',
  logLevel: 'warning',
  metafile: true,
  plugins: [hostOnly],
});
writeFileSync(`${outdir}/meta.json`, JSON.stringify(result.metafile));
const bad = Object.keys(result.metafile.inputs).filter((f) => FORBIDDEN.some((re) => re.test(f)));
if (bad.length) {
  rmSync(outdir, { recursive: true, force: true });
  console.error(`bundle-host: the host bundle would hold builder code:\n  ${bad.join('\n  ')}`);
  process.exit(1);
}
