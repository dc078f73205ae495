// SPDX-License-Identifier: GPL-2.0-only
/**
 * The one layout step: turns the object graph into numbers. It assigns
 * section indices, symbol indices (locals first), string table offsets, file
 * offsets and the extended-numbering fields, and checks that every reference
 * in the graph points at something that will be written.
 *
 * Two modes:
 * - 'preserve' (default): a section that still fits in its input slot stays
 *   at its input offset, string tables keep their input bytes (new names are
 *   appended), and the section header table stays where it was if it fits.
 *   Only what grew or is new goes after the end. An unmodified object lays out
 *   exactly as it was read, so it writes back byte-identical.
 * - 'fresh': everything is laid out from offset 64 in section order, string
 *   tables are rebuilt from the names in use, and gaps in the input are dropped.
 */
import {
  EHDR_SIZE,
  REL_SIZE,
  RELA_SIZE,
  SHDR_SIZE,
  SHN_LORESERVE,
  SHN_UNDEF,
  SHN_XINDEX,
  SHT_GROUP,
  SHT_NOBITS,
  SHT_REL,
  SHT_RELA,
  SHT_STRTAB,
  SHT_SYMTAB,
  SHT_SYMTAB_SHNDX,
  STB_LOCAL,
  SYM_SIZE,
  isSpecialShndx,
} from './constants.js';
import { ElfError, hex } from './errors.js';
import {
  DataSection,
  ElfObject,
  ElfSymbol,
  GroupSection,
  NoBitsSection,
  RelocationSection,
  Section,
  type RawRelocations,
  StringTableSection,
  SymbolTableSection,
  SymtabShndxSection,
} from './model.js';
import { StringTableBuilder } from './strtab.js';

/** 'preserve' keeps input offsets and string tables where it can; 'fresh' lays out from scratch. */
export type LayoutMode = 'preserve' | 'fresh';

export interface LayoutOptions {
  mode?: LayoutMode;
}

/** File offsets of moved or new sections are aligned to sh_addralign, but never more than this. */
export const MAX_FILE_ALIGN = 4096;

/** Where and how one section is written. */
export interface SectionPlacement {
  readonly section: Section;
  /** Section header index (1-based; 0 is the null section). */
  readonly index: number;
  offset: number;
  /** sh_size. */
  size: bigint;
  /** Bytes written to the file (0 for NOBITS). */
  fileSize: number;
  nameOffset: number;
  link: number;
  info: number;
  /** For string tables: the built table. */
  content: Uint8Array | null;
  /** False when the section stays at its input offset. */
  moved: boolean;
}

/** The output numbering of one symbol table. */
export interface SymbolTableLayout {
  /** Symbols in output order (index i + 1). */
  readonly order: readonly ElfSymbol[];
  readonly index: ReadonlyMap<ElfSymbol, number>;
  /** sh_info: index of the first non-local symbol. */
  readonly firstGlobal: number;
  /** Real section index or special value of each symbol in `order`. */
  readonly shndx: Uint32Array;
  /** st_name of each symbol in `order`. */
  readonly nameOffsets: Uint32Array;
  /** True when some symbol needs SHN_XINDEX. */
  readonly needsXindex: boolean;
}

/** The result of layout(): everything writeElf() needs. */
export interface Layout {
  readonly mode: LayoutMode;
  /** One per output section, in header order (placements[i].index === i + 1). */
  readonly placements: readonly SectionPlacement[];
  readonly indexOf: ReadonlyMap<Section, number>;
  readonly symbolTables: ReadonlyMap<SymbolTableSection, SymbolTableLayout>;
  /** Symbol index of each relocation, per relocation section. */
  readonly relocationSymbols: ReadonlyMap<RelocationSection, Uint32Array>;
  /** Whether a section header table is written at all. */
  readonly hasSectionTable: boolean;
  readonly shoff: number;
  /** Real section count including the null section. */
  readonly shnum: number;
  readonly shstrndx: number;
  /** e_shnum / e_shstrndx as stored (0 / SHN_XINDEX under extended numbering). */
  readonly eShnum: number;
  readonly eShstrndx: number;
  /** Section 0's sh_size and sh_link (extended numbering), else 0. */
  readonly sh0Size: number;
  readonly sh0Link: number;
  /** Where the trailer starts; the file ends after it. */
  readonly trailerOffset: number;
  readonly fileSize: number;
  /** Input gap bytes that are still free and are written back. */
  readonly gaps: ReadonlyArray<{ readonly offset: number; readonly bytes: Uint8Array }>;
}

