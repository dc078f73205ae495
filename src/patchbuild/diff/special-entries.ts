// SPDX-License-Identifier: GPL-2.0-only
/**
 * One walker over the entries of a special section (the table's rows in
 * special-sections.ts): each entry's place, size, relocations, the function it
 * belongs to, and the code site its first field points at (a jump label's
 * branch, a bug trap's instruction).
 */
import type { Relocation, Section } from '../../elf/mod.js';
import { SutureError } from '../../util/errors.js';
import { isText, sizeOf, type IndexedSymbol, type ObjectIndex } from './object-index.js';
import type { SpecialSection } from './special-sections.js';

export interface SpecialEntry {
  offset: number;
  size: number;
  relocs: Relocation[];
  /** The function of the first relocation that points into code (not .altinstr_replacement). */
  owner: IndexedSymbol | undefined;
  /** That relocation's code section (the owner's, with -ffunction-sections; also when no symbol covers the place). */
  ownerSection: Section | undefined;
  /** Where the entry's first field points, when that is code: the site the entry describes. */
  site: { section: Section; offset: number } | undefined;
}

/** The entry size of a row: its struct's size from the kernel's BTF, or its stated width. */
export function entrySize(spec: SpecialSection, structSize: (name: string) => number | undefined): number {
  const n = spec.struct ? structSize(spec.struct) : spec.width;
  if (!n) throw new SutureError('internal', `no entry size for ${spec.name} (struct ${spec.struct} is not in the kernel's BTF)`);
  return n;
}

/** Every entry of `spec`'s section in an object (none when the object has no such section). */
export function* specialEntries(idx: ObjectIndex, spec: SpecialSection, size: number): Generator<SpecialEntry> {
  const sec = idx.obj.section(spec.name);
  if (!sec) return;
  const total = sizeOf(sec);
  for (let off = 0; off + size <= total; off += size) {
    const relocs = idx.relocationsIn(sec, off, size);
    let owner: IndexedSymbol | undefined;
    let ownerSection: Section | undefined;
    let site: SpecialEntry['site'];
    for (const r of relocs) {
      const s = r.symbol;
      if (!s || typeof s.section === 'number' || !isText(s.section) || s.section.name === '.altinstr_replacement') continue;
      // A data field's relocation carries the target offset in its addend (no instruction-relative -4).
      const at = Number(s.value) + Number(r.addend);
      if (Number(r.offset) === off) site = { section: s.section, offset: at };
      if (!ownerSection) {
        ownerSection = s.section;
        owner = idx.symbolAt(s.section, at) ?? idx.symbolsOf(s.section)[0];
      }
    }
    yield { offset: off, size, relocs, owner, ownerSection, site };
  }
}
