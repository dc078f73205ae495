// SPDX-License-Identifier: GPL-2.0-only
/**
 * The editable object model. Sections, symbols and relocations refer to each
 * other by object, never by index: a relocation holds its ElfSymbol, a RELA
 * section its target Section and SymbolTableSection, a symbol its Section (or
 * a special index such as SHN_UNDEF, SHN_ABS, SHN_COMMON, SHN_LIVEPATCH).
 * Indices exist only in the input (ElfView) and in the output (layout()).
 *
 * Every object read from a file remembers where it came from (`origin`), so
 * that the layout step can keep an unchanged object byte-identical.
 */
import {
  REL_SIZE,
  RELA_SIZE,
  SHF_INFO_LINK,
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
  STT_SECTION,
  SYM_SIZE,
  stBind,
  stInfo,
  stType,
  isSpecialShndx,
} from './constants.js';
import { ElfError } from './errors.js';
import { ElfView, type ParseOptions } from './view.js';

/** Where a section was in the input file. */
export interface SectionOrigin {
  /** Index in the input section header table. */
  readonly index: number;
  /** sh_offset in the input. */
  readonly offset: number;
  /** Bytes it occupied in the input (0 for NOBITS). */
  readonly fileSize: number;
  /** The name as it was in the input's section name table (null when the input had none). */
  readonly nameOrigin: NameOrigin | null;
}

/** A name as it was in the input string table (lets layout reuse the same offset). */
export interface NameOrigin {
  readonly table: StringTableSection;
  readonly name: string;
  readonly offset: number;
}

/** Common fields of every section. Subclasses hold the type-specific content. */
export abstract class Section {
  name: string;
  type: number;
  flags: bigint = 0n;
  addr = 0n;
  addralign = 1n;
  entsize = 0n;
  /** Where the section was in the input, or null for a section created in memory. */
  origin: SectionOrigin | null = null;

  protected constructor(name: string, type: number) {
    this.name = name;
    this.type = type;
  }

  /** Human-readable label for messages: `'.text.foo'`. */
  toString(): string {
    return `'${this.name}'`;
  }
}

/**
 * A section whose content is opaque bytes: PROGBITS, NOTE, INIT_ARRAY, and
 * every type the engine does not model (kept as raw bytes).
 */
export class DataSection extends Section {
  data: Uint8Array;
  /** sh_link as a section (null for 0). */
  link: Section | null = null;
  /** sh_info: a section when SHF_INFO_LINK is set, else the raw number. */
  info: Section | number = 0;

  constructor(name: string, type: number, data: Uint8Array = new Uint8Array(0)) {
    super(name, type);
    this.data = data;
  }
}

/** SHT_NOBITS (.bss): a size, no bytes in the file. */
export class NoBitsSection extends Section {
  size: bigint;
  link: Section | null = null;
  info: Section | number = 0;

  constructor(name: string, size = 0n) {
    super(name, SHT_NOBITS);
    this.size = size;
  }
}

/**
 * SHT_STRTAB. Its content is built by layout() from the names of the symbols
 * and sections that use it; `original` holds the input bytes, which layout
 * keeps (appending new names) unless asked to lay out fresh.
 */
export class StringTableSection extends Section {
  /** Bytes of the table in the input (a single NUL for a new table). */
  original: Uint8Array;

  constructor(name: string, original: Uint8Array = Uint8Array.of(0)) {
    super(name, SHT_STRTAB);
    this.original = original;
  }
}

/** SHT_SYMTAB: a list of symbols; index 0 (the null symbol) is implicit. */
export class SymbolTableSection extends Section {
  strtab: StringTableSection;
  /** Symbols in output order, without the null symbol. */
  symbols: ElfSymbol[] = [];

  constructor(name: string, strtab: StringTableSection) {
    super(name, SHT_SYMTAB);
    this.strtab = strtab;
    this.entsize = BigInt(SYM_SIZE);
    this.addralign = 8n;
  }

