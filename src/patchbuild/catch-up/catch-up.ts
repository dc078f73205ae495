// SPDX-License-Identifier: GPL-2.0-only
/**
 * `suture catch-up`: the fixes of a newer Debian kernel (or of a series) as
 * one cumulative livepatch for the running one, with a verdict per fix. One
 * call per stage, the stages of `suture build fix.patch` reused:
 *
 *   fixes              fixes.ts        (tree diff grouped, or the series; changelog matched)
 *   prejudge           judge.ts        (files no build compiles, files a livepatch cannot carry, wide headers)
 *   compile            compile.ts      (every unit once per side, in parallel; orig objects cached per workspace)
 *   verdicts           verdicts.ts     (layouts, diff, notrace carry) → judge.ts (a verdict per fix; a fix with any refusal left out whole)
 *   symbols, provenance, extract, link  (replaced.ts, extract-units.ts, patch-module.ts, as a build does)
 *
 * The proof in the VM and the report are the CLI's (cli/catch-up.ts), over this result.
 */
import { mkdirSync, rmSync } from 'node:fs';
import { join, resolve, basename } from 'node:path';
import { workspaceBtf } from '../../kernel/btf.js';
import type { KernelMetadata } from '../../kernel/workspace.js';
import { SutureError } from '../../util/errors.js';
import type { Reporter } from '../../util/progress.js';
import { compileUnitsReport, type CompiledUnit } from '../compile.js';
import { extractUnits } from '../extract-units.js';
import { checkModuleName } from '../generate.js';
import { freshBuildDir } from '../link.js';
import { linkPatchModule } from '../patch-module.js';
import { functionReports, replacedFunctions, type FunctionReport } from '../reasons.js';
import { checkReplaced, patchSymbols } from '../replaced.js';
import { timedSteps, type Timings } from '../steps.js';
import { judgeUnits, type Verdicts } from '../verdicts.js';
import { otherArchOnly, type ChangelogEntry } from './changelog.js';
import type { Fix, FormedFixes } from './fixes.js';
import { excludedFixes, fixVerdicts, prejudge, type FixRefusal, type FixReport } from './judge.js';
import { createHash } from 'node:crypto';
import { formatPatch } from '../patch/parse.js';

export interface CatchUpOptions {
  readonly meta: KernelMetadata;
  readonly home: string;
  readonly reporter: Reporter;
  /** Forms the fixes inside the build directory (series mode locates its hunks there). */
  readonly formFixes: (buildRoot: string, step: ReturnType<typeof timedSteps>['step']) => Promise<FormedFixes>;
  /** What the fixes come from, for the module's description: "Debian linux 6.1.192-3", "series 0001…0018". */
  readonly what: string;
  readonly name: string;
  readonly output?: string | undefined;
  /** The version the patched kernel is equivalent to when every fix is carried (tree mode: the newer release's). */
  readonly newerVersion?: string | undefined;
  readonly maxUnits?: number | undefined;
  /** Analyse only: no module. */
  readonly analyzeOnly?: boolean | undefined;
  /** Fixes to leave out (`--exclude`): fix ids or CVE ids, each of which must match a fix. */
  readonly exclude?: readonly string[] | undefined;
}

export interface CatchUpResult {
  readonly kernel: string;
  readonly what: string;
  readonly fixes: readonly FixReport[];
  /** Changelog entries of the update no fix matches, with their CVEs. */
  readonly unmatched: readonly { entry: ChangelogEntry; why: string }[];
  /** CVEs the update names (changelog or series) and the patch does not carry. */
  readonly cvesNotCarried: readonly { cve: string; title: string; why: string }[];
  readonly cvesCarried: readonly string[];
  /** CVEs of fixes that change nothing this kernel runs (not built, no functional change, another architecture's). */
  readonly cvesNeedNoPatch: readonly { cve: string; title: string; why: string }[];
  readonly unitsCompiled: number;
  /** How many units were settled (below). */
  readonly unitsSettled: number;
  /** Units reached only through what changed whose preprocessed text shows their code cannot change: not compiled. */
  readonly settled: readonly { unit: string; why: string }[];
  readonly module?: {
    readonly name: string;
    readonly path: string;
    readonly functions: readonly FunctionReport[];
    readonly effectiveVersion: string | undefined;
    /** The objects it patches: vmlinux and the kernel's own modules (those must be loaded for their part to apply). */
    readonly objects: readonly string[];
  };
  readonly timings: Timings;
  readonly warnings: readonly string[];
}

