// SPDX-License-Identifier: GPL-2.0-only
/** `suture build fix.patch...` (diff mode) and `suture analyze fix.patch...` */
import { Command } from 'commander';
import { relative } from 'node:path';
import { InvalidArgumentError } from 'commander';
import { buildFromPatch, type DiffBuildResult } from '../patchbuild/diff-build.js';
import { DEFAULT_MAX_UNITS, objectName } from '../patchbuild/units.js';
import { parseKernelRef } from '../kernel/ref.js';
import { requireWorkspace } from '../kernel/workspace.js';
import { sutureHome } from '../util/paths.js';
import { out, printJson, reporterFor, table } from './output.js';

export interface PatchBuildFlags {
  kernel: string;
  name?: string;
  output?: string;
  cve?: string[];
  description?: string;
  effectiveVersion?: string;
  replace?: boolean;
  skipProvenance?: boolean;
  showFirstChanged?: boolean;
  keep?: boolean;
  maxUnits?: number;
  strip?: number;
  json?: boolean;
}

export function parseStrip(v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || n > 64) throw new InvalidArgumentError('-p takes the number of leading path components to drop, as patch -pN does (0, 1, 2, ...)');
  return n;
}

/** `-p N`, shared by build and analyze. */
export const STRIP_HELP = 'drop N leading components of every path in the patches (as patch -pN); found against the kernel tree otherwise';

export function parseMaxUnits(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('--max-units must be a whole number of units, at least 1');
  return n;
}

/** A path as the user reads it: relative to the working directory when it is below it. */
export function show(path: string): string {
  const r = relative(process.cwd(), path);
  return r.startsWith('..') ? path : r;
}

export function patchReport(r: DiffBuildResult) {
  return {
    name: r.name,
    output: r.output,
    patchSha256: r.patchHash,
    patches: r.patches,
    units: r.units.map((u) => ({
      unit: u.unit,
      object: objectName(u.home),
      changed: u.diff.functions.filter((f) => f.status === 'changed').map((f) => f.name),
      new: u.diff.functions.filter((f) => f.status === 'new').map((f) => f.name),
      newData: u.diff.newData,
      changedConstants: u.diff.changedConstants,
      unchanged: u.diff.unchanged,
    })),
    functions: r.functions,
    provenance: r.provenance,
    references: r.references,
    runtimeConstants: r.runtimeConstants,
    warnings: r.warnings,
    timingsMs: r.timings,
    buildDir: r.buildDir,
  };
}

function printPatchResult(r: DiffBuildResult, showFirst: boolean): void {
  if (r.output) out(`built ${show(r.output)}: livepatch ${r.name}`);
  for (const p of r.patches) out(`  ${p.label}: -p${p.strip} (${p.why})`);
  out('');
  out(
    table([
      ['  object', 'function', 'status', 'sympos', 'why'],
      ...r.functions.map((f) => [
        `  ${f.object}`,
        // a name changed in two units (two static functions of one name): say which one
        r.functions.filter((x) => x.name === f.name && x.object === f.object).length > 1 ? `${f.name} (${f.unit})` : f.name,
        f.carriedOnly ? (f.reasons.some((x) => x.startsWith('a piece of')) ? 'carried with its parent' : 'carried (notrace; its callers are patched)') : f.status,
        f.sympos === undefined ? '-' : String(f.sympos),
        `${f.reasons.join('; ')}${showFirst && f.firstChanged ? ` [first difference: ${f.firstChanged.orig ?? '(none)'} → ${f.firstChanged.patched ?? '(none)'}]` : ''}`,
      ]),
    ]),
  );
  const extra = r.units.flatMap((u) => [...u.diff.newData.map((d) => `${u.unit}: new data ${d}`), ...u.diff.changedConstants.map((d) => `${u.unit}: changed constant ${d} (carried as a new copy)`)]);
  if (extra.length) out(`\n${extra.map((l) => `  ${l}`).join('\n')}`);
  out('');
  out('provenance (orig build vs the shipped kernel):');
  for (const p of r.provenance) out(`  ${p.object}: ${p.function}: ${p.verdict} — ${p.detail}`);
  if (r.references.length) {
    out('');
    out('resolved through livepatch (klp relocations):');
    out(table([['  object', 'name', 'sympos', 'how'], ...r.references.map((x) => [`  ${x.object}`, x.name, String(x.sympos), x.how])]));
  }
  if (r.runtimeConstants.length) {
    out('');
    out('boot-time constants now read from memory (vmlinux has them as immediates written at boot):');
    for (const c of r.runtimeConstants) out(`  ${c.unit}: ${c.function} reads ${c.symbol}`);
  }
  if (r.buildDir) out(`\nbuild directory: ${r.buildDir}`);
}

/** What `build` did with the module after building it (kernel module signature, bundle): fields of --json and lines of text. */
export interface Delivered {
  json: Record<string, unknown>;
  lines: string[];
}

/** The diff-mode action of `suture build`; `deliver` signs the built module before anything is printed. */
export async function buildPatches(patches: string[], o: PatchBuildFlags, analyzeOnly = false, deliver?: (ko: string) => Promise<Delivered>): Promise<DiffBuildResult> {
  const ref = parseKernelRef(o.kernel);
  const home = sutureHome();
  const meta = requireWorkspace(home, ref);
  const r = await buildFromPatch({
    meta,
    home,
    reporter: reporterFor(o),
    patches,
    analyzeOnly,
    name: o.name,
    output: o.output,
    cves: o.cve ?? [],
    description: o.description,
    effectiveVersion: o.effectiveVersion,
    replace: o.replace,
    skipProvenance: o.skipProvenance,
    keep: o.keep,
    showFirstChanged: o.showFirstChanged,
    maxUnits: o.maxUnits,
    strip: o.strip,
  });
  const d = deliver && r.output ? await deliver(r.output) : undefined;
  if (o.json) printJson({ ...patchReport(r), ...d?.json });
  else {
    printPatchResult(r, !!o.showFirstChanged);
    for (const l of d?.lines ?? []) out(l);
  }
  return r;
}

export function analyzeCommand(): Command {
  return new Command('analyze')
    .description('everything up to the diff: which functions a patch changes, what it refuses, provenance; no module')
    .argument('<patches...>', 'one or more unified diffs against the kernel source, applied in order')
    .requiredOption('--kernel <kernel>', 'the target kernel, e.g. debian:6.1.0-56-amd64')
    .option('--skip-provenance', 'go on when the orig build does not reproduce the shipped bytes')
    .option('--show-first-changed', 'show where each changed function first differs')
    .option('--keep', 'keep the build directory')
    .option('--max-units <n>', `most units to compile when a changed header reaches many (default ${DEFAULT_MAX_UNITS})`, parseMaxUnits)
    .option('-p, --strip <n>', STRIP_HELP, parseStrip)
    .option('--json', 'print one JSON object')
    .action(async (patches: string[], o: PatchBuildFlags) => {
      await buildPatches(patches, o, true);
    });
}