  /**
   * Add a symbol, keeping locals before globals: a local goes after the last
   * local, anything else at the end.
   */
  add(sym: ElfSymbol): ElfSymbol {
    if (sym.bind === STB_LOCAL) {
      let i = this.symbols.length;
      while (i > 0 && this.symbols[i - 1]!.bind !== STB_LOCAL) i--;
      this.symbols.splice(i, 0, sym);
    } else {
      this.symbols.push(sym);
    }
    return sym;
  }

  /** First symbol with this name. */
  find(name: string): ElfSymbol | undefined {
    return this.symbols.find((s) => s.name === name);
  }
}

/** SHT_SYMTAB_SHNDX: extended section indices of a symbol table; its content is derived at layout. */
export class SymtabShndxSection extends Section {
  symtab: SymbolTableSection;

  constructor(name: string, symtab: SymbolTableSection) {
    super(name, SHT_SYMTAB_SHNDX);
    this.symtab = symtab;
    this.entsize = 4n;
    this.addralign = 4n;
  }
}

/**
 * Relocation entries exactly as read, kept undecoded until someone looks at
 * them. `symbols[k]` is the symbol that input index k named (null for 0).
 */
export interface RawRelocations {
  readonly bytes: Uint8Array;
  readonly rela: boolean;
  readonly count: number;
  readonly symbols: readonly (ElfSymbol | null)[];
}

/** SHT_RELA or SHT_REL: relocations that apply to `target`, naming symbols of `symtab`. */
export class RelocationSection extends Section {
  symtab: SymbolTableSection | null;
  target: Section | null;
  #relocations: Relocation[] | null = [];
  #raw: RawRelocations | null = null;

  constructor(name: string, symtab: SymbolTableSection | null, target: Section | null, type = SHT_RELA) {
    super(name, type);
    if (type !== SHT_RELA && type !== SHT_REL) {
      throw new ElfError(`relocation section '${name}' must be SHT_RELA or SHT_REL, not ${type}`, {}, 'internal');
    }
    this.symtab = symtab;
    this.target = target;
    this.entsize = BigInt(type === SHT_RELA ? RELA_SIZE : REL_SIZE);
    this.addralign = 8n;
    this.flags = SHF_INFO_LINK;
  }

  /** True for SHT_RELA (explicit addends). */
  get isRela(): boolean {
    return this.type === SHT_RELA;
  }

  /** The relocations, in order. Read from the input on first access; edit the array freely. */
  get relocations(): Relocation[] {
    if (this.#relocations === null) {
      this.#relocations = decodeRelocations(this.#raw!);
      this.#raw = null;
    }
    return this.#relocations;
  }
  set relocations(list: Relocation[]) {
    this.#relocations = list;
    this.#raw = null;
  }

  /** Number of relocations, without decoding them. */
  get relocationCount(): number {
    return this.#relocations === null ? this.#raw!.count : this.#relocations.length;
  }

  /** The undecoded input entries while nobody has read `relocations`, else null. Used by layout and writer. */
  get raw(): RawRelocations | null {
    return this.#relocations === null ? this.#raw : null;
  }

  /** Set the undecoded input entries (used when reading a file). */
  setRaw(raw: RawRelocations): void {
    this.#raw = raw;
    this.#relocations = null;
  }
}

function decodeRelocations(raw: RawRelocations): Relocation[] {
  const { bytes, rela, count, symbols } = raw;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const size = rela ? RELA_SIZE : REL_SIZE;
  const out: Relocation[] = new Array(count);
  for (let i = 0; i < count; i++) {
    const at = i * size;
    out[i] = new Relocation(
      dv.getBigUint64(at, true),
      dv.getUint32(at + 8, true),
      symbols[dv.getUint32(at + 12, true)]!,
      rela ? dv.getBigInt64(at + 16, true) : 0n,
    );
  }
  return out;
}

/** SHT_GROUP: a section group (COMDAT) named by a signature symbol. */
export class GroupSection extends Section {
  symtab: SymbolTableSection;
  signature: ElfSymbol;
  /** The flag word (GRP_COMDAT). */
  groupFlags: number;
  members: Section[];

  constructor(name: string, symtab: SymbolTableSection, signature: ElfSymbol, groupFlags: number, members: Section[] = []) {
    super(name, SHT_GROUP);
    this.symtab = symtab;
    this.signature = signature;
    this.groupFlags = groupFlags;
    this.members = members;
    this.entsize = 4n;
    this.addralign = 4n;
  }
}

