// SPDX-License-Identifier: GPL-2.0-only
/**
 * Resolving a symbol name to (object, name, sympos), by the rules the
 * kernel's livepatch core applies (kernel/livepatch/core.c
 * klp_find_object_symbol):
 *
 * - sympos 0 means "the name is unique in that object"; N >= 1 means the Nth
 *   copy, counted only inside the object, in kallsyms order (vmlinux: by
 *   address; a module: its own symtab order).
 * - A name exported by vmlinux is reached by an ordinary relocation (the
 *   linker-visible global), so it needs no sympos.
 * - A duplicated `static` name is told apart by its translation unit: the
 *   copy that the original code of the other symbols used with it refers to (read
 *   from the shipped image or the module's relocations), or else the copy
 *   right next to them (a file's functions are contiguous in `.text`, its
 *   variables in `.data`/`.bss`). Otherwise the caller gets every candidate,
 *   with address and neighbours, and must give a hint.
 *
 * Everything here is a pure function of parsed data (kallsyms, symtabs,
 * exports, and optionally the image's code).
 */
import { STT_FILE, STT_FUNC, STT_OBJECT, STT_SECTION } from '../../elf/mod.js';
import { MODULE_NAME_MAX } from '../module-file.js';
import { SutureError } from '../../util/errors.js';
import { codeReferences, vmlinuxFtraceSite, type KernelImage, type McountTable } from './image.js';
import { isLocalType, isTextType, type KallsymsEntry, type VmlinuxSymbols } from './kallsyms.js';
import type { ModuleSymbol, ModuleSymbols } from './module-symbols.js';
import type { ExportedSymbol, Exports } from './symvers.js';

export const KSYM_NAME_MAX = 511;

/** Everything the resolver reads. */
export interface SymbolSources {
  readonly vmlinux: VmlinuxSymbols;
  readonly exports: Exports;
  /** The symbols of the modules to search, by module name. */
  readonly modules: ReadonlyMap<string, ModuleSymbols>;
  /** The shipped image's code (optional: without it only adjacency tells copies apart). */
  readonly image?: { readonly image: KernelImage; readonly mcount: McountTable } | undefined;
}

/** One copy of a name in one object. */
export interface Candidate {
  readonly object: string;
  readonly name: string;
  /** Its livepatch sympos inside the object (0 when the name is unique there). */
  readonly sympos: number;
  /** vmlinux: its kallsyms entry. */
  readonly entry?: KallsymsEntry;
  /** A module: its symtab entry. */
  readonly symbol?: ModuleSymbol;
  /** Code or data, and where (for adjacency: candidates compare only with anchors of the same region). */
  readonly region: string;
  readonly isFunction: boolean;
  readonly isLocal: boolean;
  /** Position in the object's symbol order (kallsyms index or symtab position). */
  readonly rank: number;
}

/**
 * A hint that names the copy: its position in its object, or a symbol of the
 * same source file. `where` says where it was given and `label` how (for
 * messages; e.g. `fix.c:7` and `SUTURE_SYMPOS(vmlinux, m_show, 2)`).
 */
export type SymbolHint =
  | { readonly kind: 'sympos'; readonly object: string; readonly name: string; readonly pos: number; readonly where: string; readonly label?: string }
  | { readonly kind: 'near'; readonly object: string; readonly name: string; readonly neighbour: string; readonly where: string; readonly label?: string };

/**
 * A name that resolves to no copy ('not-found') or to several ('ambiguous'),
 * with what the caller needs to phrase its own hint.
 */
export class SymbolResolutionError extends SutureError {
  readonly symbol: string;
  readonly objects: readonly string[];
  /** Every copy found (ambiguous), in object then kallsyms/symtab order. */
  readonly candidates: readonly Candidate[];
  /** Compiler-made variants of the name (`name.isra.0`, `name.cold`). */
  readonly clones: readonly string[];
  /** A module that exports the name but was not searched. */
  readonly exportedBy: string | undefined;

