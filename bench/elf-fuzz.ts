// SPDX-License-Identifier: GPL-2.0-only
/**
 * Long fuzz campaign for the ELF engine.
 *
 *   npx tsx bench/elf-fuzz.ts [--cases N] [--seed S] [--dir DIR]...
 *
 * Mutates the test fixtures (built into a temp dir with
 * test/fixtures/elf/build.sh) and every .o/.ko under each --dir, and checks
 * that each input is either accepted (and writes back stably) or rejected
 * with an ElfError that names a location. Prints a failing case's mutation
 * and saves its bytes, then exits 1.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { mutate, rng, runCase } from '../test/elf/mutate.js';
import { filesUnder, fuzzArgs } from './args.js';

const parsed = fuzzArgs(process.argv.slice(2), { cases: 100_000, more: { 'max-files': 50 } });
const args = { ...parsed, maxFiles: parsed.more['max-files']! };
const tmp = mkdtempSync(join(tmpdir(), 'suture-elf-fuzz-'));
try {
  execFileSync('bash', [resolve(import.meta.dirname, '../test/fixtures/elf/build.sh'), tmp], { stdio: 'inherit' });
  const files = filesUnder(tmp, ['.o', '.ko']);
  for (const d of args.dirs) {
    // A deterministic sample: every k-th file.
    const all = filesUnder(d, ['.o', '.ko']);
    const step = Math.max(1, Math.floor(all.length / args.maxFiles));
    for (let i = 0; i < all.length && files.length < args.maxFiles + 4; i += step) files.push(all[i]!);
  }
  const inputs = files.map((f) => ({ f, b: new Uint8Array(readFileSync(f)) }));
  console.log(`fuzz: ${args.cases} cases, seed ${args.seed}, ${inputs.length} inputs`);
  const r = rng(args.seed);
  const counts = { accepted: 0, rejected: 0 };
  const t0 = performance.now();
  let slowest = { ms: 0, what: '' };
  for (let i = 0; i < args.cases; i++) {
    const input = inputs[Math.floor(r() * inputs.length)]!;
    const m = mutate(input.b, r);
    const c0 = performance.now();
    try {
      counts[runCase(m.bytes)]++;
    } catch (e) {
      const saved = join(process.cwd(), `elf-fuzz-failure-${args.seed}-${i}.bin`);
      writeFileSync(saved, m.bytes);
      console.error(`FAIL case ${i}: ${input.f}: ${m.what}\n  saved ${saved}\n  ${(e as Error).stack ?? String(e)}`);
      process.exitCode = 1;
      break;
    }
    const ms = performance.now() - c0;
    if (ms > slowest.ms) slowest = { ms, what: `${input.f}: ${m.what}` };
    if ((i + 1) % 10_000 === 0) {
      console.log(`  ${i + 1} cases, ${counts.accepted} accepted, ${counts.rejected} rejected, ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    }
  }
  const s = (performance.now() - t0) / 1000;
  console.log(
    `done: ${counts.accepted + counts.rejected} cases in ${s.toFixed(1)} s (${((counts.accepted + counts.rejected) / s).toFixed(0)}/s), ` +
      `${counts.accepted} accepted, ${counts.rejected} rejected; slowest case ${slowest.ms.toFixed(1)} ms (${slowest.what})`,
  );
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
