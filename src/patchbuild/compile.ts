// SPDX-License-Identifier: GPL-2.0-only
/**
 * The compile stage: each unit's object built twice with kbuild's exact flags
 * (plus function and data sections), orig and patched, in the overlays of
 * overlay.ts, never a kernel build; orig objects are cached per workspace.
 * Also the one-object compile of a kbuild directory (`suture build --source`).
 */
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { ElfObject } from '../elf/mod.js';
import { OBJECT_ONLY_ARGS, toolchainFor, treeMakeArgs } from '../kernel/kbuild.js';
import type { Overlay } from '../kernel/toolchain.js';
import type { KernelMetadata } from '../kernel/workspace.js';
import { SutureError } from '../util/errors.js';
import { ObjectIndex } from './diff/object-index.js';
import { applyPatch, makeBuildTrees, removeBuildTrees, type BuildTrees } from './overlay.js';
import { stabilizeLines } from './patch/line-directives.js';
import { formatPatch, type FilePatch } from './patch/parse.js';
import { settleByPreprocessed } from './preprocessed.js';
import type { TimedSteps } from './steps.js';
import type { Unit } from './units.js';

export type Side = 'orig' | 'patched';

/**
 * A unit compiled both ways: the objects as files in the build directory,
 * read when asked (a catch-up holds thousands of units: all their bytes at
 * once made the process gigabytes large, and every tool it started slow to
 * fork), each side indexed once until released.
 */
export class CompiledUnit implements Unit {
  readonly unit: string;
  readonly object: string;
  readonly home: Unit['home'];
  private readonly indexes = new Map<Side, ObjectIndex>();

  constructor(
    u: Unit,
    /** The objects as files (also for pahole and objdump). */
    readonly files: Readonly<Record<Side, string>>,
  ) {
    this.unit = u.unit;
    this.object = u.object;
    this.home = u.home;
  }

  /** The objects' bytes, each read from its file when asked. */
  get bytes(): Readonly<Record<Side, Uint8Array>> {
    const files = this.files;
    return {
      get orig() {
        return readFileSync(files.orig);
      },
      get patched() {
        return readFileSync(files.patched);
      },
    };
  }

  /** The side's object, parsed (a fresh, editable copy each call). */
  parse(side: Side): ElfObject {
    return ElfObject.parse(this.bytes[side], { file: `${this.object} (${side})` });
  }

  /** Let the indexes go (index() makes them again when asked). */
  releaseIndexes(): void {
    this.indexes.clear();
  }

  /** The side's object, indexed once (parsing an object is not free). */
  index(side: Side): ObjectIndex {
    let idx = this.indexes.get(side);
    if (!idx) this.indexes.set(side, (idx = new ObjectIndex(ElfObject.parse(this.bytes[side]), this.unit)));
    return idx;
  }
}

/**
 * Apply the patch (line numbers kept stable: patch/line-directives.ts) in the
 * patched overlay and compile every unit both ways (steps 'apply' and
 * 'compile'). The overlays go when the objects are read, unless `keep`.
 */
export async function compileUnits(
  meta: KernelMetadata,
  home: string,
  buildRoot: string,
  units: readonly Unit[],
  files: readonly FilePatch[],
  opts: { keep: boolean; step: TimedSteps['step'] },
): Promise<CompiledUnit[]> {
  return (await compileUnitsReport(meta, home, buildRoot, units, files, opts)).compiled;
}

/**
 * compileUnits for many units at once (catch-up): with `keepGoing`, a unit
 * whose patched side does not compile is returned in `failed` (unit → the
 * compiler's lines about it) and the others are compiled all the same, in
 * one kbuild run (make -k); with `cachePatched`, patched objects are kept in
 * the workspace under the hash of the applied patch, so the same update
 * compiles once.
 */
