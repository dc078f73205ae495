// SPDX-License-Identifier: GPL-2.0-only
/**
 * ElfView: a read-only, bounds-checked view of an x86_64 ELF64 relocatable
 * object. `ElfView.parse` checks the file header, the section header table and
 * every section's header fields (ranges, links, entry sizes, overlaps); the
 * per-entry accessors (`symbols`, `relocations`, `group`, `string`) check
 * each entry as they decode it. Every failure is an ElfError naming the
 * section and the file offset.
 */
import {
  EHDR_SIZE,
  ELFCLASS64,
  ELFDATA2LSB,
  ELFMAG,
  EM_X86_64,
  ET_REL,
  EV_CURRENT,
  EI_CLASS,
  EI_DATA,
  EI_VERSION,
  REL_SIZE,
  RELA_SIZE,
  SHDR_SIZE,
  SHF_INFO_LINK,
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
  SYM_SIZE,
  SECTION_TYPE_NAMES,
} from './constants.js';
import { ElfError, hex, sectionLabel, type ElfLocation } from './errors.js';

/** The ELF file header, with extended numbering already resolved. */
export interface ElfHeader {
  /** The 16 bytes of e_ident, copied. */
  readonly ident: Uint8Array;
  readonly type: number;
  readonly machine: number;
  readonly version: number;
  readonly entry: bigint;
  readonly phoff: bigint;
  readonly shoff: number;
  readonly flags: number;
  readonly ehsize: number;
  readonly phentsize: number;
  readonly phnum: number;
  readonly shentsize: number;
  /** Real number of sections (from section 0's sh_size when e_shnum is 0). */
  readonly shnum: number;
  /** Real index of the section name table (from section 0's sh_link when e_shstrndx is SHN_XINDEX). */
  readonly shstrndx: number;
  /** e_shnum as stored in the file. */
  readonly rawShnum: number;
  /** e_shstrndx as stored in the file. */
  readonly rawShstrndx: number;
}

/** One section header, decoded and range-checked. */
export interface SectionHeader {
  readonly index: number;
  readonly nameOffset: number;
  /** Name from the section name table ('' when the file has none). */
  readonly name: string;
  readonly type: number;
  readonly flags: bigint;
  readonly addr: bigint;
  /** sh_offset; inside the file for a section that occupies bytes. */
  readonly offset: number;
  readonly size: bigint;
  readonly link: number;
  readonly info: number;
  readonly addralign: bigint;
  readonly entsize: bigint;
  /** Bytes the section occupies in the file: 0 for NOBITS, else sh_size. */
  readonly fileSize: number;
}

/** One symbol table entry. */
export interface SymbolEntry {
  readonly index: number;
  readonly nameOffset: number;
  readonly name: string;
  readonly info: number;
  readonly other: number;
  /** st_shndx as stored (may be SHN_XINDEX). */
  readonly rawShndx: number;
  /** Section index after SHN_XINDEX resolution, or the special value (SHN_UNDEF, SHN_ABS, ...). */
  readonly shndx: number;
  readonly value: bigint;
  readonly size: bigint;
}

/** One REL or RELA entry (addend 0n for REL). */
export interface RelocationEntry {
  readonly offset: bigint;
  readonly type: number;
  readonly symbol: number;
  readonly addend: bigint;
}

/** Decoded content of a SHT_GROUP section. */
export interface GroupEntry {
  /** The flag word (GRP_COMDAT). */
  readonly flags: number;
  /** Member section indices. */
  readonly members: readonly number[];
}

/** A byte range of the file that holds an ELF structure. */
export interface FileRegion {
  readonly start: number;
  readonly end: number;
  /** 'ehdr', 'shdrs', or the section index. */
  readonly owner: 'ehdr' | 'shdrs' | number;
}

/** Bytes of the file outside every ELF structure. */
export interface FileGap {
  readonly offset: number;
  readonly bytes: Uint8Array;
}

/** Options for ElfView.parse. */
export interface ParseOptions {
  /** File name or label used in error messages. */
  file?: string;
}

/** Decode bytes one char per byte (names are byte strings; this round-trips exactly). */
export function decodeLatin1(bytes: Uint8Array, start = 0, end = bytes.length): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1', start, end);
}

function typeName(type: number): string {
  return SECTION_TYPE_NAMES[type] ?? hex(type);
}

