// SPDX-License-Identifier: GPL-2.0-only
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  DataSection,
  ElfObject,
  ElfSymbol,
  SHN_ABS,
  STT_FILE,
  layout,
  writeElf,
} from '../../src/elf/mod.js';
import { buildFixtures, compareWithReadelf, readBytes } from './helpers.js';

function strtabText(obj: ElfObject, mode: 'preserve' | 'fresh'): string {
  const l = layout(obj, { mode });
  const p = l.placements.find((x) => x.section === obj.symtab!.strtab)!;
  return Buffer.from(p.content!).toString('latin1');
}

describe('layout', () => {
  let fx: ReturnType<typeof buildFixtures>;
  let bytes: Uint8Array;
  beforeAll(() => {
    fx = buildFixtures(['basic']);
    bytes = readBytes(fx.path('basic'));
  });
  afterAll(() => fx.cleanup());

  test('layout() of an unmodified object keeps every offset and the section header table in place', () => {
    const obj = ElfObject.parse(bytes);
    const l = layout(obj);
    expect(l.placements.every((p) => !p.moved)).toBe(true);
    expect(l.placements.map((p) => p.offset)).toEqual(obj.sections.map((s) => s.origin!.offset));
    expect(l.shoff).toBe(obj.origin!.shoff);
    expect(l.fileSize).toBe(bytes.length);
  });

  test('layout() reuses string table offsets for existing names and suffixes, and appends only new names', () => {
    const obj = ElfObject.parse(bytes);
    const before = obj.symtab!.strtab.original.length;
    obj.symtab!.find('twice')!.name = 'compute'; // an existing name
    obj.symtab!.find('thrice')!.name = 'pute'; // a suffix of an existing name
    let l = layout(obj);
    expect(l.placements.find((p) => p.section === obj.symtab!.strtab)!.size).toBe(BigInt(before));
    expect(l.placements.every((p) => !p.moved)).toBe(true);
    obj.symtab!.find('fill')!.name = 'fill_v2';
    l = layout(obj);
    expect(l.placements.find((p) => p.section === obj.symtab!.strtab)!.size).toBe(BigInt(before + 'fill_v2\0'.length));
    expect(strtabText(obj, 'preserve').endsWith('\0fill_v2\0')).toBe(true);
    expect(compareWithReadelf(obj, l, writeElf(obj, l), fx.dir, 'strings')).toEqual([]);
  });

  test('layout() in fresh mode rebuilds string tables from the names in use', () => {
    const obj = ElfObject.parse(bytes);
    obj.symtab!.find('fill')!.name = 'fill_v2';
    const fresh = strtabText(obj, 'fresh');
    expect(fresh).toContain('\0fill_v2\0');
    expect(fresh.split('\0')).not.toContain('fill');
    expect(strtabText(obj, 'preserve').split('\0')).toContain('fill');
  });

  test('layout() re-indexes undecoded relocations when a symbol is removed', () => {
    const obj = ElfObject.parse(bytes);
    const symtab = obj.symtab!;
    const file = symtab.symbols.find((s) => s.type === STT_FILE)!;
    symtab.symbols = symtab.symbols.filter((s) => s !== file);
    const l = layout(obj);
    const out = writeElf(obj, l);
    expect(compareWithReadelf(obj, l, out, fx.dir, 'removed')).toEqual([]);
    // Every relocation still names the same symbol as before.
    const names = (o: ElfObject) =>
      o.sections.flatMap((s) => ('relocations' in s ? (s.relocations as { symbol: ElfSymbol | null }[]).map((r) => r.symbol?.displayName) : []));
    expect(names(ElfObject.parse(out))).toEqual(names(ElfObject.parse(bytes)));
  });

  test('layout() rejects a relocation to a symbol that was removed, naming both', () => {
    const obj = ElfObject.parse(bytes);
    const symtab = obj.symtab!;
    symtab.symbols = symtab.symbols.filter((s) => s.name !== 'extern_func');
    expect(() => layout(obj)).toThrow(/relocation 1 of '\.rela\.text\.compute' refers to symbol 'extern_func', which is not in '\.symtab'/);
  });

  test('layout() keeps special section indices and rejects plain numbers as sections', () => {
    const obj = ElfObject.parse(bytes);
    const sym = obj.symtab!.add(new ElfSymbol('abs_value', { section: SHN_ABS, value: 0x1234n }));
    const l = layout(obj);
    const st = l.symbolTables.get(obj.symtab!)!;
    expect(st.shndx[st.index.get(sym)! - 1]).toBe(SHN_ABS);
    sym.section = 3;
    expect(() => layout(obj)).toThrow(/symbol 'abs_value' has section index 0x3, which is not a special index/);
  });

  test('layout() moves a section that grew past its slot and keeps one that shrank', () => {
    const obj = ElfObject.parse(bytes);
    const fill = obj.section('.text.fill') as DataSection;
    const pick = obj.section('.text.pick') as DataSection;
    fill.data = new Uint8Array(fill.data.length + 1);
    pick.data = pick.data.subarray(0, 4);
    const l = layout(obj);
    const pf = l.placements.find((p) => p.section === fill)!;
    const pp = l.placements.find((p) => p.section === pick)!;
    expect(pf.moved).toBe(true);
    expect(pf.offset).toBeGreaterThanOrEqual(obj.origin!.shoff);
    expect(pf.offset % 16).toBe(0);
    expect(pp.moved).toBe(false);
    expect(pp.offset).toBe(pick.origin!.offset);
    expect(compareWithReadelf(obj, l, writeElf(obj, l), fx.dir, 'moved')).toEqual([]);
  });
});
