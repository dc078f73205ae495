// SPDX-License-Identifier: GPL-2.0-only
/**
 * The extract stage of a patch build: from each unit's patched object, only
 * what the patch carries (its changed and new functions, the data they own,
 * and their special-section entries: diff/extract.ts), written as a shipped
 * object of the module's kbuild directory. Every reference out of the
 * carried code is named here: an export stays a plain name, anything else a
 * klp symbol (`.klp.sym.<object>.<name>,<sympos>`), an export of a module
 * the patched module depends on a `.suture.dep.` name (klp/plan.ts). Jump
 * labels and static calls on a key a module owns are refused.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ElfObject, RelocationSection, STT_SECTION } from '../elf/mod.js';
import type { BtfStructs } from '../kernel/btf.js';
import { moduleName } from '../kernel/modules.js';
import { SymbolResolutionError, dependencyExport, resolveSymbol, type ResolvedSymbol } from '../kernel/symbols/mod.js';
import type { CallbackRecord } from './author-records.js';
import { extract, UnnamedReferenceError } from './diff/extract.js';
import type { RuntimeConstSite } from './diff/runtime-const.js';
import { moduleKeyRefusal, refuse, type Refusal } from './diff/rules.js';
import type { CallbackKind, KlpFuncSpec } from './generate.js';
import type { FunctionReport } from './reasons.js';
import type { PatchSymbols } from './replaced.js';
import type { UnitVerdict, Verdicts } from './verdicts.js';

/** The prefix of a klp symbol's name (klp/plan.ts). */
export const KLP_PREFIX = '.klp.sym.';

export interface Reference {
  readonly object: string;
  readonly name: string;
  readonly sympos: number;
  readonly how: string;
  /** The klp relocation section's object, when it is not `object` (a dependency's export: the patched module). */
  readonly section?: string;
}

export interface ExtractedPatch {
  /** The shipped objects written (part0, part1, ...: kbuild's names). */
  readonly parts: readonly string[];
  /** Each patched object → its klp_funcs (every object with callbacks is here, with or without functions). */
  readonly klpObjects: ReadonlyMap<string, readonly KlpFuncSpec[]>;
  /** `<object> <kind>` → the callback's global name in the module. */
  readonly callbackSymbols: ReadonlyMap<string, string>;
  /** Link name (klp symbol or `.suture.dep.` name) → what it refers to. */
  readonly references: ReadonlyMap<string, Reference>;
  readonly runtimeConstants: readonly (RuntimeConstSite & { unit: string })[];
  /** The symbol namespaces of the exports the carried code calls by name (MODULE_IMPORT_NS in the module, or modpost refuses it). */
  readonly namespaces: readonly string[];
}

const cName = (s: string) => s.replace(/[^A-Za-z0-9_]/g, '_');