function isPowerOfTwoOrZero(n: bigint): boolean {
  return (n & (n - 1n)) === 0n;
}

/**
 * Read-only view over the bytes of an ELF64 x86_64 relocatable object.
 *
 * @example
 * const view = ElfView.parse(readFileSync('foo.o'), { file: 'foo.o' });
 * for (const sec of view.sections) console.log(sec.index, sec.name);
 */
export class ElfView {
  readonly bytes: Uint8Array;
  readonly file: string | undefined;
  readonly header: ElfHeader;
  /** All section headers including section 0. */
  readonly sections: readonly SectionHeader[];
  /** File regions (ELF header, section header table, section data), sorted by start. */
  readonly regions: readonly FileRegion[];
  /** Bytes after the last region (for example an appended module signature). */
  readonly trailer: Uint8Array;
  /** Non-zero bytes between regions (normally none). */
  readonly gaps: readonly FileGap[];

  private readonly dv: DataView;
  private readonly buf: Buffer;

  private constructor(bytes: Uint8Array, file: string | undefined) {
    this.bytes = bytes;
    this.file = file;
    this.dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.header = this.readHeader();
    this.sections = this.readSectionHeaders();
    this.checkSectionHeaders();
    const { regions, gaps, trailer } = this.checkRegions();
    this.regions = regions;
    this.gaps = gaps;
    this.trailer = trailer;
  }

  /** Parse and check the file header and section headers. Throws ElfError. */
  static parse(bytes: Uint8Array, opts: ParseOptions = {}): ElfView {
    return new ElfView(bytes, opts.file);
  }

  /** Build an ElfError located in this file. */
  error(message: string, loc: Omit<ElfLocation, 'file'> = {}): ElfError {
    return new ElfError(message, { file: this.file, ...loc });
  }

  private sectionError(index: number, message: string, offset?: number | bigint): ElfError {
    const name = this.sections?.[index]?.name;
    return this.error(message, { sectionIndex: index, sectionName: name, offset });
  }

  // ---- header ---------------------------------------------------------------------------------

