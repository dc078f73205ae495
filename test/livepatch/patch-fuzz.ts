// SPDX-License-Identifier: GPL-2.0-only
/**
 * Fuzzing the host's reading of a livepatch module (parsePatchFile: modinfo,
 * ELF, klp_patch structure) and its checks (checkPatchFile), with seeded
 * mutations of real modules (test/elf/mutate.ts). Every case must end in a
 * result or a SutureError, quickly: no hang, no untyped error. Shared by the
 * bounded CI test and bench/patch-file-fuzz.ts (1M cases and more).
 */
import { parsePatchFile } from '../../src/livepatch/patch-file.js';
import { checkPatchFile } from '../../src/livepatch/validate.js';
import { isSutureError } from '../../src/util/errors.js';
import { mutate, rng } from '../elf/mutate.js';

export interface FuzzReport {
  cases: number;
  accepted: number;
  rejected: number;
  /** Cases whose klp_patch structure was still read. */
  structures: number;
  failures: string[];
  slowestMs: number;
  slowestWhat: string;
  elapsedMs: number;
}

export function fuzzPatchFiles(inputs: { name: string; bytes: Uint8Array }[], cases: number, seed: number, opts: { maxCaseMs?: number; onProgress?: (done: number) => void } = {}): FuzzReport {
  const r = rng(seed);
  const rep: FuzzReport = { cases: 0, accepted: 0, rejected: 0, structures: 0, failures: [], slowestMs: 0, slowestWhat: '', elapsedMs: 0 };
  const maxCaseMs = opts.maxCaseMs ?? 1000;
  const t0 = performance.now();
  for (let i = 0; i < cases; i++) {
    const src = inputs[i % inputs.length]!;
    const m = mutate(src.bytes, r);
    const t = performance.now();
    try {
      const p = parsePatchFile(Buffer.from(m.bytes.buffer, m.bytes.byteOffset, m.bytes.byteLength), `fuzz/${src.name}`);
      if (p.structure) rep.structures++;
      checkPatchFile(p);
      rep.accepted++;
    } catch (e) {
      if (isSutureError(e)) rep.rejected++;
      else rep.failures.push(`case ${i} (${src.name}, ${m.what}): untyped ${(e as Error)?.stack ?? String(e)}`);
    }
    const ms = performance.now() - t;
    if (ms > rep.slowestMs) {
      rep.slowestMs = ms;
      rep.slowestWhat = `case ${i} (${src.name}, ${m.what})`;
    }
    if (ms > maxCaseMs) rep.failures.push(`case ${i} (${src.name}, ${m.what}): took ${ms.toFixed(0)} ms`);
    rep.cases++;
    if (rep.failures.length >= 5) break;
    if (opts.onProgress && i % 100_000 === 0 && i) opts.onProgress(i);
  }
  rep.elapsedMs = performance.now() - t0;
  return rep;
}