  constructor(
    kind: 'not-found' | 'ambiguous',
    message: string,
    fields: { symbol: string; objects: readonly string[]; candidates?: readonly Candidate[]; clones?: readonly string[]; exportedBy?: string | undefined },
    opts: { hint?: string; details?: string } = {},
  ) {
    super(kind, message, opts);
    this.name = 'SymbolResolutionError';
    this.symbol = fields.symbol;
    this.objects = fields.objects;
    this.candidates = fields.candidates ?? [];
    this.clones = fields.clones ?? [];
    this.exportedBy = fields.exportedBy;
  }
}

function hintLabel(h: SymbolHint): string {
  return h.label ?? (h.kind === 'sympos' ? `sympos hint (${h.object}, ${h.name}, ${h.pos})` : `neighbour hint (${h.object}, ${h.name}, ${h.neighbour})`);
}

export type ResolvedHow = 'exported' | 'unique' | 'hint' | 'referenced' | 'adjacent';

export interface ResolvedSymbol {
  readonly object: string;
  readonly name: string;
  readonly sympos: number;
  /** Set when vmlinux exports it: an ordinary relocation (with its MODVERSIONS CRC). */
  readonly exported?: ExportedSymbol;
  /** The copy chosen (absent for an exported symbol that kallsyms does not list). */
  readonly candidate?: Candidate;
  readonly how: ResolvedHow;
  /** One sentence saying why this copy. */
  readonly why: string;
  /** How many copies the objects searched have. */
  readonly copies: number;
}

export interface ResolveRequest {
  readonly name: string;
  /** Objects to search: 'vmlinux' and/or target module names. */
  readonly objects: readonly string[];
  /** A function the patch replaces (must be code), or any symbol the patch refers to. */
  readonly role: 'replaced' | 'referenced';
  /** Symbols already resolved to one copy: their translation units are the evidence. */
  readonly anchors: readonly Candidate[];
  readonly hint?: SymbolHint | undefined;
  /** Who uses the name, for messages: "fix.c: my_show" or "fix.c:12". */
  readonly usedBy: string;
}

// ---- candidates ---------------------------------------------------------------------------------

function vmlinuxCandidate(src: SymbolSources, e: KallsymsEntry): Candidate {
  const region = src.vmlinux.regionOf(e.address, e.type);
  return {
    object: 'vmlinux',
    name: e.name,
    sympos: src.vmlinux.sympos(e),
    entry: e,
    region,
    isFunction: isTextType(e.type) && (region === 'text' || region === 'init-text' || region === 'other'),
    isLocal: isLocalType(e.type),
    rank: e.index,
  };
}

function moduleCandidate(mod: ModuleSymbols, s: ModuleSymbol): Candidate {
  const pos = mod.sympos(s);
  return {
    object: mod.module,
    name: s.name,
    sympos: pos.loading,
    symbol: s,
    region: s.section.startsWith('.text') ? '.text' : s.section,
    isFunction: s.type === STT_FUNC,
    isLocal: s.bind === 0,
    rank: mod.rank(s),
  };
}

/** Every copy of `name` in the given objects (vmlinux in kallsyms order, then each module in symtab order). */
export function candidatesOf(src: SymbolSources, name: string, objects: readonly string[]): Candidate[] {
  const out: Candidate[] = [];
  for (const obj of objects) {
    if (obj === 'vmlinux') {
      for (const e of src.vmlinux.named(name)) out.push(vmlinuxCandidate(src, e));
    } else {
      const mod = src.modules.get(obj);
      if (!mod) continue;
      for (const s of mod.named(name)) {
        if (s.type === STT_SECTION || s.type === STT_FILE) continue;
        out.push(moduleCandidate(mod, s));
      }
    }
  }
  return out;
}

