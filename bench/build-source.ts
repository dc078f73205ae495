// SPDX-License-Identifier: GPL-2.0-only
/**
 * Time `suture build --source` end to end, as a user runs it (one CLI
 * process per build, so symbol loading is paid every time).
 *
 *   npm run build && npx tsx bench/build-source.ts [--runs N] [--kernel K] [FIX.c]
 *   default FIX.c: test/fixtures/source/vmlinux-statics.c; default kernel: debian:6.1.0-56-amd64
 *
 * Prints each run's wall time, then the median of every step (as the build
 * reports it in --json `timings`) and its share of the median total.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { median } from './stats.js';

const ROOT = join(import.meta.dirname, '..');
const BIN = join(ROOT, 'bin', 'suture.js');

function parseArgs(argv: string[]): { runs: number; kernel: string; fix: string } {
  const out = { runs: 3, kernel: 'debian:6.1.0-56-amd64', fix: join(ROOT, 'test', 'fixtures', 'source', 'vmlinux-statics.c') };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--runs') {
      out.runs = Number(argv[++i]);
      if (!Number.isInteger(out.runs) || out.runs <= 0) throw new Error('--runs must be a positive integer');
    } else if (a === '--kernel') out.kernel = argv[++i]!;
    else if (a.startsWith('--')) throw new Error(`unknown option ${a} (use --runs N --kernel K FIX.c)`);
    else out.fix = a;
  }
  return out;
}


const STEPS: Record<string, string> = {
  startup: 'node start, workspace lookup',
  symbols: 'load kallsyms, Module.symvers, module symtabs, image',
  replaced: 'resolve replaced functions, ftrace check',
  compile: 'compile fix.c alone (kbuild)',
  resolve: 'resolve referenced symbols',
  kbuild: 'build the module (kbuild, modpost, link)',
  klp: 'klp conversion and write',
};

const { runs, kernel, fix } = parseArgs(process.argv.slice(2));
const out = mkdtempSync(join(tmpdir(), 'suture-bench-build-'));
const walls: number[] = [];
const steps = new Map<string, number[]>();
try {
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    const r = spawnSync(process.execPath, [BIN, 'build', '--kernel', kernel, '--source', fix, '-o', join(out, 'bench.ko'), '--json'], { encoding: 'utf8', maxBuffer: 1 << 28 });
    const wall = performance.now() - t0;
    if (r.status !== 0) throw new Error(`build failed (exit ${r.status}):\n${r.stdout}\n${r.stderr}`);
    const j = JSON.parse(r.stdout) as { timings: Record<string, number> };
    const inside = Object.values(j.timings).reduce((a, b) => a + b, 0);
    const t = { startup: Math.max(0, wall - inside), ...j.timings };
    for (const [k, v] of Object.entries(t)) steps.set(k, [...(steps.get(k) ?? []), v]);
    walls.push(wall);
    console.log(`run ${i + 1}: ${(wall / 1000).toFixed(2)} s`);
  }
} finally {
  rmSync(out, { recursive: true, force: true });
}
const total = median(walls);
console.log(`\nsuture build --source ${fix.split('/').pop()} for ${kernel}: median ${(total / 1000).toFixed(2)} s over ${runs} run(s)\n`);
console.log(`${'step'.padEnd(10)} ${'median'.padStart(9)} ${'share'.padStart(6)}  what`);
for (const [k, v] of steps) {
  const m = median(v);
  console.log(`${k.padEnd(10)} ${`${(m / 1000).toFixed(2)} s`.padStart(9)} ${`${((100 * m) / total).toFixed(0)}%`.padStart(6)}  ${STEPS[k] ?? ''}`);
}