  private readHeader(): ElfHeader {
    const b = this.bytes;
    const dv = this.dv;
    if (b.length < EHDR_SIZE) {
      if (b.length >= 4 && !ELFMAG.every((m, i) => b[i] === m)) {
        throw this.error('not an ELF file (bad magic)', { offset: 0 });
      }
      throw this.error(`truncated: file is ${b.length} bytes, the ELF header needs ${EHDR_SIZE}`, { offset: 0 });
    }
    if (!ELFMAG.every((m, i) => b[i] === m)) throw this.error('not an ELF file (bad magic)', { offset: 0 });
    if (b[EI_CLASS] !== ELFCLASS64) {
      throw this.error(`ELF class ${b[EI_CLASS]} is not supported (only ELFCLASS64)`, { offset: EI_CLASS });
    }
    if (b[EI_DATA] !== ELFDATA2LSB) {
      throw this.error(`data encoding ${b[EI_DATA]} is not supported (only little-endian)`, { offset: EI_DATA });
    }
    if (b[EI_VERSION] !== EV_CURRENT) {
      throw this.error(`ELF ident version ${b[EI_VERSION]} is not supported`, { offset: EI_VERSION });
    }
    const type = dv.getUint16(0x10, true);
    if (type !== ET_REL) {
      throw this.error(`ELF type ${type} is not supported (only relocatable objects, ET_REL)`, { offset: 0x10 });
    }
    const machine = dv.getUint16(0x12, true);
    if (machine !== EM_X86_64) {
      throw this.error(`machine ${machine} is not supported (only x86_64, EM_X86_64 = 62)`, { offset: 0x12 });
    }
    const version = dv.getUint32(0x14, true);
    if (version !== EV_CURRENT) throw this.error(`e_version ${version} is not supported`, { offset: 0x14 });
    const entry = dv.getBigUint64(0x18, true);
    const phoff = dv.getBigUint64(0x20, true);
    const shoffBig = dv.getBigUint64(0x28, true);
    const flags = dv.getUint32(0x30, true);
    const ehsize = dv.getUint16(0x34, true);
    const phentsize = dv.getUint16(0x36, true);
    const phnum = dv.getUint16(0x38, true);
    const shentsize = dv.getUint16(0x3a, true);
    const rawShnum = dv.getUint16(0x3c, true);
    const rawShstrndx = dv.getUint16(0x3e, true);
    if (ehsize !== EHDR_SIZE) throw this.error(`e_ehsize is ${ehsize}, expected ${EHDR_SIZE}`, { offset: 0x34 });
    if (phnum !== 0) {
      throw this.error(`e_phnum is ${phnum}: program headers are not supported in a relocatable object`, {
        offset: 0x38,
      });
    }
    let shnum = rawShnum;
    let shstrndx = rawShstrndx;
    let shoff = 0;
    if (shoffBig !== 0n) {
      if (shentsize !== SHDR_SIZE) {
        throw this.error(`e_shentsize is ${shentsize}, expected ${SHDR_SIZE}`, { offset: 0x3a });
      }
      if (shoffBig > BigInt(b.length) - BigInt(SHDR_SIZE)) {
        throw this.error(
          `section header table at e_shoff ${hex(shoffBig)} is past the end of the file (size ${hex(b.length)})`,
          { offset: 0x28 },
        );
      }
      shoff = Number(shoffBig);
      if (rawShnum === 0) {
        // Extended numbering: the real count is in section 0's sh_size.
        const n = dv.getBigUint64(shoff + 0x20, true);
        if (n > BigInt(b.length)) {
          throw this.error(`section 0 sh_size ${hex(n)} (extended e_shnum) is larger than the file`, {
            offset: shoff + 0x20,
          });
        }
        shnum = Number(n);
      }
      if (rawShstrndx === SHN_XINDEX) shstrndx = dv.getUint32(shoff + 0x28, true);
      const end = shoff + shnum * SHDR_SIZE;
      if (end > b.length) {
        throw this.error(
          `section header table (e_shoff ${hex(shoff)}, ${shnum} entries) runs past the end of the file (size ${hex(b.length)})`,
          { offset: shoff },
        );
      }
      if (shoff < EHDR_SIZE && shnum > 0) {
        throw this.error(`section header table at e_shoff ${hex(shoff)} overlaps the ELF header`, { offset: 0x28 });
      }
    } else {
      shnum = 0;
      if (rawShnum !== 0) throw this.error(`e_shnum is ${rawShnum} but e_shoff is 0`, { offset: 0x3c });
      shstrndx = 0;
    }
    if (shstrndx !== SHN_UNDEF && shstrndx >= shnum) {
      throw this.error(`e_shstrndx ${shstrndx} is out of range (${shnum} sections)`, { offset: 0x3e });
    }
    return {
      ident: b.slice(0, 16),
      type,
      machine,
      version,
      entry,
      phoff,
      shoff,
      flags,
      ehsize,
      phentsize,
      phnum,
      shentsize,
      shnum,
      shstrndx,
      rawShnum,
      rawShstrndx,
    };
  }

  // ---- section headers ------------------------------------------------------------------------

  private readSectionHeaders(): SectionHeader[] {
    const { shoff, shnum, shstrndx } = this.header;
    const dv = this.dv;
    const len = this.bytes.length;
    const bigLen = BigInt(len);
    // The names live in a section: find and check the name table first.
    let names = { start: 0, end: 0 };
    if (shstrndx !== SHN_UNDEF) {
      const r = this.readOneHeader(shstrndx, bigLen, names);
      if (r.type !== SHT_STRTAB) {
        throw this.error(`e_shstrndx ${shstrndx} names a ${typeName(r.type)} section, not a STRTAB`, {
          sectionIndex: shstrndx,
          offset: 0x3e,
        });
      }
      names = { start: r.offset, end: r.offset + r.fileSize };
    }
    const out: SectionHeader[] = new Array(shnum);
    for (let i = 0; i < shnum; i++) {
      const r = this.readOneHeader(i, bigLen, names);
      let name = '';
      if (shstrndx !== SHN_UNDEF && i !== 0) {
        const at = names.start + r.nameOffset;
        const end = r.nameOffset < names.end - names.start ? this.bytes.indexOf(0, at) : -1;
        if (end < 0 || end >= names.end) {
          throw this.error(`sh_name ${hex(r.nameOffset)} is not a valid offset in the section name table [${shstrndx}]`, {
            sectionIndex: i,
            offset: shoff + i * SHDR_SIZE,
          });
        }
        name = this.buf.toString('latin1', at, end);
      }
      r.name = name;
      out[i] = r;
    }
    return out;
  }