/** Describe a candidate for messages: `#2 ffffffff8114da00 t m_show (after module_kallsyms_on_each_symbol, before m_next)`. */
export function describeCandidate(src: SymbolSources, c: Candidate): string {
  if (c.entry) {
    const { before, after } = src.vmlinux.neighbours(c.entry, 2);
    return `#${c.sympos} ${c.entry.address.toString(16).padStart(16, '0')} ${c.entry.type} ${c.name}  (after ${
      before.map((e) => e.name).join(', ') || '-'
    }; before ${after.map((e) => e.name).join(', ') || '-'})`;
  }
  const mod = src.modules.get(c.object)!;
  const { before, after } = mod.neighbours(c.symbol!, 2);
  return `#${c.sympos} ${c.object} ${c.symbol!.section}+0x${c.symbol!.value.toString(16)} ${c.name}  (after ${
    before.map((s) => s.name).join(', ') || '-'
  }; before ${after.map((s) => s.name).join(', ') || '-'})`;
}

// ---- evidence -----------------------------------------------------------------------------------

/** Which candidates the original code of an anchor function refers to. */
function referencedBy(src: SymbolSources, anchor: Candidate, cands: readonly Candidate[]): Set<Candidate> {
  const out = new Set<Candidate>();
  if (!anchor.isFunction) return out;
  if (anchor.entry && src.image) {
    const vm = cands.filter((c) => c.entry);
    const hits = codeReferences(src.image.image, src.vmlinux, anchor.entry, vm.map((c) => c.entry!));
    for (const c of vm) if (hits.has(c.entry!)) out.add(c);
  } else if (anchor.symbol) {
    const mod = src.modules.get(anchor.object);
    if (!mod) return out;
    const refs = mod.referencesFrom(anchor.symbol);
    for (const c of cands) if (c.symbol && c.object === anchor.object && refs.has(c.symbol)) out.add(c);
  }
  return out;
}

/** Distance, in symbols, from a candidate to the nearest anchor of the same object and region (Infinity if none). */
function distance(c: Candidate, anchors: readonly Candidate[]): { d: number; anchor?: Candidate } {
  let best: { d: number; anchor?: Candidate } = { d: Infinity };
  for (const a of anchors) {
    if (a.object !== c.object || a.region !== c.region || a === c) continue;
    const d = Math.abs(a.rank - c.rank);
    if (d < best.d) best = { d, anchor: a };
  }
  return best;
}

/**
 * Adjacency decides only when it is clear: the nearest copy is within this
 * many symbols of an anchor, and every other copy is at least ADJACENT_RATIO
 * times as far.
 */
export const ADJACENT_MAX = 1500;
export const ADJACENT_RATIO = 8;

/**
 * Pick one copy by translation unit, or return undefined. Exposed for tests;
 * resolveSymbol is the entry point.
 */
export function pickByUnit(
  src: SymbolSources,
  cands: readonly Candidate[],
  anchors: readonly Candidate[],
): { pick: Candidate; how: 'referenced' | 'adjacent'; why: string } | undefined {
  let pool = [...cands];
  const refBy = new Map<Candidate, Candidate>();
  for (const a of anchors) {
    for (const c of referencedBy(src, a, pool)) if (!refBy.has(c)) refBy.set(c, a);
  }
  if (refBy.size === 1) {
    const [[c, a]] = [...refBy.entries()] as [[Candidate, Candidate]];
    return { pick: c, how: 'referenced', why: `the original code of ${a.name} (${a.object}) refers to this copy` };
  }
  if (refBy.size > 1) pool = pool.filter((c) => refBy.has(c));
  const scored = pool.map((c) => ({ c, ...distance(c, anchors) })).sort((x, y) => x.d - y.d);
  const [first, second] = scored;
  if (first && first.d <= ADJACENT_MAX && (second === undefined || second.d >= Math.max(first.d * ADJACENT_RATIO, first.d + 16))) {
    return {
      pick: first.c,
      how: 'adjacent',
      why: `it lies ${first.d} symbol(s) from ${first.anchor!.name} in ${first.c.object}, the next copy ${
        second === undefined || second.d === Infinity ? 'nowhere near' : `${second.d} away`
      }: the same translation unit`,
    };
  }
  return undefined;
}

