// SPDX-License-Identifier: GPL-2.0-only
/**
 * The symbols stage of a patch build: the kernel's symbols for the patched
 * objects (and the modules they depend on), each unit's anchors (its
 * functions that exist once in the kernel: they tell a duplicated static
 * name's copies apart), every replaced function's sympos, and the proof of
 * provenance: the orig build of each replaced function reproduces the bytes
 * the kernel shipped (diff/provenance.ts), or the build stops.
 */
import type { BtfStructs } from '../kernel/btf.js';
import { moduleName, readModuleIndex } from '../kernel/modules.js';
import { resolveSymbol, SymbolResolutionError, workspaceSymbolSources, type Candidate, type SymbolSources } from '../kernel/symbols/mod.js';
import type { KernelMetadata } from '../kernel/workspace.js';
import { SutureError } from '../util/errors.js';
import { compareWithShipped, staticBranchSites, type ProvenanceResult } from './diff/provenance.js';
import type { FunctionReport } from './reasons.js';
import type { TimedSteps } from './steps.js';
import type { UnitVerdict, Verdicts } from './verdicts.js';

export interface PatchSymbols {
  readonly src: SymbolSources;
  /** Each patched module → the modules it depends on (their exports are its to call). */
  readonly depsOf: ReadonlyMap<string, readonly string[]>;
  /** Each unit → its functions that are unique in the kernel. */
  readonly anchorsOf: ReadonlyMap<string, readonly Candidate[]>;
}

/** The kernel's symbols for the patched objects and their dependencies, and each unit's anchors (step 'symbols'). */
export async function patchSymbols(meta: KernelMetadata, verdicts: Verdicts, step: TimedSteps['step']): Promise<PatchSymbols> {
  const modules = [...new Set(verdicts.units.filter((d) => d.compiled.home.kind === 'module').map((d) => d.object))];
  // The patched modules' dependencies too: their code may call those modules' exports (nfsd → sunrpc).
  const moduleIndex = modules.length ? readModuleIndex(meta.paths.modules) : undefined;
  const depsOf = new Map(modules.map((m) => [m, moduleIndex!.deps.get(moduleName(m)) ?? []]));
  const src = await step('symbols', `Loading the symbols of ${meta.name}`, () => workspaceSymbolSources(meta, [...new Set([...modules, ...[...depsOf.values()].flat()])]));
  return { src, depsOf, anchorsOf: new Map(verdicts.units.map((d) => [d.compiled.unit, anchors(src, d)])) };
}

function anchors(src: SymbolSources, d: UnitVerdict): Candidate[] {
  const out: Candidate[] = [];
  for (const fn of d.compiled.index('orig').functions.keys()) {
    try {
      const r = resolveSymbol(src, { name: fn, objects: [d.object], role: 'replaced', anchors: [], usedBy: d.compiled.unit });
      if (r.copies === 1 && r.candidate) out.push(r.candidate);
    } catch {
      // inlined everywhere, or duplicated: not an anchor
    }
  }
  return out;
}

export interface Replaced {
  /** The function reports, each replaced function with its sympos. */
  readonly functions: readonly FunctionReport[];
  readonly provenance: readonly ProvenanceResult[];
}

/**
 * Resolve each replaced function (its sympos) and compare its orig build with
 * the shipped bytes (step 'provenance'). A difference stops the build unless
 * `skipProvenance` (then it is a warning).
 */
export async function checkReplaced(
  meta: KernelMetadata,
  verdicts: Verdicts,
  functions: readonly FunctionReport[],
  syms: PatchSymbols,
  btf: BtfStructs,
  opts: {
    skipProvenance: boolean;
    /** A function whose copy in the kernel cannot be told apart from others is said (verdict unresolved), not thrown: catch-up leaves its fix out. */
    tolerateUnresolved?: boolean;
  } & Pick<TimedSteps, 'step' | 'warn'>,
): Promise<Replaced> {
  const { src } = syms;
  const provenance: ProvenanceResult[] = [];
  const resolved = await opts.step('provenance', 'Checking the orig build against the shipped kernel', (update) =>
    functions.map((f) => {
      if (f.status !== 'changed' || f.carriedOnly) return f;
      let r: ReturnType<typeof resolveSymbol>;
      try {
        r = resolveSymbol(src, { name: f.name, objects: [f.object], role: 'replaced', anchors: syms.anchorsOf.get(f.unit)!, usedBy: `${f.unit}: ${f.name}` });
      } catch (e) {
        if (!opts.tolerateUnresolved || !(e instanceof SymbolResolutionError)) throw e;
        provenance.push({ function: f.name, object: f.object, verdict: 'unresolved', detail: e.message });
        update(`${f.name}: unresolved`);
        return f;
      }
      const o = verdicts.units.find((x) => x.compiled.unit === f.unit)!.compiled.index('orig');
      const fn = o.functions.get(f.name)!;
      let shipped: Uint8Array | undefined;
      if (r.candidate?.entry && src.image) shipped = src.image.image.read(r.candidate.entry.address, fn.size);
      // The copy resolved (its symtab entry), not the first of its name: a module may have several.
      else if (r.candidate?.symbol) shipped = src.modules.get(moduleName(r.candidate.object))?.bytesOf(r.candidate.symbol, fn.size);
      const p = compareWithShipped(o, fn, f.object, shipped, [], staticBranchSites(o, fn, (n) => btf.structSize(n)));
      provenance.push(p);
      update(`${f.name}: ${p.verdict}`);
      return { ...f, sympos: r.sympos };
    }),
  );
  const bad = provenance.filter((p) => p.verdict === 'differs');
  if (bad.length && !opts.skipProvenance) {
    throw new SutureError('build', `the orig build does not reproduce the shipped kernel for ${bad.map((p) => p.function).join(', ')}`, {
      details: bad.map((p) => `${p.object}: ${p.function}: ${p.detail}`).join('\n'),
      hint: 'the source, its configuration or the compiler differ from what built this kernel; a patch built from it would be wrong (--skip-provenance builds anyway)',
    });
  }
  for (const p of bad) opts.warn(`provenance skipped: ${p.object}: ${p.function}: ${p.detail}`);
  return { functions: resolved, provenance };
}

