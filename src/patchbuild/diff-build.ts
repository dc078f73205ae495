// SPDX-License-Identifier: GPL-2.0-only
/**
 * `suture build fix.patch` and `suture analyze`: a source patch against a
 * distro kernel becomes a livepatch module without a kernel build. One call
 * per stage, each stage its own module:
 *
 *   read the patches        patch/inputs.ts   (strip levels, refusals of whole files: units.ts)
 *   check that it applies   overlay.ts        (where each hunk lands; fuzz refused)
 *   find the units          units.ts          (kbuild says which object each lands in)
 *   compile orig + patched  compile.ts        (overlays of the prepared tree)
 *   verdicts                verdicts.ts       (layouts, diff, notrace carry, author's records; refusals)
 *   report                  reasons.ts        (why each function is in; no functional change stops here)
 *   symbols + provenance    replaced.ts       (sympos; the orig build reproduces the shipped bytes)
 *   extract                 extract-units.ts  (only what changed, with its special-section entries)
 *   link                    patch-module.ts   (generated klp structures, kbuild, klp relocations: link.ts)
 */
import { mkdirSync, rmSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import type { ObjectHome } from '../kernel/kbuild-objects.js';
import { workspaceBtf } from '../kernel/btf.js';
import type { KernelMetadata } from '../kernel/workspace.js';
import { SutureError } from '../util/errors.js';
import type { Reporter } from '../util/progress.js';
import { compileUnits } from './compile.js';
import type { CarriedDiff } from './diff/carry.js';
import type { RuntimeConstSite } from './diff/runtime-const.js';
import type { ProvenanceResult } from './diff/provenance.js';
import { extractUnits, type Reference } from './extract-units.js';
import { checkModuleName } from './generate.js';
import { defaultModuleName, freshBuildDir } from './link.js';
import { locatePatches } from './overlay.js';
import { diskTree, readPatchSet } from './patch/inputs.js';
import { linkPatchModule } from './patch-module.js';
import { functionReports, requireChange, withFirstChanged, type FunctionReport } from './reasons.js';
import { checkReplaced, patchSymbols } from './replaced.js';
import { timedSteps, type Timings } from './steps.js';
import { DEFAULT_MAX_UNITS, findUnits, refuseFiles } from './units.js';
import { unitVerdicts } from './verdicts.js';

export type { FunctionReport } from './reasons.js';

export interface DiffBuildOptions {
  meta: KernelMetadata;
  home: string;
  reporter: Reporter;
  patches: readonly string[];
  /** Stop after the diff (suture analyze). */
  analyzeOnly?: boolean;
  name?: string;
  output?: string;
  cves?: readonly string[];
  description?: string;
  /** The kernel version the patched kernel is equivalent to (modinfo suture_effective_version; `suture uname` shows it). */
  effectiveVersion?: string;
  /** Build even when the orig build does not reproduce the shipped bytes. */
  skipProvenance?: boolean;
  /** Keep the build directory (overlays, objects, generated module). */
  keep?: boolean;
  /** Disassemble the first instruction that differs in each changed function. */
  showFirstChanged?: boolean;
  /** An atomic-replace (cumulative) patch. */
  replace?: boolean;
  /** Most units one patch may compile (a changed header reaches many); DEFAULT_MAX_UNITS otherwise. */
  maxUnits?: number;
  /** The strip level of every patch (-p N); found against the tree otherwise. */
  strip?: number;
}

export interface UnitReport {
  unit: string;
  object: string;
  home: ObjectHome;
  /** The unit's verdicts after every stage (diff, notrace carry, the author's records). */
  diff: CarriedDiff;
}

export interface DiffBuildResult {
  name: string;
  /** Each patch read, with the strip level used and why. */
  patches: { label: string; strip: number; why: string; files: string[] }[];
  output?: string;
  patchHash: string;
  units: UnitReport[];
  functions: FunctionReport[];
  provenance: ProvenanceResult[];
  references: Reference[];
  /** Boot-time constants of carried code, now read from their variables (src/patchbuild/diff/runtime-const.ts). */
  runtimeConstants: (RuntimeConstSite & { unit: string })[];
  warnings: string[];
  timings: Timings;
  buildDir?: string;
}

export async function buildFromPatch(opts: DiffBuildOptions): Promise<DiffBuildResult> {
  const { meta, home } = opts;
  const tree = meta.paths.source;
  const { step, warn, timings, warnings } = timedSteps(opts.reporter);

  const read = readPatchSet(opts.patches, diskTree(tree), opts.strip);
  refuseFiles(read.files);
  const name = opts.name ?? defaultModuleName(read.label);
  checkModuleName(name, opts.name ? '--name' : 'module name (from the patch file; choose one with --name)');
  // The build directory goes when the build ends, whichever way (--keep keeps it); stale ones of the name too (link.ts).
  const buildRoot = freshBuildDir(home, name);
  try {
    const n = read.patches.length;
    const files = await step('apply-check', `Checking that ${n === 1 ? `${read.patches[0]!.label} applies` : `${n} patches apply`}`, (update) => locatePatches(tree, buildRoot, read.patches, update));
    const { units, viaHeader } = await step('units', 'Finding the translation units to compile', (update) => findUnits(meta, files, opts.maxUnits ?? DEFAULT_MAX_UNITS, { update, warn }));
    if (!units.length) {
      throw new SutureError('no-change', 'no functional change: the patch touches no source file built into this kernel or its modules', {
        hint: 'check that the patch is for this kernel, and that the changed files are built with its configuration',
      });
    }
    const compiled = await compileUnits(meta, home, buildRoot, units, files, { keep: opts.keep ?? false, step });
    const btf = await workspaceBtf(meta);
    const verdicts = await unitVerdicts(compiled, btf, { step, warn });
    let functions = functionReports(verdicts, tree, files, viaHeader);
    if (opts.showFirstChanged) functions = await step('first-changed', 'Disassembling the first difference of each changed function', () => withFirstChanged(functions, verdicts));
    requireChange(verdicts, functions);
    const syms = await patchSymbols(meta, verdicts, step);
    const replaced = await checkReplaced(meta, verdicts, functions, syms, btf, { skipProvenance: opts.skipProvenance ?? false, step, warn });

    const result: DiffBuildResult = {
      name,
      patches: read.patches.map((l) => ({ label: l.label, strip: l.strip.level, why: l.strip.why, files: l.files.map((f) => f.path) })),
      patchHash: read.sha256,
      units: verdicts.units.map((d) => ({ unit: d.compiled.unit, object: d.compiled.object, home: d.compiled.home, diff: d.diff })),
      functions: [...replaced.functions],
      provenance: [...replaced.provenance],
      references: [],
      runtimeConstants: [],
      warnings,
      timings,
      ...(opts.keep ? { buildDir: buildRoot } : {}),
    };
    if (opts.analyzeOnly) return result;

    const moduleDir = join(buildRoot, 'module');
    mkdirSync(moduleDir, { recursive: true });
    const extracted = await step('extract', 'Extracting the changed functions and their special-section entries', () => extractUnits(verdicts, replaced.functions, syms, btf, moduleDir, warn));
    const output = resolve(opts.output ?? `${name}.ko`);
    const from = opts.patches.map((p) => basename(p)).join(', ');
    await step('module', `Building ${basename(output)}`, (update) => {
      update('kbuild, then klp relocations');
      return linkPatchModule({ meta, home, buildRoot, moduleDir, output }, extracted, syms, {
        name,
        patchSha256: read.sha256,
        buildId: syms.src.image?.image.gnuBuildId(),
        cves: opts.cves ?? [],
        effectiveVersion: opts.effectiveVersion,
        replace: opts.replace ?? false,
        description: opts.description ?? `livepatch from ${from}`,
        origin: `from ${from} for ${meta.name}`,
      });
    });
    return { ...result, output, references: [...extracted.references.values()], runtimeConstants: [...extracted.runtimeConstants] };
  } finally {
    if (!opts.keep) rmSync(buildRoot, { recursive: true, force: true });
  }
}
