// SPDX-License-Identifier: GPL-2.0-only
/**
 * Seeded mutations of real ELF objects, shared by the unit fuzz test and
 * bench/elf-fuzz.ts. A case passes when the engine either accepts the input
 * (then writing it, reading that back and writing again must give the same
 * bytes) or rejects it with an ElfError; anything else is a bug.
 */
import { ElfError, ElfObject, ElfView, RelocationSection, readModinfo, writeElf } from '../../src/elf/mod.js';

/** Small, fast, seedable PRNG (mulberry32). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface Mutation {
  bytes: Uint8Array;
  what: string;
}

const INTERESTING = [0, 1, 2, 3, 4, 7, 8, 16, 24, 63, 64, 0x7f, 0x80, 0xff, 0x100, 0xfeff, 0xff00, 0xff20, 0xfff1, 0xfff2, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xffffffff];

function pick<T>(r: () => number, xs: readonly T[]): T {
  return xs[Math.floor(r() * xs.length)]!;
}

function int(r: () => number, n: number): number {
  return Math.floor(r() * n);
}

function value(r: () => number, len: number): bigint {
  switch (int(r, 4)) {
    case 0:
      return BigInt(pick(r, INTERESTING));
    case 1:
      return BigInt(Math.max(0, len + int(r, 129) - 64));
    case 2:
      return 0xffffffffffffffffn - BigInt(int(r, 16));
    default:
      return BigInt(int(r, 0x100000000));
  }
}

function put(b: Uint8Array, at: number, width: number, v: bigint): void {
  if (at < 0 || at + width > b.length) return;
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (width === 1) dv.setUint8(at, Number(v & 0xffn));
  else if (width === 2) dv.setUint16(at, Number(v & 0xffffn), true);
  else if (width === 4) dv.setUint32(at, Number(v & 0xffffffffn), true);
  else dv.setBigUint64(at, BigInt.asUintN(64, v), true);
}

const EHDR_FIELDS: Array<[string, number, number]> = [
  ['e_ident[class]', 4, 1],
  ['e_ident[data]', 5, 1],
  ['e_type', 0x10, 2],
  ['e_machine', 0x12, 2],
  ['e_shoff', 0x28, 8],
  ['e_ehsize', 0x34, 2],
  ['e_phnum', 0x38, 2],
  ['e_shentsize', 0x3a, 2],
  ['e_shnum', 0x3c, 2],
  ['e_shstrndx', 0x3e, 2],
];

const SHDR_FIELDS: Array<[string, number, number]> = [
  ['sh_name', 0, 4],
  ['sh_type', 4, 4],
  ['sh_flags', 8, 8],
  ['sh_offset', 0x18, 8],
  ['sh_size', 0x20, 8],
  ['sh_link', 0x28, 4],
  ['sh_info', 0x2c, 4],
  ['sh_addralign', 0x30, 8],
  ['sh_entsize', 0x38, 8],
];

const SYM_FIELDS: Array<[string, number, number]> = [
  ['st_name', 0, 4],
  ['st_info', 4, 1],
  ['st_other', 5, 1],
  ['st_shndx', 6, 2],
  ['st_value', 8, 8],
];

/** Where the section headers, symbols and relocations of a pristine object are. */
interface Map_ {
  shoff: number;
  shnum: number;
  symtabs: Array<{ offset: number; count: number }>;
  relas: Array<{ offset: number; count: number; entsize: number }>;
}

function mapOf(bytes: Uint8Array): Map_ {
  const v = ElfView.parse(bytes);
  return {
    shoff: v.header.shoff,
    shnum: v.header.shnum,
    symtabs: v.sections.filter((s) => s.type === 2).map((s) => ({ offset: s.offset, count: s.fileSize / 24 })),
    relas: v.sections
      .filter((s) => s.type === 4 || s.type === 9)
      .map((s) => ({ offset: s.offset, count: s.fileSize / Number(s.entsize), entsize: Number(s.entsize) })),
  };
}

const maps = new WeakMap<Uint8Array, Map_>();

/** One random mutation of a valid object. */
export function mutate(input: Uint8Array, r: () => number): Mutation {
  let m = maps.get(input);
  if (m === undefined) {
    m = mapOf(input);
    maps.set(input, m);
  }
  return mutateWith(input, m, r, int(r, 8));
}

