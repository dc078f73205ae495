// SPDX-License-Identifier: GPL-2.0-only
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { X86_64_RELOCS, relocType, relocTypeByName, relocTypeName } from '../../src/elf/mod.js';
import { buildFixtures, readelfDump } from './helpers.js';

describe('x86_64 relocation types', () => {
  let fx: ReturnType<typeof buildFixtures>;
  beforeAll(() => {
    fx = buildFixtures(['basic', 'basic-kernel', 'comdat']);
  });
  afterAll(() => fx.cleanup());

  test('X86_64_RELOCS numbers and names match <elf.h>', () => {
    const header = readFileSync('/usr/include/elf.h', 'latin1');
    const defs = [...header.matchAll(/^#define\s+R_X86_64_(\w+)\s+(\d+)/gm)]
      .map((m) => [m[1]!, Number(m[2])] as const)
      .filter(([name]) => name !== 'NUM');
    expect(defs.length).toBeGreaterThan(35);
    for (const [name, number] of defs) {
      expect(relocType(number)?.name, `R_X86_64_${name}`).toBe(name);
      expect(relocTypeByName(`R_X86_64_${name}`)?.number).toBe(number);
    }
    X86_64_RELOCS.forEach((r, i) => expect(r.number).toBe(i));
  });

  test('relocType() gives width and pc-relativity of the types kernel code uses', () => {
    const cases: Array<[string, number, number, boolean]> = [
      ['NONE', 0, 0, false],
      ['64', 1, 8, false],
      ['PC32', 2, 4, true],
      ['GOT32', 3, 4, false],
      ['PLT32', 4, 4, true],
      ['COPY', 5, 0, false],
      ['GLOB_DAT', 6, 8, false],
      ['JUMP_SLOT', 7, 8, false],
      ['RELATIVE', 8, 8, false],
      ['GOTPCREL', 9, 4, true],
      ['32', 10, 4, false],
      ['32S', 11, 4, false],
      ['16', 12, 2, false],
      ['PC16', 13, 2, true],
      ['8', 14, 1, false],
      ['PC8', 15, 1, true],
      ['PC64', 24, 8, true],
      ['GOTOFF64', 25, 8, false],
      ['GOTPC32', 26, 4, true],
      ['SIZE32', 32, 4, false],
      ['SIZE64', 33, 8, false],
      ['GOTPCRELX', 41, 4, true],
      ['REX_GOTPCRELX', 42, 4, true],
    ];
    for (const [name, number, width, pc] of cases) {
      expect(relocTypeByName(name)).toEqual({ name, number, width, pcRelative: pc });
    }
    expect(relocType(1000)).toBeUndefined();
    expect(relocTypeName(1000)).toBe('R_X86_64_unknown(1000)');
  });

  test('relocTypeName() matches readelf for every relocation in the fixtures', () => {
    let seen = 0;
    const types = new Set<string>();
    for (const f of ['basic', 'basic-kernel', 'comdat'] as const) {
      for (const relocs of readelfDump(fx.path(f)).relocs.values()) {
        for (const r of relocs) {
          expect(relocTypeName(Number(r.info & 0xffffffffn))).toBe(r.type);
          types.add(r.type);
          seen++;
        }
      }
    }
    expect(seen).toBeGreaterThan(20);
    // The fixtures cover the common kernel shapes.
    for (const t of ['R_X86_64_64', 'R_X86_64_PC32', 'R_X86_64_PLT32', 'R_X86_64_32S', 'R_X86_64_TPOFF32']) expect(types).toContain(t);
  });
});
