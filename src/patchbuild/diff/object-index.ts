// SPDX-License-Identifier: GPL-2.0-only
/**
 * An index over one compiled object (built with -ffunction-sections
 * -fdata-sections): its functions and data objects, each with its own
 * section, and the relocations that apply to every section.
 */
import {
  DataSection,
  ElfObject,
  NoBitsSection,
  RelocationSection,
  SHF_EXECINSTR,
  SHF_MERGE,
  SHF_STRINGS,
  STT_FUNC,
  STT_OBJECT,
  type ElfSymbol,
  type Relocation,
  type Section,
} from '../../elf/mod.js';

export interface IndexedSymbol {
  sym: ElfSymbol;
  name: string;
  section: Section;
  offset: number;
  size: number;
}

export class ObjectIndex {
  readonly functions = new Map<string, IndexedSymbol>();
  readonly data = new Map<string, IndexedSymbol>();
  /** Every defined function and object symbol of a section, by offset. */
  private readonly bySection = new Map<Section, IndexedSymbol[]>();
  private readonly relocs = new Map<Section, Relocation[]>();

  constructor(readonly obj: ElfObject, readonly file: string) {
    for (const s of obj.sections) {
      if (s instanceof RelocationSection && s.target) {
        const list = this.relocs.get(s.target) ?? [];
        list.push(...s.relocations);
        this.relocs.set(s.target, list);
      }
    }
    for (const r of this.relocs.values()) r.sort((a, b) => (a.offset < b.offset ? -1 : a.offset > b.offset ? 1 : 0));
    for (const sym of obj.symtab?.symbols ?? []) {
      if (typeof sym.section === 'number' || !sym.name) continue;
      if (sym.type !== STT_FUNC && sym.type !== STT_OBJECT) continue;
      const e: IndexedSymbol = { sym, name: sym.name, section: sym.section, offset: Number(sym.value), size: Number(sym.size) };
      (sym.type === STT_FUNC ? this.functions : this.data).set(sym.name, e);
      const list = this.bySection.get(sym.section) ?? [];
      list.push(e);
      this.bySection.set(sym.section, list);
    }
    for (const l of this.bySection.values()) l.sort((a, b) => a.offset - b.offset);
  }

  relocationsOf(sec: Section): readonly Relocation[] {
    return this.relocs.get(sec) ?? [];
  }

  /** Relocations that fall inside [offset, offset+size) of a section. */
  relocationsIn(sec: Section, offset: number, size: number): Relocation[] {
    return relocationsInRange(this.relocationsOf(sec), offset, offset + size);
  }

  /** The function or object symbol of a section that covers an offset. */
  symbolAt(sec: Section, offset: number): IndexedSymbol | undefined {
    const list = this.bySection.get(sec);
    if (!list) return undefined;
    let best: IndexedSymbol | undefined;
    for (const e of list) {
      if (e.offset <= offset && (offset < e.offset + Math.max(e.size, 1) || (e.size === 0 && e.offset === offset))) best = e;
    }
    return best;
  }

  /** The symbols bundled with a section (a function section holds its function, a data section its object). */
  symbolsOf(sec: Section): readonly IndexedSymbol[] {
    return this.bySection.get(sec) ?? [];
  }
}

export function bytesOf(sec: Section): Uint8Array {
  return sec instanceof DataSection ? sec.data : new Uint8Array(0);
}

export function sizeOf(sec: Section): number {
  if (sec instanceof DataSection) return sec.data.length;
  if (sec instanceof NoBitsSection) return Number(sec.size);
  return 0;
}

export function isText(sec: Section): boolean {
  return (sec.flags & SHF_EXECINSTR) !== 0n;
}

export function isStringSection(sec: Section): boolean {
  return (sec.flags & SHF_MERGE) !== 0n && (sec.flags & SHF_STRINGS) !== 0n;
}

/** The NUL-terminated string at an offset of a section. */
export function stringAt(sec: Section, offset: number): string {
  const b = bytesOf(sec);
  if (offset < 0 || offset >= b.length) return `<out of range ${offset}>`;
  let end = offset;
  while (end < b.length && b[end] !== 0) end++;
  return Buffer.from(b.subarray(offset, end)).toString('latin1');
}

/**
 * The relocations of a list sorted by offset that fall inside [start, end): a binary search to the first, not a
 * filter of all (a special section's entries are read one by one, so a filter was entries × relocations:
 * seconds on a whole update).
 */
export function relocationsInRange(sorted: readonly Relocation[], start: number, end: number): Relocation[] {
  const lo = BigInt(start);
  const hi = BigInt(end);
  let a = 0;
  let b = sorted.length;
  while (a < b) {
    const mid = (a + b) >>> 1;
    if (sorted[mid]!.offset < lo) a = mid + 1;
    else b = mid;
  }
  const out: Relocation[] = [];
  for (let i = a; i < sorted.length && sorted[i]!.offset < hi; i++) out.push(sorted[i]!);
  return out;
}