export function defaultCatchUpName(label: string): string {
  const n = `livepatch_catchup_${label.toLowerCase().replace(/[^a-z0-9]+/g, '_').replace(/^_+|_+$/g, '')}`;
  return n.slice(0, 55);
}

export async function catchUp(opts: CatchUpOptions): Promise<CatchUpResult> {
  const { meta, home } = opts;
  const { step, warn, timings, warnings } = timedSteps(opts.reporter);
  checkModuleName(opts.name, 'module name');
  const buildRoot = freshBuildDir(home, opts.name);
  try {
    const formed = await opts.formFixes(buildRoot, step);
    if (!formed.fixes.length) throw new SutureError('no-change', `${opts.what} changes nothing in the source`, { hint: 'is --to the same source version as the running kernel?' });
    const excluded = excludedFixes(formed.fixes, opts.exclude ?? [], opts.what);
    const pre = await step('prejudge', `Judging ${formed.fixes.length} fixes before compiling (what no build compiles, what a livepatch cannot carry)`, (update) =>
      prejudge(meta, formed.fixes, opts.maxUnits ?? 64, update, excluded),
    );
    let compiled: CompiledUnit[] = [];
    const failedUnits = new Map<string, string>();
    const settled = new Map<string, string>();
    if (pre.units.length) {
      compiled = await compileAll(meta, home, buildRoot, pre, step, failedUnits, settled);
    }
    const btf = await workspaceBtf(meta);
    const judged = compiled.length ? await judgeUnits(compiled, btf, { step, warn }, { layoutsWhereCodeChanged: true, layoutCache: join(meta.paths.root, 'layouts') }) : { verdicts: { units: [], callbacks: new Map() } as Verdicts, refusals: [] };
    const appliedFiles = pre.applied.flatMap((f) => f.files);
    const allFunctions = functionReports(judged.verdicts, meta.paths.source, appliedFiles, pre.viaHeader);
    let reports = fixVerdicts(formed.fixes, pre, judged.refusals, allFunctions, failedUnits);

    const included = () => reports.filter((r) => r.verdict === 'included');
    const unitsOf = (rs: readonly FixReport[]) => new Set(rs.flatMap((r) => r.units.map((u) => u.unit)));
    let module: CatchUpResult['module'];
    if (included().length && !opts.analyzeOnly) {
      let verdicts = restrict(judged.verdicts, unitsOf(included()));
      let syms = await patchSymbols(meta, verdicts, step);
      let functions = allFunctions.filter((f) => unitsOf(included()).has(f.unit));
      // The orig build must reproduce the shipped bytes; a fix whose functions do not is left out (refused), the rest go on.
      let replaced = await checkReplaced(meta, verdicts, functions, syms, btf, { skipProvenance: true, tolerateUnresolved: true, step, warn: () => undefined });
      /**
       * Refuse the included fixes `refuse` names (whole: with their rules), then redo what depends on the
       * set of carried units (the symbols of their objects) for the fixes left. Each replaced function's
       * resolution and provenance stand alone (its unit's anchors, its object's symbols): those of the
       * functions left are kept, not checked again.
       */
      const leaveOut = async (refuse: (r: FixReport) => readonly FixRefusal[] | undefined, why: (refusals: readonly FixRefusal[]) => string) => {
        reports = reports.map((r) => {
          const refusals = r.verdict === 'included' ? refuse(r) : undefined;
          return refusals?.length ? { ...r, verdict: 'refused' as const, why: why(refusals), refusals } : r;
        });
        const kept = unitsOf(included());
        verdicts = restrict(judged.verdicts, kept);
        functions = allFunctions.filter((f) => kept.has(f.unit));
        if (!included().length) return;
        syms = await patchSymbols(meta, verdicts, step);
        const left = new Set(functions.map((f) => `${f.object}\0${f.name}`));
        replaced = { functions: replaced.functions.filter((f) => kept.has(f.unit)), provenance: replaced.provenance.filter((p) => left.has(`${p.object}\0${p.function}`)) };
        const still = replaced.provenance.filter((p) => p.verdict === 'differs' || p.verdict === 'unresolved');
        if (still.length) {
          // A unit of an included fix keeps a function the kernel does not reproduce: fixes sharing a unit are entangled, so this is a bug.
          throw new SutureError('internal', `after leaving fixes out, included fixes still replace ${still.map((p) => `${p.object}: ${p.function} (${p.verdict})`).join(', ')}`);
        }
      };
      // The orig build must reproduce the shipped bytes; a fix whose functions do not is left out (refused), the rest go on.
      const differs = replaced.provenance.filter((p) => p.verdict === 'differs' || p.verdict === 'unresolved');
      if (differs.length) {
        await leaveOut(
          (r) =>
            differs
              .filter((p) => r.functions.some((f) => f.object === p.object && f.name === p.function))
              .map((b) => ({
                rule: b.verdict === 'unresolved' ? ('unresolved-symbol' as const) : ('provenance' as const),
                file: r.units.find((u) => u.object === b.object)?.unit ?? b.object,
                symbol: b.function,
                reason: b.detail,
                instead: b.verdict === 'unresolved' ? 'build this fix on its own (suture build), which names the copies, and carry it as a series file' : 'build this fix on its own with --skip-provenance after checking why the bytes differ',
              })),
          (bad) =>
            bad.every((b) => b.rule === 'unresolved-symbol')
              ? `which copy of ${bad.map((b) => b.symbol).join(', ')} in the shipped kernel it replaces cannot be told`
              : `the orig build of ${bad.map((b) => b.symbol).join(', ')} does not reproduce the shipped kernel`,
        );
      }
      // A unit whose carried code names a symbol the kernel does not show (a zero-size static, a copy that
      // cannot be told apart) leaves its fixes out; the others are extracted again without them.
      const moduleDir = join(buildRoot, 'module');
      let extracted: ReturnType<typeof extractUnits> | undefined;
      while (included().length && !extracted) {
        rmSync(moduleDir, { recursive: true, force: true });
        mkdirSync(moduleDir, { recursive: true });
        const left = new Map<string, FixRefusal[]>();
        const x = await step('extract', 'Extracting the changed functions and their special-section entries', () =>
          extractUnits(verdicts, replaced.functions, syms, btf, moduleDir, warn, {
            unresolved: (unit, e) =>
              left.set(unit, [{ rule: 'unresolved-symbol', file: unit, symbol: e.symbol, reason: e.message, instead: 'build this fix on its own (suture build) to see the symbol, and carry it as a series file once it builds' }]),
            refused: (unit, rs) => left.set(unit, rs.map((r) => ({ rule: r.rule, file: r.file, symbol: r.symbol, reason: r.reason, instead: r.instead }))),
          }),
        );
        if (!left.size) {
          extracted = x;
          break;
        }
        await leaveOut(
          (r) => r.units.flatMap((u) => left.get(u.unit) ?? []),
          (refusals) => refusals.map((f) => `${f.rule}: ${f.symbol}`).slice(0, 3).join('; '),
        );
      }
      if (extracted && included().length) {
        const output = resolve(opts.output ?? `${opts.name}.ko`);
        const everyFixCarried = reports.every((r) => r.verdict !== 'refused');
        const effectiveVersion = everyFixCarried ? opts.newerVersion : undefined;
        const carried = included();
        const patchSha256 = createHash('sha256').update(carried.map((r) => formatPatch(formed.fixes.find((f) => f.id === r.id)!.files)).join('\n')).digest('hex');
        await step('module', `Building ${basename(output)} (${carried.length} fix${carried.length === 1 ? '' : 'es'}, atomic replace)`, (update) => {
          update('kbuild, then klp relocations');
          return linkPatchModule({ meta, home, buildRoot, moduleDir, output }, extracted, syms, {
            name: opts.name,
            patchSha256,
            buildId: syms.src.image?.image.gnuBuildId(),
            cves: [...new Set(carried.flatMap((r) => r.cves))],
            effectiveVersion,
            replace: true,
            description: `catch-up to ${opts.what}: ${carried.length} of ${reports.length} fixes carried`,
            origin: `suture catch-up: ${opts.what} for ${meta.name}`,
            extra: [
              ...carried.map((r) => ({ key: 'suture_fix', value: `${r.id} ${r.title ?? r.label}` })),
              ...reports.filter((r) => r.verdict === 'refused').map((r) => ({ key: 'suture_fix_not_carried', value: `${r.id} ${r.title ?? r.label}: ${r.why}` })),
            ],
          });
        });
        module = {
          name: opts.name,
          path: output,
          functions: replacedFunctions(replaced.functions),
          effectiveVersion,
          objects: [...new Set(verdicts.units.map((u) => u.object))].sort((a, b) => (a === 'vmlinux' ? -1 : b === 'vmlinux' ? 1 : a.localeCompare(b))),
        };
      }
    }
    const carriedCves = new Set(reports.filter((r) => r.verdict === 'included').flatMap((r) => r.cves));
    const notCarried: { cve: string; title: string; why: string }[] = [];
    const needNoPatch: { cve: string; title: string; why: string }[] = [];
    const seen = (c: string) => carriedCves.has(c) || notCarried.some((n) => n.cve === c) || needNoPatch.some((n) => n.cve === c);
    for (const r of reports.filter((x) => x.verdict === 'refused')) for (const c of r.cves) if (!seen(c)) notCarried.push({ cve: c, title: r.title ?? r.label, why: `${r.id}: refused (${r.why})` });
    for (const r of reports.filter((x) => x.verdict === 'no-functional-change' || x.verdict === 'not-built')) {
      for (const c of r.cves) if (!seen(c)) needNoPatch.push({ cve: c, title: r.title ?? r.label, why: `${r.id}: ${r.verdict === 'not-built' ? 'not built in this config' : 'the running code already compiles to the fixed code in this config'}` });
    }
    for (const u of formed.unmatched) {
      for (const c of u.entry.cves) {
        if (seen(c)) continue;
        if (otherArchOnly(u.entry)) needNoPatch.push({ cve: c, title: u.entry.title, why: `for ${u.entry.arches.join(', ')} only` });
        else notCarried.push({ cve: c, title: u.entry.title, why: `no fix matched: ${u.why}` });
      }
    }
    return {
      kernel: meta.name,
      what: opts.what,
      fixes: reports,
      unmatched: formed.unmatched,
      cvesNotCarried: notCarried,
      cvesNeedNoPatch: needNoPatch,
      cvesCarried: [...carriedCves].sort(),
      unitsCompiled: compiled.length,
      unitsSettled: settled.size,
      settled: [...settled].map(([unit, why]) => ({ unit, why })),
      ...(module ? { module } : {}),
      timings,
      warnings,
    };
  } finally {
    rmSync(buildRoot, { recursive: true, force: true });
  }
}