  private readOneHeader(
    i: number,
    bigLen: bigint,
    names: { start: number; end: number },
  ): { -readonly [K in keyof SectionHeader]: SectionHeader[K] } {
    const dv = this.dv;
    const at = this.header.shoff + i * SHDR_SIZE;
    const type = dv.getUint32(at + 4, true);
    const offsetBig = dv.getBigUint64(at + 0x18, true);
    const size = dv.getBigUint64(at + 0x20, true);
    // For messages only: the name, when the name table has already been checked.
    const nameFor = (): string | undefined => {
      const off = dv.getUint32(at, true);
      if (off >= names.end - names.start) return undefined;
      const end = this.bytes.indexOf(0, names.start + off);
      return end < 0 || end >= names.end ? undefined : this.buf.toString('latin1', names.start + off, end);
    };
    // A section that occupies bytes must lie inside the file; one that occupies
    // none (NOBITS, empty) may point anywhere, as long as the offset is a safe integer.
    const occupies = i !== 0 && type !== SHT_NOBITS && size !== 0n;
    if (i !== 0 && (occupies ? offsetBig > bigLen : offsetBig > BigInt(Number.MAX_SAFE_INTEGER))) {
      throw this.error(`sh_offset ${hex(offsetBig)} is past the end of the file (size ${hex(bigLen)})`, {
        sectionIndex: i,
        sectionName: nameFor(),
        offset: at + 0x18,
      });
    }
    const offset = i === 0 ? 0 : Number(offsetBig);
    let fileSize = 0;
    if (occupies) {
      if (size > bigLen - offsetBig) {
        throw this.error(
          `section data (sh_offset ${hex(offset)}, sh_size ${hex(size)}) runs past the end of the file (size ${hex(bigLen)})`,
          { sectionIndex: i, sectionName: nameFor(), offset: at + 0x20 },
        );
      }
      fileSize = Number(size);
    }
    return {
      index: i,
      nameOffset: dv.getUint32(at, true),
      name: '',
      type,
      flags: dv.getBigUint64(at + 8, true),
      addr: dv.getBigUint64(at + 0x10, true),
      offset,
      size,
      link: dv.getUint32(at + 0x28, true),
      info: dv.getUint32(at + 0x2c, true),
      addralign: dv.getBigUint64(at + 0x30, true),
      entsize: dv.getBigUint64(at + 0x38, true),
      fileSize,
    };
  }

  /** Check sh_link/sh_info/sh_entsize/sh_addralign of every section against its type. */
  private checkSectionHeaders(): void {
    const secs = this.sections;
    const n = secs.length;
    const shoff = this.header.shoff;
    for (let i = 1; i < n; i++) {
      const s = secs[i]!;
      const at = shoff + i * SHDR_SIZE;
      if (s.link >= n) {
        throw this.sectionError(i, `sh_link ${s.link} is out of range (${n} sections)`, at + 0x28);
      }
      if (!isPowerOfTwoOrZero(s.addralign)) {
        throw this.sectionError(i, `sh_addralign ${hex(s.addralign)} is not a power of two`, at + 0x30);
      }
      const linkType = secs[s.link]!.type;
      switch (s.type) {
        case SHT_SYMTAB: {
          this.expectEntsize(s, BigInt(SYM_SIZE), at);
          if (linkType !== SHT_STRTAB) {
            throw this.sectionError(i, `sh_link ${s.link} of a symbol table is not a STRTAB section`, at + 0x28);
          }
          const count = s.fileSize / SYM_SIZE;
          if (s.info > count) {
            throw this.sectionError(i, `sh_info ${s.info} (first global) is beyond the ${count} symbols`, at + 0x2c);
          }
          break;
        }
        case SHT_RELA:
        case SHT_REL: {
          this.expectEntsize(s, BigInt(s.type === SHT_RELA ? RELA_SIZE : REL_SIZE), at);
          if (s.link !== 0 && linkType !== SHT_SYMTAB) {
            throw this.sectionError(i, `sh_link ${s.link} of a relocation section is not a SYMTAB section`, at + 0x28);
          }
          if (s.info >= n) {
            throw this.sectionError(i, `sh_info ${s.info} (target section) is out of range (${n} sections)`, at + 0x2c);
          }
          break;
        }
        case SHT_GROUP: {
          this.expectEntsize(s, 4n, at);
          if (s.fileSize < 4) throw this.sectionError(i, 'group section is shorter than its flag word', at + 0x20);
          if (linkType !== SHT_SYMTAB || s.link === 0) {
            throw this.sectionError(i, `sh_link ${s.link} of a group section is not a SYMTAB section`, at + 0x28);
          }
          const nsyms = secs[s.link]!.fileSize / SYM_SIZE;
          if (s.info >= nsyms) {
            throw this.sectionError(i, `sh_info ${s.info} (signature symbol) is out of range (${nsyms} symbols)`, at + 0x2c);
          }
          break;
        }
        case SHT_SYMTAB_SHNDX: {
          this.expectEntsize(s, 4n, at);
          if (linkType !== SHT_SYMTAB || s.link === 0) {
            throw this.sectionError(i, `sh_link ${s.link} of a SYMTAB_SHNDX section is not a SYMTAB section`, at + 0x28);
          }
          const nsyms = secs[s.link]!.fileSize / SYM_SIZE;
          if (s.fileSize !== nsyms * 4) {
            throw this.sectionError(
              i,
              `size ${hex(s.fileSize)} does not match the ${nsyms} symbols of section [${s.link}]`,
              at + 0x20,
            );
          }
          break;
        }
        default:
          if ((s.flags & SHF_INFO_LINK) !== 0n && s.info >= n) {
            throw this.sectionError(i, `sh_info ${s.info} (SHF_INFO_LINK) is out of range (${n} sections)`, at + 0x2c);
          }
      }
    }
  }

