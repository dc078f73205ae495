// SPDX-License-Identifier: GPL-2.0-only
/**
 * The one writer: serializes an ElfObject according to a Layout.
 */
import { EHDR_SIZE, REL_SIZE, RELA_SIZE, SHDR_SIZE, SHN_LORESERVE, SHN_XINDEX, SYM_SIZE } from './constants.js';
import { layout as computeLayout, type Layout, type LayoutOptions } from './layout.js';
import {
  DataSection,
  ElfObject,
  GroupSection,
  RelocationSection,
  StringTableSection,
  SymbolTableSection,
  SymtabShndxSection,
} from './model.js';

/**
 * Write `obj` to bytes. Lays it out first unless a layout is given (a layout
 * is only valid for the model state it was computed from).
 *
 * @example
 * const obj = ElfObject.parse(bytes);
 * writeElf(obj); // byte-identical to `bytes`
 * writeElf(obj, { mode: 'fresh' }); // everything re-laid out
 */
export function writeElf(obj: ElfObject, layoutOrOptions: Layout | LayoutOptions = {}): Uint8Array {
  const l = 'placements' in layoutOrOptions ? layoutOrOptions : computeLayout(obj, layoutOrOptions);
  const out = new Uint8Array(l.fileSize);
  const dv = new DataView(out.buffer);
  writeHeader(obj, l, dv, out);
  if (l.hasSectionTable) writeSectionHeaders(l, dv);
  for (const g of l.gaps) out.set(g.bytes, g.offset);
  for (const p of l.placements) {
    if (p.fileSize === 0) continue;
    const sec = p.section;
    if (sec instanceof DataSection) {
      out.set(sec.data, p.offset);
    } else if (sec instanceof StringTableSection) {
      out.set(p.content!, p.offset);
    } else if (sec instanceof SymbolTableSection) {
      writeSymbols(l, sec, dv, out, p.offset);
    } else if (sec instanceof SymtabShndxSection) {
      writeShndx(l, sec, dv, p.offset);
    } else if (sec instanceof RelocationSection) {
      writeRelocations(l, sec, dv, p.offset);
    } else if (sec instanceof GroupSection) {
      dv.setUint32(p.offset, sec.groupFlags >>> 0, true);
      let at = p.offset + 4;
      for (const m of sec.members) {
        dv.setUint32(at, l.indexOf.get(m)!, true);
        at += 4;
      }
    }
  }
  out.set(obj.trailer, l.trailerOffset);
  return out;
}

function writeHeader(obj: ElfObject, l: Layout, dv: DataView, out: Uint8Array): void {
  const h = obj.header;
  out.set(h.ident.subarray(0, 16), 0);
  dv.setUint16(0x10, h.type, true);
  dv.setUint16(0x12, h.machine, true);
  dv.setUint32(0x14, h.version, true);
  dv.setBigUint64(0x18, h.entry, true);
  dv.setBigUint64(0x20, h.phoff, true);
  dv.setBigUint64(0x28, BigInt(l.shoff), true);
  dv.setUint32(0x30, h.flags, true);
  dv.setUint16(0x34, EHDR_SIZE, true);
  dv.setUint16(0x36, h.phentsize, true);
  dv.setUint16(0x38, 0, true);
  dv.setUint16(0x3a, l.hasSectionTable ? SHDR_SIZE : h.shentsize, true);
  dv.setUint16(0x3c, l.eShnum, true);
  dv.setUint16(0x3e, l.eShstrndx, true);
}

function writeSectionHeaders(l: Layout, dv: DataView): void {
  // Section 0 carries the real count and name-table index under extended numbering.
  dv.setBigUint64(l.shoff + 0x20, BigInt(l.sh0Size), true);
  dv.setUint32(l.shoff + 0x28, l.sh0Link, true);
  for (const p of l.placements) {
    const at = l.shoff + p.index * SHDR_SIZE;
    const s = p.section;
    dv.setUint32(at, p.nameOffset, true);
    dv.setUint32(at + 4, s.type, true);
    dv.setBigUint64(at + 8, s.flags, true);
    dv.setBigUint64(at + 0x10, s.addr, true);
    dv.setBigUint64(at + 0x18, BigInt(p.offset), true);
    dv.setBigUint64(at + 0x20, p.size, true);
    dv.setUint32(at + 0x28, p.link, true);
    dv.setUint32(at + 0x2c, p.info >>> 0, true);
    dv.setBigUint64(at + 0x30, s.addralign, true);
    dv.setBigUint64(at + 0x38, s.entsize, true);
  }
}

function writeSymbols(l: Layout, sec: SymbolTableSection, dv: DataView, out: Uint8Array, offset: number): void {
  const st = l.symbolTables.get(sec)!;
  const { order, shndx, nameOffsets } = st;
  for (let i = 0; i < order.length; i++) {
    const sym = order[i]!;
    const at = offset + (i + 1) * SYM_SIZE;
    dv.setUint32(at, nameOffsets[i]!, true);
    out[at + 4] = sym.info;
    out[at + 5] = sym.other;
    const sh = shndx[i]!;
    const isSection = typeof sym.section !== 'number';
    dv.setUint16(at + 6, isSection && sh >= SHN_LORESERVE ? SHN_XINDEX : sh, true);
    dv.setBigUint64(at + 8, sym.value, true);
    dv.setBigUint64(at + 16, sym.size, true);
  }
}

function writeShndx(l: Layout, sec: SymtabShndxSection, dv: DataView, offset: number): void {
  const st = l.symbolTables.get(sec.symtab)!;
  for (let i = 0; i < st.order.length; i++) {
    const sh = st.shndx[i]!;
    if (typeof st.order[i]!.section !== 'number' && sh >= SHN_LORESERVE) dv.setUint32(offset + (i + 1) * 4, sh, true);
  }
}

function writeRelocations(l: Layout, sec: RelocationSection, dv: DataView, offset: number): void {
  const syms = l.relocationSymbols.get(sec)!;
  const rela = sec.isRela;
  const size = rela ? RELA_SIZE : REL_SIZE;
  const raw = sec.raw;
  if (raw !== null && raw.rela === rela) {
    // Never decoded: copy the input entries and patch only the symbol indices.
    new Uint8Array(dv.buffer, offset, raw.bytes.length).set(raw.bytes);
    for (let i = 0; i < raw.count; i++) dv.setUint32(offset + i * size + 12, syms[i]!, true);
    return;
  }
  const relocs = sec.relocations;
  for (let i = 0; i < relocs.length; i++) {
    const r = relocs[i]!;
    const at = offset + i * size;
    dv.setBigUint64(at, r.offset, true);
    dv.setUint32(at + 8, r.type >>> 0, true);
    dv.setUint32(at + 12, syms[i]!, true);
    if (rela) dv.setBigInt64(at + 16, r.addend, true);
  }
}
