// SPDX-License-Identifier: GPL-2.0-only
/**
 * What a relocation points at, in words that mean the same in the orig and
 * the patched object, so two functions can be compared beyond their bytes.
 */
import { relocType, type Relocation, type Section } from '../../elf/mod.js';
import { isAnonymousTarget } from './rules.js';
import { bytesOf, isStringSection, type ObjectIndex } from './object-index.js';
import { createHash } from 'node:crypto';

/**
 * Names that differ between two compiles of the same source only by gcc's
 * numbering: `__already_done.12` vs `.13`, `foo.constprop.0`, `__func__.3`.
 */
export function mangle(name: string): string {
  return name.replace(/\.\d+/g, '.#');
}

/**
 * Where inside its target a relocation points. For pc-relative 32-bit
 * fields the addend also holds the distance to the end of the instruction,
 * 4 bytes in the usual case where the field ends it (`lea sym(%rip)`, `call`).
 */
export function targetOffset(r: Relocation): number {
  const t = relocType(r.type);
  return Number(r.addend) + (t?.pcRelative && t.width === 4 ? 4 : 0);
}

export class Identities {
  private readonly sectionPrints = new Map<Section, string>();
  private readonly busy = new Set<Section>();

  constructor(private readonly idx: ObjectIndex) {}

  /** A key for a relocation's target that is the same for the same meaning in both objects. */
  key(r: Relocation): string {
    const sym = r.symbol;
    if (!sym) return 'none';
    if (sym.isUndefined) return `ext:${sym.name}${r.addend === -4n ? '' : `${r.addend}`}`;
    if (typeof sym.section === 'number') return `abs:${sym.name}:${sym.value}+${r.addend}`;
    if (!isAnonymousTarget(sym) && sym.name) return `sym:${mangle(sym.name)}+${r.addend}`;
    const sec = sym.section;
    const off = Number(sym.value) + targetOffset(r);
    if (isStringSection(sec)) return `str:${JSON.stringify(this.stringAt(sec, off))}`;
    const inner = this.idx.symbolAt(sec, off);
    if (inner) return `sym:${mangle(inner.name)}+${off - inner.offset}`;
    return `sec:${mangle(sec.name)}:${this.sectionPrint(sec)}+${Number(sym.value) + Number(r.addend)}`;
  }

  private stringAt(sec: Section, off: number): string {
    const b = bytesOf(sec);
    let end = off;
    while (end < b.length && b[end] !== 0) end++;
    return Buffer.from(b.subarray(off, end)).toString('latin1');
  }

  /** A fingerprint of an anonymous section: its bytes and what its relocations point at. */
  sectionPrint(sec: Section): string {
    const known = this.sectionPrints.get(sec);
    if (known) return known;
    if (this.busy.has(sec)) return 'cycle';
    this.busy.add(sec);
    const h = createHash('sha256').update(bytesOf(sec));
    for (const r of this.idx.relocationsOf(sec)) h.update(`|${r.offset}:${r.type}:${this.key(r)}`);
    this.busy.delete(sec);
    const print = h.digest('hex').slice(0, 16);
    this.sectionPrints.set(sec, print);
    return print;
  }

  /** Bytes and relocations of a range, as comparable text. */
  rangePrint(sec: Section, offset: number, size: number): { bytes: string; relocs: string[] } {
    const b = bytesOf(sec).subarray(offset, offset + size);
    const relocs = this.idx.relocationsIn(sec, offset, size).map((r) => `${Number(r.offset) - offset}:${r.type}:${this.key(r)}`);
    return { bytes: Buffer.from(b).toString('hex'), relocs };
  }
}
