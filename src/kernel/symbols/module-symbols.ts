// SPDX-License-Identifier: GPL-2.0-only
/**
 * The symbols of one loadable module, read from its `.ko` with the ELF
 * engine, the way the kernel's module loader and livepatch see them:
 *
 * - while the module is loading (klp_module_coming applies klp relocations
 *   for a patch loaded earlier), its kallsyms is the whole symtab;
 * - once its init has run, only the "core" symbols are kept (defined, named,
 *   in an allocated section that is not `.init*`: kernel/module/kallsyms.c
 *   is_core_symbol), in symtab order.
 *
 * livepatch counts `sympos` in that order, skipping undefined symbols.
 */
import { CloneIndex } from './clones.js';
import { readFileSync } from 'node:fs';
import {
  ElfView,
  ftraceSiteOffset,
  R_X86_64_PC32,
  R_X86_64_PLT32,
  SHF_ALLOC,
  SHN_UNDEF,
  STT_FILE,
  STT_FUNC,
  STT_SECTION,
  stBind,
  stType,
  type SectionHeader,
} from '../../elf/mod.js';
import { SutureError, fsError } from '../../util/errors.js';

export interface ModuleSymbol {
  /** Index in the module's symtab. */
  readonly index: number;
  readonly name: string;
  /** STT_* */
  readonly type: number;
  /** STB_* */
  readonly bind: number;
  /** Section header index, or the special st_shndx (SHN_ABS ...). */
  readonly shndx: number;
  /** Name of the section it is defined in ('' for special indices). */
  readonly section: string;
  readonly value: bigint;
  readonly size: bigint;
  /** Kept in the module's kallsyms after its init ran (is_core_symbol). */
  readonly core: boolean;
}

/** A module symbol's livepatch position, in both views of the module's kallsyms. */
export interface ModuleSympos {
  /** While the module loads (the whole symtab). */
  readonly loading: number;
  /** After its init (core symbols only). */
  readonly live: number;
}

export class ModuleSymbols {
  /** The module's name (`binfmt_misc`). */
  readonly module: string;
  readonly file: string;
  /** Defined symbols (st_shndx != SHN_UNDEF), in symtab order. */
  readonly symbols: readonly ModuleSymbol[];
  readonly #view: ElfView | undefined;
  readonly #byName = new Map<string, ModuleSymbol[]>();

  private constructor(module: string, file: string, view: ElfView | undefined, symbols: ModuleSymbol[]) {
    this.module = module;
    this.file = file;
    this.#view = view;
    this.symbols = symbols;
    for (const s of symbols) {
      if (s.name === '') continue;
      const list = this.#byName.get(s.name);
      if (list) list.push(s);
      else this.#byName.set(s.name, [s]);
    }
  }

