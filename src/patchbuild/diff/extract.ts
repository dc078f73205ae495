// SPDX-License-Identifier: GPL-2.0-only
/**
 * Extract what a livepatch carries from a patched object: the changed and
 * new functions, the data they own (new data, fresh copies of the compiler's
 * bookkeeping statics, strings, constants), and exactly their entries of
 * every special section. Every other symbol they use becomes an undefined
 * reference whose name the caller chooses (a `.klp.sym.` name for what
 * livepatch must resolve, the plain name for exports).
 *
 * Works by pruning a copy of the patched object's model: sections not
 * needed are dropped, relocations against them are turned into relocations
 * against symbols, and the result is laid out afresh.
 */
import {
  DataSection,
  ElfObject,
  ElfSymbol,
  GroupSection,
  Relocation,
  RelocationSection,
  SHN_UNDEF,
  STB_GLOBAL,
  STB_LOCAL,
  STT_FUNC,
  STT_NOTYPE,
  STT_OBJECT,
  SymbolTableSection,
  writeElf,
  type Section,
} from '../../elf/mod.js';
import { SutureError } from '../../util/errors.js';
import { referencedSymbol } from './identity.js';
import { ObjectIndex, relocationsInRange, type IndexedSymbol } from './object-index.js';
import { entrySize, specialEntries } from './special-entries.js';
import { isAnonymousTarget, isIgnoredSection, isSpecialStatic, type Refusal } from './rules.js';
import { rewriteRuntimeConstants, type RuntimeConstSite } from './runtime-const.js';
import { SPECIAL_SECTIONS } from './special-sections.js';

/** Carried code refers into the kernel's writable data where no variable is (a refusal, with its rule). */
export class UnnamedReferenceError extends SutureError {
  constructor(file: string, readonly refusal: Refusal) {
    super('unsupported-change', `${file}: ${refusal.reason}`, { hint: refusal.instead });
  }
}

export interface ExtractRequest {
  /** The translation unit, for refusals (default: the file name given). */
  unit?: string;
  /** Functions to carry, by their name in the patched object. */
  functions: readonly string[];
  /** Data to carry as a new copy (new data, changed constants). */
  data: readonly string[];
  /** Global name for each carried function the klp structures point at (changed ones). */
  exportAs: ReadonlyMap<string, string>;
  /** The name an undefined reference to a symbol of this unit (or outside it) gets. */
  externalName(sym: { name: string; local: boolean; kind: 'function' | 'data' | 'other' }): string;
  structSize(name: string): number | undefined;
}

export interface Extracted {
  bytes: Uint8Array;
  /** Names of the undefined symbols of the result (each one a reference the module must resolve). */
  references: string[];
  /** Sections carried, by name. */
  sections: string[];
  /** Boot-time constants of carried code rewritten into loads of their variables. */
  runtimeConstants: RuntimeConstSite[];
}

const kindOf = (s: ElfSymbol): 'function' | 'data' | 'other' => (s.type === STT_FUNC ? 'function' : s.type === STT_OBJECT ? 'data' : 'other');

