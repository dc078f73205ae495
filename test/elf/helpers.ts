// SPDX-License-Identifier: GPL-2.0-only
/**
 * Test helpers for the ELF engine: build the C fixtures at test time, run
 * readelf/objdump, and parse `readelf -W -S -s -r` into plain records.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import {
  DataSection,
  ElfObject,
  NoBitsSection,
  RelocationSection,
  SHN_ABS,
  SHN_COMMON,
  SHN_UNDEF,
  relocTypeName,
  type Layout,
} from '../../src/elf/mod.js';

const FIXTURES = resolve(import.meta.dirname, '../fixtures/elf');

export type Fixture = 'basic' | 'basic-kernel' | 'modinfo' | 'comdat' | 'many';

/** Build fixtures into a fresh temp dir; returns the dir and a cleanup function. */
export function buildFixtures(targets: Fixture[] = []): { dir: string; path: (f: Fixture) => string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'suture-elf-'));
  execFileSync('bash', [join(FIXTURES, 'build.sh'), dir, ...targets], { stdio: ['ignore', 'ignore', 'inherit'] });
  return {
    dir,
    path: (f) => join(dir, `${f}.o`),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

export function readBytes(path: string): Uint8Array {
  const b = readFileSync(path);
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

/** Run a binutils tool and return stdout. Throws on a non-zero exit and on any warning it prints. */
export function tool(name: 'readelf' | 'objdump', args: string[]): string {
  const r = spawnSync(name, args, { encoding: 'latin1', maxBuffer: 1 << 30, env: { ...process.env, LC_ALL: 'C' } });
  if (r.error !== undefined) throw r.error;
  if (r.status !== 0 || r.stderr.trim() !== '') {
    throw new Error(`${name} ${args.join(' ')} exited ${r.status}: ${r.stderr.slice(0, 2000)}`);
  }
  return r.stdout;
}

export interface ReadelfSection {
  index: number;
  name: string;
  type: string;
  addr: bigint;
  offset: number;
  size: number;
  entsize: number;
  flags: string;
  link: number;
  info: number;
  align: number;
}

export interface ReadelfSymbol {
  num: number;
  value: bigint;
  size: bigint;
  type: string;
  bind: string;
  vis: string;
  ndx: string;
  name: string;
}

export interface ReadelfReloc {
  offset: bigint;
  info: bigint;
  type: string;
  symValue: bigint | undefined;
  symName: string;
  addend: bigint;
}

export interface ReadelfDump {
  sections: ReadelfSection[];
  symtabs: Map<string, ReadelfSymbol[]>;
  relocs: Map<string, ReadelfReloc[]>;
}

/** Parse the output of `readelf -W -S -s -r`. */
export function parseReadelf(out: string): ReadelfDump {
  const sections: ReadelfSection[] = [];
  const symtabs = new Map<string, ReadelfSymbol[]>();
  const relocs = new Map<string, ReadelfReloc[]>();
  let mode: 'none' | 'sections' | 'symbols' | 'relocs' = 'none';
  let current: ReadelfSymbol[] | ReadelfReloc[] = [];
  // Names are padded to 17 columns; longer names push the rest of the line right.
  const secRe =
    /^\s*\[\s*(\d+)\] (.{17,}?) (\S.*?)\s+([0-9a-f]{16})\s([0-9a-f]{6,})\s([0-9a-f]{6,})\s([0-9a-f]{2,})\s+([A-Za-z]*)\s+(\d+)\s+(\d+)\s+(\d+)$/;
  for (const line of out.split('\n')) {
    let m: RegExpMatchArray | null;
    if (line.startsWith('Section Headers:')) {
      mode = 'sections';
      continue;
    }
    if ((m = line.match(/^Symbol table '(.*)' contains \d+ entr/))) {
      mode = 'symbols';
      current = [];
      symtabs.set(m[1]!, current as ReadelfSymbol[]);
      continue;
    }
    if ((m = line.match(/^Relocation section '(.*)' at offset 0x[0-9a-f]+ contains \d+ entr/))) {
      mode = 'relocs';
      current = [];
      relocs.set(m[1]!, current as ReadelfReloc[]);
      continue;
    }
    if (line.startsWith('Key to Flags') || line.trim() === '') {
      if (mode === 'sections') mode = 'none';
      continue;
    }
    if (mode === 'sections' && (m = line.match(secRe))) {
      sections.push({
        index: Number(m[1]),
        name: m[2]!.trimEnd(),
        type: m[3]!.trim(),
        addr: BigInt(`0x${m[4]}`),
        offset: parseInt(m[5]!, 16),
        size: parseInt(m[6]!, 16),
        entsize: parseInt(m[7]!, 16),
        flags: m[8]!,
        link: Number(m[9]),
        info: Number(m[10]),
        align: Number(m[11]),
      });
    } else if (mode === 'symbols' && (m = line.match(/^\s*(\d+): ([0-9a-f]{16})\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+(?: \[0x[0-9a-f]+\])?)\s?(.*)$/))) {
      (current as ReadelfSymbol[]).push({
        num: Number(m[1]),
        value: BigInt(`0x${m[2]}`),
        size: m[3]!.startsWith('0x') ? BigInt(m[3]!) : BigInt(m[3]!),
        type: m[4]!,
        bind: m[5]!,
        vis: m[6]!,
        ndx: m[7]!,
        name: m[8]!,
      });
    } else if (mode === 'relocs' && (m = line.match(/^([0-9a-f]{16})\s+([0-9a-f]{16})\s+(\S+)\s+(?:([0-9a-f]{16})\s+(.*?)(?:\s+([+-])\s+([0-9a-f]+))?|([+-]?[0-9a-f]+))?\s*$/))) {
      const addend =
        m[6] !== undefined ? (m[6] === '-' ? -1n : 1n) * BigInt(`0x${m[7]}`) : m[8] !== undefined ? BigInt(`0x${m[8]}`) : 0n;
      (current as ReadelfReloc[]).push({
        offset: BigInt(`0x${m[1]}`),
        info: BigInt(`0x${m[2]}`),
        type: m[3]!,
        symValue: m[4] === undefined ? undefined : BigInt(`0x${m[4]}`),
        symName: m[5] ?? '',
        addend,
      });
    }
  }
  return { sections, symtabs, relocs };
}

/** `readelf -W -S -s -r` of a file, parsed. */
export function readelfDump(path: string): ReadelfDump {
  return parseReadelf(tool('readelf', ['-W', '-S', '-s', '-r', path]));
}

// ---- model vs readelf -------------------------------------------------------------------------


const TYPE_NAMES: Record<number, string> = {
  0: 'NULL',
  1: 'PROGBITS',
  2: 'SYMTAB',
  3: 'STRTAB',
  4: 'RELA',
  5: 'HASH',
  6: 'DYNAMIC',
  7: 'NOTE',
  8: 'NOBITS',
  9: 'REL',
  11: 'DYNSYM',
  14: 'INIT_ARRAY',
  15: 'FINI_ARRAY',
  16: 'PREINIT_ARRAY',
  17: 'GROUP',
  18: 'SYMTAB SECTION INDICES',
  0x6ffffff5: 'GNU_ATTRIBUTES',
  0x70000001: 'X86_64_UNWIND',
};

/** The Type column readelf prints for a section type. */
export function readelfTypeName(type: number): string {
  const known = TYPE_NAMES[type];
  if (known !== undefined) return known;
  if (type >= 0x60000000 && type <= 0x6fffffff) return `LOOS+0x${(type - 0x60000000).toString(16)}`;
  if (type >= 0x70000000 && type <= 0x7fffffff) return `LOPROC+0x${(type - 0x70000000).toString(16)}`;
  return `<unknown>: ${type.toString(16)}`;
}

/** The Flg column readelf -W prints for section flags (x86_64). */
export function readelfFlags(flags: bigint): string {
  const letters: Array<[bigint, string]> = [
    [0x1n, 'W'],
    [0x2n, 'A'],
    [0x4n, 'X'],
    [0x10n, 'M'],
    [0x20n, 'S'],
    [0x40n, 'I'],
    [0x80n, 'L'],
    [0x100n, 'O'],
    [0x200n, 'G'],
    [0x400n, 'T'],
    [0x800n, 'C'],
    [0x80000000n, 'E'],
  ];
  let s = '';
  let rest = flags;
  for (const [bit, ch] of letters) {
    if ((flags & bit) !== 0n) {
      s += ch;
      rest &= ~bit;
    }
  }
  if ((rest & 0x0ff00000n) !== 0n) {
    s += 'o';
    rest &= ~0x0ff00000n;
  }
  if ((rest & 0xf0000000n) !== 0n) {
    s += 'p';
    rest &= ~0xf0000000n;
  }
  if (rest !== 0n) s += 'x';
  return s;
}

const SYM_TYPES = ['NOTYPE', 'OBJECT', 'FUNC', 'SECTION', 'FILE', 'COMMON', 'TLS'];
const SYM_BINDS = ['LOCAL', 'GLOBAL', 'WEAK'];
const SYM_VIS = ['DEFAULT', 'INTERNAL', 'HIDDEN', 'PROTECTED'];

function ndxText(l: Layout, symtabShndx: number, section: unknown): string {
  if (typeof section === 'number') {
    if (section === SHN_UNDEF) return 'UND';
    if (section === SHN_ABS) return 'ABS';
    if (section === SHN_COMMON) return 'COM';
    if (section >= 0xff20 && section <= 0xff3f) return `OS [0x${section.toString(16)}]`;
    if (section >= 0xff00 && section <= 0xff1f) return `PRC[0x${section.toString(16)}]`;
    return `RSV[0x${section.toString(16)}]`;
  }
  return String(symtabShndx);
}

/**
 * Compare `readelf -W -S -s -r` of `bytes` (written from `obj` with layout `l`)
 * with the model. Returns a list of disagreements (empty when they agree).
 */
export function compareWithReadelf(obj: ElfObject, l: Layout, bytes: Uint8Array, dir: string, label = 'out'): string[] {
  const path = join(dir, `${label}-${process.pid}-${Math.random().toString(36).slice(2)}.o`);
  writeFileSync(path, bytes);
  const dump = readelfDump(path);
  rmSync(path);
  const diffs: string[] = [];
  const eq = (what: string, got: unknown, want: unknown): void => {
    if (got !== want) diffs.push(`${what}: readelf says ${String(got)}, model says ${String(want)}`);
  };
  eq('section count', dump.sections.length, l.shnum);
  for (const p of l.placements) {
    const r = dump.sections[p.index];
    const sec = p.section;
    if (r === undefined) {
      diffs.push(`section [${p.index}] ${sec.name} missing in readelf`);
      continue;
    }
    const w = `section [${p.index}]`;
    eq(`${w} name`, r.name, sec.name);
    eq(`${w} type`, r.type, readelfTypeName(sec.type));
    eq(`${w} addr`, r.addr, sec.addr);
    eq(`${w} offset`, r.offset, p.offset);
    eq(`${w} size`, BigInt(r.size), p.size);
    eq(`${w} entsize`, BigInt(r.entsize), sec.entsize);
    eq(`${w} flags`, r.flags, readelfFlags(sec.flags));
    eq(`${w} link`, r.link, p.link);
    eq(`${w} info`, r.info, p.info);
    eq(`${w} align`, BigInt(r.align), sec.addralign);
    if (sec instanceof DataSection || sec instanceof NoBitsSection) {
      const link = sec.link === null ? 0 : l.indexOf.get(sec.link);
      eq(`${w} link object`, r.link, link);
    }
  }
  for (const [symtab, st] of l.symbolTables) {
    const rs = dump.symtabs.get(symtab.name);
    if (rs === undefined) {
      diffs.push(`symbol table ${symtab.name} missing in readelf`);
      continue;
    }
    eq(`${symtab.name} count`, rs.length, st.order.length + 1);
    for (let i = 0; i < st.order.length; i++) {
      const sym = st.order[i]!;
      const r = rs[i + 1];
      const w = `${symtab.name} symbol ${i + 1} (${sym.displayName})`;
      if (r === undefined) {
        diffs.push(`${w} missing`);
        continue;
      }
      eq(`${w} name`, r.name, sym.displayName);
      eq(`${w} value`, r.value, sym.value);
      eq(`${w} size`, r.size, sym.size);
      eq(`${w} type`, r.type, SYM_TYPES[sym.type] ?? `?${sym.type}`);
      eq(`${w} bind`, r.bind, SYM_BINDS[sym.bind] ?? `?${sym.bind}`);
      eq(`${w} vis`, r.vis, SYM_VIS[sym.visibility]);
      eq(`${w} ndx`, r.ndx, ndxText(l, st.shndx[i]!, sym.section));
    }
  }
  for (const p of l.placements) {
    const sec = p.section;
    if (!(sec instanceof RelocationSection)) continue;
    const rr = dump.relocs.get(sec.name);
    if (sec.relocations.length === 0) continue;
    if (rr === undefined) {
      diffs.push(`relocation section ${sec.name} missing in readelf`);
      continue;
    }
    eq(`${sec.name} count`, rr.length, sec.relocations.length);
    const symIdx = l.relocationSymbols.get(sec)!;
    sec.relocations.forEach((rel, i) => {
      const r = rr[i];
      const w = `${sec.name} reloc ${i}`;
      if (r === undefined) return diffs.push(`${w} missing`);
      eq(`${w} offset`, r.offset, rel.offset);
      eq(`${w} info`, r.info, (BigInt(symIdx[i]!) << 32n) | BigInt(rel.type));
      eq(`${w} type`, r.type, relocTypeName(rel.type));
      eq(`${w} symbol`, r.symName, rel.symbol === null ? '' : rel.symbol.displayName);
      if (sec.isRela) eq(`${w} addend`, r.addend, rel.addend);
    });
  }
  return diffs;
}