// ---- resolution ---------------------------------------------------------------------------------


/** Check the lengths the kernel accepts for a symbol name. */
export function checkSymbolName(name: string, usedBy: string): void {
  if (name.length > KSYM_NAME_MAX) {
    throw new SutureError('limit', `${usedBy}: symbol name '${name.slice(0, 40)}...' is ${name.length} characters; the kernel's limit is ${KSYM_NAME_MAX} (KSYM_NAME_LEN 512 with its NUL)`, {
      hint: 'kallsyms cannot hold a longer name: check the name',
    });
  }
}

/** Check an object name (vmlinux or a module name) against the kernel's limits. */
export function checkObjectName(name: string, usedBy: string): void {
  if (name.length > MODULE_NAME_MAX) {
    throw new SutureError('limit', `${usedBy}: object name '${name}' is ${name.length} characters; the kernel's limit is ${MODULE_NAME_MAX} (MODULE_NAME_LEN 56 with its NUL)`, {
      hint: 'no module of the kernel has such a name: check it',
    });
  }
  if (!/^[A-Za-z0-9_-]+$/.test(name)) {
    throw new SutureError('usage', `${usedBy}: '${name}' is not a module name (letters, digits, '_' and '-' only)`, {
      hint: 'use vmlinux for code built into the kernel, or the module name as lsmod shows it',
    });
  }
}

/**
 * Resolve one name. Throws SutureError 'not-found' (no copy), 'ambiguous'
 * (several copies, nothing tells them apart) or 'usage' (a bad hint).
 */
export function resolveSymbol(src: SymbolSources, req: ResolveRequest): ResolvedSymbol {
  const { name, hint, usedBy } = req;
  checkSymbolName(name, usedBy);
  const objects = hint ? [hint.object] : req.objects;
  const all = candidatesOf(src, name, objects);
  const cands = req.role === 'replaced' && all.some((c) => c.isFunction) ? all.filter((c) => c.isFunction) : all;
  const exported = objects.includes('vmlinux') ? src.exports.vmlinux(name) : undefined;

  if (hint?.kind === 'sympos') {
    if (hint.pos === 0) {
      if (cands.length !== 1) {
        if (cands.length === 0) throw notFound(src, name, objects, usedBy);
        throw ambiguous(src, name, cands, usedBy, `${hint.where}: ${hintLabel(hint)} says the name is unique, but ${hint.object} has ${cands.length} copies`);
      }
      return { object: hint.object, name, sympos: 0, candidate: cands[0]!, how: 'hint', why: `${hint.where}: ${hintLabel(hint)}`, copies: 1, ...(exported ? { exported } : {}) };
    }
    const pick = cands.find((c) => c.sympos === hint.pos);
    if (!pick) {
      throw new SutureError('usage', `${hint.where}: ${hintLabel(hint)}: ${hint.object} has ${cands.length} cop${cands.length === 1 ? 'y' : 'ies'} of ${name}`, {
        details: cands.map((c) => describeCandidate(src, c)).join('\n') || undefined,
        hint: cands.length === 1 ? `the name is unique there: use position 0 (or drop the hint)` : `use a position from 1 to ${cands.length}`,
      });
    }
    return { object: hint.object, name, sympos: pick.sympos, candidate: pick, how: 'hint', why: `${hint.where}: ${hintLabel(hint)}`, copies: cands.length };
  }

  // Exported by vmlinux and not also defined in a target module: an ordinary relocation.
  if (exported && req.role === 'referenced' && !hint && cands.every((c) => c.object === 'vmlinux')) {
    const vm = cands.find((c) => c.entry && !c.isLocal);
    return {
      object: 'vmlinux',
      name,
      sympos: 0,
      exported,
      ...(vm ? { candidate: vm } : {}),
      how: 'exported',
      why: `vmlinux exports it (${exported.exportType}${exported.namespace ? `, namespace ${exported.namespace}` : ''})`,
      copies: cands.length,
    };
  }

  if (cands.length === 0) throw notFound(src, name, objects, usedBy);
  if (cands.length === 1) {
    const c = cands[0]!;
    return finish(src, c, 'unique', `the only ${name} in ${objects.join(' and ')}`, cands.length, usedBy, exported);
  }

  let anchors = req.anchors;
  if (hint?.kind === 'near') {
    const n = candidatesOf(src, hint.neighbour, [hint.object]);
    if (n.length !== 1) {
      throw new SutureError(n.length === 0 ? 'not-found' : 'ambiguous', `${hint.where}: ${hintLabel(hint)}: ${hint.object} has ${n.length === 0 ? 'no' : `${n.length} copies of`} ${hint.neighbour}`, {
        hint: 'name a neighbour that is unique in that object: a function of the same source file',
      });
    }
    anchors = n;
  }
  const pick = pickByUnit(src, cands, anchors);
  if (pick) return finish(src, pick.pick, pick.how, pick.why, cands.length, usedBy, exported);
  throw ambiguous(src, name, cands, usedBy, undefined, anchors);
}