  private expectEntsize(s: SectionHeader, entsize: bigint, at: number): void {
    if (s.entsize !== entsize) {
      throw this.sectionError(
        s.index,
        `sh_entsize ${hex(s.entsize)} is wrong for a ${typeName(s.type)} section (expected ${hex(entsize)})`,
        at + 0x38,
      );
    }
    if (s.fileSize % Number(entsize) !== 0) {
      throw this.sectionError(
        s.index,
        `sh_size ${hex(s.fileSize)} is not a multiple of the entry size ${hex(entsize)}`,
        at + 0x20,
      );
    }
  }

  /** Sort the file's regions, refuse overlaps, and collect gaps and the trailer. */
  private checkRegions(): { regions: FileRegion[]; gaps: FileGap[]; trailer: Uint8Array } {
    const regions: FileRegion[] = [{ start: 0, end: EHDR_SIZE, owner: 'ehdr' }];
    const { shoff, shnum } = this.header;
    if (shnum > 0) regions.push({ start: shoff, end: shoff + shnum * SHDR_SIZE, owner: 'shdrs' });
    for (let i = 1; i < this.sections.length; i++) {
      const s = this.sections[i]!;
      if (s.fileSize > 0) regions.push({ start: s.offset, end: s.offset + s.fileSize, owner: i });
    }
    regions.sort((a, b) => a.start - b.start || a.end - b.end);
    const gaps: FileGap[] = [];
    let end = 0;
    let prev: FileRegion | undefined;
    for (const r of regions) {
      if (prev !== undefined && r.start < end) {
        const what = (o: FileRegion['owner']): string =>
          o === 'ehdr'
            ? 'the ELF header'
            : o === 'shdrs'
              ? 'the section header table'
              : sectionLabel(o, this.sections[o]!.name);
        const owner = r.owner === 'ehdr' || r.owner === 'shdrs' ? prev.owner : r.owner;
        const other = owner === r.owner ? prev.owner : r.owner;
        const loc = typeof owner === 'number' ? { sectionIndex: owner, sectionName: this.sections[owner]!.name } : {};
        throw this.error(`data overlaps ${what(other)}`, { ...loc, offset: r.start });
      }
      if (r.start > end) this.collectGap(gaps, end, r.start);
      if (r.end > end) {
        end = r.end;
        prev = r;
      }
    }
    return { regions, gaps, trailer: this.bytes.subarray(end) };
  }

  private collectGap(gaps: FileGap[], start: number, end: number): void {
    const b = this.bytes;
    let s = start;
    while (s < end && b[s] === 0) s++;
    if (s === end) return;
    let e = end;
    while (e > s && b[e - 1] === 0) e--;
    gaps.push({ offset: s, bytes: b.subarray(s, e) });
  }