export async function compileUnitsReport(
  meta: KernelMetadata,
  home: string,
  buildRoot: string,
  units: readonly Unit[],
  files: readonly FilePatch[],
  opts: {
    keep: boolean;
    step: TimedSteps['step'];
    keepGoing?: boolean;
    cachePatched?: boolean;
    /** Units (by unit path) that only #include what changed: settled from their preprocessed text first where it allows (preprocessed.ts). */
    settleFirst?: ReadonlySet<string>;
  },
): Promise<{ compiled: CompiledUnit[]; failed: Map<string, string>; settled: Map<string, string> }> {
  const { step } = opts;
  const trees = makeBuildTrees(home, meta, `${basename(buildRoot)}/trees`);
  try {
    const stable = formatPatch(stabilizeLines(files));
    await step('apply', 'Applying the patch in the build overlay (line numbers kept stable)', () => applyPatch(trees, stable, 'the patch'));
    const patchedCache = opts.cachePatched ? join(meta.paths.root, 'patched-objects', createHash('sha256').update(stable).digest('hex').slice(0, 24)) : undefined;
    if (patchedCache) usePatchedSet(patchedCache);
    const candidates = units.filter((u) => opts.settleFirst?.has(u.unit));
    const settled = candidates.length
      ? await step('preprocess', `Preprocessing ${candidates.length} unit${candidates.length === 1 ? '' : 's'} reached only through what changed (one whose code cannot change is not compiled)`, (update) =>
          settleUnits(meta, home, trees, candidates, patchedCache, update),
        )
      : new Map<string, string>();
    const toCompile = units.filter((u) => !settled.has(u.unit));
    const compiled = await step('compile', `Compiling ${toCompile.length} unit${toCompile.length === 1 ? '' : 's'}, orig and patched side by side`, async (update) => {
      update(toCompile.length <= 8 ? toCompile.map((u) => u.object).join(' ') : `${toCompile.length} objects`);
      const c = await compileBoth(meta, home, trees, toCompile.map((u) => u.object), toCompile.length > 8 ? (targets) => compileProgress(targets, update) : undefined, { keepGoing: opts.keepGoing ?? false, patchedCache });
      if (c.ms.orig === 0) update('orig objects from the workspace cache');
      if (c.ms.patched === 0 && patchedCache) update('patched objects from the workspace cache (the same changes compiled before)');
      return c;
    });
    const failed = new Map<string, string>();
    const out: CompiledUnit[] = [];
    for (const u of toCompile) {
      const err = compiled.failed.get(u.object);
      if (err !== undefined) {
        failed.set(u.unit, err);
        continue;
      }
      const copy = (side: Side) => {
        const file = join(buildRoot, `${side}-${u.object.replace(/\//g, '_')}`);
        copyFileSync(compiled[side].get(u.object)!, file);
        return file;
      };
      out.push(new CompiledUnit(u, { orig: copy('orig'), patched: copy('patched') }));
    }
    return { compiled: out, failed, settled };
  } finally {
    if (!opts.keep) removeBuildTrees(trees);
  }
}

/** How many sets of patched objects a workspace keeps (one per distinct set of applied changes: a whole update's is hundreds of MiB). */
export const PATCHED_SETS_KEPT = 4;
/** A set used this recently is never removed: another catch-up on the workspace may be compiling into it. */
export const PATCHED_SET_GRACE_MS = 6 * 3600_000;

/**
 * Which cached sets of patched objects to remove: all but the `keep` most
 * recently used, except those used within `graceMs` of `nowMs`. Pure, so the
 * choice is tested apart from the directory it is made in.
 */
export function patchedSetsToPrune(sets: readonly { name: string; usedMs: number }[], nowMs: number, keep = PATCHED_SETS_KEPT, graceMs = PATCHED_SET_GRACE_MS): string[] {
  return [...sets]
    .sort((a, b) => b.usedMs - a.usedMs || a.name.localeCompare(b.name))
    .slice(keep)
    .filter((s) => nowMs - s.usedMs > graceMs)
    .map((s) => s.name);
}

