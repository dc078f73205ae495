// SPDX-License-Identifier: GPL-2.0-only
/**
 * Proof of provenance: the orig build of a function reproduces the bytes the
 * target kernel shipped. Compared with every relocated field masked (their
 * values are only known after linking); anything else that differs means the
 * source, config or compiler is not the kernel's, and a patch built from it
 * would be wrong.
 */
import { ftraceSiteOffset, NOP5 } from '../../elf/mod.js';
import { relocType, type Relocation } from '../../elf/mod.js';
import type { IndexedSymbol, ObjectIndex } from './object-index.js';
import { bytesOf } from './object-index.js';
import { entrySize, specialEntries } from './special-entries.js';
import { specialSection } from './special-sections.js';

export interface ProvenanceResult {
  function: string;
  object: string;
  /** equal: reproduced; differs: not; unknown: the shipped bytes could not be read; unresolved: which copy is meant cannot be told (catch-up only). */
  verdict: 'equal' | 'differs' | 'unknown' | 'unresolved';
  /** Offset of the first byte that differs, when it differs. */
  firstDifference?: number;
  detail: string;
}

/** A copy of the bytes with each relocation's field zeroed. */
export function maskRelocations(bytes: Uint8Array, relocs: readonly Relocation[], base: number): Uint8Array {
  const out = Uint8Array.from(bytes);
  for (const r of relocs) {
    const width = relocType(r.type)?.width ?? 4;
    const at = Number(r.offset) - base;
    for (let i = 0; i < width; i++) if (at + i >= 0 && at + i < out.length) out[at + i] = 0;
  }
  return out;
}

/**
 * Compare a function of the orig object with the shipped bytes. `shipped` is
 * what the kernel image (or the module file) holds at the function; the
 * offsets of its own relocations (a module) are masked too.
 */
export function compareWithShipped(
  idx: ObjectIndex,
  fn: IndexedSymbol,
  object: string,
  shipped: Uint8Array | undefined,
  shippedRelocOffsets: readonly { offset: number; width: number }[] = [],
  branchSites: readonly number[] = [],
): ProvenanceResult {
  if (!shipped) return { function: fn.name, object, verdict: 'unknown', detail: 'the shipped bytes could not be read' };
  const ours = bytesOf(fn.section).subarray(fn.offset, fn.offset + fn.size);
  const relocs = idx.relocationsIn(fn.section, fn.offset, fn.size);
  const a = maskRelocations(ours, relocs, fn.offset);
  const b = Uint8Array.from(shipped.subarray(0, fn.size));
  // Mask the same fields in the shipped bytes (linked values), and the shipped object's own relocations.
  for (const r of relocs) {
    const width = relocType(r.type)?.width ?? 4;
    const at = Number(r.offset) - fn.offset;
    for (let i = 0; i < width; i++) if (at + i < b.length) b[at + i] = 0;
  }
  for (const { offset, width } of shippedRelocOffsets) for (let i = 0; i < width; i++) if (offset + i < b.length && offset + i >= 0) { b[offset + i] = 0; a[offset + i] = 0; }
  // The ftrace site (behind endbr64 in IBT kernels): the file may hold `call __fentry__` or the 5-byte NOP it becomes.
  const site = ftraceSiteOffset(a, 0);
  const isSite = (x: Uint8Array) => x[site] === 0xe8 || NOP5.every((v, i) => x[site + i] === v);
  if (site === ftraceSiteOffset(b, 0) && isSite(a) && isSite(b)) for (let i = site; i < site + 5; i++) a[i] = b[i] = 0;
  // Static branches (__jump_table sites): a jmp or a NOP by the key's default. Where objtool runs at vmlinux link
  // (IBT kernels, 6.12), the unit object still holds the compiler's jmp and the image objtool's choice; the
  // kernel rewrites each site at run time anyway.
  for (const at of branchSites) {
    const w = branchWidth(a, at);
    if (w && w === branchWidth(b, at)) for (let i = at; i < at + w; i++) a[i] = b[i] = 0;
  }
  if (shipped.length < fn.size) return { function: fn.name, object, verdict: 'unknown', detail: `only ${shipped.length} of ${fn.size} bytes could be read` };
  let i = 0;
  while (i < a.length && a[i] === b[i]) i++;
  if (i === a.length) return { function: fn.name, object, verdict: 'equal', detail: `${fn.size} bytes reproduced (${relocs.length} relocated fields masked)` };
  return {
    function: fn.name,
    object,
    verdict: 'differs',
    firstDifference: i,
    detail: `byte ${i} of ${fn.size} differs: built ${Buffer.from(a.subarray(i, i + 8)).toString('hex')}, shipped ${Buffer.from(b.subarray(i, i + 8)).toString('hex')}`,
  };
}

/** The width of a static branch site at `at`: a jmp or the NOP of the same length (5 or 2 bytes), else 0. */
function branchWidth(x: Uint8Array, at: number): number {
  if (x[at] === 0xe9 || NOP5.every((v, i) => x[at + i] === v)) return 5;
  if (x[at] === 0xeb || (x[at] === 0x66 && x[at + 1] === 0x90)) return 2;
  return 0;
}

/** The static branch sites of a function (its __jump_table entries), as offsets from its start. */
export function staticBranchSites(idx: ObjectIndex, fn: IndexedSymbol, structSize: (name: string) => number | undefined): number[] {
  const spec = specialSection('__jump_table');
  if (!spec || !idx.obj.section(spec.name)) return [];
  const out: number[] = [];
  for (const e of specialEntries(idx, spec, entrySize(spec, structSize))) {
    if (e.site?.section === fn.section && e.site.offset >= fn.offset && e.site.offset < fn.offset + fn.size) out.push(e.site.offset - fn.offset);
  }
  return out;
}