  // ---- accessors ------------------------------------------------------------------------------

  /** The section header at `index` (throws when out of range). */
  section(index: number): SectionHeader {
    const s = this.sections[index];
    if (s === undefined) throw this.error(`section index ${index} is out of range (${this.sections.length} sections)`);
    return s;
  }

  /** The section name table's index, or undefined when the file has none. */
  get shstrndx(): number | undefined {
    return this.header.shstrndx === SHN_UNDEF ? undefined : this.header.shstrndx;
  }

  /** First section with this name. */
  findSection(name: string): SectionHeader | undefined {
    for (let i = 1; i < this.sections.length; i++) if (this.sections[i]!.name === name) return this.sections[i];
    return undefined;
  }

  /** The bytes of a section in the file (empty for NOBITS). A view, not a copy. */
  data(sec: SectionHeader | number): Uint8Array {
    const s = typeof sec === 'number' ? this.section(sec) : sec;
    return this.bytes.subarray(s.offset, s.offset + s.fileSize);
  }

  /** The NUL-terminated string at `offset` in the string table section `strtab`. */
  string(strtab: SectionHeader | number, offset: number): string {
    const s = typeof strtab === 'number' ? this.section(strtab) : strtab;
    if (s.type !== SHT_STRTAB) throw this.sectionError(s.index, `is a ${typeName(s.type)} section, not a STRTAB`);
    return this.stringIn(this.data(s), offset, s.index, '', s.offset);
  }

  private stringIn(table: Uint8Array, offset: number, index: number, what: string, base: number): string {
    if (offset >= table.length) {
      throw this.sectionError(
        index,
        `${what}string offset ${hex(offset)} is outside the string table (size ${hex(table.length)})`,
        base,
      );
    }
    const end = table.indexOf(0, offset);
    if (end < 0) {
      throw this.sectionError(index, `${what}string at ${hex(offset)} is not NUL-terminated`, base + offset);
    }
    return decodeLatin1(table, offset, end);
  }

  /** Decode all entries of a SYMTAB section, checking names and section indices. */
  symbols(symtab: SectionHeader | number): SymbolEntry[] {
    const s = typeof symtab === 'number' ? this.section(symtab) : symtab;
    if (s.type !== SHT_SYMTAB) throw this.sectionError(s.index, `is a ${typeName(s.type)} section, not a SYMTAB`);
    const strtab = this.sections[s.link]!;
    const table = this.data(strtab);
    const count = s.fileSize / SYM_SIZE;
    const dv = this.dv;
    const shnum = this.sections.length;
    let xindex: DataView | undefined;
    const out: SymbolEntry[] = new Array(count);
    for (let i = 0; i < count; i++) {
      const at = s.offset + i * SYM_SIZE;
      const nameOffset = dv.getUint32(at, true);
      let name = '';
      if (nameOffset !== 0 || table.length > 0) {
        if (nameOffset >= table.length) {
          throw this.sectionError(
            s.index,
            `symbol ${i}: st_name ${hex(nameOffset)} is outside the string table [${strtab.index}] '${strtab.name}' (size ${hex(table.length)})`,
            at,
          );
        }
        const end = table.indexOf(0, nameOffset);
        if (end < 0) {
          throw this.sectionError(s.index, `symbol ${i}: name at ${hex(nameOffset)} is not NUL-terminated`, at);
        }
        name = this.buf.toString('latin1', strtab.offset + nameOffset, strtab.offset + end);
      }
      const rawShndx = dv.getUint16(at + 6, true);
      let shndx = rawShndx;
      if (rawShndx === SHN_XINDEX) {
        if (xindex === undefined) xindex = this.xindexTable(s);
        shndx = xindex.getUint32(i * 4, true);
        if (shndx === 0 || shndx >= shnum) {
          throw this.sectionError(
            s.index,
            `symbol ${i} '${name}': extended section index ${shndx} is out of range (${shnum} sections)`,
            at + 6,
          );
        }
      } else if (rawShndx !== SHN_UNDEF && rawShndx < SHN_LORESERVE && rawShndx >= shnum) {
        throw this.sectionError(
          s.index,
          `symbol ${i} '${name}': st_shndx ${rawShndx} is out of range (${shnum} sections)`,
          at + 6,
        );
      }
      out[i] = {
        index: i,
        nameOffset,
        name,
        info: this.bytes[at + 4]!,
        other: this.bytes[at + 5]!,
        rawShndx,
        shndx,
        value: dv.getBigUint64(at + 8, true),
        size: dv.getBigUint64(at + 16, true),
      };
    }
    return out;
  }