  /** Read a module file. Compressed modules are refused with a hint. */
  static read(module: string, file: string): ModuleSymbols {
    if (/\.ko\.(xz|zst|gz)$/.test(file)) {
      throw new SutureError('invalid-input', `${file} is compressed; suture reads uncompressed .ko files`, {
        hint: 'decompress it next to the original (xz -dk / zstd -d) and point suture at the .ko',
      });
    }
    let bytes: Buffer;
    try {
      bytes = readFileSync(file);
    } catch (e) {
      throw fsError(e, `reading module ${module}`, file);
    }
    return ModuleSymbols.fromBytes(module, new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), file);
  }

  static fromBytes(module: string, bytes: Uint8Array, file = `${module}.ko`): ModuleSymbols {
    const view = ElfView.parse(bytes, { file });
    const symtab = view.sections.find((s) => s.type === 2 /* SHT_SYMTAB */);
    if (!symtab) throw new SutureError('invalid-input', `${file} has no symbol table (stripped?)`, { hint: 'use the module file the kernel package ships' });
    const pcpu = view.findSection('.data..percpu')?.index;
    const out: ModuleSymbol[] = [];
    for (const e of view.symbols(symtab)) {
      if (e.index === 0 || e.rawShndx === SHN_UNDEF) continue;
      const special = e.rawShndx >= 0xff00 && e.rawShndx !== 0xffff;
      const sec: SectionHeader | undefined = special ? undefined : view.sections[e.shndx];
      const core =
        !special &&
        e.name !== '' &&
        sec !== undefined &&
        (e.shndx === pcpu || ((sec.flags & SHF_ALLOC) !== 0n && !sec.name.startsWith('.init')));
      out.push({
        index: e.index,
        name: e.name,
        type: stType(e.info),
        bind: stBind(e.info),
        shndx: e.shndx,
        section: sec?.name ?? '',
        value: e.value,
        size: e.size,
        core,
      });
    }
    return new ModuleSymbols(module, file, view, out);
  }

  /** A module made of a symbol list alone (tests; no code to inspect). */
  static fromList(module: string, symbols: ModuleSymbol[], file = `${module}.ko`): ModuleSymbols {
    return new ModuleSymbols(module, file, undefined, symbols);
  }

  /**
   * The module's `__versions` (MODVERSIONS): for each symbol it imports, the
   * CRC it was linked against (struct modversion_info: an unsigned long CRC,
   * then the name in the remaining 56 bytes). Empty without MODVERSIONS.
   */
  versions(): Map<string, number> {
    const out = new Map<string, number>();
    const sec = this.#view?.findSection('__versions');
    if (!sec || !this.#view) return out;
    const d = this.#view.data(sec);
    const dv = new DataView(d.buffer, d.byteOffset, d.byteLength);
    for (let at = 0; at + 64 <= d.length; at += 64) {
      const name = d.subarray(at + 8, at + 64);
      const end = name.indexOf(0);
      out.set(Buffer.from(end < 0 ? name : name.subarray(0, end)).toString('latin1'), dv.getUint32(at, true));
    }
    return out;
  }

  #clones: CloneIndex | undefined;

  /** Names of its symbols that start with `name.` (GCC clones), in symtab order. */
  clonesOf(name: string): string[] {
    this.#clones ??= new CloneIndex(this.symbols.map((s) => s.name));
    return this.#clones.of(name);
  }

  /** The first `size` bytes of a symbol in the module file (undefined for a symbol without file bytes, or a list-only module). */
  bytesOf(sym: ModuleSymbol, size: number): Uint8Array | undefined {
    const sec = this.#view?.sections[sym.shndx];
    if (!this.#view || !sec || sec.type === 8 /* SHT_NOBITS */) return undefined;
    return this.#view.data(sec).subarray(Number(sym.value), Number(sym.value) + size);
  }

  /** Defined symbols with this name, in symtab order. */
  named(name: string): readonly ModuleSymbol[] {
    return this.#byName.get(name) ?? [];
  }

  has(name: string): boolean {
    return this.#byName.has(name);
  }

  /**
   * The sympos of a symbol in both views (0 when its name is unique there).
   * They differ only when a same-named copy is not a core symbol (e.g. in
   * `.init.text`); a caller must then refuse, as neither number is right for
   * both a late and an early load of the module.
   */
  sympos(sym: ModuleSymbol): ModuleSympos {
    const all = this.named(sym.name);
    const core = all.filter((s) => s.core);
    const pos = (list: readonly ModuleSymbol[]) => (list.length === 1 ? 0 : list.indexOf(sym) + 1);
    return { loading: pos(all), live: sym.core ? pos(core) : -1 };
  }

  /** The symbols just before and after one, in symtab order (for messages). */
  neighbours(sym: ModuleSymbol, n = 2): { before: ModuleSymbol[]; after: ModuleSymbol[] } {
    const named = this.symbols.filter((s) => s.name !== '' && s.type !== STT_SECTION && s.type !== STT_FILE);
    const i = named.indexOf(sym);
    return { before: named.slice(Math.max(0, i - n), i), after: named.slice(i + 1, i + 1 + n) };
  }

  /** Position of a symbol among the named, non-section symbols (for adjacency). */
  rank(sym: ModuleSymbol): number {
    return this.symbols.indexOf(sym);
  }

  /**
   * The symbols a function's code refers to, through the relocations inside
   * its bytes: directly, or through a section symbol plus an addend that
   * falls inside a symbol (a static variable reached as `.data + 8`).
   */
  referencesFrom(fn: ModuleSymbol): Set<ModuleSymbol> {
    const out = new Set<ModuleSymbol>();
    const view = this.#view;
    if (fn.type !== STT_FUNC || view === undefined) return out;
    const symtab = view.sections.find((s) => s.type === 2)!;
    const entries = view.symbols(symtab);
    const byIndex = new Map(this.symbols.map((s) => [s.index, s]));
    const end = fn.value + (fn.size > 0n ? fn.size : 1n);
    // Calls and jumps inside the function's own section are resolved by the
    // assembler and leave no relocation: read their rel32 from the bytes.
    const sec = view.sections[fn.shndx];
    const covered = new Set<bigint>();
    for (const rs of view.sections) {
      if ((rs.type !== 4 && rs.type !== 9) || rs.info !== fn.shndx) continue;
      for (const r of view.relocations(rs)) if (r.offset >= fn.value && r.offset < end) for (let k = 0n; k < 4n; k++) covered.add(r.offset + k);
    }
    if (sec && sec.type !== 8 /* NOBITS */) {
      const data = view.data(sec);
      const starts = new Map<bigint, ModuleSymbol>();
      for (const s of this.symbols) if (s.shndx === fn.shndx && s.type === STT_FUNC) starts.set(s.value, s);
      for (let at = fn.value; at + 5n <= end; at++) {
        const op = data[Number(at)];
        if ((op !== 0xe8 && op !== 0xe9) || covered.has(at + 1n)) continue;
        const disp = BigInt(new DataView(data.buffer, data.byteOffset + Number(at) + 1, 4).getInt32(0, true));
        const target = starts.get(at + 5n + disp);
        if (target && target !== fn) out.add(target);
      }
    }
    for (const rs of view.sections) {
      if ((rs.type !== 4 && rs.type !== 9) || rs.info !== fn.shndx) continue;
      for (const r of view.relocations(rs)) {
        if (r.offset < fn.value || r.offset >= end) continue;
        const target = entries[r.symbol];
        if (!target) continue;
        const direct = byIndex.get(r.symbol);
        if (direct && stType(target.info) !== STT_SECTION) {
          out.add(direct);
          continue;
        }
        if (stType(target.info) !== STT_SECTION) continue;
        // Section symbol + addend: PC-relative addends carry -4 (the distance to the next instruction).
        const pcrel = r.type === R_X86_64_PC32 || r.type === R_X86_64_PLT32;
        const at = target.value + r.addend + (pcrel ? 4n : 0n);
        for (const s of this.symbols) {
          if (s.shndx !== target.shndx || s.type === STT_SECTION || s.name === '') continue;
          if (at === s.value || (at > s.value && at < s.value + s.size)) out.add(s);
        }
      }
    }
    return out;
  }

  /**
   * Whether ftrace can patch a function of this module: its first instruction
   * (behind `endbr64` in IBT kernels) is the 5-byte `call __fentry__` and
   * `__mcount_loc` lists that address.
   */
  ftraceSite(fn: ModuleSymbol): { fentryCall: boolean; mcountLoc: boolean } {
    const view = this.#view;
    if (view === undefined) return { fentryCall: false, mcountLoc: false };
    const symtab = view.sections.find((s) => s.type === 2)!;
    const entries = view.symbols(symtab);
    let fentryCall = false;
    const sec = view.sections[fn.shndx];
    const data = sec ? view.data(sec) : undefined;
    const site = Number(fn.value) + (data ? ftraceSiteOffset(data, Number(fn.value)) : 0);
    if (data?.[site] === 0xe8) {
      for (const rs of view.sections) {
        if ((rs.type !== 4 && rs.type !== 9) || rs.info !== fn.shndx) continue;
        for (const r of view.relocations(rs)) {
          if (r.offset === BigInt(site + 1) && entries[r.symbol]?.name === '__fentry__') fentryCall = true;
        }
      }
    }
    let mcountLoc = false;
    const mcount = view.findSection('__mcount_loc');
    if (mcount) {
      for (const rs of view.sections) {
        if (rs.type !== 4 || rs.info !== mcount.index) continue;
        for (const r of view.relocations(rs)) {
          const t = entries[r.symbol];
          if (!t || t.shndx !== fn.shndx) continue;
          if (t.value + r.addend === BigInt(site)) mcountLoc = true;
        }
      }
    }
    return { fentryCall, mcountLoc };
  }
}
