// SPDX-License-Identifier: GPL-2.0-only
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  DataSection,
  ElfObject,
  ElfSymbol,
  ElfView,
  SHN_LORESERVE,
  SHN_XINDEX,
  SHT_PROGBITS,
  STB_GLOBAL,
  STT_OBJECT,
  SymtabShndxSection,
  layout,
  writeElf,
} from '../../src/elf/mod.js';
import { buildFixtures, compareWithReadelf, readBytes, readelfDump } from './helpers.js';

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(Buffer.from(a), Buffer.from(b)) === 0;
}

// many.o: 66017 sections, built by test/fixtures/elf/build.sh (about 4 s).
describe('extended section numbering', () => {
  let fx: ReturnType<typeof buildFixtures>;
  let bytes: Uint8Array;
  beforeAll(() => {
    fx = buildFixtures(['many', 'comdat']);
    bytes = readBytes(fx.path('many'));
  });
  afterAll(() => fx.cleanup());

  test('ElfView.parse() takes e_shnum and e_shstrndx from section 0 when they overflow', () => {
    const view = ElfView.parse(bytes);
    const dump = readelfDump(fx.path('many'));
    expect(view.header.rawShnum).toBe(0);
    expect(view.header.rawShstrndx).toBe(SHN_XINDEX);
    expect(view.header.shnum).toBe(dump.sections.length);
    expect(view.header.shnum).toBeGreaterThan(SHN_LORESERVE);
    expect(view.sections[view.header.shstrndx]!.name).toBe('.shstrtab');
    for (const i of [1, 1000, 65279, 65280, 65281, view.header.shnum - 1]) {
      expect(view.sections[i]!.name).toBe(dump.sections[i]!.name);
      expect(view.sections[i]!.offset).toBe(dump.sections[i]!.offset);
    }
  });

  test('ElfView.symbols() resolves SHN_XINDEX through the SYMTAB_SHNDX section', () => {
    const view = ElfView.parse(bytes);
    const symtab = view.sections.find((s) => s.name === '.symtab')!;
    const syms = view.symbols(symtab);
    const v0 = syms.find((s) => s.name === 'v0')!;
    expect(v0.rawShndx).toBe(SHN_XINDEX);
    expect(v0.shndx).toBeGreaterThan(SHN_LORESERVE);
    expect(view.sections[v0.shndx]!.name).toBe('.data.v0');
    const readelfV0 = readelfDump(fx.path('many')).symtabs.get('.symtab')!.find((s) => s.name === 'v0')!;
    expect(readelfV0.ndx).toBe(String(v0.shndx));
  });

  test('writeElf() of unmodified many.o is byte-identical, and fast', () => {
    const t0 = performance.now();
    const out = writeElf(ElfObject.parse(bytes));
    const ms = performance.now() - t0;
    expect(sameBytes(out, bytes)).toBe(true);
    expect(ms).toBeLessThan(3000);
  });

  test.each(['preserve', 'fresh'] as const)('writeElf() of an edited many.o in %s mode agrees with readelf', (mode) => {
    const obj = ElfObject.parse(bytes);
    const extra = obj.addSection(new DataSection('.suture.last', SHT_PROGBITS, Uint8Array.of(1, 2, 3, 4)));
    obj.symtab!.add(new ElfSymbol('in_last', { bind: STB_GLOBAL, type: STT_OBJECT, section: extra, size: 4n }));
    obj.symtab!.find('v65999')!.name = 'v65999_renamed';
    const l = layout(obj, { mode });
    expect(l.eShnum).toBe(0);
    expect(l.eShstrndx).toBe(SHN_XINDEX);
    expect(l.sh0Size).toBe(l.shnum);
    const out = writeElf(obj, l);
    expect(compareWithReadelf(obj, l, out, fx.dir, `many-${mode}`)).toEqual([]);
  });

  test('layout() switches a small object to extended numbering and synthesizes .symtab_shndx', () => {
    const obj = ElfObject.parse(readBytes(fx.path('comdat')));
    expect(obj.sections.some((s) => s instanceof SymtabShndxSection)).toBe(false);
    let last: DataSection | undefined;
    for (let i = 0; i < SHN_LORESERVE; i++) {
      last = obj.addSection(new DataSection(`.s${i}`, SHT_PROGBITS, Uint8Array.of(i & 0xff)));
    }
    const sym = obj.symtab!.add(new ElfSymbol('far_away', { bind: STB_GLOBAL, type: STT_OBJECT, section: last!, size: 1n }));
    const l = layout(obj);
    expect(l.shnum).toBeGreaterThan(SHN_LORESERVE);
    expect(l.eShnum).toBe(0);
    const x = l.placements.at(-1)!;
    expect(x.section).toBeInstanceOf(SymtabShndxSection);
    expect(x.section.name).toBe('.symtab_shndx');
    expect(obj.sections.includes(x.section)).toBe(false); // layout does not change the model
    const out = writeElf(obj, l);
    expect(compareWithReadelf(obj, l, out, fx.dir, 'comdat-ext')).toEqual([]);
    const back = ElfObject.parse(out);
    const far = back.symtab!.find('far_away')!;
    expect(typeof far.section).not.toBe('number');
    expect((far.section as DataSection).name).toBe(last!.name);
    expect(sym.section).toBe(last);
    expect(sameBytes(writeElf(back), out)).toBe(true);
  });
});
