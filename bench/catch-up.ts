// SPDX-License-Identifier: GPL-2.0-only
/**
 * Time `suture catch-up` on a whole Debian update, as a user runs it (one
 * CLI process per run, its progress and time-left estimate shown as it
 * goes): by default 6.1.0-53 → 6.1.0-56 (linux 6.1.187-1 → 6.1.192-2, five
 * stable updates and two Debian uploads).
 *
 *   npm run build && npx tsx bench/catch-up.ts [--from K] [--to K] [--cold] [--warm-runs N] [--no-prove]
 *
 * --cold first empties what a catch-up caches (the workspace's orig and
 * patched objects, settled units, pahole's layouts, the include graph and kbuild's directory lists, both
 * pristine sources with their downloads and the changes between them) so the first run pays for all of it;
 * the kernel workspace itself stays (`kernel fetch` is timed elsewhere).
 * Each run prints its wall time, the time of each stage, units compiled,
 * fixes by verdict and the VM proof's outcome; then the ratio of warm to
 * the first run.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { parseKernelRef } from '../src/kernel/ref.js';
import { sourceReleaseDir } from '../src/kernel/source-release.js';
import { requireWorkspace } from '../src/kernel/workspace.js';
import { origCacheDir } from '../src/patchbuild/compile.js';
import { sutureHome } from '../src/util/paths.js';
import { positiveInt } from './args.js';
import { median } from './stats.js';

const BIN = join(import.meta.dirname, '..', 'bin', 'suture.js');
const { values } = parseArgs({ options: { from: { type: 'string' }, to: { type: 'string' }, cold: { type: 'boolean' }, 'warm-runs': { type: 'string' }, 'no-prove': { type: 'boolean' } } });
const from = values.from ?? 'debian:6.1.0-53-amd64';
const to = values.to ?? 'debian:6.1.0-56-amd64';
const warmRuns = positiveInt('warm-runs', values['warm-runs'], 1);
const home = sutureHome();
const meta = requireWorkspace(home, parseKernelRef(from));
const out = mkdtempSync(join(tmpdir(), 'suture-bench-catch-up-'));

if (values.cold) {
  rmSync(origCacheDir(meta), { recursive: true, force: true });
  rmSync(join(meta.paths.root, 'patched-objects'), { recursive: true, force: true });
  rmSync(join(meta.paths.root, 'layouts'), { recursive: true, force: true });
  rmSync(join(meta.paths.root, 'include-graph.json'), { force: true });
  rmSync(join(meta.paths.root, 'kbuild-dirs.json'), { force: true });
  // Both pristine sources: the older side's by its workspace; the newer's by the --to kernel's workspace where
  // there is one (the run itself resolves --to in the archive; without a workspace its source cache stays, said below).
  const versions = [meta.packageVersion];
  try {
    versions.push(requireWorkspace(home, parseKernelRef(to)).packageVersion);
  } catch {
    process.stderr.write(`cold: ${to} has no workspace here, so its pristine source (if cached) stays\n`);
  }
  for (const v of versions) rmSync(sourceReleaseDir(home, `linux-source-${meta.series}`, v), { recursive: true, force: true });
  process.stderr.write(`cold: emptied the orig and patched object caches of ${from} and the pristine sources of linux ${versions.join(' and ')}\n`);
}

interface Run {
  label: string;
  wallS: number;
  exit: number | null;
  json: any;
}

function runOnce(label: string): Promise<Run> {
  const jsonFile = join(out, `${label}.json`);
  const args = [BIN, 'catch-up', '--kernel', from, '--to', to, '-o', join(out, `livepatch_bench_${label}.ko`), '--json-file', jsonFile, '--report', join(out, `${label}.html`), ...(values['no-prove'] ? ['--no-prove'] : [])];
  process.stderr.write(`\n== ${label}: suture ${args.slice(1).join(' ')}\n`);
  const t0 = performance.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'inherit'] });
    child.on('close', (code) => {
      let json: any;
      try {
        json = JSON.parse(readFileSync(jsonFile, 'utf8'));
      } catch {
        json = undefined;
      }
      resolve({ label, wallS: (performance.now() - t0) / 1000, exit: code, json });
    });
  });
}

function report(r: Run): void {
  console.log(`\n${r.label}: ${r.wallS.toFixed(0)} s wall, exit ${r.exit}`);
  if (!r.json) {
    console.log('  no JSON written (the run failed before its end; its progress is above)');
    return;
  }
  const byVerdict: Record<string, number> = {};
  for (const f of r.json.fixes) byVerdict[f.verdict] = (byVerdict[f.verdict] ?? 0) + 1;
  console.log(`  fixes: ${r.json.fixes.length} (${Object.entries(byVerdict).map(([v, n]) => `${v} ${n}`).join(', ')}); units compiled: ${r.json.unitsCompiled}, settled by the preprocessor: ${r.json.unitsSettled}`);
  console.log(`  stages: ${Object.entries(r.json.timings as Record<string, number>).map(([k, ms]) => `${k} ${(ms / 1000).toFixed(1)} s`).join(', ')}`);
  if (r.json.module) console.log(`  module: ${r.json.module.functions.length} functions in ${r.json.module.objects.length} objects, effective version ${r.json.module.effectiveVersion ?? 'not claimed'}`);
  const p = r.json.proof;
  console.log(`  proof: ${typeof p === 'string' ? p : p === null ? 'none' : p.proven ? `proven (transition ${p.transitionMs} ms, ${p.steps.length} steps, ${(p.totalMs / 1000).toFixed(0)} s in the VM)` : `NOT proven: ${p.reason}`}`);
  console.log(`  CVEs carried ${r.json.cvesCarried.length}, not carried ${r.json.cvesNotCarried.length}, needing no patch here ${r.json.cvesNeedNoPatch.length}`);
}

const first = await runOnce(values.cold ? 'cold' : 'first');
report(first);
const warm: Run[] = [];
for (let i = 0; i < warmRuns; i++) {
  const r = await runOnce(`warm${i + 1}`);
  report(r);
  warm.push(r);
}
if (warm.length) {
  const m = median(warm.map((r) => r.wallS));
  console.log(`\n${from} → ${to}: ${first.label} ${first.wallS.toFixed(0)} s, warm median ${m.toFixed(0)} s (${(first.wallS / m).toFixed(1)}× faster warm)`);
}
rmSync(out, { recursive: true, force: true });