function fail(obj: ElfObject, message: string): never {
  throw new ElfError(message, { file: obj.file }, 'internal');
}

function alignUp(n: number, align: number): number {
  return align <= 1 ? n : Math.ceil(n / align) * align;
}

function fileAlign(sec: Section): number {
  const a = sec.addralign;
  if (a <= 1n) return 1;
  return a >= BigInt(MAX_FILE_ALIGN) ? MAX_FILE_ALIGN : Number(a);
}

/**
 * Compute the layout of `obj`. Does not modify the model. A symbol table
 * that needs extended section indices but has no SYMTAB_SHNDX section gets a
 * synthesized `.symtab_shndx` at the end of the section list (in the layout
 * only). Throws ElfError (kind 'internal') when the graph is inconsistent,
 * e.g. a relocation names a symbol that is not in its symbol table.
 *
 * @example
 * const l = layout(obj, { mode: 'fresh' });
 * console.log(l.shnum, l.fileSize);
 */
export function layout(obj: ElfObject, opts: LayoutOptions = {}): Layout {
  const mode = opts.mode ?? 'preserve';
  const preserve = mode === 'preserve';

  // 1. Section indices.
  const sections = obj.sections.slice();
  const indexOf = new Map<Section, number>();
  for (const sec of sections) {
    if (indexOf.has(sec)) fail(obj, `section ${sec} appears twice in the section list`);
    indexOf.set(sec, indexOf.size + 1);
  }
  /** Index of `sec`, which `user` refers to through `field`. */
  const idx = (sec: Section, user: { toString(): string }, field = ''): number => {
    const i = indexOf.get(sec);
    if (i === undefined) {
      fail(obj, `${field === '' ? '' : `${field} of `}${String(user)} refers to section ${sec}, which is not in the object`);
    }
    return i;
  };

  // 2. Symbol tables: order (locals first), indices, section indices.
  const symbolTables = new Map<SymbolTableSection, SymbolTableLayout & { nameOffsets: Uint32Array }>();
  for (const sec of sections) {
    if (!(sec instanceof SymbolTableSection)) continue;
    const order = localsFirst(sec.symbols);
    const index = new Map<ElfSymbol, number>();
    const shndx = new Uint32Array(order.length);
    let firstGlobal = order.length + 1;
    let needsXindex = false;
    for (let i = 0; i < order.length; i++) {
      const sym = order[i]!;
      if (index.has(sym)) fail(obj, `symbol ${sym} appears twice in symbol table ${sec}`);
      index.set(sym, i + 1);
      if (sym.bind !== STB_LOCAL && firstGlobal > order.length) firstGlobal = i + 1;
      const s = sym.section;
      if (typeof s === 'number') {
        if (!isSpecialShndx(s) || s === SHN_XINDEX) {
          fail(obj, `symbol ${sym} has section index ${hex(s)}, which is not a special index (use a Section object)`);
        }
        shndx[i] = s;
      } else {
        const n = idx(s, sym, 'st_shndx of symbol');
        shndx[i] = n;
        if (n >= SHN_LORESERVE) needsXindex = true;
      }
    }
    symbolTables.set(sec, {
      order,
      index,
      firstGlobal,
      shndx,
      nameOffsets: new Uint32Array(order.length),
      needsXindex,
    });
  }
  for (const [symtab, st] of symbolTables) {
    if (!st.needsXindex) continue;
    if (sections.some((s) => s instanceof SymtabShndxSection && s.symtab === symtab)) continue;
    const x = new SymtabShndxSection('.symtab_shndx', symtab);
    sections.push(x);
    indexOf.set(x, sections.length);
  }

  // 3. Relocation symbol indices.
  const relocationSymbols = new Map<RelocationSection, Uint32Array>();
  // Per (input symbol list, output symbol table): is the output order exactly the input order?
  const unchangedTables = new Map<readonly (ElfSymbol | null)[], Map<SymbolTableLayout | undefined, boolean>>();
  for (const sec of sections) {
    if (!(sec instanceof RelocationSection)) continue;
    const expected = BigInt(sec.type === SHT_RELA ? RELA_SIZE : REL_SIZE);
    if (sec.entsize !== expected) fail(obj, `relocation section ${sec} has sh_entsize ${hex(sec.entsize)}, expected ${hex(expected)}`);
    const st = sec.symtab === null ? undefined : symbolTables.get(sec.symtab);
    if (sec.symtab !== null && st === undefined) fail(obj, `relocation section ${sec} uses symbol table ${sec.symtab}, which is not in the object`);
    const raw = sec.raw;
    let out: Uint32Array;
    if (raw !== null) {
      let perTable = unchangedTables.get(raw.symbols);
      if (perTable === undefined) unchangedTables.set(raw.symbols, (perTable = new Map()));
      let unchanged = perTable.get(st);
      if (unchanged === undefined) {
        unchanged = st !== undefined && st.order.length === raw.symbols.length - 1 && st.order.every((s, i) => s === raw.symbols[i + 1]);
        perTable.set(st, unchanged);
      }
      out = rawSymbolIndices(obj, sec, raw, st, unchanged);
    } else {
      const relocs = sec.relocations;
      out = new Uint32Array(relocs.length);
      for (let i = 0; i < relocs.length; i++) {
        const sym = relocs[i]!.symbol;
        if (sym === null) continue;
        const n = st?.index.get(sym);
        if (n === undefined) {
          fail(obj, `relocation ${i} of ${sec} refers to symbol ${sym}, which is not in ${sec.symtab ?? 'any symbol table'}`);
        }
        out[i] = n;
      }
    }
    relocationSymbols.set(sec, out);
  }

  // 4. String tables.
  const unmodeledUsers = new Set<Section>();
  const modeledUsers = new Set<Section>();
  if (obj.shstrtab !== null) modeledUsers.add(obj.shstrtab);
  for (const sec of sections) {
    if ((sec instanceof DataSection || sec instanceof NoBitsSection) && sec.link instanceof StringTableSection) {
      unmodeledUsers.add(sec.link);
    }
    if (sec instanceof SymbolTableSection) modeledUsers.add(sec.strtab);
  }
  const builders = new Map<StringTableSection, StringTableBuilder>();
  const builder = (t: StringTableSection): StringTableBuilder => {
    let b = builders.get(t);
    if (b === undefined) {
      b = new StringTableBuilder(t, preserve || unmodeledUsers.has(t) || !modeledUsers.has(t));
      builders.set(t, b);
    }
    return b;
  };
  for (const sec of sections) if (sec instanceof StringTableSection) builder(sec);
  const placements: SectionPlacement[] = new Array(sections.length);
  const shstr = obj.shstrtab;
  if (shstr !== null) idx(shstr, 'the ELF header', 'e_shstrndx');
  for (let i = 0; i < sections.length; i++) {
    const sec = sections[i]!;
    let nameOffset = 0;
    if (shstr === null) {
      if (sec.name !== '') fail(obj, `section ${sec} has a name but the object has no section name table`);
    } else {
      nameOffset = builder(shstr).offsetOf(sec.name, sec.origin?.nameOrigin ?? null, sec);
    }
    placements[i] = {
      section: sec,
      index: i + 1,
      offset: 0,
      size: 0n,
      fileSize: 0,
      nameOffset,
      link: 0,
      info: 0,
      content: null,
      moved: true,
    };
  }
  for (const [symtab, st] of symbolTables) {
    const b = builder(symtab.strtab);
    idx(symtab.strtab, `symbol table ${symtab}`);
    for (let i = 0; i < st.order.length; i++) {
      const sym = st.order[i]!;
      st.nameOffsets[i] = b.offsetOf(sym.name, sym.nameOrigin, sym);
    }
  }

  // 5. Sizes, links, infos.
  for (const p of placements) {
    const sec = p.section;
    checkType(obj, sec);
    if (sec instanceof DataSection) {
      p.fileSize = sec.data.length;
      p.size = BigInt(p.fileSize);
      p.link = sec.link === null ? 0 : idx(sec.link, sec, 'sh_link');
      p.info = typeof sec.info === 'number' ? sec.info : idx(sec.info, sec, 'sh_info');
    } else if (sec instanceof NoBitsSection) {
      p.size = sec.size;
      p.link = sec.link === null ? 0 : idx(sec.link, sec, 'sh_link');
      p.info = typeof sec.info === 'number' ? sec.info : idx(sec.info, sec, 'sh_info');
    } else if (sec instanceof StringTableSection) {
      p.content = builders.get(sec)!.bytes();
      p.fileSize = p.content.length;
      p.size = BigInt(p.fileSize);
    } else if (sec instanceof SymbolTableSection) {
      const st = symbolTables.get(sec)!;
      p.fileSize = (st.order.length + 1) * SYM_SIZE;
      p.size = BigInt(p.fileSize);
      p.link = idx(sec.strtab, sec, 'sh_link');
      p.info = st.firstGlobal;
    } else if (sec instanceof SymtabShndxSection) {
      const st = symbolTables.get(sec.symtab);
      if (st === undefined) fail(obj, `SYMTAB_SHNDX section ${sec} belongs to symbol table ${sec.symtab}, which is not in the object`);
      p.fileSize = (st.order.length + 1) * 4;
      p.size = BigInt(p.fileSize);
      p.link = idx(sec.symtab, sec, 'sh_link');
    } else if (sec instanceof RelocationSection) {
      p.fileSize = sec.relocationCount * (sec.isRela ? RELA_SIZE : REL_SIZE);
      p.size = BigInt(p.fileSize);
      p.link = sec.symtab === null ? 0 : idx(sec.symtab, sec, 'sh_link');
      p.info = sec.target === null ? 0 : idx(sec.target, sec, 'sh_info');
    } else if (sec instanceof GroupSection) {
      const st = symbolTables.get(sec.symtab);
      if (st === undefined) fail(obj, `group section ${sec} uses symbol table ${sec.symtab}, which is not in the object`);
      const sig = st.index.get(sec.signature);
      if (sig === undefined) fail(obj, `group section ${sec} has signature ${sec.signature}, which is not in ${sec.symtab}`);
      for (const m of sec.members) idx(m, `group section ${sec}`, 'a member');
      p.fileSize = 4 + 4 * sec.members.length;
      p.size = BigInt(p.fileSize);
      p.link = idx(sec.symtab, sec, 'sh_link');
      p.info = sig;
    } else {
      fail(obj, `section ${sec} has an unknown model class`);
    }
  }

  // 6. File offsets.
  const shnum = placements.length + 1;
  const hasSectionTable = placements.length > 0 || (obj.origin !== null && obj.origin.shnum > 0);
  const shtSize = hasSectionTable ? shnum * SHDR_SIZE : 0;
  let shoff = 0;
  let cursor = EHDR_SIZE;
  const origin = preserve ? obj.origin : null;
  if (preserve) {
    // Keep everything that still fits in its input slot, first come first served by input offset.
    interface Slot {
      start: number;
      end: number;
      p: SectionPlacement | null; // null = the section header table
    }
    const slots: Slot[] = [];
    for (const p of placements) {
      const o = p.section.origin;
      if (o === null || p.fileSize === 0 || p.fileSize > o.fileSize || o.offset < EHDR_SIZE) continue;
      slots.push({ start: o.offset, end: o.offset + p.fileSize, p });
    }
    if (origin !== null && hasSectionTable && origin.shnum > 0 && shnum <= origin.shnum && origin.shoff >= EHDR_SIZE) {
      slots.push({ start: origin.shoff, end: origin.shoff + shtSize, p: null });
    }
    slots.sort((a, b) => a.start - b.start);
    let end = EHDR_SIZE;
    for (const s of slots) {
      if (s.start < end) continue;
      end = s.end;
      if (s.p === null) {
        shoff = s.start;
      } else {
        s.p.offset = s.start;
        s.p.moved = false;
      }
    }
    cursor = end;
  }
  for (const p of placements) {
    if (!p.moved) continue;
    const o = p.section.origin;
    if (p.fileSize === 0) {
      // NOBITS and empty sections occupy nothing; keep their input offset when there is one.
      if (preserve && o !== null) {
        p.offset = o.offset;
        p.moved = false;
      } else {
        p.offset = alignUp(cursor, fileAlign(p.section));
      }
      continue;
    }
    p.offset = alignUp(cursor, fileAlign(p.section));
    cursor = p.offset + p.fileSize;
  }
  if (hasSectionTable && (shoff === 0 || !preserve)) {
    shoff = alignUp(cursor, 8);
    cursor = shoff + shtSize;
  }
  let dataEnd = Math.max(cursor, shoff + shtSize);
  for (const p of placements) if (p.fileSize > 0) dataEnd = Math.max(dataEnd, p.offset + p.fileSize);
  // A new section that occupies nothing must not point past the end of the file.
  for (const p of placements) if (p.fileSize === 0 && p.moved && p.offset > dataEnd) p.offset = dataEnd;

  // 7. Input gaps that are still free.
  const gaps: Array<{ offset: number; bytes: Uint8Array }> = [];
  if (origin !== null && origin.gaps.length > 0) {
    const taken: Array<[number, number]> = [[0, EHDR_SIZE]];
    if (hasSectionTable) taken.push([shoff, shoff + shtSize]);
    for (const p of placements) if (p.fileSize > 0) taken.push([p.offset, p.offset + p.fileSize]);
    for (const g of origin.gaps) {
      const s = g.offset;
      const e = g.offset + g.bytes.length;
      if (e <= dataEnd && !taken.some(([a, b]) => s < b && a < e)) gaps.push(g);
    }
  }

  const shstrndx = shstr === null ? SHN_UNDEF : indexOf.get(shstr)!;
  const extended = shnum >= SHN_LORESERVE;
  return {
    mode,
    placements,
    indexOf,
    symbolTables,
    relocationSymbols,
    hasSectionTable,
    shoff: hasSectionTable ? shoff : 0,
    shnum: hasSectionTable ? shnum : 0,
    shstrndx,
    eShnum: !hasSectionTable ? 0 : extended ? 0 : shnum,
    eShstrndx: shstrndx >= SHN_LORESERVE ? SHN_XINDEX : shstrndx,
    sh0Size: extended ? shnum : 0,
    sh0Link: shstrndx >= SHN_LORESERVE ? shstrndx : 0,
    trailerOffset: dataEnd,
    fileSize: dataEnd + obj.trailer.length,
    gaps,
  };
}

