// SPDX-License-Identifier: GPL-2.0-only
/**
 * ELF64 constants used by the reader, model and writer (System V gABI,
 * x86_64 psABI, and the Linux livepatch additions from include/uapi/linux/elf.h).
 */

/** Size of the ELF64 file header. */
export const EHDR_SIZE = 64;
/** Size of one ELF64 section header. */
export const SHDR_SIZE = 64;
/** Size of one ELF64 symbol table entry. */
export const SYM_SIZE = 24;
/** Size of one ELF64 RELA entry. */
export const RELA_SIZE = 24;
/** Size of one ELF64 REL entry. */
export const REL_SIZE = 16;

// e_ident
export const ELFMAG = Uint8Array.of(0x7f, 0x45, 0x4c, 0x46);
export const EI_CLASS = 4;
export const EI_DATA = 5;
export const EI_VERSION = 6;
export const EI_OSABI = 7;
export const ELFCLASS64 = 2;
export const ELFDATA2LSB = 1;
export const EV_CURRENT = 1;

// e_type
export const ET_NONE = 0;
export const ET_REL = 1;
export const ET_EXEC = 2;
export const ET_DYN = 3;
export const ET_CORE = 4;

// e_machine
export const EM_X86_64 = 62;

// Special section indices
export const SHN_UNDEF = 0;
export const SHN_LORESERVE = 0xff00;
/** Linux livepatch: a symbol the livepatch core resolves (`.klp.sym.<obj>.<name>,<pos>`). */
export const SHN_LIVEPATCH = 0xff20;
export const SHN_ABS = 0xfff1;
export const SHN_COMMON = 0xfff2;
export const SHN_XINDEX = 0xffff;
export const SHN_HIRESERVE = 0xffff;

// Section types
export const SHT_NULL = 0;
export const SHT_PROGBITS = 1;
export const SHT_SYMTAB = 2;
export const SHT_STRTAB = 3;
export const SHT_RELA = 4;
export const SHT_HASH = 5;
export const SHT_DYNAMIC = 6;
export const SHT_NOTE = 7;
export const SHT_NOBITS = 8;
export const SHT_REL = 9;
export const SHT_SHLIB = 10;
export const SHT_DYNSYM = 11;
export const SHT_INIT_ARRAY = 14;
export const SHT_FINI_ARRAY = 15;
export const SHT_PREINIT_ARRAY = 16;
export const SHT_GROUP = 17;
export const SHT_SYMTAB_SHNDX = 18;
export const SHT_X86_64_UNWIND = 0x70000001;

// Section flags (bigint: sh_flags is 64-bit)
export const SHF_WRITE = 0x1n;
export const SHF_ALLOC = 0x2n;
export const SHF_EXECINSTR = 0x4n;
export const SHF_MERGE = 0x10n;
export const SHF_STRINGS = 0x20n;
export const SHF_INFO_LINK = 0x40n;
export const SHF_LINK_ORDER = 0x80n;
export const SHF_OS_NONCONFORMING = 0x100n;
export const SHF_GROUP = 0x200n;
export const SHF_TLS = 0x400n;
export const SHF_COMPRESSED = 0x800n;
/** Linux livepatch: a RELA section the livepatch core applies, not the module loader. */
export const SHF_RELA_LIVEPATCH = 0x00100000n;
/** Linux: section becomes read-only after init. */
export const SHF_RO_AFTER_INIT = 0x00200000n;
export const SHF_EXCLUDE = 0x80000000n;

/** GROUP section flag word: a COMDAT group. */
export const GRP_COMDAT = 0x1;

// Symbol binding (st_info >> 4)
export const STB_LOCAL = 0;
export const STB_GLOBAL = 1;
export const STB_WEAK = 2;
export const STB_GNU_UNIQUE = 10;

// Symbol type (st_info & 0xf)
export const STT_NOTYPE = 0;
export const STT_OBJECT = 1;
export const STT_FUNC = 2;
export const STT_SECTION = 3;
export const STT_FILE = 4;
export const STT_COMMON = 5;
export const STT_TLS = 6;
export const STT_GNU_IFUNC = 10;

// Symbol visibility (st_other & 3)
export const STV_DEFAULT = 0;
export const STV_INTERNAL = 1;
export const STV_HIDDEN = 2;
export const STV_PROTECTED = 3;

/** Names of the section types readelf knows, for messages and debugging. */
export const SECTION_TYPE_NAMES: Readonly<Record<number, string>> = {
  [SHT_NULL]: 'NULL',
  [SHT_PROGBITS]: 'PROGBITS',
  [SHT_SYMTAB]: 'SYMTAB',
  [SHT_STRTAB]: 'STRTAB',
  [SHT_RELA]: 'RELA',
  [SHT_HASH]: 'HASH',
  [SHT_DYNAMIC]: 'DYNAMIC',
  [SHT_NOTE]: 'NOTE',
  [SHT_NOBITS]: 'NOBITS',
  [SHT_REL]: 'REL',
  [SHT_SHLIB]: 'SHLIB',
  [SHT_DYNSYM]: 'DYNSYM',
  [SHT_INIT_ARRAY]: 'INIT_ARRAY',
  [SHT_FINI_ARRAY]: 'FINI_ARRAY',
  [SHT_PREINIT_ARRAY]: 'PREINIT_ARRAY',
  [SHT_GROUP]: 'GROUP',
  [SHT_SYMTAB_SHNDX]: 'SYMTAB SECTION INDICES',
  [SHT_X86_64_UNWIND]: 'X86_64_UNWIND',
};

/** Binding of a symbol from its st_info byte. */
export function stBind(info: number): number {
  return info >> 4;
}

/** Type of a symbol from its st_info byte. */
export function stType(info: number): number {
  return info & 0xf;
}

/** Compose st_info from binding and type. */
export function stInfo(bind: number, type: number): number {
  return ((bind & 0xf) << 4) | (type & 0xf);
}

/** True for st_shndx values that are not section indices (SHN_UNDEF or the reserved range). */
export function isSpecialShndx(shndx: number): boolean {
  return shndx === SHN_UNDEF || (shndx >= SHN_LORESERVE && shndx <= SHN_HIRESERVE);
}
