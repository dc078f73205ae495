// SPDX-License-Identifier: GPL-2.0-only
/**
 * Every row of the special-section table (special-sections.ts) on an object
 * gcc compiled from test/fixtures/patchbuild/special.c (one entry per row
 * for keep() and for drop()): an entry of a carried function moves with it,
 * an entry of a function left behind is dropped, rows the kernel never reads
 * on x86 are not carried, and a change of one entry alone changes the
 * function exactly for the rows the kernel reads per entry (`compare`).
 * readelf is the oracle for what the extracted object holds.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ElfObject } from '../../../src/elf/mod.js';
import { diffObjects } from '../../../src/patchbuild/diff/diff.js';
import { extract } from '../../../src/patchbuild/diff/extract.js';
import { SPECIAL_SECTIONS } from '../../../src/patchbuild/diff/special-sections.js';

const FIXTURES = join(import.meta.dirname, '..', '..', 'fixtures', 'patchbuild');
/** Entry sizes special.c writes for the rows sized by a kernel struct (the kernel's BTF gives them in a build). */
const ENTRY_SIZES: Record<string, number> = {
  bug_entry: 12,
  jump_entry: 16,
  alt_instr: 14,
  exception_table_entry: 12,
  static_call_site: 8,
  paravirt_patch_site: 16,
  orc_entry: 6,
};
const structSize = (n: string) => ENTRY_SIZES[n];
/** The row order of special.c (its ENTRY numbers). */
const ROWS = ['__bug_table', '__jump_table', '.altinstructions', '__ex_table', '.static_call_sites', '.parainstructions', '.retpoline_sites', '.return_sites', '.call_sites', '.ibt_endbr_seal', '__mcount_loc', '.orc_unwind_ip', '.orc_unwind', '.smp_locks', '__patchable_function_entries'];

let dir: string;
const build = (only: number) => {
  const o = join(dir, `special-${only}.o`);
  execFileSync(join(FIXTURES, 'build.sh'), [join(FIXTURES, 'special.c'), o, `-DONLY=${only}`]);
  return o;
};
const bytesOf = (file: string) => {
  const b = readFileSync(file);
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
};
const parse = (file: string) => ElfObject.parse(bytesOf(file), { file });
/** readelf -rW: relocation targets of one section, as `symbol+addend`. */
function relocTargets(file: string, section: string): string[] {
  const out = execFileSync('readelf', ['-rW', file], { encoding: 'utf8' });
  const block = out.split(/\n(?=Relocation section )/).find((b) => b.startsWith(`Relocation section '.rela${section}'`));
  if (!block) return [];
  return block
    .split('\n')
    .slice(2)
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f.length >= 5)
    .map((f) => f.slice(4).join(''));
}
/** readelf -SW: a section's size. */
function sectionSize(file: string, section: string): number | undefined {
  const out = execFileSync('readelf', ['-SW', file], { encoding: 'utf8' });
  for (const l of out.split('\n')) {
    const m = /\]\s+(\S+)\s+\S+\s+[0-9a-f]+\s+[0-9a-f]+\s+([0-9a-f]+)/.exec(l);
    if (m && m[1] === section) return parseInt(m[2]!, 16);
  }
  return undefined;
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'suture-special-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('the special-section table on special.c', () => {
  it('covers every row of the table, in special.c order', () => {
    expect(SPECIAL_SECTIONS.flatMap((s) => [s.name, ...(s.pairedWith ? [s.pairedWith.name] : [])]).sort()).toEqual([...ROWS].sort());
  });

  it('extracting keep(): each table keeps exactly keep()\'s entries; a row never carried is gone', () => {
    const input = build(0);
    const out = join(dir, 'keep.o');
    writeFileSync(out, extract(bytesOf(input), 'special.o', { functions: ['keep'], data: [], exportAs: new Map([['keep', 'keep']]), externalName: ({ name }) => name, structSize }).bytes);
    for (const spec of SPECIAL_SECTIONS) {
      const inInput = relocTargets(input, spec.name);
      expect(inInput.filter((t) => t.startsWith('.text.drop')).length, `${spec.name}: drop() has entries in the input`).toBeGreaterThan(0);
      if (spec.carry === false) {
        expect(sectionSize(out, spec.name), `${spec.name} is not carried`).toBeUndefined();
        continue;
      }
      const kept = relocTargets(out, spec.name);
      // keep()'s own entries (gcc adds its __fentry__ site to __mcount_loc): all of them, and nothing of drop().
      expect(kept.length, spec.name).toBe(inInput.filter((t) => t.startsWith('.text.keep')).length);
      expect(kept.every((t) => t.startsWith('.text.keep')), `${spec.name}: ${kept.join(' ')}`).toBe(true);
      const width = spec.struct ? ENTRY_SIZES[spec.struct]! : spec.width!;
      expect(sectionSize(out, spec.name), spec.name).toBe(kept.length * width);
      if (spec.pairedWith) expect(sectionSize(out, spec.pairedWith.name), spec.pairedWith.name).toBe(kept.length * ENTRY_SIZES[spec.pairedWith.struct]!);
    }
  });

  it.each(ROWS.map((name, i) => [name, i + 1] as const))('a change of keep()\'s %s entry alone', (name, row) => {
    const spec = SPECIAL_SECTIONS.find((s) => s.name === name || s.pairedWith?.name === name)!;
    const d = diffObjects(parse(build(0)), parse(build(row)), { unit: 'special.c', structSize });
    // Rows the kernel reads entry by entry (a WARN's flags, a jump label's key) make keep() a changed function;
    // tables derived from the code itself change only with it.
    const compared = spec.name === name && spec.compare;
    expect(d.functions.map((f) => `${f.name}: ${f.reasons.join('; ')}`)).toEqual(compared ? ['keep: its special-section entries differ (e.g. a WARN flag or a jump label)'] : []);
  });
});
