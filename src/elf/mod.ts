// SPDX-License-Identifier: GPL-2.0-only
/**
 * The ELF engine for x86_64 ELF64 relocatable objects (`.o`, `.ko`), shaped
 * like LLVM's Object + ObjCopy: a bounds-checked read-only view (ElfView), an
 * editable object graph (ElfObject) in which relocations, symbols, groups and
 * links hold objects rather than indices, one layout step (layout) and one
 * writer (writeElf). Anything malformed is an ElfError naming the section and
 * the file offset.
 *
 * - An unmodified object writes back byte-identical: layout's default
 *   'preserve' mode keeps input offsets, string tables, padding and trailing
 *   bytes, and moves only what grew or is new. 'fresh' lays out from scratch.
 * - Relocations stay undecoded until `RelocationSection.relocations` is read;
 *   undecoded entries are copied with their symbol indices remapped.
 * - `ElfObject.trailer` holds bytes after the last structure (a module
 *   signature); clear it after editing a signed module.
 *
 * @example
 * const obj = ElfObject.parse(readFileSync('patch.ko'), { file: 'patch.ko' });
 * const sym = obj.symtab!.find('saved_command_line')!;
 * sym.name = '.klp.sym.vmlinux.saved_command_line,0';
 * sym.section = SHN_LIVEPATCH;
 * const klp = obj.addSection(new RelocationSection('.klp.rela.vmlinux..text', obj.symtab!, obj.section('.text')!));
 * klp.flags = SHF_ALLOC | SHF_INFO_LINK | SHF_RELA_LIVEPATCH;
 * const rela = obj.relocationsFor(obj.section('.text')!)[0]!;
 * klp.relocations = rela.relocations.filter((r) => r.symbol === sym);
 * rela.relocations = rela.relocations.filter((r) => r.symbol !== sym);
 * obj.trailer = new Uint8Array(0);
 * writeFileSync('patch.ko', writeElf(obj));
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
  type RawRelocations,
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
  ENDBR64,
  NOP5,
  ftraceSiteOffset,
} from './x86_64.js';
