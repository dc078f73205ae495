// SPDX-License-Identifier: GPL-2.0-only
/**
 * Time `suture build fix.patch` for one-function patches, as a user runs it
 * (one CLI process per build), next to the floor: compiling the same
 * translation unit with plain kbuild (`make <unit>.o` in an overlay of the
 * prepared tree), in the same run.
 *
 *   npm run build && npx tsx bench/build-patch.ts [--runs N] [--kernel K]
 *
 * Both series by default, one after the other in the same run: Debian 12's
 * 6.1 (gcc-12 on the host) and Debian 13's 6.12 (gcc-14 in the trixie build
 * root); --kernel picks one.
 *
 * "cold": the first build of a unit on a fetched workspace (its orig object
 * not yet cached, so orig and patched are compiled side by side); "warm":
 * building it again (orig from the workspace cache). Prints medians, each
 * step's share, and the ratio to plain kbuild.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { origCacheDir } from '../src/patchbuild/compile.js';
import { toolchainFor, treeMakeArgs } from '../src/kernel/kbuild.js';
import type { Toolchain } from '../src/kernel/toolchain.js';
import { parseKernelRef } from '../src/kernel/ref.js';
import { requireWorkspace, type KernelMetadata } from '../src/kernel/workspace.js';
import { sutureHome } from '../src/util/paths.js';
import { median } from './stats.js';

const ROOT = join(import.meta.dirname, '..');
const BIN = join(ROOT, 'bin', 'suture.js');
const SERIES = [
  {
    kernel: 'debian:6.1.0-56-amd64',
    corpus: 'debian-6.1.0-56',
    patches: [
      { dir: '01-proc-cmdline-string', unit: 'fs/proc/cmdline.o' },
      { dir: '05-loadavg-static-local', unit: 'fs/proc/loadavg.o' },
      { dir: '10-binfmt-misc-module', unit: 'fs/binfmt_misc.o' },
    ],
  },
  {
    kernel: 'debian:6.12.117+deb13-amd64',
    corpus: 'debian-6.12.117+deb13',
    patches: [
      { dir: '01-proc-cmdline-string', unit: 'fs/proc/cmdline.o' },
      { dir: '04-uptime-new-data', unit: 'fs/proc/uptime.o' },
      { dir: '10-binfmt-misc-module', unit: 'fs/binfmt_misc.o' },
    ],
  },
];

const args = process.argv.slice(2);
const runs = Number(args[args.indexOf('--runs') + 1] ?? 3) || 3;
const only = args.includes('--kernel') ? args[args.indexOf('--kernel') + 1]! : undefined;
const home = sutureHome();
const out = mkdtempSync(join(tmpdir(), 'suture-bench-build-'));

async function plainKbuild(meta: KernelMetadata, tc: Toolchain, unit: string): Promise<number> {
  const d = mkdtempSync(join(home, 'builds', 'bench-'));
  const t0 = performance.now();
  const r = await tc.run([...treeMakeArgs(meta.compiler.command, meta.release, 2), unit], meta.paths.source, {
    overlay: { lower: meta.paths.source, upper: join(d, 'upper'), work: join(d, 'work'), merged: meta.paths.source },
  });
  const ms = performance.now() - t0;
  rmSync(d, { recursive: true, force: true });
  if (r.code !== 0) throw new Error(`make ${unit} failed: ${r.stderr.slice(-500)}`);
  return ms;
}

function sutureBuild(kernel: string, patch: string, name: string): { ms: number; timings: Record<string, number> } {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [BIN, 'build', '--kernel', kernel, patch, '-o', join(out, `${name}.ko`), '--json'], { encoding: 'utf8' });
  const ms = performance.now() - t0;
  if (r.status !== 0) throw new Error(`suture build ${patch} failed: ${r.stderr.slice(-800)}`);
  return { ms, timings: (JSON.parse(r.stdout) as { timingsMs: Record<string, number> }).timingsMs };
}

for (const series of SERIES.filter((x) => !only || x.kernel === only)) {
  const meta = requireWorkspace(home, parseKernelRef(series.kernel));
  const tc = toolchainFor(meta, home);
  const rows: { patch: string; cold: number; suture: number[]; plain: number[]; steps: Record<string, number[]> }[] = [];
  for (const p of series.patches) {
    const patch = join(ROOT, 'test', 'patches', series.corpus, p.dir, 'fix.patch');
    const row = { patch: p.dir, cold: 0, suture: [] as number[], plain: [] as number[], steps: {} as Record<string, number[]> };
    // Cold: the unit's orig object is not cached yet.
    rmSync(join(origCacheDir(meta), p.unit), { force: true });
    row.cold = sutureBuild(series.kernel, patch, p.dir).ms;
    process.stderr.write(`${series.kernel} ${p.dir} cold: suture ${(row.cold / 1000).toFixed(1)} s\n`);
    for (let i = 0; i < runs; i++) {
      // Side by side: the floor, then suture, alternating so load changes hit both.
      row.plain.push(await plainKbuild(meta, tc, p.unit));
      const s = sutureBuild(series.kernel, patch, p.dir);
      row.suture.push(s.ms);
      for (const [k, v] of Object.entries(s.timings)) (row.steps[k] ??= []).push(v);
      process.stderr.write(`${series.kernel} ${p.dir} run ${i + 1}: suture ${(s.ms / 1000).toFixed(1)} s, plain kbuild ${(row.plain.at(-1)! / 1000).toFixed(1)} s\n`);
    }
    rows.push(row);
  }

  console.log(`\nsuture build of one-function patches, ${runs} runs each (medians), on ${series.kernel} (${meta.compiler.text}, ${meta.compiler.via === 'host' ? "the host's" : 'build root'})`);
  console.log('patch                         cold      warm   plain kbuild (1 unit)   warm ratio');
  for (const r of rows) {
    const s = median(r.suture);
    const k = median(r.plain);
    console.log(`${r.patch.padEnd(28)}  ${(r.cold / 1000).toFixed(1).padStart(5)} s  ${(s / 1000).toFixed(1).padStart(5)} s   ${(k / 1000).toFixed(1).padStart(5)} s               ${(s / k).toFixed(2)}×`);
  }
  const first = rows[0]!;
  const total = median(first.suture);
  console.log(`\nsteps of ${first.patch}, warm (median ms, share of ${Math.round(total)} ms end to end):`);
  for (const [k, v] of Object.entries(first.steps)) console.log(`  ${k.padEnd(12)} ${String(Math.round(median(v))).padStart(6)}  ${((median(v) / total) * 100).toFixed(0)}%`);
}
rmSync(out, { recursive: true, force: true });