/** A symbol table entry. */
export class ElfSymbol {
  name: string;
  /** st_info: binding << 4 | type. */
  info: number;
  /** st_other: visibility in the low 2 bits. */
  other: number;
  /**
   * The section the symbol is defined in, or a special index: SHN_UNDEF (0),
   * SHN_ABS, SHN_COMMON, SHN_LIVEPATCH or another reserved value. Never a
   * plain section index.
   */
  section: Section | number;
  value: bigint;
  size: bigint;
  /** The name as it was in the input string table, or null for a new or renamed-from-nothing symbol. */
  nameOrigin: NameOrigin | null = null;
  /** Index in the input symbol table, or -1 for a new symbol. */
  originIndex = -1;

  constructor(
    name: string,
    fields: { info?: number; bind?: number; type?: number; other?: number; section?: Section | number; value?: bigint; size?: bigint } = {},
  ) {
    this.name = name;
    this.info = fields.info ?? stInfo(fields.bind ?? STB_LOCAL, fields.type ?? 0);
    this.other = fields.other ?? 0;
    this.section = fields.section ?? SHN_UNDEF;
    this.value = fields.value ?? 0n;
    this.size = fields.size ?? 0n;
  }

  get bind(): number {
    return stBind(this.info);
  }
  set bind(b: number) {
    this.info = stInfo(b, stType(this.info));
  }
  get type(): number {
    return stType(this.info);
  }
  set type(t: number) {
    this.info = stInfo(stBind(this.info), t);
  }
  get visibility(): number {
    return this.other & 3;
  }
  /** True when st_shndx is SHN_UNDEF. */
  get isUndefined(): boolean {
    return this.section === SHN_UNDEF;
  }
  /** The name readelf shows: a section symbol without a name shows its section's name. */
  get displayName(): string {
    if (this.name === '' && this.type === STT_SECTION && typeof this.section !== 'number') return this.section.name;
    return this.name;
  }

  toString(): string {
    return `'${this.displayName}'`;
  }
}

/** One relocation entry. */
export class Relocation {
  /** r_offset: where in the target section. */
  offset: bigint;
  /** r_type (see x86_64.ts). */
  type: number;
  /** The symbol, or null for symbol index 0. */
  symbol: ElfSymbol | null;
  /** r_addend (0n for REL). */
  addend: bigint;

  constructor(offset: bigint, type: number, symbol: ElfSymbol | null, addend = 0n) {
    this.offset = offset;
    this.type = type;
    this.symbol = symbol;
    this.addend = addend;
  }
}

/** File header fields the model keeps (type, machine and class are fixed). */
export interface ObjectHeader {
  /** e_ident (16 bytes): class, data, version, OS/ABI, ABI version, padding. */
  ident: Uint8Array;
  type: number;
  machine: number;
  version: number;
  entry: bigint;
  phoff: bigint;
  flags: number;
  phentsize: number;
  /** e_shentsize as read; written only when there is no section header table. */
  shentsize: number;
}

/** Facts about the input's layout that layout() needs to keep it. */
export interface ObjectOrigin {
  /** e_shoff and the real section count in the input (0 when it had no table). */
  readonly shoff: number;
  readonly shnum: number;
  /** Non-zero bytes between structures in the input (written back where still free). */
  readonly gaps: ReadonlyArray<{ readonly offset: number; readonly bytes: Uint8Array }>;
}

/**
 * A relocatable object as an editable graph of sections, symbols and relocations.
 *
 * @example
 * const obj = ElfObject.parse(readFileSync('foo.o'), { file: 'foo.o' });
 * obj.symtab!.find('old')!.name = 'new';
 * writeFileSync('foo2.o', writeElf(obj));
 */
export class ElfObject {
  header: ObjectHeader;
  /** Sections in section header order; index 0 (the null section) is implicit. */
  sections: Section[] = [];
  /** The section name table (e_shstrndx), or null when the file has none. */
  shstrtab: StringTableSection | null = null;
  /** Bytes after the last ELF structure, e.g. an appended module signature. Clear it after editing a signed module. */
  trailer: Uint8Array = new Uint8Array(0);
  /** Where things were in the input, or null for an object built in memory. */
  origin: ObjectOrigin | null = null;
  /** File name or label for messages. */
  file: string | undefined;

