// SPDX-License-Identifier: GPL-2.0-only
/**
 * Long fuzz campaign for the host's reading of livepatch modules (issue 9, item 10).
 *
 *   npx tsx bench/patch-file-fuzz.ts [--cases N] [--seed S] [--dir DIR]...
 *
 * Mutates the fake livepatches (test/fixtures/livepatch/build.sh) and every
 * .ko under each --dir (e.g. the livepatches `suture build` and the VM tests
 * made), and checks that parsePatchFile + checkPatchFile end every case in a
 * result or a SutureError within 1 s. Prints counts, the slowest case and the
 * rate; exits 1 with the first failures.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fuzzPatchFiles } from '../test/livepatch/patch-fuzz.js';

function parseArgs(argv: string[]): { cases: number; seed: number; dirs: string[] } {
  const out = { cases: 1_000_000, seed: Date.now() % 1_000_000, dirs: [] as string[] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const next = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--cases') out.cases = Number(next());
    else if (a === '--seed') out.seed = Number(next());
    else if (a === '--dir') out.dirs.push(next());
    else throw new Error(`unknown option ${a} (use --cases N --seed S --dir DIR)`);
  }
  if (!Number.isInteger(out.cases) || out.cases <= 0) throw new Error('--cases must be a positive integer');
  return out;
}

function walk(dir: string, out: string[]): string[] {
  for (const e of readdirSync(dir).sort()) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (p.endsWith('.ko')) out.push(p);
  }
  return out;
}

const args = parseArgs(process.argv.slice(2));
const tmp = mkdtempSync(join(tmpdir(), 'suture-patch-fuzz-'));
try {
  execFileSync('bash', [resolve(import.meta.dirname, '../test/fixtures/livepatch/build.sh'), tmp], { stdio: 'inherit' });
  const files = walk(tmp, []).filter((f) => !f.endsWith('garbage.ko'));
  for (const d of args.dirs) files.push(...walk(d, []).slice(0, 20));
  const inputs = files.map((f) => ({ name: f.split('/').pop()!, bytes: new Uint8Array(readFileSync(f)) }));
  console.log(`patch-file fuzz: ${args.cases} cases, seed ${args.seed}, ${inputs.length} inputs`);
  const r = fuzzPatchFiles(inputs, args.cases, args.seed, { onProgress: (n) => process.stderr.write(`  ${n} cases\n`) });
  console.log(`accepted ${r.accepted}, rejected (SutureError) ${r.rejected}, klp structure read ${r.structures}`);
  console.log(`slowest case ${r.slowestMs.toFixed(1)} ms: ${r.slowestWhat}`);
  console.log(`${r.cases} cases in ${(r.elapsedMs / 1000).toFixed(1)} s (${Math.round(r.cases / (r.elapsedMs / 1000))} cases/s)`);
  if (r.failures.length) {
    for (const f of r.failures) console.error(f);
    process.exitCode = 1;
  }
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