function finish(
  src: SymbolSources,
  c: Candidate,
  how: ResolvedHow,
  why: string,
  copies: number,
  usedBy: string,
  exported: ExportedSymbol | undefined,
): ResolvedSymbol {
  if (c.symbol) {
    const mod = src.modules.get(c.object)!;
    const pos = mod.sympos(c.symbol);
    if (pos.loading !== pos.live) {
      throw new SutureError('ambiguous', `${usedBy}: ${c.name} in ${c.object} is copy ${pos.loading} while the module loads but ${pos.live < 0 ? 'gone' : `copy ${pos.live}`} once its init has run (another copy is init-only)`, {
        hint: 'livepatch cannot name it reliably in both states; reference another symbol',
      });
    }
  }
  // Only an exported copy that is the chosen one is reached by an ordinary relocation.
  const viaExport = exported && c.object === 'vmlinux' && c.entry && !c.isLocal ? { exported } : {};
  return { object: c.object, name: c.name, sympos: c.sympos, candidate: c, how, why, copies, ...viaExport };
}

function notFound(src: SymbolSources, name: string, objects: readonly string[], usedBy: string): SutureError {
  const notes: string[] = [];
  const clones = src.vmlinux.clonesOf(name);
  for (const m of src.modules.values()) for (const c of m.clonesOf(name)) if (!clones.includes(c)) clones.push(c);
  if (clones.length) notes.push(`the compiler renamed or split it: ${clones.join(', ')}; use that name`);
  const exp = src.exports.get(name);
  const exportedBy = exp && !objects.includes(exp.object) ? exp.object : undefined;
  if (exportedBy) notes.push(`module ${exportedBy} exports it, and ${exportedBy} was not searched`);
  if (!clones.length && !exp) notes.push('it may be inlined everywhere (then it has no symbol), compiled out by the config, or misspelt');
  return new SymbolResolutionError(
    'not-found',
    `${usedBy}: symbol '${name}' is not in ${objects.join(' or ')} of the target kernel`,
    { symbol: name, objects, clones, exportedBy },
    { hint: notes.join('; ') },
  );
}

