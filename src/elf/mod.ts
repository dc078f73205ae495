// SPDX-License-Identifier: GPL-2.0-only
/**
 * The ELF engine: a bounds-checked read-only view (ElfView), an editable
 * object model (ElfObject), one layout step and one writer, for x86_64 ELF64
 * relocatable objects (`.o`, `.ko`).
 */
export * from './constants.js';
export { ElfError, hex, sectionLabel, type ElfLocation } from './errors.js';
export {
  ElfView,
  decodeLatin1,
  type ElfHeader,
  type SectionHeader,
  type SymbolEntry,
  type RelocationEntry,
  type GroupEntry,
  type FileRegion,
  type FileGap,
  type ParseOptions,
} from './view.js';
export { readModinfo, parseModinfo, modinfoValue, type ModinfoEntry } from './modinfo.js';
export {
  ElfObject,
  Section,
  DataSection,
  NoBitsSection,
  StringTableSection,
  SymbolTableSection,
  SymtabShndxSection,
  RelocationSection,
  GroupSection,
  ElfSymbol,
  Relocation,
  type SectionOrigin,
  type NameOrigin,
  type ObjectHeader,
  type ObjectOrigin,
} from './model.js';
export {
  layout,
  MAX_FILE_ALIGN,
  type Layout,
  type LayoutMode,
  type LayoutOptions,
  type SectionPlacement,
  type SymbolTableLayout,
} from './layout.js';
export { writeElf } from './write.js';
export {
  X86_64_RELOCS,
  relocType,
  relocTypeByName,
  relocTypeName,
  R_X86_64_NONE,
  R_X86_64_64,
  R_X86_64_PC32,
  R_X86_64_PLT32,
  R_X86_64_GOTPCREL,
  R_X86_64_32,
  R_X86_64_32S,
  R_X86_64_PC64,
  R_X86_64_GOTPCRELX,
  R_X86_64_REX_GOTPCRELX,
  type RelocType,
} from './x86_64.js';