const MODELED_TYPES = new Set([SHT_NOBITS, SHT_STRTAB, SHT_SYMTAB, SHT_RELA, SHT_REL, SHT_GROUP, SHT_SYMTAB_SHNDX]);

/** A section's sh_type must fit its model class, or the file would not read back. */
function checkType(obj: ElfObject, sec: Section): void {
  let want: number | undefined;
  if (sec instanceof NoBitsSection) want = SHT_NOBITS;
  else if (sec instanceof StringTableSection) want = SHT_STRTAB;
  else if (sec instanceof SymbolTableSection) want = SHT_SYMTAB;
  else if (sec instanceof GroupSection) want = SHT_GROUP;
  else if (sec instanceof SymtabShndxSection) want = SHT_SYMTAB_SHNDX;
  if (sec instanceof RelocationSection) {
    if (sec.type !== SHT_RELA && sec.type !== SHT_REL) fail(obj, `relocation section ${sec} has sh_type ${hex(sec.type)}, not SHT_RELA or SHT_REL`);
  } else if (want !== undefined) {
    if (sec.type !== want) fail(obj, `section ${sec} is a ${sec.constructor.name} but has sh_type ${hex(sec.type)} instead of ${hex(want)}`);
  } else if (MODELED_TYPES.has(sec.type)) {
    fail(obj, `data section ${sec} has sh_type ${hex(sec.type)}; use the model class for that type`);
  }
}