  /** The SYMTAB_SHNDX section that belongs to `symtab`, if any. */
  shndxSectionFor(symtab: SectionHeader | number): SectionHeader | undefined {
    const idx = typeof symtab === 'number' ? symtab : symtab.index;
    return this.sections.find((x) => x.type === SHT_SYMTAB_SHNDX && x.link === idx);
  }

  private xindexTable(symtab: SectionHeader): DataView {
    const x = this.shndxSectionFor(symtab);
    if (x === undefined) {
      throw this.sectionError(symtab.index, 'a symbol uses SHN_XINDEX but there is no SYMTAB_SHNDX section for it');
    }
    return new DataView(this.bytes.buffer, this.bytes.byteOffset + x.offset, x.fileSize);
  }

  /** Decode all entries of a REL or RELA section, checking symbol indices. */
  relocations(sec: SectionHeader | number): RelocationEntry[] {
    const s = typeof sec === 'number' ? this.section(sec) : sec;
    if (s.type !== SHT_RELA && s.type !== SHT_REL) {
      throw this.sectionError(s.index, `is a ${typeName(s.type)} section, not RELA or REL`);
    }
    const rela = s.type === SHT_RELA;
    const entsize = rela ? RELA_SIZE : REL_SIZE;
    const count = s.fileSize / entsize;
    const nsyms = s.link === 0 ? 1 : this.sections[s.link]!.fileSize / SYM_SIZE;
    const dv = this.dv;
    const out: RelocationEntry[] = new Array(count);
    for (let i = 0; i < count; i++) {
      const at = s.offset + i * entsize;
      const type = dv.getUint32(at + 8, true);
      const symbol = dv.getUint32(at + 12, true);
      if (symbol >= nsyms) {
        throw this.sectionError(
          s.index,
          `relocation ${i}: symbol index ${symbol} is out of range (${nsyms} symbols)`,
          at + 12,
        );
      }
      out[i] = {
        offset: dv.getBigUint64(at, true),
        type,
        symbol,
        addend: rela ? dv.getBigInt64(at + 16, true) : 0n,
      };
    }
    return out;
  }

  /** Check the symbol index of every entry of a REL or RELA section without decoding the rest. */
  checkRelocations(sec: SectionHeader | number): void {
    const s = typeof sec === 'number' ? this.section(sec) : sec;
    if (s.type !== SHT_RELA && s.type !== SHT_REL) {
      throw this.sectionError(s.index, `is a ${typeName(s.type)} section, not RELA or REL`);
    }
    const entsize = s.type === SHT_RELA ? RELA_SIZE : REL_SIZE;
    const nsyms = s.link === 0 ? 1 : this.sections[s.link]!.fileSize / SYM_SIZE;
    const dv = this.dv;
    const end = s.offset + s.fileSize;
    for (let at = s.offset; at < end; at += entsize) {
      const symbol = dv.getUint32(at + 12, true);
      if (symbol >= nsyms) {
        throw this.sectionError(
          s.index,
          `relocation ${(at - s.offset) / entsize}: symbol index ${symbol} is out of range (${nsyms} symbols)`,
          at + 12,
        );
      }
    }
  }

  /** Decode a GROUP section: flag word and member section indices. */
  group(sec: SectionHeader | number): GroupEntry {
    const s = typeof sec === 'number' ? this.section(sec) : sec;
    if (s.type !== SHT_GROUP) throw this.sectionError(s.index, `is a ${typeName(s.type)} section, not GROUP`);
    const dv = this.dv;
    const flags = dv.getUint32(s.offset, true);
    const members: number[] = [];
    for (let at = s.offset + 4; at < s.offset + s.fileSize; at += 4) {
      const m = dv.getUint32(at, true);
      if (m === 0 || m >= this.sections.length) {
        throw this.sectionError(s.index, `group member index ${m} is out of range (${this.sections.length} sections)`, at);
      }
      members.push(m);
    }
    return { flags, members };
  }
}
