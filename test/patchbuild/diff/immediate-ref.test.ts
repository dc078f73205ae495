// SPDX-License-Identifier: GPL-2.0-only
/**
 * A static read with an immediate after its RIP-relative displacement
 * (`cmpb $0, online(%rip)`: addend -5) is a reference to the kernel's
 * variable, not anonymous data to copy. Before the fix the extract carried a
 * fresh, zeroed `.bss.online`; in the whole 6.1.0-53 -> 56 catch-up that was
 * kernel/workqueue.c's `wq_online`, and the patched __flush_work WARNed on
 * every call. So is a loop bound one past an array's end (`attrs + 4`); a
 * reference where no variable is at all is refused (unnamed-data-reference),
 * never copied. gcc compiles the fixture, readelf is the oracle.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { extract, UnnamedReferenceError } from '../../../src/patchbuild/diff/extract.js';

const FIXTURES = join(import.meta.dirname, '..', '..', 'fixtures', 'patchbuild');
const dir = mkdtempSync(join(tmpdir(), 'suture-immediate-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

it('refers to statics read with cmpb/cmpw/cmpl immediates instead of copying them', () => {
  const input = join(dir, 'statics.o');
  execFileSync(join(FIXTURES, 'build.sh'), [join(FIXTURES, 'statics.c'), input]);
  const relocs = execFileSync('readelf', ['-rW', input], { encoding: 'utf8' });
  // The premise: gcc gave the three reads addends -5, -6 and -8 against the variables' sections.
  for (const [v, a] of [['online', 5], ['mode', 6], ['level', 8]] as const) expect(relocs).toMatch(new RegExp(`R_X86_64_PC32\\s+0+\\s+\\.bss\\.${v} - ${a}\\b`));
  const x = extract(new Uint8Array(readFileSync(input)), 'statics.o', {
    functions: ['probe'],
    data: [],
    exportAs: new Map([['probe', 'probe']]),
    externalName: ({ name, local }) => (local ? `.klp.sym.vmlinux.${name},0` : name),
    structSize: () => undefined,
  });
  const out = join(dir, 'extracted.o');
  writeFileSync(out, x.bytes);
  expect(x.sections.filter((s) => s.startsWith('.bss') || s.startsWith('.data'))).toEqual([]);
  expect(x.references).toEqual(expect.arrayContaining(['.klp.sym.vmlinux.online,0', '.klp.sym.vmlinux.mode,0', '.klp.sym.vmlinux.level,0']));
  const after = execFileSync('readelf', ['-rW', out], { encoding: 'utf8' });
  // The addend stays what the instruction needs: the address the CPU computes is the variable's.
  for (const [v, a] of [['online', 5], ['mode', 6], ['level', 8]] as const) expect(after).toMatch(new RegExp(`R_X86_64_PC32\\s+0+\\s+\\.klp\\.sym\\.vmlinux\\.${v},0 - ${a}\\b`));
});

const build = () => {
  const input = join(dir, 'statics-2.o');
  execFileSync(join(FIXTURES, 'build.sh'), [join(FIXTURES, 'statics.c'), input]);
  return new Uint8Array(readFileSync(input));
};
const request = (functions: string[]) => ({
  unit: 'statics.c',
  functions,
  data: [],
  exportAs: new Map(functions.map((f) => [f, f])),
  externalName: ({ name, local }: { name: string; local: boolean }) => (local ? `.klp.sym.vmlinux.${name},0` : name),
  structSize: () => undefined,
});

it("refers to an array's end (a loop bound) as the array's address plus its size", () => {
  const x = extract(build(), 'statics.o', request(['show_all']));
  const out = join(dir, 'show_all.o');
  writeFileSync(out, x.bytes);
  expect(x.sections.filter((s) => s.startsWith('.data'))).toEqual([]);
  const after = execFileSync('readelf', ['-rW', out], { encoding: 'utf8' });
  expect(after).toMatch(/R_X86_64_32S\s+0+\s+\.klp\.sym\.vmlinux\.attrs,0 \+ 0\b/);
  expect(after).toMatch(/R_X86_64_32S\s+0+\s+\.klp\.sym\.vmlinux\.attrs,0 \+ 40\b/);
});

it('refuses a reference into the kernel\'s writable data where no variable is, naming the function', () => {
  let err: unknown;
  try {
    extract(build(), 'statics.o', request(['beyond']));
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(UnnamedReferenceError);
  expect((err as UnnamedReferenceError).refusal).toMatchObject({ rule: 'unnamed-data-reference', file: 'statics.c', symbol: 'beyond', reason: expect.stringContaining('.data.attrs+96') });
});