/**
 * Output symbol indices for relocations that were never decoded: the input
 * index unchanged when the symbol table is exactly as read, else mapped
 * through the symbol objects.
 */
function rawSymbolIndices(
  obj: ElfObject,
  sec: RelocationSection,
  raw: RawRelocations,
  st: SymbolTableLayout | undefined,
  unchanged: boolean,
): Uint32Array {
  const { bytes, rela, count, symbols } = raw;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const size = rela ? RELA_SIZE : REL_SIZE;
  const out = new Uint32Array(count);
  for (let i = 0; i < count; i++) {
    const k = dv.getUint32(i * size + 12, true);
    if (k === 0) continue;
    if (unchanged) {
      out[i] = k;
      continue;
    }
    const sym = symbols[k]!;
    const n = st?.index.get(sym);
    if (n === undefined) {
      fail(obj, `relocation ${i} of ${sec} refers to symbol ${sym}, which is not in ${sec.symtab ?? 'any symbol table'}`);
    }
    out[i] = n;
  }
  return out;
}

/** The symbols with locals first, keeping relative order (the array itself when already so). */
function localsFirst(symbols: readonly ElfSymbol[]): readonly ElfSymbol[] {
  let seenGlobal = false;
  let sorted = true;
  for (const s of symbols) {
    if (s.bind !== STB_LOCAL) seenGlobal = true;
    else if (seenGlobal) {
      sorted = false;
      break;
    }
  }
  if (sorted) return symbols;
  return [...symbols.filter((s) => s.bind === STB_LOCAL), ...symbols.filter((s) => s.bind !== STB_LOCAL)];
}
