// SPDX-License-Identifier: GPL-2.0-only
/**
 * The first stage of a patch build: which translation units the patch
 * reaches (the .c files it touches, and for a changed header every built
 * unit that includes it, directly or through other headers), where each
 * one's object goes (vmlinux or a module, as kbuild says), and what is
 * refused before anything is compiled (assembly, build files, files created,
 * deleted or renamed; too many units).
 */
import { join } from 'node:path';
import { KbuildObjects, type ObjectHome } from '../kernel/kbuild-objects.js';
import type { KernelMetadata } from '../kernel/workspace.js';
import { SutureError } from '../util/errors.js';
import { includersOf, treeIncludeGraph } from './include-graph.js';
import type { FilePatch } from './patch/parse.js';
import { formatRefusals, unbuildableFile } from './diff/rules.js';

export interface Unit {
  /** The .c file, relative to the tree. */
  readonly unit: string;
  /** Its object, relative to the tree (fs/proc/cmdline.o). */
  readonly object: string;
  readonly home: ObjectHome;
}

export interface Units {
  readonly units: readonly Unit[];
  /** A unit reached through changed headers → those headers. */
  readonly viaHeader: ReadonlyMap<string, string[]>;
}

/** A changed header can reach thousands of units; past this many, the build stops and says so. */
export const DEFAULT_MAX_UNITS = 64;

function tooManyUnits(what: string, maxUnits: number): SutureError {
  return new SutureError('limit', `${what}; suture compiles at most ${maxUnits} units for one patch`, {
    hint: 'put the fix in the .c files that need it, or raise the limit with --max-units N (each unit is compiled twice)',
  });
}

/**
 * Units of a patch: the .c files it touches, and for a changed header every
 * .c file that includes it, directly or through other headers (the tree's
 * include graph, kept in the workspace).
 */
async function unitsOf(
  meta: KernelMetadata,
  files: readonly FilePatch[],
  maxUnits: number,
): Promise<{ units: string[]; viaHeader: Map<string, string[]>; notes: string[] }> {
  const units = new Set<string>();
  const viaHeader = new Map<string, string[]>();
  const notes: string[] = [];
  for (const f of files) if (f.kind === 'c') units.add(f.path);
  const headers = files.filter((f) => f.kind === 'header');
  if (headers.length) {
    const graph = await treeIncludeGraph(meta.paths.source, join(meta.paths.root, 'include-graph.json'));
    for (const h of headers) {
      const r = includersOf(graph, h.path);
      // Candidates beyond a few times the limit cannot all be filtered out by the configuration; stop early.
      if (r.everyUnit || r.all.length > 4 * maxUnits) {
        throw tooManyUnits(`${h.path} is included by ${r.everyUnit ? "every unit of the kernel (through kbuild's -include headers)" : `${r.all.length} source files (${r.direct.length} directly)`}`, maxUnits);
      }
      for (const u of r.all) {
        units.add(u);
        viaHeader.set(u, [...(viaHeader.get(u) ?? []), h.path]);
      }
      notes.push(`${h.path}: ${r.all.length} source file${r.all.length === 1 ? '' : 's'} include it (${r.direct.length} directly)`);
    }
  }
  return { units: [...units].sort(), viaHeader, notes };
}

/** The built units that #include a .c file (directly or through headers), when no Makefile names it itself. */
export async function includingUnits(meta: KernelMetadata, kb: KbuildObjects, file: string): Promise<Unit[]> {
  const graph = await treeIncludeGraph(meta.paths.source, join(meta.paths.root, 'include-graph.json'));
  const r = includersOf(graph, file);
  if (r.everyUnit) return [];
  const out: Unit[] = [];
  for (const u of r.all) {
    if (u === file) continue;
    const h = await kb.home(u);
    if (h.kind !== 'not-built') out.push({ unit: u, object: h.object, home: h });
  }
  return out;
}

/** Refuse what a livepatch cannot be built from, before compiling anything. */
export function refuseFiles(files: readonly FilePatch[]): void {
  const bad = files.flatMap((f) =>
    f.kind === 'asm'
      ? [unbuildableFile(f.path, 'asm')]
      : f.kind === 'build'
        ? [unbuildableFile(f.path, 'build')]
        : f.change === 'delete' || f.change === 'rename' || (f.change === 'create' && f.kind === 'c')
          ? [unbuildableFile(f.path, 'created-deleted-renamed')]
          : [],
  );
  if (!bad.length) return;
  throw new SutureError('unsupported-change', `the patch changes ${bad.length === 1 ? 'a file' : 'files'} a livepatch cannot be built from: ${bad.map((r) => r.file).join(', ')}`, {
    details: formatRefusals(bad),
    hint: 'a livepatch replaces C functions of the running kernel; drop these files from the patch',
  });
}

/**
 * The units of a patch built in this kernel, each with its object's home.
 * A .c file the configuration does not build is said (a warning); a header
 * that reaches more than `maxUnits` units is refused.
 */
export async function findUnits(
  meta: KernelMetadata,
  files: readonly FilePatch[],
  maxUnits: number,
  say: { update(detail: string): void; warn(message: string): void },
): Promise<Units> {
  const kb = new KbuildObjects(meta.paths.source, join(meta.paths.root, 'kbuild-dirs.json'));
  try {
    const { units: us, notes, viaHeader } = await unitsOf(meta, files, maxUnits);
    for (const n of notes) say.update(n);
    const units: Unit[] = [];
    let notBuilt = 0;
    for (const u of us) {
      const h = await kb.home(u);
      if (h.kind === 'not-built') {
        const changed = files.some((f) => f.path === u);
        // kernel/sched/build_utility.c #includes cpufreq_schedutil.c: a .c file no Makefile names is built inside its includers.
        const inside = changed ? await includingUnits(meta, kb, u) : [];
        for (const x of inside) {
          if (!units.some((y) => y.unit === x.unit)) units.push(x);
          viaHeader.set(x.unit, [...(viaHeader.get(x.unit) ?? []), u]);
        }
        if (inside.length) say.update(`${u} is built inside ${inside.map((x) => x.unit).join(', ')} (#include of a .c file)`);
        else if (changed) say.warn(`${u} is not built in this kernel's configuration (${h.why}): its changes cannot matter here`);
        notBuilt++;
        continue;
      }
      if (!units.some((y) => y.unit === u)) units.push({ unit: u, object: h.object, home: h });
    }
    if (viaHeader.size) say.update(`${notBuilt} of ${us.length} source files are not built with this configuration`);
    if (units.length > maxUnits) {
      throw tooManyUnits(`the patch reaches ${units.length} units built in this kernel (through ${[...new Set([...viaHeader.values()].flat())].join(', ')})`, maxUnits);
    }
    say.update(`${units.length} unit${units.length === 1 ? '' : 's'}: ${units.map((u) => u.unit).join(', ')}`);
    return { units, viaHeader };
  } finally {
    kb.close();
  }
}

/** The object a unit's code lives in, as livepatch names it: vmlinux, or the module's name. */
export function objectName(home: ObjectHome): string {
  return home.kind === 'module' ? home.module : 'vmlinux';
}