/** Marks a patched-object set as used now (its directory's mtime) and removes the sets patchedSetsToPrune picks beside it. */
function usePatchedSet(dir: string): void {
  mkdirSync(dir, { recursive: true });
  const now = Date.now();
  utimesSync(dir, now / 1000, now / 1000);
  const parent = dirname(dir);
  const sets = readdirSync(parent, { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .map((e) => ({ name: e.name, usedMs: statSync(join(parent, e.name)).mtimeMs }));
  for (const name of patchedSetsToPrune(sets, now)) rmSync(join(parent, name), { recursive: true, force: true });
}

/** make in one side's tree: half the cores each, as both sides run at once. */
function sideMakeArgs(meta: KernelMetadata): string[] {
  return treeMakeArgs(meta.compiler.command, meta.release, Math.max(1, Math.floor(cpus().length / 2)));
}

/** Where the patched-object cache keeps why an object did not compile with its changes (either side): it is not tried again. */
function failedMarker(patchedCache: string, object: string): string {
  return join(patchedCache, `${object}.failed`);
}

/** What a unit settled from its preprocessed text leaves in the patched-object cache (its reason inside), so the same changes settle it again without preprocessing. */
const SETTLED = '.settled';

/**
 * Preprocess units both ways (kbuild's own `%.i` rule, so each unit's exact
 * flags) and settle those whose code cannot change (preprocessed.ts). A unit
 * already compiled both ways is left to the caches; one that does not
 * preprocess is left to the compile, which says why.
 */
async function settleUnits(
  meta: KernelMetadata,
  home: string,
  t: BuildTrees,
  units: readonly Unit[],
  patchedCache: string | undefined,
  update: (detail: string) => void,
): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const todo: Unit[] = [];
  for (const u of units) {
    const marker = patchedCache ? join(patchedCache, `${u.object}${SETTLED}`) : undefined;
    if (marker && existsSync(marker)) out.set(u.unit, readFileSync(marker, 'utf8'));
    // Compiled both ways with the same changes before, or found not to compile: the caches have it.
    else if (!patchedCache || !(existsSync(failedMarker(patchedCache, u.object)) || (existsSync(join(patchedCache, u.object)) && existsSync(join(origCacheDir(meta), u.object))))) todo.push(u);
  }
  if (out.size) update(`${out.size} settled before (the same changes, from the workspace cache)`);
  if (!todo.length) return out;
  const targets = todo.map((u) => u.object.replace(/\.o$/, '.i'));
  const tc = toolchainFor(meta, home);
  const make = sideMakeArgs(meta);
  const onLine = todo.length > 8 ? compileProgress({ orig: targets, patched: targets }, update) : undefined;
  await Promise.all(
    (['orig', 'patched'] as const).map((side) => tc.run([...make, '-k', ...targets], t[side].merged, { overlay: t[side], ...(onLine ? { onLine: (l: string) => onLine(side, l) } : {}) })),
  );
  let n = 0;
  for (const [i, u] of todo.entries()) {
    const [a, b] = (['orig', 'patched'] as const).map((side) => join(t[side].upper, targets[i]!));
    if (!existsSync(a!) || !existsSync(b!)) continue;
    const s = settleByPreprocessed(readFileSync(a!, 'utf8'), readFileSync(b!, 'utf8'));
    rmSync(a!, { force: true });
    rmSync(b!, { force: true });
    if (!s.same) continue;
    out.set(u.unit, s.why);
    n++;
    if (patchedCache) {
      mkdirSync(dirname(join(patchedCache, u.object)), { recursive: true });
      writeFileSync(join(patchedCache, `${u.object}${SETTLED}`), s.why);
    }
  }
  update(`${n} of ${todo.length} cannot compile to other code: not compiled`);
  return out;
}

export interface CompiledObjects {
  /** object path (relative to the tree) → the compiled file */
  orig: Map<string, string>;
  patched: Map<string, string>;
  /** Objects whose patched side did not compile (keepGoing only) → the compiler's lines about them. */
  failed: Map<string, string>;
  /** Milliseconds each side took (0: nothing compiled on that side, as for orig objects from the cache). */
  ms: { orig: number; patched: number };
}

/**
 * Where orig objects are kept between builds: an orig object depends only on
 * the prepared tree, so a second patch of the same unit compiles one side only.
 */
export function origCacheDir(meta: KernelMetadata): string {
  return join(meta.paths.root, 'orig-objects');
}

/** Copy a compiled object into a cache atomically: a half-copied object must never be taken for a compiled one. */
function intoCache(file: string, cached: string): void {
  mkdirSync(dirname(cached), { recursive: true });
  copyFileSync(file, `${cached}.tmp`);
  renameSync(`${cached}.tmp`, cached);
}

/** The compiler's lines about one object's source, from a kbuild log. */
function linesAbout(log: readonly string[], object: string): string {
  const src = object.replace(/\.o$/, '.');
  const mine = log.filter((l) => l.startsWith(src) && /\b(error|warning)\b/.test(l));
  return (mine.length ? mine : log.filter((l) => l.includes(object))).slice(0, 6).join('\n') || 'no object was written (see the kbuild log)';
}

/**
 * Progress of a long compile (or preprocess): objects done per side (kbuild's
 * `CC` or `CPP` lines) out of what each side has to build (the cached ones
 * are not built), and the time left at the rate so far.
 */
export function compileProgress(targets: Readonly<Record<Side, readonly string[]>>, update: (detail: string) => void): (side: Side, line: string) => void {
  const t0 = performance.now();
  // Only the targets count, once each: kbuild also compiles what some of them need (a generated file's object), which made the count pass the total.
  const wanted = { orig: new Set(targets.orig), patched: new Set(targets.patched) };
  const done = { orig: new Set<string>(), patched: new Set<string>() };
  let last = 0;
  const want = wanted.orig.size + wanted.patched.size;
  return (side, line) => {
    const m = /^\s+(?:CC|CPP)(?:\s+\[M\])?\s+(\S+\.[oi])$/.exec(line);
    if (!m || !wanted[side].has(m[1]!) || done[side].has(m[1]!)) return;
    done[side].add(m[1]!);
    const now = performance.now();
    if (now - last < 1000) return;
    last = now;
    const all = done.orig.size + done.patched.size;
    const left = all ? ((now - t0) / all) * Math.max(0, want - all) : 0;
    update(`orig ${done.orig.size}/${wanted.orig.size}, patched ${done.patched.size}/${wanted.patched.size}${all > 4 ? `, about ${left >= 60_000 ? `${Math.ceil(left / 60_000)} min` : `${Math.ceil(left / 1000)} s`} left` : ''}`);
  };
}

/**
 * Compile the objects in both trees with kbuild's exact flags (plus function
 * and data sections), orig and patched side by side. Orig objects come from
 * the workspace's cache when an earlier build compiled them; patched ones
 * from `patchedCache` when given.
 */
export async function compileBoth(
  meta: KernelMetadata,
  home: string,
  t: BuildTrees,
  objects: readonly string[],
  progress?: (targets: Record<Side, readonly string[]>) => (side: Side, line: string) => void,
  opts: { keepGoing: boolean; patchedCache?: string | undefined } = { keepGoing: false },
): Promise<CompiledObjects> {
  const cache = origCacheDir(meta);
  const cached = (obj: string) => join(cache, obj);
  const pcache = opts.patchedCache;
  // An object that did not compile with the same changes before (either side) is not tried again: its reason is kept.
  const failedBefore = (o: string) => pcache !== undefined && existsSync(failedMarker(pcache, o));
  const origToBuild = objects.filter((o) => !existsSync(cached(o)) && !failedBefore(o));
  const patchedToBuild = pcache ? objects.filter((o) => !existsSync(join(pcache, o)) && !failedBefore(o)) : objects;
  const onLine = progress?.({ orig: origToBuild, patched: patchedToBuild });
  const tc = toolchainFor(meta, home);
  const make = [...sideMakeArgs(meta), ...OBJECT_ONLY_ARGS];
  const failed = new Map<string, string>();
  const side = async (name: Side, o: Overlay, objects: readonly string[]) => {
    const t0 = performance.now();
    if (!objects.length) return { files: new Map<string, string>(), ms: 0 };
    const keepGoing = opts.keepGoing;
    const r = await tc.run([...make, ...(keepGoing ? ['-k'] : []), ...objects], o.merged, { overlay: o, ...(onLine ? { onLine: (l: string) => onLine(name, l) } : {}) });
    const log = (r.stdout + '\n' + r.stderr).split('\n');
    if (r.code !== 0 && keepGoing) {
      const made = objects.filter((obj) => existsSync(join(o.upper, obj)));
      const missing = objects.filter((obj) => !made.includes(obj));
      if (missing.length) {
        for (const obj of missing) failed.set(obj, `${name === 'orig' ? 'the unpatched tree does not compile it either: ' : ''}${linesAbout(log, obj)}`);
        return { files: new Map(made.map((obj) => [obj, join(o.upper, obj)])), ms: Math.round(performance.now() - t0) };
      }
    }
    if (r.code !== 0) {
      const errors = log.filter((l) => /\berror\b|warning: .*\[-Werror/.test(l)).slice(0, 12);
      throw new SutureError('build', `compiling the ${name} ${objects.length === 1 ? objects[0] : `objects (${objects.join(', ')})`} failed`, {
        details: (errors.length ? errors : log.slice(-12)).join('\n'),
        hint: name === 'patched' ? 'the patch does not compile against this kernel: fix it and build again' : 'the unpatched tree does not compile: the workspace may be damaged (fetch it again)',
      });
    }
    return { files: new Map(objects.map((obj) => [obj, join(o.upper, obj)])), ms: Math.round(performance.now() - t0) };
  };
  const [a, b] = await Promise.all([side('orig', t.orig, origToBuild), side('patched', t.patched, patchedToBuild)]);
  for (const [obj, file] of a.files) intoCache(file, cached(obj));
  if (pcache) {
    for (const [obj, file] of b.files) intoCache(file, join(pcache, obj));
    for (const [obj, why] of failed) {
      mkdirSync(dirname(join(pcache, obj)), { recursive: true });
      writeFileSync(failedMarker(pcache, obj), why);
    }
    for (const obj of objects) {
      const f = failedMarker(pcache, obj);
      if (!failed.has(obj) && existsSync(f)) failed.set(obj, readFileSync(f, 'utf8'));
    }
  }
  const patched = new Map(objects.filter((o) => !failed.has(o)).map((o) => [o, pcache ? join(pcache, o) : b.files.get(o)!]));
  return { orig: new Map(objects.filter((o) => !failed.has(o)).map((o) => [o, cached(o)])), patched, failed, ms: { orig: a.ms, patched: b.ms } };
}

/** Compile one object of a kbuild directory (`make M=<dir> <target>`), with the kernel's own compiler. */
export async function compileObject(meta: KernelMetadata, home: string, dir: string, target: string, onLine?: (l: string) => void, what = target): Promise<string> {
  const tc = toolchainFor(meta, home);
  const cc = meta.compiler.command;
  const argv = ['make', `-j${Math.max(1, cpus().length)}`, '-C', meta.paths.headers, `M=${dir}`, `CC=${cc}`, `HOSTCC=${cc}`, target];
  const r = await tc.run(argv, dir, { onLine: onLine ? (l) => onLine(l) : undefined });
  if (r.code !== 0) {
    const log = (r.stdout + r.stderr).trim().split('\n');
    const errors = log.filter((l) => /(error|warning): /i.test(l) && !/^make(\[\d+\])?: /.test(l)).slice(0, 12);
    throw new SutureError('build', `compiling ${what} failed (make exit ${r.code})`, {
      details: (errors.length ? errors : log.slice(-15)).join('\n'),
      hint: `the build directory is ${dir}`,
    });
  }
  const out = join(dir, target);
  if (!existsSync(out)) throw new SutureError('build', `make succeeded but left no ${target} in ${dir}`);
  return out;
}