function ambiguous(
  src: SymbolSources,
  name: string,
  cands: readonly Candidate[],
  usedBy: string,
  lead?: string,
  anchors: readonly Candidate[] = [],
): SutureError {
  const objs = [...new Set(cands.map((c) => c.object))];
  const basis = anchors.length
    ? `none of them is referenced by or next to the other symbols used with it (${anchors.map((a) => a.name).slice(0, 6).join(', ')})`
    : 'no other symbol of the same source file is used with it to tell them apart';
  return new SymbolResolutionError(
    'ambiguous',
    lead ?? `${usedBy}: '${name}' is ambiguous: ${cands.length} copies in ${objs.join(' and ')}, and ${basis}`,
    { symbol: name, objects: objs, candidates: cands },
    {
      details: cands.map((c) => `${c.object === 'vmlinux' ? '' : `${c.object}: `}${describeCandidate(src, c)}`).join('\n'),
      hint: `name the copy: its object and its number N above (0 when it is unique in that object), or a symbol of the same source file`,
    },
  );
}

// ---- patchability -------------------------------------------------------------------------------

export interface Patchability {
  readonly ok: boolean;
  /** Why not (for the refusal). */
  readonly reason?: string;
  /** What to do instead. */
  readonly hint?: string;
  /** What was checked, for reports: `call __fentry__ at +0, in __mcount_loc`. */
  readonly evidence: string;
}

const NOTRACE_HINT = 'livepatch redirects a function at its ftrace call site: replace a traceable function that calls it instead';
const INIT_HINT = 'init code has run and is gone: fix what it left behind from a replaced function or a patch callback instead';

/**
 * Can ftrace (and so livepatch) redirect this function? It must be code, not
 * `__init` (freed after boot), and start with the `call __fentry__` that
 * `-mfentry` emits, listed in `__mcount_loc`. `notrace` functions and files
 * built without CC_FLAGS_FTRACE have neither.
 */
export function checkPatchable(src: SymbolSources, c: Candidate): Patchability {
  if (!c.isFunction) {
    const what = c.entry ? `kallsyms type '${c.entry.type}'` : c.symbol?.type === STT_OBJECT ? 'a variable' : `symbol type ${c.symbol?.type}`;
    return { ok: false, reason: `${c.name} is not a function (${what})`, hint: 'livepatch replaces functions: name a function', evidence: what };
  }
  if (c.entry) {
    if (c.region === 'init-text') {
      return { ok: false, reason: `${c.name} is __init code: it is freed after boot`, hint: INIT_HINT, evidence: 'in .init.text' };
    }
    if (!src.image) return { ok: true, evidence: 'not checked (no image)' };
    const site = vmlinuxFtraceSite(src.image.image, src.vmlinux, src.image.mcount, c.entry);
    const evidence = `first bytes ${site.firstBytes}; ${site.mcountLoc ? 'in' : 'not in'} __mcount_loc`;
    if (site.fentryCall && site.mcountLoc) return { ok: true, evidence: `call __fentry__ first (behind endbr64 under IBT), in __mcount_loc` };
    return {
      ok: false,
      reason: `${c.name} has no __fentry__ call site that ftrace manages (${evidence}): it is notrace, or its file is built without ftrace`,
      hint: NOTRACE_HINT,
      evidence,
    };
  }
  const mod = src.modules.get(c.object)!;
  const s = c.symbol!;
  if (s.section.startsWith('.init')) {
    return { ok: false, reason: `${c.name} is __init code of ${c.object} (section ${s.section}): it is freed after the module's init`, hint: INIT_HINT, evidence: s.section };
  }
  const site = mod.ftraceSite(s);
  const evidence = `${site.fentryCall ? 'call __fentry__ first (behind endbr64 under IBT)' : 'no call __fentry__ first (behind endbr64 under IBT)'}; ${site.mcountLoc ? 'in' : 'not in'} __mcount_loc`;
  if (site.fentryCall && site.mcountLoc) return { ok: true, evidence };
  return { ok: false, reason: `${c.name} in ${c.object} has no __fentry__ call site that ftrace manages (${evidence}): it is notrace`, hint: NOTRACE_HINT, evidence };
}

export { MODULE_NAME_MAX };