export function extract(patchedBytes: Uint8Array, file: string, req: ExtractRequest): Extracted {
  const obj = ElfObject.parse(patchedBytes, { file });
  const idx = new ObjectIndex(obj, file);
  const symtab = obj.symtab;
  if (!symtab) throw new SutureError('invalid-input', `${file} has no symbol table`);

  const keep = new Set<Section>();
  const queue: Section[] = [];
  const take = (s: Section) => {
    if (!keep.has(s)) {
      keep.add(s);
      queue.push(s);
    }
  };
  const wantedData = new Set(req.data);
  for (const name of req.functions) {
    const f = idx.functions.get(name);
    if (!f) throw new SutureError('internal', `${file}: the function ${name} to extract is not in the patched object`);
    take(f.section);
  }
  for (const name of req.data) {
    const d = idx.data.get(name);
    if (d) take(d.section);
  }

  /** Whether a defined symbol's section comes along. */
  const carried = (s: IndexedSymbol): boolean => {
    if (keep.has(s.section)) return true;
    if (s.sym.type === STT_FUNC) return false;
    return wantedData.has(s.name) || isSpecialStatic(s.name);
  };

  // Which special-section entries belong to carried functions.
  const specials = SPECIAL_SECTIONS.filter((spec) => spec.carry !== false).map((spec) => ({ spec, sec: obj.section(spec.name) })).filter((x): x is { spec: (typeof SPECIAL_SECTIONS)[number]; sec: Section } => !!x.sec);
  // One walk over each table (special-entries.ts): which entries belong to carried functions is asked again as the closure grows.
  const entries = new Map(specials.map(({ spec }) => [spec, [...specialEntries(idx, spec, entrySize(spec, (n) => req.structSize(n)))]]));

  // Closure: follow relocations from what is carried.
  let grew = true;
  while (grew) {
    while (queue.length) {
      const sec = queue.pop()!;
      for (const r of idx.relocationsOf(sec)) {
        const s = r.symbol;
        if (!s || typeof s.section === 'number' || s.isUndefined) continue;
        if (isAnonymousTarget(s)) {
          const base = Number(s.value);
          const inner = referencedSymbol(idx, s.section, base, r)?.sym;
          if (!inner) {
            // Anonymous: strings, constants, jump tables, .altinstr_replacement: carry the section.
            // Never a copy of the kernel's own writable state: a reference into written data that names
            // none of its objects is one this engine cannot read, and a copy would be silently wrong.
            if ((s.section.flags & 1n) /* SHF_WRITE */ && idx.symbolsOf(s.section).length && !keep.has(s.section)) {
              const owner = idx.functions.get([...req.functions].find((n) => idx.functions.get(n)?.section === sec) ?? '')?.name ?? sec.name;
              throw new UnnamedReferenceError(file, {
                rule: 'unnamed-data-reference',
                file: req.unit ?? file,
                symbol: owner,
                reason: `${owner} refers to ${s.section.name}+${base + Number(r.addend)} (relocation type ${r.type}), which holds the kernel's variables but none at that offset: carrying a copy would give the patched code data the kernel never uses`,
                instead: `write the access so that it names the variable (its address, or an element of it), or build this fix on its own and check the instruction with objdump`,
              });
            }
            if (!isIgnoredSection(s.section)) take(s.section);
          } else if (carried(inner)) take(inner.section);
          continue;
        }
        const e = idx.functions.get(s.name) ?? idx.data.get(s.name);
        if (e && carried(e)) take(e.section);
      }
    }
    grew = false;
    for (const { spec } of specials) {
      for (const e of entries.get(spec)!) {
        if (e.ownerSection && keep.has(e.ownerSection)) {
          for (const r of e.relocs) {
            const s = r.symbol;
            // Anonymous targets of a kept entry (.altinstr_replacement, strings): carry them too.
            if (s && typeof s.section !== 'number' && !s.isUndefined && isAnonymousTarget(s) && !keep.has(s.section)) {
              if (!idx.symbolAt(s.section, Number(s.value) + Number(r.addend))) {
                take(s.section);
                grew = true;
              }
            }
          }
        }
      }
    }
  }

  // Boot-time constants in carried code become loads of their variables (runtime-const.ts).
  const runtimeConstants = rewriteRuntimeConstants(obj, idx, keep, file);

  // Special sections: only the entries of carried functions (ORC tables pair by index).
  for (const { spec, sec } of specials) {
    if (!(sec instanceof DataSection)) continue;
    const size = entrySize(spec, (n) => req.structSize(n));
    const rels = obj.relocationsFor(sec);
    const relocs = rels.flatMap((rs) => rs.relocations);
    const keptOffsets = entries.get(spec)!.filter((e) => e.ownerSection && keep.has(e.ownerSection)).map((e) => e.offset);
    const data = new Uint8Array(keptOffsets.length * size);
    const moved: Relocation[] = [];
    const byOffset = [...relocs].sort((a, b) => (a.offset < b.offset ? -1 : a.offset > b.offset ? 1 : 0));
    keptOffsets.forEach((off, i) => {
      data.set(sec.data.subarray(off, off + size), i * size);
      for (const r of relocationsInRange(byOffset, off, off + size)) moved.push(new Relocation(BigInt(i * size) + (r.offset - BigInt(off)), r.type, r.symbol, r.addend));
    });
    sec.data = data;
    for (const rs of rels) rs.relocations.splice(0, rs.relocations.length, ...(rs === rels[0] ? moved : []));
    if (spec.pairedWith) {
      const pair = obj.section(spec.pairedWith.name);
      const psize = req.structSize(spec.pairedWith.struct);
      if (pair instanceof DataSection && psize) {
        const pdata = new Uint8Array(keptOffsets.length * psize);
        keptOffsets.forEach((off, i) => pdata.set(pair.data.subarray((off / size) * psize, (off / size + 1) * psize), i * psize));
        pair.data = pdata;
        keep.add(pair);
      }
    }
    if (keptOffsets.length) keep.add(sec);
  }

  // Relocations of carried sections: turn references to dropped sections into references to symbols.
  const external = new Map<string, ElfSymbol>();
  const externalFor = (name: string, local: boolean, kind: 'function' | 'data' | 'other'): ElfSymbol => {
    const ext = req.externalName({ name, local, kind });
    let s = external.get(ext);
    if (!s) {
      s = new ElfSymbol(ext, { bind: STB_GLOBAL, type: STT_NOTYPE, section: SHN_UNDEF });
      external.set(ext, s);
    }
    return s;
  };
  for (const rs of obj.sections) {
    if (!(rs instanceof RelocationSection) || !rs.target || !keep.has(rs.target)) continue;
    for (const r of rs.relocations) {
      const s = r.symbol;
      if (!s || typeof s.section === 'number') continue;
      if (keep.has(s.section)) continue;
      if (isAnonymousTarget(s)) {
        const base = Number(s.value);
        const inner = referencedSymbol(idx, s.section, base, r)?.sym;
        if (!inner) throw new SutureError('internal', `${file}: a relocation in ${rs.target.name} points into ${s.section.name}+${base + Number(r.addend)}, which is not carried and has no symbol there`);
        r.symbol = externalFor(inner.name, inner.sym.bind === STB_LOCAL, kindOf(inner.sym));
        r.addend += BigInt(base - inner.offset);
      } else {
        r.symbol = externalFor(s.name, s.bind === STB_LOCAL, kindOf(s));
      }
    }
  }

  // Drop what is not carried: sections, their relocations, groups, and symbols defined there.
  const dropped = (s: Section) =>
    !(s instanceof SymbolTableSection) &&
    s !== obj.shstrtab &&
    s !== symtab.strtab &&
    !(s instanceof RelocationSection && s.target && keep.has(s.target)) &&
    !keep.has(s) &&
    s.name !== '.note.GNU-stack';
  obj.sections = obj.sections.filter((s) => !(s instanceof GroupSection) && !dropped(s) && !(s.type === 18 /* SYMTAB_SHNDX */));
  const kept = new Set(obj.sections);
  symtab.symbols = symtab.symbols.filter((s) => typeof s.section === 'number' ? s.section !== SHN_UNDEF || false : kept.has(s.section));
  // Undefined symbols of the input (externals) that carried code still uses.
  const used = new Set<ElfSymbol>();
  for (const rs of obj.sections) if (rs instanceof RelocationSection) for (const r of rs.relocations) if (r.symbol) used.add(r.symbol);
  for (const s of [...used]) {
    if (s.isUndefined && !external.has(s.name)) {
      // An external of the input: it keeps its name unless the caller renames it.
      const ext = req.externalName({ name: s.name, local: false, kind: 'other' });
      if (ext !== s.name) {
        const e = externalFor(s.name, false, 'other');
        for (const rs of obj.sections) if (rs instanceof RelocationSection) for (const r of rs.relocations) if (r.symbol === s) r.symbol = e;
      } else {
        external.set(s.name, s);
      }
    }
  }
  for (const s of external.values()) if (!symtab.symbols.includes(s)) symtab.symbols.push(s);
  // Carried changed functions get the global names the klp structures use.
  for (const [name, global] of req.exportAs) {
    const f = symtab.symbols.find((s) => s.name === name && s.type === STT_FUNC && typeof s.section !== 'number');
    if (!f) throw new SutureError('internal', `${file}: ${name} is not among the carried functions`);
    f.name = global;
    f.info = (STB_GLOBAL << 4) | STT_FUNC;
  }
  // module_init()/module_exit() alias the module's entry points as init_module/cleanup_module; a carried
  // entry point keeps them defined, and the livepatch module has its own: they stay local here.
  for (const s of symtab.symbols) {
    if ((s.name === 'init_module' || s.name === 'cleanup_module') && typeof s.section !== 'number') s.info = (STB_LOCAL << 4) | s.type;
  }
  // Locals first, as ELF requires (sh_info = first global).
  symtab.symbols.sort((a, b) => (a.bind === STB_LOCAL ? 0 : 1) - (b.bind === STB_LOCAL ? 0 : 1));
  for (const s of obj.sections) s.flags &= ~0x200n; // SHF_GROUP: groups are gone
  obj.trailer = new Uint8Array(0);
  const bytes = writeElf(obj, { mode: 'fresh' });
  return {
    bytes,
    references: [...external.keys()].sort(),
    sections: obj.sections.filter((s) => !(s instanceof RelocationSection) && s.name).map((s) => s.name),
    runtimeConstants,
  };
}

