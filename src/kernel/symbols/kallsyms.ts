// SPDX-License-Identifier: GPL-2.0-only
/**
 * The vmlinux symbol table as `/proc/kallsyms` lists it: one entry per line,
 * `<address> <type letter> <name>`, in the kernel's own kallsyms order (by
 * address; the order `kallsyms_on_each_symbol` walks, which is the order
 * livepatch counts `sympos` in). Lines of loaded modules (`[name]` suffix)
 * are not vmlinux and are skipped.
 */
import { CloneIndex } from './clones.js';
import { SutureError } from '../../util/errors.js';

export interface KallsymsEntry {
  /** 0-based position in the kallsyms order. */
  readonly index: number;
  readonly address: bigint;
  /** The type letter: t/T text, d/D data, r/R rodata, b/B bss, A absolute, W/w/V/v weak. */
  readonly type: string;
  readonly name: string;
}

/** Where a vmlinux address lies, from the linker's own boundary symbols. */
export type VmlinuxRegion = 'text' | 'init-text' | 'rodata' | 'data' | 'init-data' | 'bss' | 'percpu' | 'other';

interface Range {
  readonly start: bigint;
  readonly end: bigint;
  readonly region: VmlinuxRegion;
}

/** Boundary symbols that name regions (all are in every x86_64 vmlinux kallsyms with KALLSYMS_ALL). */
const REGION_BOUNDS: ReadonlyArray<readonly [string, string, VmlinuxRegion]> = [
  ['_stext', '_etext', 'text'],
  ['_sinittext', '_einittext', 'init-text'],
  ['__start_rodata', '__end_rodata', 'rodata'],
  ['_sdata', '_edata', 'data'],
  ['__init_begin', '__init_end', 'init-data'],
  ['__bss_start', '__bss_stop', 'bss'],
];

export class VmlinuxSymbols {
  readonly entries: readonly KallsymsEntry[];
  readonly #byName = new Map<string, KallsymsEntry[]>();
  readonly #ranges: Range[] = [];
  /** Every address in ascending order (for extents). */
  readonly #sorted: BigUint64Array;

  constructor(entries: readonly KallsymsEntry[]) {
    this.entries = entries;
    for (const e of entries) {
      const list = this.#byName.get(e.name);
      if (list) list.push(e);
      else this.#byName.set(e.name, [e]);
    }
    for (const [s, e, region] of REGION_BOUNDS) {
      const start = this.#byName.get(s)?.[0]?.address;
      const end = this.#byName.get(e)?.[0]?.address;
      if (start !== undefined && end !== undefined && start < end) this.#ranges.push({ start, end, region });
    }
    this.#sorted = BigUint64Array.from(entries.map((e) => e.address)).sort();
  }

  /**
   * Parse the text of /proc/kallsyms. Module lines are skipped; a line that is
   * not `<hex> <letter> <name>` is an error naming the file and line.
   */
  static parse(text: string, file = 'kallsyms'): VmlinuxSymbols {
    const entries: KallsymsEntry[] = [];
    let lineNo = 0;
    for (const line of text.split('\n')) {
      lineNo++;
      if (line === '') continue;
      const m = /^([0-9a-fA-F]{1,16}) ([A-Za-z?]) (\S+)(?:\t\[(\S+)\])?$/.exec(line);
      if (!m) {
        throw new SutureError('invalid-input', `${file}:${lineNo}: not a kallsyms line: ${JSON.stringify(line.slice(0, 120))}`, {
          hint: 'the symbol file is damaged: run `suture kernel fetch` again for this kernel',
        });
      }
      if (m[4] !== undefined) continue; // a module's symbol
      entries.push({ index: entries.length, address: BigInt(`0x${m[1]}`), type: m[2]!, name: m[3]! });
    }
    if (entries.length === 0) {
      throw new SutureError('invalid-input', `${file} lists no vmlinux symbols`, {
        hint: 'it must be /proc/kallsyms of the kernel read as root: run `suture kernel fetch` again',
      });
    }
    if (entries.every((e) => e.address === 0n)) {
      throw new SutureError('invalid-input', `${file} has only zero addresses (read without permission, kptr_restrict)`, {
        hint: 'capture /proc/kallsyms as root: run `suture kernel fetch` again',
      });
    }
    return new VmlinuxSymbols(entries);
  }

  get size(): number {
    return this.entries.length;
  }

  /** Every entry with this name, in kallsyms order ([] when there is none). */
  named(name: string): readonly KallsymsEntry[] {
    return this.#byName.get(name) ?? [];
  }

  has(name: string): boolean {
    return this.#byName.has(name);
  }

  /** The first entry with this name (for boundary symbols and unique names). */
  first(name: string): KallsymsEntry | undefined {
    return this.#byName.get(name)?.[0];
  }

  /** The livepatch sympos of an entry: 0 when its name is unique in vmlinux, else its 1-based rank. */
  sympos(e: KallsymsEntry): number {
    const list = this.named(e.name);
    return list.length === 1 ? 0 : list.indexOf(e) + 1;
  }

  /** The region an address lies in. Per-cpu symbols are absolute offsets from 0. */
  regionOf(address: bigint, type?: string): VmlinuxRegion {
    for (const r of this.#ranges) if (address >= r.start && address < r.end) return r.region;
    if (type === 'A' || type === 'a') return 'percpu';
    return 'other';
  }

  /** The next higher symbol address after `address` (an upper bound of the symbol's extent), or undefined. */
  nextAddress(address: bigint): bigint | undefined {
    const a = this.#sorted;
    let lo = 0;
    let hi = a.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (a[mid]! <= address) lo = mid + 1;
      else hi = mid;
    }
    return lo < a.length ? a[lo] : undefined;
  }

  /** The entries just before and after one, in kallsyms order (for messages). */
  neighbours(e: KallsymsEntry, n = 2): { before: KallsymsEntry[]; after: KallsymsEntry[] } {
    return {
      before: this.entries.slice(Math.max(0, e.index - n), e.index) as KallsymsEntry[],
      after: this.entries.slice(e.index + 1, e.index + 1 + n) as KallsymsEntry[],
    };
  }

  #clones: CloneIndex | undefined;

  /** Names that start with `name.` (GCC clones such as `foo.isra.0`, `foo.constprop.0`, `foo.cold`). */
  clonesOf(name: string, limit = 8): string[] {
    this.#clones ??= new CloneIndex(this.entries.map((e) => e.name));
    return this.#clones.of(name, limit);
  }
}

/** True for kallsyms type letters of code. */
export function isTextType(type: string): boolean {
  return type === 't' || type === 'T' || type === 'W' || type === 'w';
}

/** True for local (file-scope, `static`) kallsyms type letters. */
export function isLocalType(type: string): boolean {
  return type >= 'a' && type <= 'z' && type !== 'w' && type !== 'v';
}