  constructor(header?: Partial<ObjectHeader>) {
    const ident = new Uint8Array(16);
    ident.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]);
    this.header = {
      ident,
      type: 1,
      machine: 62,
      version: 1,
      entry: 0n,
      phoff: 0n,
      flags: 0,
      phentsize: 0,
      shentsize: 64,
      ...header,
    };
  }

  /** Parse bytes into a model (ElfView.parse + fromView). Throws ElfError. */
  static parse(bytes: Uint8Array, opts: ParseOptions = {}): ElfObject {
    return ElfObject.fromView(ElfView.parse(bytes, opts));
  }

  /**
   * Build the model from a view. The input bytes are copied once; section
   * data are views into that copy, so editing them in place does not touch
   * the caller's buffer.
   */
  static fromView(view: ElfView): ElfObject {
    return buildFromView(view);
  }

  /** The first symbol table (relocatable objects have one). */
  get symtab(): SymbolTableSection | undefined {
    return this.sections.find((s): s is SymbolTableSection => s instanceof SymbolTableSection);
  }

  /** First section with this name. */
  section(name: string): Section | undefined {
    return this.sections.find((s) => s.name === name);
  }

  /** The relocation sections that apply to `target`. */
  relocationsFor(target: Section): RelocationSection[] {
    return this.sections.filter((s): s is RelocationSection => s instanceof RelocationSection && s.target === target);
  }

  /** Append a section (or insert it after `after`) and return it. */
  addSection<T extends Section>(sec: T, after?: Section): T {
    if (this.sections.includes(sec)) {
      throw new ElfError(`section ${sec} is already in the object`, { file: this.file }, 'internal');
    }
    if (after === undefined) {
      this.sections.push(sec);
    } else {
      const i = this.sections.indexOf(after);
      if (i < 0) throw new ElfError(`section ${after} is not in the object`, { file: this.file }, 'internal');
      this.sections.splice(i + 1, 0, sec);
    }
    return sec;
  }

  /** The 1-based header index a section would get if laid out now (-1 if absent). */
  indexOf(sec: Section): number {
    const i = this.sections.indexOf(sec);
    return i < 0 ? -1 : i + 1;
  }
}

// ---- view -> model ----------------------------------------------------------------------------