/** Extract every unit into `moduleDir` (step 'extract' is the caller's). */
export function extractUnits(
  verdicts: Verdicts,
  functions: readonly FunctionReport[],
  syms: PatchSymbols,
  btf: BtfStructs,
  moduleDir: string,
  warn: (message: string) => void,
  /**
   * Catch-up: a unit whose references cannot be resolved, or whose carried code is refused here (a
   * module's static key), is left out and told here, and the others go on; without it, they stop the build.
   */
  leftOut?: { unresolved(unit: string, e: SymbolResolutionError): void; refused(unit: string, refusals: readonly Refusal[]): void },
): ExtractedPatch {
  const parts: string[] = [];
  const references = new Map<string, Reference>();
  const klpObjects = new Map<string, KlpFuncSpec[]>([...verdicts.callbacks.keys()].map((o) => [o, []]));
  const callbackSymbols = new Map<string, string>();
  const runtimeConstants: (RuntimeConstSite & { unit: string })[] = [];
  const keyRefusals: Refusal[] = [];
  const namespaces = new Set<string>();
  // The new globals of every unit of this patch (data and functions), which the module link resolves.
  const newGlobals = new Set(verdicts.units.flatMap((o) => [...o.diff.newData, ...o.diff.functions.filter((f) => f.status === 'new').map((f) => f.name)]));
  verdicts.units.forEach((d, i) => {
    const { object } = d;
    const unit = d.compiled.unit;
    const mine = functions.filter((f) => f.unit === unit);
    if (!mine.length) return;
    const exportAs = new Map<string, string>();
    // This unit's klp_funcs, callbacks and references join the patch's only once it extracts.
    const funcs: KlpFuncSpec[] = [];
    const callbacks = new Map<string, string>();
    const refs = new Map<string, Reference>();
    const nss = new Set<string>();
    for (const f of mine.filter((x) => x.status === 'changed' && !x.carriedOnly)) {
      // The new version keeps the function's own name (stack traces and /proc/kallsyms show it),
      // made global for the klp structures; a name changed in two units gets the unit's number.
      const twice = functions.filter((x) => x.name === f.name && x.status === 'changed').length > 1;
      const symbol = twice ? `${f.name}.suture${i}` : f.name;
      exportAs.set(f.name, symbol);
      funcs.push({ oldName: f.name, newFunction: `__suture_new_${i}_${cName(f.name)}`, symbol, sympos: f.sympos ?? 0 });
    }
    for (const [kind, c] of Object.entries(verdicts.callbacks.get(object) ?? {}) as [CallbackKind, CallbackRecord][]) {
      if (c.unit !== unit) continue;
      const symbol = `__suture_cb_${i}_${kind}_${cName(c.function)}`;
      exportAs.set(c.function, symbol);
      callbacks.set(`${object} ${kind}`, symbol);
    }
    let x: ReturnType<typeof extract>;
    try {
      x = extract(d.compiled.bytes.patched, `${d.compiled.object} (patched)`, {
        unit,
        functions: mine.map((f) => f.name),
        data: [...d.diff.newData, ...d.diff.changedConstants],
        exportAs,
        structSize: (s) => btf.structSize(s),
        externalName: (sym) => externalName(sym, d, newGlobals, syms, refs, nss),
      });
    } catch (e) {
      if (leftOut && e instanceof UnnamedReferenceError) {
        leftOut.refused(unit, [e.refusal]);
        return;
      }
      if (!leftOut || !(e instanceof SymbolResolutionError)) throw e;
      leftOut.unresolved(unit, e);
      return;
    }
    const mineRefused = moduleKeyRefusals(ElfObject.parse(x.bytes, { file: `${d.compiled.object} (extracted)` }), refs, unit);
    if (mineRefused.length && leftOut) {
      leftOut.refused(unit, mineRefused);
      return;
    }
    keyRefusals.push(...mineRefused);
    if (funcs.length) klpObjects.set(object, [...(klpObjects.get(object) ?? []), ...funcs]);
    for (const [k, v] of callbacks) callbackSymbols.set(k, v);
    for (const [k, v] of refs) references.set(k, v);
    for (const n of nss) namespaces.add(n);
    for (const c of x.runtimeConstants) {
      runtimeConstants.push({ unit, ...c });
      warn(`${unit}: ${c.function} reads ${c.symbol} from memory where vmlinux's copy has it as an immediate written at boot (runtime constant)`);
    }
    const part = `part${i}`;
    writeFileSync(join(moduleDir, `${part}.o_shipped`), x.bytes);
    // modpost reads each object's .cmd file (for srcversion); kbuild writes none for a shipped object.
    writeFileSync(join(moduleDir, `.${part}.o.cmd`), `cmd_${part}.o := cat ${part}.o_shipped > ${part}.o\n\nsource_${part}.o := ${part}.o_shipped\n\ndeps_${part}.o := \\\n  ${part}.o_shipped \\\n\n${part}.o: $(deps_${part}.o)\n\n$(deps_${part}.o):\n`);
    parts.push(part);
  });
  refuse(keyRefusals, 'see docs/patch-author-guide.md, "Jump labels and static calls"');
  return { parts, klpObjects, callbackSymbols, references, runtimeConstants, namespaces: [...namespaces].sort() };
}

