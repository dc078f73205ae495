// SPDX-License-Identifier: GPL-2.0-only
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ElfView, GRP_COMDAT, SHT_GROUP, SHT_NOBITS } from '../../src/elf/mod.js';
import { buildFixtures, readBytes, readelfDump, readelfFlags, readelfTypeName, tool, type Fixture } from './helpers.js';

const FIXTURES: Fixture[] = ['basic', 'basic-kernel', 'modinfo', 'comdat'];

describe('ElfView', () => {
  let fx: ReturnType<typeof buildFixtures>;
  beforeAll(() => {
    fx = buildFixtures(FIXTURES);
  });
  afterAll(() => fx.cleanup());

  test.each(FIXTURES)('ElfView.parse() section headers of %s.o agree with readelf -S', (f) => {
    const view = ElfView.parse(readBytes(fx.path(f)));
    const dump = readelfDump(fx.path(f));
    expect(view.sections.length).toBe(dump.sections.length);
    for (const r of dump.sections.slice(1)) {
      const s = view.sections[r.index]!;
      expect([s.name, readelfTypeName(s.type), s.offset, Number(s.size), Number(s.entsize), readelfFlags(s.flags), s.link, s.info, Number(s.addralign)]).toEqual([
        r.name,
        r.type,
        r.offset,
        r.size,
        r.entsize,
        r.flags,
        r.link,
        r.info,
        r.align,
      ]);
    }
  });

  test.each(FIXTURES)('ElfView.symbols() and relocations() of %s.o agree with readelf -s -r', (f) => {
    const view = ElfView.parse(readBytes(fx.path(f)));
    const dump = readelfDump(fx.path(f));
    const symtab = view.sections.find((s) => s.name === '.symtab')!;
    const syms = view.symbols(symtab);
    const rs = dump.symtabs.get('.symtab')!;
    expect(syms.length).toBe(rs.length);
    syms.forEach((s, i) => {
      expect(s.value).toBe(rs[i]!.value);
      expect(s.size).toBe(rs[i]!.size);
      if (rs[i]!.type !== 'SECTION') expect(s.name).toBe(rs[i]!.name);
      else expect(view.sections[s.shndx]!.name).toBe(rs[i]!.name);
    });
    for (const sec of view.sections.filter((s) => s.type === 4)) {
      const relocs = view.relocations(sec);
      const rr = dump.relocs.get(sec.name) ?? [];
      expect(relocs.map((r) => [r.offset, (BigInt(r.symbol) << 32n) | BigInt(r.type), r.addend])).toEqual(
        rr.map((r) => [r.offset, r.info, r.addend]),
      );
    }
  });

  test('ElfView.group() decodes COMDAT groups as readelf -g shows them', () => {
    const view = ElfView.parse(readBytes(fx.path('comdat')));
    const groups = view.sections.filter((s) => s.type === SHT_GROUP);
    const text = tool('readelf', ['-W', '-g', fx.path('comdat')]);
    expect(groups.length).toBe((text.match(/^COMDAT group section/gm) ?? []).length);
    for (const g of groups) {
      const { flags, members } = view.group(g);
      expect(flags).toBe(GRP_COMDAT);
      const sig = view.symbols(g.link)[g.info]!.name;
      const block = text.split('\n\n').find((b) => b.includes(`[${String(g.index).padStart(5)}] \`.group' [${sig}]`))!;
      expect(block).toBeDefined();
      const listed = [...block.matchAll(/^\s+\[\s*(\d+)\]\s+(\S+)$/gm)].map((m) => Number(m[1]));
      expect(members).toEqual(listed);
    }
  });

  test('ElfView.data() is a view into the input, not a copy; NOBITS sections have none', () => {
    const bytes = readBytes(fx.path('basic'));
    const view = ElfView.parse(bytes);
    const text = view.findSection('.text.fill')!;
    const data = view.data(text);
    expect(data.buffer).toBe(bytes.buffer);
    expect(data.byteOffset).toBe(bytes.byteOffset + text.offset);
    const bss = view.sections.find((s) => s.type === SHT_NOBITS && s.size > 0n)!;
    expect(view.data(bss).length).toBe(0);
    expect(bss.fileSize).toBe(0);
  });

  test('ElfView.parse() reports the regions, an appended trailer and no gaps for a gcc object', () => {
    const bytes = readBytes(fx.path('basic'));
    const view = ElfView.parse(bytes);
    expect(view.trailer.length).toBe(0);
    expect(view.gaps).toEqual([]);
    expect(view.regions[0]).toEqual({ start: 0, end: 64, owner: 'ehdr' });
    expect(view.regions.at(-1)!.end).toBe(bytes.length);
    const signed = new Uint8Array(bytes.length + 5);
    signed.set(bytes);
    signed.set([1, 2, 3, 4, 5], bytes.length);
    expect([...ElfView.parse(signed).trailer]).toEqual([1, 2, 3, 4, 5]);
  });

  test('ElfView.string() reads names and rejects offsets outside the table', () => {
    const view = ElfView.parse(readBytes(fx.path('basic')));
    const shstrtab = view.sections[view.shstrndx!]!;
    const text = view.findSection('.text.fill')!;
    expect(view.string(shstrtab, text.nameOffset)).toBe('.text.fill');
    expect(view.string(shstrtab, text.nameOffset + 5)).toBe('.fill');
    expect(() => view.string(shstrtab, shstrtab.fileSize)).toThrow(/section \[\d+\] '\.shstrtab', offset 0x[0-9a-f]+: string offset 0x[0-9a-f]+ is outside the string table/);
    expect(() => view.string(text, 0)).toThrow(/'\.text\.fill': is a PROGBITS section, not a STRTAB/);
  });
});