/** The verdicts of some units only (the included fixes'); callbacks do not occur in catch-up. */
function restrict(v: Verdicts, units: ReadonlySet<string>): Verdicts {
  return { units: v.units.filter((u) => units.has(u.compiled.unit)), callbacks: v.callbacks };
}

/**
 * Compile every unit once per side with every applied fix in the patched
 * tree, in one kbuild run that keeps going past a unit that does not compile
 * (its fixes are refused); patched objects cached under the hash of the
 * applied changes, so the same catch-up compiles once. Units the fixes reach
 * only through headers (or a .c file they #include) are preprocessed first,
 * and those whose code cannot change are not compiled (`settled`).
 */
async function compileAll(
  meta: KernelMetadata,
  home: string,
  buildRoot: string,
  pre: Awaited<ReturnType<typeof prejudge>>,
  step: ReturnType<typeof timedSteps>['step'],
  failed: Map<string, string>,
  settled: Map<string, string>,
): Promise<CompiledUnit[]> {
  const files = pre.applied.flatMap((f) => f.files);
  // A unit whose own file the fixes change is compiled; one they reach only through what it #includes may be settled first.
  const changed = new Set(files.map((f) => f.path));
  const settleFirst = new Set(pre.units.map((u) => u.unit).filter((u) => !changed.has(u)));
  const r = await compileUnitsReport(meta, home, buildRoot, pre.units, files, { keep: false, step, keepGoing: true, cachePatched: true, settleFirst });
  for (const [u, why] of r.failed) failed.set(u, why);
  for (const [u, why] of r.settled) settled.set(u, why);
  return r.compiled;
}