/** The name a reference out of a unit's carried code links against; klp and dependency references are recorded. */
function externalName(
  { name: sym, local }: { name: string; local: boolean },
  d: UnitVerdict,
  newGlobals: ReadonlySet<string>,
  syms: PatchSymbols,
  references: Map<string, Reference>,
  namespaces: Set<string>,
): string {
  const { object } = d;
  const unit = d.compiled.unit;
  const { src } = syms;
  // New globals of another unit of this patch stay plain names: the module link resolves them.
  if (!local && newGlobals.has(sym)) return sym;
  // A static of the unit (local in its object) lives where the unit is linked: a module's own static is
  // never vmlinux's namesake (w83793's `reset` module parameter beside vmlinux's `reset`).
  const objects = object === 'vmlinux' ? ['vmlinux'] : local ? [object] : [object, 'vmlinux'];
  let r: ResolvedSymbol;
  try {
    r = resolveSymbol(src, { name: sym, objects, role: 'referenced', anchors: syms.anchorsOf.get(unit)!, usedBy: unit });
  } catch (e) {
    // An export of a module the patched module depends on: a klp relocation in the patched module's
    // own section (patchbuild/klp/plan.ts says why), named apart per patched module.
    const dep =
      object !== 'vmlinux' && !local && e instanceof SymbolResolutionError && e.kind === 'not-found'
        ? dependencyExport({ module: object, name: sym, usedBy: unit }, syms.depsOf.get(object) ?? [], src.exports, src.modules.get(moduleName(object))?.versions() ?? new Map())
        : undefined;
    if (!dep) throw e;
    const x = resolveSymbol(src, { name: sym, objects: [dep.exporter], role: 'referenced', anchors: [], usedBy: unit });
    const link = `.suture.dep.${object}.${x.object}.${x.name},${x.sympos}`;
    references.set(link, { object: x.object, name: x.name, sympos: x.sympos, how: `exported by ${dep.exporter}, which ${object} depends on (CRC ${dep.crc})`, section: object });
    return link;
  }
  if (r.exported && !local) {
    if (r.exported.namespace) namespaces.add(r.exported.namespace);
    return sym;
  }
  const klp = `${KLP_PREFIX}${r.object}.${r.name},${r.sympos}`;
  references.set(klp, { object: r.object, name: r.name, sympos: r.sympos, how: r.how });
  return klp;
}

/** Jump labels and static calls of the extracted code on a key a module owns (rules.ts moduleKeyRefusal). */
function moduleKeyRefusals(part: ElfObject, references: ReadonlyMap<string, Reference>, unit: string): Refusal[] {
  const out: Refusal[] = [];
  for (const sec of part.sections) {
    if (!(sec instanceof RelocationSection) || !sec.target || !/^(__jump_table|\.static_call_sites)$/.test(sec.target.name)) continue;
    for (const r of sec.relocations) {
      const ref = r.symbol ? references.get(r.symbol.name) : undefined;
      if (!ref || ref.object === 'vmlinux') continue;
      // The entry's code field (jump_entry: code, target, key; static_call_site: addr, key) names the function.
      const site = sec.relocations.find((c) => c.offset === r.offset - (sec.target!.name === '__jump_table' ? 8n : 4n))?.symbol;
      const siteName = !site ? '?' : site.type !== STT_SECTION ? site.name : typeof site.section !== 'number' ? site.section.name.replace(/^\.text\.(unlikely\.)?/, '') : '?';
      out.push(moduleKeyRefusal(sec.target.name, ref.name, ref.object, unit, siteName));
    }
  }
  return out;
}