function mutateWith(input: Uint8Array, m: Map_, r: () => number, kind: number): Mutation {
  const b = input.slice();
  switch (kind) {
    case 0: {
      const n = 1 + int(r, 8);
      const at: number[] = [];
      for (let i = 0; i < n; i++) {
        const o = int(r, b.length);
        b[o] = b[o]! ^ (1 << int(r, 8));
        at.push(o);
      }
      return { bytes: b, what: `flip bits at ${at.map((o) => `0x${o.toString(16)}`).join(',')}` };
    }
    case 1: {
      const len = r() < 0.3 ? int(r, 80) : int(r, b.length);
      return { bytes: b.subarray(0, len), what: `truncate to ${len}` };
    }
    case 2: {
      const [name, off, w] = pick(r, EHDR_FIELDS);
      const v = value(r, b.length);
      put(b, off, w, v);
      return { bytes: b, what: `${name} = 0x${v.toString(16)}` };
    }
    case 3:
    case 4: {
      const i = int(r, m.shnum);
      const [name, off, w] = pick(r, SHDR_FIELDS);
      const v = name === 'sh_link' || name === 'sh_info' ? BigInt(r() < 0.5 ? int(r, m.shnum + 2) : pick(r, INTERESTING)) : value(r, b.length);
      put(b, m.shoff + i * 64 + off, w, v);
      return { bytes: b, what: `section [${i}] ${name} = 0x${v.toString(16)}` };
    }
    case 5: {
      const st = m.symtabs[0];
      if (st === undefined || st.count === 0) return { bytes: b, what: 'no symtab: unchanged' };
      const i = int(r, st.count);
      const [name, off, w] = pick(r, SYM_FIELDS);
      const v = name === 'st_shndx' ? BigInt(r() < 0.5 ? int(r, m.shnum + 2) : pick(r, INTERESTING)) : value(r, b.length);
      put(b, st.offset + i * 24 + off, w, v);
      return { bytes: b, what: `symbol ${i} ${name} = 0x${v.toString(16)}` };
    }
    case 6: {
      const rs = m.relas.filter((x) => x.count > 0);
      if (rs.length === 0) return { bytes: b, what: 'no relocations: unchanged' };
      const rel = pick(r, rs);
      const i = int(r, rel.count);
      const v = BigInt(r() < 0.5 ? int(r, 64) : pick(r, INTERESTING));
      put(b, rel.offset + i * rel.entsize + 12, 4, v);
      return { bytes: b, what: `relocation ${i} at 0x${rel.offset.toString(16)}: symbol = 0x${v.toString(16)}` };
    }
    default: {
      // Several field rewrites at once, to get past the first check.
      const parts: string[] = [];
      let cur: Uint8Array = b;
      for (let k = 0; k < 3; k++) {
        // Field positions come from the pristine input.
        const one = mutateWith(cur, m, r, int(r, 7));
        cur = one.bytes;
        parts.push(one.what);
      }
      return { bytes: cur, what: parts.join('; ') };
    }
  }
}

export type Outcome = 'accepted' | 'rejected';

/**
 * Run one input through the engine. Returns the outcome, or throws an Error
 * describing the bug (a non-ElfError exception, or unstable write-back).
 */
export function runCase(bytes: Uint8Array): Outcome {
  try {
    const obj = ElfObject.parse(bytes, { file: 'fuzz.o' });
    for (const s of obj.sections) if (s instanceof RelocationSection) void s.relocations.length;
    const out = writeElf(obj);
    const again = writeElf(ElfObject.parse(out, { file: 'fuzz-out.o' }));
    if (Buffer.compare(Buffer.from(again), Buffer.from(out)) !== 0) throw new Error('writing the written object again changed it');
    const fresh = writeElf(ElfObject.parse(out), { mode: 'fresh' });
    ElfObject.parse(fresh, { file: 'fuzz-fresh.o' });
    readModinfo(bytes);
    return 'accepted';
  } catch (e) {
    if (e instanceof ElfError) {
      if (e.kind !== 'invalid-input') throw new Error(`accepted input could not be written: ${e.message}`);
      if (!/offset 0x[0-9a-f]+|section \[\d+\]/.test(e.message)) {
        throw new Error(`ElfError without a location: ${e.message}`);
      }
      return 'rejected';
    }
    throw e;
  }
}
