// SPDX-License-Identifier: GPL-2.0-only
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  DataSection,
  ElfObject,
  ElfSymbol,
  NoBitsSection,
  Relocation,
  RelocationSection,
  SHF_ALLOC,
  SHF_EXECINSTR,
  SHF_INFO_LINK,
  SHF_RELA_LIVEPATCH,
  SHN_ABS,
  SHN_LIVEPATCH,
  SHT_PROGBITS,
  SHT_REL,
  STB_GLOBAL,
  STB_LOCAL,
  STT_FILE,
  STT_FUNC,
  STT_NOTYPE,
  STT_OBJECT,
  R_X86_64_64,
  R_X86_64_PLT32,
  StringTableSection,
  SymbolTableSection,
  layout,
  writeElf,
  type Section,
} from '../../src/elf/mod.js';
import { buildFixtures, compareWithReadelf, readBytes, readelfDump, tool, type Fixture } from './helpers.js';

const SMALL: Fixture[] = ['basic', 'basic-kernel', 'modinfo', 'comdat'];

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.length), Buffer.from(b.buffer, b.byteOffset, b.length)) === 0;
}

describe('writeElf', () => {
  let fx: ReturnType<typeof buildFixtures>;
  beforeAll(() => {
    fx = buildFixtures(SMALL);
  });
  afterAll(() => fx.cleanup());

  test.each(SMALL)('writeElf() of unmodified %s.o is byte-identical', (f) => {
    const bytes = readBytes(fx.path(f));
    expect(sameBytes(writeElf(ElfObject.parse(bytes)), bytes)).toBe(true);
  });

  test.each(SMALL)('writeElf() output of %s.o agrees with readelf -W -S -s -r', (f) => {
    const obj = ElfObject.parse(readBytes(fx.path(f)));
    const l = layout(obj);
    expect(compareWithReadelf(obj, l, writeElf(obj, l), fx.dir, f)).toEqual([]);
  });

  test.each(SMALL)('writeElf() in fresh mode re-lays out %s.o so that readelf agrees and a second write is identical', (f) => {
    const obj = ElfObject.parse(readBytes(fx.path(f)));
    const l = layout(obj, { mode: 'fresh' });
    const out = writeElf(obj, l);
    expect(compareWithReadelf(obj, l, out, fx.dir, `${f}-fresh`)).toEqual([]);
    // Fresh layout packs sections in header order right after the ELF header.
    const offsets = l.placements.filter((p) => p.fileSize > 0).map((p) => p.offset);
    expect(offsets).toEqual([...offsets].sort((a, b) => a - b));
    expect(offsets[0]).toBeLessThan(128);
    expect(sameBytes(writeElf(ElfObject.parse(out)), out)).toBe(true);
    expect(sameBytes(writeElf(ElfObject.parse(out), { mode: 'fresh' }), out)).toBe(true);
  });

  test('writeElf() keeps a trailer (e.g. an appended module signature) after the last structure', () => {
    const bytes = readBytes(fx.path('basic'));
    const signed = new Uint8Array(bytes.length + 40);
    signed.set(bytes);
    signed.set(Buffer.from('signature-bytes~Module signature appended~\n'.slice(0, 40)), bytes.length);
    const obj = ElfObject.parse(signed);
    expect(obj.trailer.length).toBe(40);
    expect(sameBytes(writeElf(obj), signed)).toBe(true);
    obj.trailer = new Uint8Array(0);
    expect(sameBytes(writeElf(obj), bytes)).toBe(true);
  });

  test('writeElf() keeps the sh_offset of a NOBITS section even when it points past the end of the file', () => {
    const bytes = readBytes(fx.path('basic')).slice();
    const view = ElfObject.parse(bytes);
    const bss = view.sections.find((s) => s instanceof NoBitsSection)!;
    const dv = new DataView(bytes.buffer, bytes.byteOffset);
    dv.setBigUint64(view.origin!.shoff + bss.origin!.index * 64 + 0x18, BigInt(bytes.length + 0x1000), true);
    const obj = ElfObject.parse(bytes);
    expect(sameBytes(writeElf(obj), bytes)).toBe(true);
    const l = layout(obj, { mode: 'fresh' });
    expect(l.placements.find((p) => p.section.name === bss.name)!.offset).toBeLessThanOrEqual(l.fileSize);
  });

  test('writeElf() keeps non-zero padding between sections when nothing claims it', () => {
    const bytes = readBytes(fx.path('basic')).slice();
    const obj0 = ElfObject.parse(bytes);
    const l = layout(obj0);
    // Find a hole between two consecutive sections and scribble in it.
    const spans = l.placements.filter((p) => p.fileSize > 0).map((p) => [p.offset, p.offset + p.fileSize] as const);
    spans.sort((a, b) => a[0] - b[0]);
    const hole = spans.findIndex((s, i) => i + 1 < spans.length && spans[i + 1]![0] > s[1]);
    expect(hole).toBeGreaterThanOrEqual(0);
    bytes[spans[hole]![1]] = 0xcc;
    const obj = ElfObject.parse(bytes);
    expect(obj.origin!.gaps.length).toBe(1);
    expect(sameBytes(writeElf(obj), bytes)).toBe(true);
  });

  test('writeElf() re-indexes relocations after symbols are added, renamed and reordered', () => {
    const path = fx.path('basic');
    const obj = ElfObject.parse(readBytes(path));
    const symtab = obj.symtab!;
    const before = readelfDump(path);
    // A new global first in the list and a new local last: layout must put locals first.
    const text = obj.section('.text.compute')!;
    symtab.symbols.unshift(new ElfSymbol('new_global', { bind: STB_GLOBAL, type: STT_FUNC, section: text, value: 4n }));
    symtab.symbols.push(new ElfSymbol('new_local', { bind: STB_LOCAL, type: STT_NOTYPE, section: text, value: 2n }));
    symtab.find('compute')!.name = 'compute_renamed';
    const l = layout(obj);
    const out = writeElf(obj, l);
    expect(compareWithReadelf(obj, l, out, fx.dir, 'reindexed')).toEqual([]);
    const st = l.symbolTables.get(symtab)!;
    const lastLocal = st.order.findLastIndex((s) => s.bind === STB_LOCAL);
    const firstGlobal = st.order.findIndex((s) => s.bind !== STB_LOCAL);
    expect(lastLocal + 1).toBe(firstGlobal);
    expect(st.firstGlobal).toBe(firstGlobal + 1);
    const outPath = join(fx.dir, 'reindexed.o');
    writeFileSync(outPath, out);
    const after = readelfDump(outPath);
    // The relocations still name the same symbols (renamed one aside), even though the indices moved.
    const names = (d: typeof before) =>
      [...d.relocs.entries()].map(([k, rs]) => [k, rs.map((r) => `${r.type} ${r.symName} ${r.addend}`)]);
    const expected = names(before).map(([k, rs]) => [k, (rs as string[]).map((r) => r.replace(/^(\S+) compute /, '$1 compute_renamed '))]);
    expect(names(after)).toEqual(expected);
    expect(after.symtabs.get('.symtab')!.find((s) => s.name === 'new_local')!.num).toBeLessThan(st.firstGlobal);
    // The string table grew by the new names only; old names keep their offsets.
    const strtab = l.placements.find((p) => p.section === symtab.strtab)!;
    expect(strtab.size).toBe(
      BigInt(symtab.strtab.original.length + 'new_global\0new_local\0compute_renamed\0'.length),
    );
    expect(strtab.moved).toBe(true);
  });

  test('writeElf() writes a klp conversion: .klp.rela section with flags 0x100042 and a SHN_LIVEPATCH symbol', () => {
    const path = fx.path('basic-kernel');
    const obj = ElfObject.parse(readBytes(path));
    const symtab = obj.symtab!;
    const text = obj.section('.text.compute')!;
    const rela = obj.relocationsFor(text)[0]!;
    const target = symtab.find('extern_counter')!;
    const keep = rela.relocations.filter((r) => r.symbol !== target);
    const moved = rela.relocations.filter((r) => r.symbol === target);
    expect(moved.length).toBeGreaterThan(0);
    rela.relocations = keep;
    target.name = '.klp.sym.vmlinux.extern_counter,0';
    target.section = SHN_LIVEPATCH;
    const klp = new RelocationSection('.klp.rela.vmlinux..text.compute', symtab, text);
    klp.flags = SHF_ALLOC | SHF_INFO_LINK | SHF_RELA_LIVEPATCH;
    klp.relocations = moved;
    obj.addSection(klp);
    // Add a data section, a symbol in it, and a relocation against it from the new section.
    const extra = obj.addSection(new DataSection('.suture.extra', SHT_PROGBITS, new Uint8Array(16)));
    extra.flags = SHF_ALLOC;
    extra.addralign = 8n;
    const sym = symtab.add(new ElfSymbol('suture_extra', { bind: STB_GLOBAL, type: STT_OBJECT, section: extra, size: 16n }));
    const extraRela = obj.addSection(new RelocationSection('.rela.suture.extra', symtab, extra));
    extraRela.relocations.push(new Relocation(8n, R_X86_64_64, sym, 4n));

    expect(klp.flags).toBe(0x100042n);
    const l = layout(obj);
    const out = writeElf(obj, l);
    expect(compareWithReadelf(obj, l, out, fx.dir, 'klp')).toEqual([]);
    const outPath = join(fx.dir, 'klp.o');
    writeFileSync(outPath, out);
    const dump = readelfDump(outPath);
    const klpHdr = dump.sections.find((s) => s.name === '.klp.rela.vmlinux..text.compute')!;
    expect(klpHdr.type).toBe('RELA');
    expect(klpHdr.flags).toBe('AIo');
    expect(dump.sections[klpHdr.info]!.name).toBe('.text.compute');
    expect(dump.sections[klpHdr.link]!.name).toBe('.symtab');
    const klpSym = dump.symtabs.get('.symtab')!.find((s) => s.name === '.klp.sym.vmlinux.extern_counter,0')!;
    expect(klpSym.ndx).toBe('OS [0xff20]');
    expect(dump.relocs.get('.klp.rela.vmlinux..text.compute')!.map((r) => r.symName)).toEqual(
      moved.map(() => '.klp.sym.vmlinux.extern_counter,0'),
    );
    // Unchanged sections stayed where they were; the new ones went after the end.
    const orig = readelfDump(path);
    for (const s of orig.sections) {
      if (s.name === '.strtab' || s.name === '.shstrtab' || s.name.startsWith('.rela.text.compute') || s.name === '.symtab') continue;
      expect(dump.sections.find((x) => x.index === s.index)!.offset).toBe(s.offset);
    }
    // objdump still disassembles it and shows the relocations it can.
    const dis = tool('objdump', ['-dr', outPath]);
    expect(dis).toMatch(/<compute>:/);
    expect(dis).toMatch(/R_X86_64_PLT32\s+extern_func-0x4/);
    // And the result reads back into the same model.
    const again = ElfObject.parse(out);
    expect(again.section('.klp.rela.vmlinux..text.compute')).toBeInstanceOf(RelocationSection);
    expect((again.section('.klp.rela.vmlinux..text.compute') as RelocationSection).target?.name).toBe('.text.compute');
    expect(again.symtab!.find('.klp.sym.vmlinux.extern_counter,0')!.section).toBe(SHN_LIVEPATCH);
    expect(sameBytes(writeElf(again), out)).toBe(true);
  });

  test('writeElf() writes SHT_REL sections (no addends) that readelf reads', () => {
    const obj = ElfObject.parse(readBytes(fx.path('basic')));
    const text = obj.section('.text.fill')!;
    const rel = obj.addSection(new RelocationSection('.rel.suture', obj.symtab!, text, SHT_REL));
    rel.relocations.push(new Relocation(0x10n, R_X86_64_64, obj.symtab!.find('ops')!));
    const l = layout(obj);
    expect(compareWithReadelf(obj, l, writeElf(obj, l), fx.dir, 'rel')).toEqual([]);
    const back = ElfObject.parse(writeElf(obj));
    const r = back.section('.rel.suture') as RelocationSection;
    expect(r.isRela).toBe(false);
    expect(r.entsize).toBe(16n);
    expect(r.relocations.map((x) => [x.offset, x.type, x.symbol?.name])).toEqual([[0x10n, R_X86_64_64, 'ops']]);
  });

  test('writeElf() moves a section that grew and keeps NOBITS sizes', () => {
    const bytes = readBytes(fx.path('basic'));
    const obj = ElfObject.parse(bytes);
    const fill = obj.section('.text.fill') as DataSection;
    const grown = new Uint8Array(fill.data.length + 100).fill(0x90);
    grown.set(fill.data);
    fill.data = grown;
    const bss = obj.sections.find((s): s is NoBitsSection => s instanceof NoBitsSection && s.size > 0n)!;
    bss.size = 0x12345n;
    const l = layout(obj);
    const out = writeElf(obj, l);
    expect(compareWithReadelf(obj, l, out, fx.dir, 'grown')).toEqual([]);
    expect(l.placements.find((p) => p.section === fill)!.moved).toBe(true);
    expect(l.placements.find((p) => p.section === fill)!.offset).toBeGreaterThanOrEqual(bytes.length - 64 * (l.shnum + 1));
    const dis = tool('objdump', ['-d', '-j', '.text.fill', writeTemp(fx.dir, 'grown.o', out)]);
    expect(dis).toMatch(/<fill>:/);
  });

  test('writeElf() rejects a relocation whose symbol is not in its symbol table', () => {
    const obj = ElfObject.parse(readBytes(fx.path('basic')));
    const rela = obj.sections.find((s): s is RelocationSection => s instanceof RelocationSection && s.relocations.length > 0)!;
    rela.relocations[0]!.symbol = new ElfSymbol('stray');
    expect(() => writeElf(obj)).toThrow(/relocation 0 of '.rela[^']*' refers to symbol 'stray', which is not in '.symtab'/);
  });

  test('writeElf() rejects references to sections that were removed', () => {
    const obj = ElfObject.parse(readBytes(fx.path('basic')));
    const victim: Section = obj.section('.text.helper')!;
    obj.sections = obj.sections.filter((s) => s !== victim);
    expect(() => writeElf(obj)).toThrow(/refers to section '.text.helper', which is not in the object/);
  });
});

