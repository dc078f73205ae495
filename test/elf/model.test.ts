// SPDX-License-Identifier: GPL-2.0-only
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  DataSection,
  ElfObject,
  ElfSymbol,
  ElfView,
  GRP_COMDAT,
  GroupSection,
  RelocationSection,
  SHF_LINK_ORDER,
  SHN_ABS,
  SHN_COMMON,
  SHN_UNDEF,
  STB_GLOBAL,
  STB_LOCAL,
  STT_SECTION,
  StringTableSection,
  SymbolTableSection,
} from '../../src/elf/mod.js';
import { buildFixtures, readBytes } from './helpers.js';

describe('ElfObject', () => {
  let fx: ReturnType<typeof buildFixtures>;
  beforeAll(() => {
    fx = buildFixtures(['basic', 'basic-kernel', 'comdat']);
  });
  afterAll(() => fx.cleanup());

  test('ElfObject.parse() links relocation sections to their target and symbol table objects', () => {
    const obj = ElfObject.parse(readBytes(fx.path('basic')));
    const rela = obj.section('.rela.text.compute') as RelocationSection;
    expect(rela).toBeInstanceOf(RelocationSection);
    expect(rela.target).toBe(obj.section('.text.compute'));
    expect(rela.symtab).toBe(obj.symtab);
    expect(obj.symtab!.strtab).toBe(obj.section('.strtab'));
    expect(obj.shstrtab).toBe(obj.section('.shstrtab'));
    expect(obj.shstrtab).toBeInstanceOf(StringTableSection);
    expect(obj.relocationsFor(obj.section('.text.compute')!)).toEqual([rela]);
  });

  test('ElfObject.parse() resolves symbols to section objects and keeps special indices', () => {
    const obj = ElfObject.parse(readBytes(fx.path('basic-kernel')));
    const symtab = obj.symtab!;
    expect(symtab.find('compute')!.section).toBe(obj.section('.text.compute'));
    expect(symtab.find('tentative')!.section).toBe(SHN_COMMON);
    expect(symtab.find('basic.c')!.section).toBe(SHN_ABS);
    expect(symtab.find('extern_func')!.section).toBe(SHN_UNDEF);
    expect(symtab.find('extern_func')!.isUndefined).toBe(true);
    const secSym = symtab.symbols.find((s) => s.type === STT_SECTION)!;
    expect(secSym.name).toBe('');
    expect(secSym.displayName).toBe((secSym.section as DataSection).name);
  });

  test('ElfObject.parse() resolves sh_link of a SHF_LINK_ORDER section to the section object', () => {
    const obj = ElfObject.parse(readBytes(fx.path('basic-kernel')));
    const pfe = obj.section('__patchable_function_entries') as DataSection;
    expect(pfe.flags & SHF_LINK_ORDER).toBe(SHF_LINK_ORDER);
    expect(pfe.link).toBeInstanceOf(DataSection);
    expect(pfe.link!.name.startsWith('.text')).toBe(true);
  });

  test('ElfObject.parse() gives a group its signature symbol and member sections', () => {
    const obj = ElfObject.parse(readBytes(fx.path('comdat')));
    const g = obj.sections.find((s): s is GroupSection => s instanceof GroupSection)!;
    expect(g.groupFlags).toBe(GRP_COMDAT);
    expect(g.signature.name).toBe('shared_fn');
    expect(g.members.map((m) => m.name)).toEqual(['.text.shared_fn', '.rela.text.shared_fn', '.data.shared_var', '.rela.data.shared_var']);
    expect(g.members[1]).toBeInstanceOf(RelocationSection);
  });

  test('RelocationSection.relocations decodes lazily into the same entries ElfView.relocations() reads', () => {
    const bytes = readBytes(fx.path('basic'));
    const view = ElfView.parse(bytes);
    const obj = ElfObject.fromView(view);
    const rela = obj.section('.rela.text.compute') as RelocationSection;
    expect(rela.raw).not.toBeNull();
    expect(rela.relocationCount).toBe(3);
    const symbols = view.symbols(view.findSection('.symtab')!);
    const expected = view.relocations(view.findSection('.rela.text.compute')!).map((e) => [e.offset, e.type, symbols[e.symbol]!.name, e.addend]);
    expect(rela.relocations.map((r) => [r.offset, r.type, r.symbol!.name, r.addend])).toEqual(expected);
    expect(rela.raw).toBeNull();
    expect(rela.relocations[1]!.symbol).toBe(obj.symtab!.find('extern_func'));
  });

  test('ElfObject.parse() copies the input: editing section data leaves the caller\'s bytes alone', () => {
    const bytes = readBytes(fx.path('basic'));
    const before = Buffer.from(bytes).toString('hex');
    const obj = ElfObject.parse(bytes);
    (obj.section('.text.fill') as DataSection).data.fill(0xcc);
    expect(Buffer.from(bytes).toString('hex')).toBe(before);
  });

  test('SymbolTableSection.add() inserts locals after the last local and globals at the end', () => {
    const strtab = new StringTableSection('.strtab');
    const symtab = new SymbolTableSection('.symtab', strtab);
    symtab.add(new ElfSymbol('g1', { bind: STB_GLOBAL }));
    symtab.add(new ElfSymbol('l1', { bind: STB_LOCAL }));
    symtab.add(new ElfSymbol('g2', { bind: STB_GLOBAL }));
    symtab.add(new ElfSymbol('l2', { bind: STB_LOCAL }));
    expect(symtab.symbols.map((s) => s.name)).toEqual(['l1', 'l2', 'g1', 'g2']);
  });

  test('ElfSymbol bind/type accessors edit st_info', () => {
    const s = new ElfSymbol('x', { bind: STB_LOCAL, type: 2 });
    expect(s.info).toBe(0x02);
    s.bind = STB_GLOBAL;
    expect(s.info).toBe(0x12);
    s.type = 1;
    expect([s.bind, s.type, s.info]).toEqual([STB_GLOBAL, 1, 0x11]);
  });
});
