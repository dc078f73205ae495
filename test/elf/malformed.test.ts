// SPDX-License-Identifier: GPL-2.0-only
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ElfError, ElfObject, ElfView, SHN_XINDEX, type SectionHeader } from '../../src/elf/mod.js';
import { buildFixtures, readBytes } from './helpers.js';

/** Parse (view and model) and return the ElfError, failing if anything else happens. */
function rejection(bytes: Uint8Array): ElfError {
  try {
    ElfObject.parse(bytes, { file: 'bad.o' });
  } catch (e) {
    if (e instanceof ElfError) return e;
    throw new Error(`expected an ElfError, got ${String(e)}`, { cause: e });
  }
  throw new Error('expected an ElfError, but the input was accepted');
}

describe('malformed input', () => {
  let fx: ReturnType<typeof buildFixtures>;
  let basic: Uint8Array;
  let comdat: Uint8Array;
  let view: ElfView;
  beforeAll(() => {
    fx = buildFixtures(['basic', 'comdat']);
    basic = readBytes(fx.path('basic'));
    comdat = readBytes(fx.path('comdat'));
    view = ElfView.parse(basic);
  });
  afterAll(() => fx.cleanup());

  /** A copy of `src` with a little-endian field rewritten. */
  function patched(src: Uint8Array, at: number, width: 1 | 2 | 4 | 8, value: number | bigint): Uint8Array {
    const b = src.slice();
    const dv = new DataView(b.buffer);
    if (width === 1) dv.setUint8(at, Number(value));
    else if (width === 2) dv.setUint16(at, Number(value), true);
    else if (width === 4) dv.setUint32(at, Number(value), true);
    else dv.setBigUint64(at, BigInt(value), true);
    return b;
  }
  const shdr = (v: ElfView, s: SectionHeader): number => v.header.shoff + s.index * 64;
  const sec = (name: string, v: ElfView = view): SectionHeader => v.sections.find((s) => s.name === name)!;

  test('ElfObject.parse() rejects a file shorter than the ELF header', () => {
    const e = rejection(basic.subarray(0, 40));
    expect(e.kind).toBe('invalid-input');
    expect(e.message).toBe('bad.o, offset 0x0: truncated: file is 40 bytes, the ELF header needs 64');
  });

  test('ElfObject.parse() rejects a file truncated inside the section header table', () => {
    const cut = view.header.shoff + 100;
    expect(rejection(basic.subarray(0, cut)).message).toMatch(
      new RegExp(`offset 0x${view.header.shoff.toString(16)}: section header table \\(e_shoff 0x[0-9a-f]+, \\d+ entries\\) runs past the end of the file \\(size 0x${cut.toString(16)}\\)`),
    );
  });

  test('ElfObject.parse() rejects a file truncated inside section data', () => {
    // Move the section header table to the front half, then cut the file after it.
    const s = sec('.symtab');
    const b = patched(basic, shdr(view, s) + 0x20, 8, BigInt(basic.length));
    expect(rejection(b).message).toMatch(/section \[\d+\] '\.symtab', offset 0x[0-9a-f]+: section data \(sh_offset 0x[0-9a-f]+, sh_size 0x[0-9a-f]+\) runs past the end of the file/);
  });

  test.each([
    ['bad magic', 0, 1, 0x7e, /offset 0x0: not an ELF file \(bad magic\)/],
    ['ELFCLASS32', 4, 1, 1, /offset 0x4: ELF class 1 is not supported \(only ELFCLASS64\)/],
    ['big-endian', 5, 1, 2, /offset 0x5: data encoding 2 is not supported \(only little-endian\)/],
    ['ET_EXEC', 0x10, 2, 2, /offset 0x10: ELF type 2 is not supported \(only relocatable objects, ET_REL\)/],
    ['ET_DYN', 0x10, 2, 3, /offset 0x10: ELF type 3 is not supported/],
    ['EM_386', 0x12, 2, 3, /offset 0x12: machine 3 is not supported \(only x86_64, EM_X86_64 = 62\)/],
    ['EM_AARCH64', 0x12, 2, 183, /offset 0x12: machine 183 is not supported/],
    ['e_version 2', 0x14, 4, 2, /offset 0x14: e_version 2 is not supported/],
    ['program headers', 0x38, 2, 1, /offset 0x38: e_phnum is 1: program headers are not supported/],
    ['e_shentsize 40', 0x3a, 2, 40, /offset 0x3a: e_shentsize is 40, expected 64/],
  ] as const)('ElfObject.parse() rejects %s with a typed error naming the header field', (_name, at, width, value, re) => {
    const e = rejection(patched(basic, at, width, value));
    expect(e.kind).toBe('invalid-input');
    expect(e.message).toMatch(re);
  });

  test('ElfObject.parse() rejects e_shoff past the end of the file', () => {
    expect(rejection(patched(basic, 0x28, 8, basic.length + 10)).message).toMatch(
      /offset 0x28: section header table at e_shoff 0x[0-9a-f]+ is past the end of the file/,
    );
  });

  test('ElfObject.parse() rejects an e_shstrndx that is out of range or not a string table', () => {
    expect(rejection(patched(basic, 0x3e, 2, view.header.shnum)).message).toMatch(/offset 0x3e: e_shstrndx \d+ is out of range/);
    const symtab = sec('.symtab');
    expect(rejection(patched(basic, 0x3e, 2, symtab.index)).message).toMatch(
      new RegExp(`section \\[${symtab.index}\\], offset 0x3e: e_shstrndx ${symtab.index} names a SYMTAB section, not a STRTAB`),
    );
  });

  test('ElfObject.parse() rejects extended numbering whose section 0 claims more sections than fit', () => {
    let b = patched(basic, 0x3c, 2, 0);
    b = patched(b, view.header.shoff + 0x20, 8, 1000);
    expect(rejection(b).message).toMatch(/section header table \(e_shoff 0x[0-9a-f]+, 1000 entries\) runs past the end/);
    b = patched(b, view.header.shoff + 0x20, 8, 0xffffffffffffn);
    expect(rejection(b).message).toMatch(/section 0 sh_size 0xffffffffffff \(extended e_shnum\) is larger than the file/);
  });

  test('ElfObject.parse() rejects section data that overlaps other sections or the headers', () => {
    const a = sec('.text.compute');
    const b = sec('.text.pick');
    const e = rejection(patched(basic, shdr(view, b) + 0x18, 8, a.offset));
    expect(e.message).toMatch(/section \[\d+\] '\.text\.(compute|pick)', offset 0x[0-9a-f]+: data overlaps section \[\d+\] '\.text\.(compute|pick)'/);
    expect(e.location.sectionName).toMatch(/^\.text\.(compute|pick)$/);
    expect(rejection(patched(basic, shdr(view, a) + 0x18, 8, 8)).message).toMatch(
      /section \[\d+\] '\.text\.compute', offset 0x8: data overlaps the ELF header/,
    );
    expect(rejection(patched(basic, shdr(view, sec('.strtab')) + 0x18, 8, view.header.shoff)).message).toMatch(
      /section \[\d+\] '\.strtab', offset 0x[0-9a-f]+: data overlaps the section header table/,
    );
  });

  test('ElfObject.parse() rejects out-of-range sh_link and sh_info', () => {
    const rela = sec('.rela.text.compute');
    const n = view.header.shnum;
    expect(rejection(patched(basic, shdr(view, rela) + 0x28, 4, n + 5)).message).toMatch(
      new RegExp(`section \\[${rela.index}\\] '\\.rela\\.text\\.compute', offset 0x[0-9a-f]+: sh_link ${n + 5} is out of range \\(${n} sections\\)`),
    );
    expect(rejection(patched(basic, shdr(view, rela) + 0x2c, 4, n)).message).toMatch(
      /'\.rela\.text\.compute', offset 0x[0-9a-f]+: sh_info \d+ \(target section\) is out of range/,
    );
    expect(rejection(patched(basic, shdr(view, rela) + 0x28, 4, sec('.text.fill').index)).message).toMatch(
      /'\.rela\.text\.compute', offset 0x[0-9a-f]+: sh_link \d+ of a relocation section is not a SYMTAB section/,
    );
    const symtab = sec('.symtab');
    expect(rejection(patched(basic, shdr(view, symtab) + 0x2c, 4, 9999)).message).toMatch(
      /'\.symtab', offset 0x[0-9a-f]+: sh_info 9999 \(first global\) is beyond the \d+ symbols/,
    );
  });

  test('ElfObject.parse() rejects wrong entry sizes and alignments', () => {
    const symtab = sec('.symtab');
    expect(rejection(patched(basic, shdr(view, symtab) + 0x38, 8, 16)).message).toMatch(
      /'\.symtab', offset 0x[0-9a-f]+: sh_entsize 0x10 is wrong for a SYMTAB section \(expected 0x18\)/,
    );
    const rela = sec('.rela.text.compute');
    expect(rejection(patched(basic, shdr(view, rela) + 0x20, 8, 25)).message).toMatch(
      /'\.rela\.text\.compute', offset 0x[0-9a-f]+: sh_size 0x19 is not a multiple of the entry size 0x18/,
    );
    expect(rejection(patched(basic, shdr(view, sec('.text.fill')) + 0x30, 8, 3)).message).toMatch(
      /'\.text\.fill', offset 0x[0-9a-f]+: sh_addralign 0x3 is not a power of two/,
    );
  });

  test('ElfObject.parse() rejects out-of-range symbol section indices and relocation symbol indices', () => {
    const symtab = sec('.symtab');
    const syms = view.symbols(symtab);
    const k = syms.findIndex((s) => s.name === 'compute');
    const n = view.header.shnum;
    expect(rejection(patched(basic, symtab.offset + k * 24 + 6, 2, n + 3)).message).toMatch(
      new RegExp(`'\\.symtab', offset 0x${(symtab.offset + k * 24 + 6).toString(16)}: symbol ${k} 'compute': st_shndx ${n + 3} is out of range \\(${n} sections\\)`),
    );
    expect(rejection(patched(basic, symtab.offset + k * 24 + 6, 2, SHN_XINDEX)).message).toMatch(
      /'\.symtab': a symbol uses SHN_XINDEX but there is no SYMTAB_SHNDX section for it/,
    );
    const rela = sec('.rela.text.compute');
    expect(rejection(patched(basic, rela.offset + 24 + 12, 4, syms.length)).message).toMatch(
      new RegExp(`'\\.rela\\.text\\.compute', offset 0x${(rela.offset + 36).toString(16)}: relocation 1: symbol index ${syms.length} is out of range \\(${syms.length} symbols\\)`),
    );
  });

  test('ElfObject.parse() rejects bad string offsets in symbol and section names', () => {
    const symtab = sec('.symtab');
    const strtab = sec('.strtab');
    expect(rejection(patched(basic, symtab.offset + 2 * 24, 4, strtab.fileSize + 7)).message).toMatch(
      /'\.symtab', offset 0x[0-9a-f]+: symbol 2: st_name 0x[0-9a-f]+ is outside the string table \[\d+\] '\.strtab'/,
    );
    // A name that runs to the end of the table without a NUL.
    let b = patched(basic, strtab.offset + strtab.fileSize - 1, 1, 0x41);
    b = patched(b, symtab.offset + 2 * 24, 4, strtab.fileSize - 1);
    expect(rejection(b).message).toMatch(/'\.symtab', offset 0x[0-9a-f]+: symbol 2: name at 0x[0-9a-f]+ is not NUL-terminated/);
    const text = sec('.text.fill');
    expect(rejection(patched(basic, shdr(view, text), 4, 0xfffff)).message).toMatch(
      new RegExp(`section \\[${text.index}\\], offset 0x[0-9a-f]+: sh_name 0xfffff is not a valid offset in the section name table`),
    );
  });

  test('ElfObject.parse() rejects group sections with bad members or signatures', () => {
    const cv = ElfView.parse(comdat);
    const g = cv.sections.find((s) => s.name === '.group')!;
    expect(rejection(patched(comdat, g.offset + 4, 4, 999)).message).toMatch(
      /section \[1\] '\.group', offset 0x[0-9a-f]+: group member index 999 is out of range/,
    );
    expect(rejection(patched(comdat, cv.header.shoff + g.index * 64 + 0x2c, 4, 0)).message).toMatch(
      /section \[1\] '\.group', offset 0x[0-9a-f]+: group signature is the null symbol/,
    );
  });

  test('ElfView.parse() never throws anything but ElfError on any truncation of a real object', () => {
    for (let len = 0; len < basic.length; len += 7) {
      try {
        ElfObject.parse(basic.subarray(0, len));
      } catch (e) {
        expect(e).toBeInstanceOf(ElfError);
      }
    }
  });
});