function writeTemp(dir: string, name: string, bytes: Uint8Array): string {
  const p = join(dir, name);
  writeFileSync(p, bytes);
  return p;
}

describe('writeElf() of objects built in memory', () => {
  let fx: ReturnType<typeof buildFixtures>;
  beforeAll(() => {
    fx = buildFixtures([]);
  });
  afterAll(() => fx.cleanup());

  test('writeElf() of an object built from scratch is read back by readelf, objdump and ElfObject.parse()', () => {
    const obj = new ElfObject();
    const shstrtab = new StringTableSection('.shstrtab');
    const strtab = new StringTableSection('.strtab');
    const symtab = new SymbolTableSection('.symtab', strtab);
    // call ext; ret  (e8 rel32, c3)
    const text = new DataSection('.text', SHT_PROGBITS, Uint8Array.of(0xe8, 0, 0, 0, 0, 0xc3));
    text.flags = SHF_ALLOC | SHF_EXECINSTR;
    text.addralign = 16n;
    const rela = new RelocationSection('.rela.text', symtab, text);
    for (const s of [text, rela, symtab, strtab, shstrtab]) obj.addSection(s);
    obj.shstrtab = shstrtab;
    symtab.add(new ElfSymbol('scratch.c', { bind: STB_LOCAL, type: STT_FILE, section: SHN_ABS }));
    const fn = symtab.add(new ElfSymbol('entry', { bind: STB_GLOBAL, type: STT_FUNC, section: text, size: 6n }));
    const ext = symtab.add(new ElfSymbol('ext', { bind: STB_GLOBAL }));
    rela.relocations.push(new Relocation(1n, R_X86_64_PLT32, ext, -4n));
    const l = layout(obj);
    const out = writeElf(obj, l);
    expect(compareWithReadelf(obj, l, out, fx.dir, 'scratch')).toEqual([]);
    const dis = tool('objdump', ['-dr', writeTemp(fx.dir, 'scratch.o', out)]);
    expect(dis).toMatch(/<entry>:/);
    expect(dis).toMatch(/R_X86_64_PLT32\s+ext-0x4/);
    const back = ElfObject.parse(out);
    expect(back.symtab!.find('entry')!.size).toBe(fn.size);
    expect(sameBytes(writeElf(back), out)).toBe(true);
  });
});