function buildFromView(view: ElfView): ElfObject {
  const h = view.header;
  const obj = new ElfObject({
    ident: h.ident.slice(),
    type: h.type,
    machine: h.machine,
    version: h.version,
    entry: h.entry,
    phoff: h.phoff,
    flags: h.flags,
    phentsize: h.phentsize,
    shentsize: h.shentsize,
  });
  obj.file = view.file;
  const bytes = view.bytes.slice();
  const headers = view.sections;
  const n = headers.length;

  // Pass 1: one object per section, by type, with references still unset, so
  // that every index has its object before anything refers to it.
  const byIndex: Section[] = new Array(n);
  for (let i = 1; i < n; i++) {
    const s = headers[i]!;
    const data = bytes.subarray(s.offset, s.offset + s.fileSize);
    let sec: Section;
    switch (s.type) {
      case SHT_STRTAB:
        sec = new StringTableSection(s.name, data);
        break;
      case SHT_NOBITS:
        sec = new NoBitsSection(s.name, s.size);
        break;
      case SHT_SYMTAB:
        sec = new SymbolTableSection(s.name, unsetStrtab);
        break;
      case SHT_RELA:
      case SHT_REL:
        sec = new RelocationSection(s.name, null, null, s.type);
        break;
      case SHT_GROUP:
        sec = new GroupSection(s.name, unsetSymtab, unsetSymbol, 0);
        break;
      case SHT_SYMTAB_SHNDX:
        sec = new SymtabShndxSection(s.name, unsetSymtab);
        break;
      default:
        sec = new DataSection(s.name, s.type, data);
    }
    byIndex[i] = sec;
  }
  const at = (i: number): Section => byIndex[i]!;
  // Pass 2: symbol tables (relocations and groups need their symbols).
  const symbolsOf = new Map<number, (ElfSymbol | null)[]>(); // symtab index -> symbols by input index (0 = null)
  for (let i = 1; i < n; i++) {
    const s = headers[i]!;
    if (s.type !== SHT_SYMTAB) continue;
    const symtab = at(i) as SymbolTableSection;
    const strtab = at(s.link) as StringTableSection;
    symtab.strtab = strtab;
    const entries = view.symbols(s);
    const list: (ElfSymbol | null)[] = new Array(entries.length);
    list[0] = null;
    for (let k = 1; k < entries.length; k++) {
      const e = entries[k]!;
      const sym = new ElfSymbol(e.name, {
        info: e.info,
        other: e.other,
        section: e.rawShndx !== SHN_XINDEX && isSpecialShndx(e.rawShndx) ? e.rawShndx : at(e.shndx),
        value: e.value,
        size: e.size,
      });
      sym.nameOrigin = { table: strtab, name: e.name, offset: e.nameOffset };
      sym.originIndex = k;
      list[k] = sym;
    }
    symtab.symbols = list.slice(1) as ElfSymbol[];
    symbolsOf.set(i, list);
  }
  // Pass 3: relocation sections, groups, extended index tables.
  for (let i = 1; i < n; i++) {
    const s = headers[i]!;
    const sec = at(i);
    if (sec instanceof RelocationSection) {
      sec.symtab = s.link === 0 ? null : (at(s.link) as SymbolTableSection);
      sec.target = s.info === 0 ? null : at(s.info);
      view.checkRelocations(s);
      sec.setRaw({
        bytes: bytes.subarray(s.offset, s.offset + s.fileSize),
        rela: s.type === SHT_RELA,
        count: s.fileSize / (s.type === SHT_RELA ? RELA_SIZE : REL_SIZE),
        symbols: s.link === 0 ? [null] : symbolsOf.get(s.link)!,
      });
    } else if (sec instanceof GroupSection) {
      const sig = symbolsOf.get(s.link)![s.info];
      if (sig === null || sig === undefined) {
        throw view.error('group signature is the null symbol', {
          sectionIndex: i,
          sectionName: s.name,
          offset: h.shoff + i * 64 + 0x2c,
        });
      }
      const g = view.group(s);
      sec.symtab = at(s.link) as SymbolTableSection;
      sec.signature = sig;
      sec.groupFlags = g.flags;
      sec.members = g.members.map(at);
    } else if (sec instanceof SymtabShndxSection) {
      sec.symtab = at(s.link) as SymbolTableSection;
    }
  }
  // Pass 3: common header fields, links, origins.
  obj.shstrtab = h.shstrndx === 0 ? null : (at(h.shstrndx) as StringTableSection);
  for (let i = 1; i < n; i++) {
    const s = headers[i]!;
    const sec = at(i);
    sec.type = s.type;
    sec.flags = s.flags;
    sec.addr = s.addr;
    sec.addralign = s.addralign;
    sec.entsize = s.entsize;
    sec.origin = {
      index: i,
      offset: s.offset,
      fileSize: s.fileSize,
      nameOrigin: obj.shstrtab === null ? null : { table: obj.shstrtab, name: s.name, offset: s.nameOffset },
    };
    if (sec instanceof DataSection || sec instanceof NoBitsSection) {
      sec.link = s.link === 0 ? null : at(s.link);
      sec.info = (s.flags & SHF_INFO_LINK) !== 0n && s.info !== 0 ? at(s.info) : s.info;
    }
    obj.sections.push(sec);
  }
  obj.trailer = bytes.subarray(bytes.length - view.trailer.length);
  obj.origin = {
    shoff: h.shoff,
    shnum: n,
    gaps: view.gaps.map((g) => ({ offset: g.offset, bytes: bytes.subarray(g.offset, g.offset + g.bytes.length) })),
  };
  return obj;
}

// Stand-ins for references that pass 1 leaves unset; buildFromView replaces all of them.
const unsetStrtab = new StringTableSection('');
const unsetSymtab = new SymbolTableSection('', unsetStrtab);
const unsetSymbol = new ElfSymbol('');
