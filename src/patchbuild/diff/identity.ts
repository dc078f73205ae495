// SPDX-License-Identifier: GPL-2.0-only
/**
 * What a relocation points at, in words that mean the same in the orig and
 * the patched object, so two functions can be compared beyond their bytes.
 */
import { relocType, type Relocation, type Section } from '../../elf/mod.js';
import { isAnonymousTarget } from './rules.js';
import { bytesOf, isStringSection, type IndexedSymbol, type ObjectIndex } from './object-index.js';
import { createHash } from 'node:crypto';

/**
 * Names that differ between two compiles of the same source only by gcc's
 * numbering: `__already_done.12` vs `.13`, `foo.constprop.0`, `__func__.3`.
 */
export function unnumbered(name: string): string {
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

/**
 * The function or object a relocation against a section (or a local label)
 * points into, and its offset in that section. A pc-relative 32-bit field is
 * usually the end of its instruction (target at addend + 4), but an
 * immediate may follow it: `cmpb $0, flag(%rip)` has addend -5, `cmpw $imm16`
 * -6, `cmpl`/`movl $imm32` -8, and addend + 4 then lands before the object
 * (or inside the one before it). Without an instruction decoder the offsets
 * an immediate of 1, 2 or 4 bytes would give are tried after the usual one;
 * an object found at any of them is the same address for the linked section,
 * so a reference rewritten against it (addend kept relative to the section)
 * stays exact. Found on `static bool wq_online` in kernel/workqueue.c: read
 * with `cmpb $0`, it was taken for anonymous data and copied, and the copy
 * (false) made the patched __flush_work WARN. Last, an offset one past an
 * object's end is that object's (amdgpu_discovery.c's loop bound
 * `ip_hw_attr + 192`).
 */
export function referencedSymbol(idx: ObjectIndex, sec: Section, base: number, r: Relocation): { sym: IndexedSymbol; at: number } | undefined {
  const t = relocType(r.type);
  const usual = base + targetOffset(r);
  const candidates = [usual, base + Number(r.addend)];
  if (t?.pcRelative && t.width === 4) candidates.push(usual + 1, usual + 2, usual + 4);
  for (const at of candidates) {
    const sym = idx.symbolAt(sec, at);
    if (sym) return { sym, at };
  }
  // One past an object's end: the bound of a loop over an array (`p < attrs + ARRAY_SIZE(attrs)`).
  for (const at of candidates) {
    const sym = idx.symbolsOf(sec).find((e) => e.size > 0 && e.offset + e.size === at);
    if (sym) return { sym, at };
  }
  return undefined;
}

export class Identities {
  private readonly busy = new Set<Section>();
  private readonly cutCache = new Map<Section, number[]>();

  constructor(private readonly idx: ObjectIndex) {}

  /** A key for a relocation's target that is the same for the same meaning in both objects. */
  key(r: Relocation): string {
    const sym = r.symbol;
    if (!sym) return 'none';
    if (sym.isUndefined) return `ext:${sym.name}${r.addend === -4n ? '' : `${r.addend}`}`;
    if (typeof sym.section === 'number') return `abs:${sym.name}:${sym.value}+${r.addend}`;
    if (!isAnonymousTarget(sym) && sym.name) return `sym:${unnumbered(sym.name)}+${r.addend}`;
    const sec = sym.section;
    const off = Number(sym.value) + targetOffset(r);
    if (isStringSection(sec)) return `str:${JSON.stringify(this.stringAt(sec, off))}`;
    const inner = referencedSymbol(this.idx, sec, Number(sym.value), r)?.sym;
    if (inner) return `sym:${unnumbered(inner.name)}+${off - inner.offset}`;
    const at = Number(sym.value) + Number(r.addend);
    return `sec:${unnumbered(sec.name)}:${this.slicePrint(sec, at)}`;
  }

  /** Offsets of a section that relocations anywhere in the object point at. */
  private cuts(sec: Section): number[] {
    let c = this.cutCache.get(sec);
    if (!c) {
      const set = new Set<number>([0]);
      for (const target of this.idx.obj.sections) {
        for (const r of this.idx.relocationsOf(target)) {
          const s = r.symbol;
          if (s && s.section === sec && isAnonymousTarget(s)) set.add(Number(s.value) + Number(r.addend));
        }
      }
      c = [...set].sort((a, b) => a - b);
      this.cutCache.set(sec, c);
    }
    return c;
  }

  /**
   * The piece of an anonymous section a reference points at: from its offset
   * to the next offset anything points at. An `.altinstr_replacement` holds
   * the replacements of every function of the unit; a function is compared
   * by its own replacement, not by the others'.
   */
  private slicePrint(sec: Section, at: number): string {
    const cuts = this.cuts(sec);
    const end = cuts.find((c) => c > at) ?? Math.max(at, bytesOf(sec).length);
    if (this.busy.has(sec)) return `cycle+${at}`;
    this.busy.add(sec);
    const p = this.rangePrint(sec, at, end - at);
    this.busy.delete(sec);
    return createHash('sha256').update(p.bytes).update(p.relocs.join('|')).digest('hex').slice(0, 16);
  }

  private stringAt(sec: Section, off: number): string {
    const b = bytesOf(sec);
    let end = off;
    while (end < b.length && b[end] !== 0) end++;
    return Buffer.from(b.subarray(off, end)).toString('latin1');
  }

  /** Bytes and relocations of a range, as comparable text. */
  rangePrint(sec: Section, offset: number, size: number): { bytes: string; relocs: string[] } {
    const b = bytesOf(sec).subarray(offset, offset + size);
    const relocs = this.idx.relocationsIn(sec, offset, size).map((r) => `${Number(r.offset) - offset}:${r.type}:${this.key(r)}`);
    return { bytes: Buffer.from(b).toString('hex'), relocs };
  }
}
