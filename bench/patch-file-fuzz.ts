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
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fuzzPatchFiles } from '../test/livepatch/patch-fuzz.js';
import { filesUnder, fuzzArgs } from './args.js';

const args = fuzzArgs(process.argv.slice(2), { cases: 1_000_000 });
const tmp = mkdtempSync(join(tmpdir(), 'suture-patch-fuzz-'));
try {
  execFileSync('bash', [resolve(import.meta.dirname, '../test/fixtures/livepatch/build.sh'), tmp], { stdio: 'inherit' });
  const files = filesUnder(tmp, ['.ko']).filter((f) => !f.endsWith('garbage.ko'));
  for (const d of args.dirs) files.push(...filesUnder(d, ['.ko']).slice(0, 20));
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
