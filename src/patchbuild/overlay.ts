// SPDX-License-Identifier: GPL-2.0-only
/**
 * The two trees of a diff build: `orig` and `patched`, each an overlay mounted
 * over the prepared tree's own path (so every absolute path kbuild recorded
 * stays valid and nothing is rebuilt but the objects asked for). All writes
 * land in the build's own upper directories under $SUTURE_HOME/builds/<id>;
 * the prepared tree is never modified, even if suture is killed.
 */
import { copyFileSync, existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { SutureError } from '../util/errors.js';
import { run } from '../util/exec.js';
import { toolchainFor, treeMakeArgs } from '../kernel/kbuild.js';
import { runWithOverlay, type Overlay } from '../kernel/toolchain.js';
import type { KernelMetadata } from '../kernel/workspace.js';

export interface BuildTrees {
  root: string;
  orig: Overlay;
  patched: Overlay;
}

export function makeBuildTrees(home: string, meta: KernelMetadata, id: string): BuildTrees {
  const root = join(home, 'builds', id);
  const overlay = (side: string): Overlay => ({
    lower: meta.paths.source,
    upper: join(root, side, 'upper'),
    work: join(root, side, 'work'),
    merged: meta.paths.source,
  });
  const t = { root, orig: overlay('orig'), patched: overlay('patched') };
  for (const o of [t.orig, t.patched]) for (const d of [o.upper, o.work]) mkdirSync(d, { recursive: true });
  return t;
}

export function removeBuildTrees(t: BuildTrees): void {
  rmSync(t.root, { recursive: true, force: true });
}

export interface PatchFailure {
  file: string;
  hunk: number;
  line: number | undefined;
  text: string;
}

/** The hunks GNU patch could not apply, from its output. */
export function patchFailures(output: string): PatchFailure[] {
  const out: PatchFailure[] = [];
  let file = '?';
  for (const line of output.split('\n')) {
    const f = /^(?:checking|patching) file (.+)$/.exec(line);
    if (f) file = f[1]!.replace(/^'|'$/g, '');
    const h = /^Hunk #(\d+) FAILED(?: at (\d+))?/.exec(line);
    if (h) out.push({ file, hunk: Number(h[1]), line: h[2] ? Number(h[2]) : undefined, text: line });
    const missing = /^can't find file to patch at input line (\d+)/.exec(line);
    if (missing) out.push({ file: '(unknown)', hunk: 0, line: Number(missing[1]), text: line });
    const gone = /^(?:patch: \*\*\*\* )?Can't (?:open|find) (?:file )?(.+?)(?: : |$)/.exec(line);
    if (gone && !missing) out.push({ file: gone[1]!, hunk: 0, line: undefined, text: line });
  }
  return out;
}

const PATCH_ARGS = ['-p1', '--batch', '--forward', '--no-backup-if-mismatch', '--reject-file=-'];

/**
 * Check that a patch applies to the prepared tree (dry run, nothing written);
 * a clear error with each failing hunk otherwise.
 */
export async function checkPatchApplies(tree: string, patchFile: string, source: string): Promise<string> {
  const r = await run(['patch', ...PATCH_ARGS, '--dry-run', '-i', patchFile], { cwd: tree });
  if (r.code !== 0) {
    const fails = patchFailures(r.stdout + r.stderr);
    throw new SutureError('invalid-input', `${source} does not apply to the kernel source (${fails.length || 'some'} hunk${fails.length === 1 ? '' : 's'} failed)`, {
      details: (fails.length ? fails.map((f) => `${f.file}: ${f.text}`) : (r.stdout + r.stderr).trim().split('\n').slice(-8)).join('\n'),
      hint: 'the patch must be made against this kernel\'s source (Debian\'s tree for this release), not another version',
    });
  }
  return r.stdout;
}

/** Apply a (checked) patch into the patched overlay. */
export async function applyPatch(t: BuildTrees, patchText: string, source: string): Promise<void> {
  const file = join(t.root, 'applied.patch');
  writeFileSync(file, patchText);
  const r = await runWithOverlay(['patch', ...PATCH_ARGS, '-i', file], t.patched.merged, t.patched);
  if (r.code !== 0) {
    throw new SutureError('internal', `${source} passed its dry run but did not apply in the build overlay`, {
      details: (r.stdout + r.stderr).trim().split('\n').slice(-8).join('\n'),
    });
  }
}

export interface CompiledObjects {
  /** object path (relative to the tree) → the compiled file */
  orig: Map<string, string>;
  patched: Map<string, string>;
  seconds: { orig: number; patched: number };
}

/**
 * Where orig objects are kept between builds: an orig object depends only on
 * the prepared tree, so a second patch of the same unit compiles one side only.
 */
export function origCacheDir(meta: KernelMetadata): string {
  return join(meta.paths.root, 'orig-objects');
}

/**
 * Compile the objects in both trees with kbuild's exact flags (plus function
 * and data sections), orig and patched side by side. Orig objects come from
 * the workspace's cache when an earlier build compiled them.
 */
export async function compileBoth(meta: KernelMetadata, home: string, t: BuildTrees, objects: readonly string[]): Promise<CompiledObjects> {
  const cache = origCacheDir(meta);
  const cached = (obj: string) => join(cache, obj);
  const origToBuild = objects.filter((o) => !existsSync(cached(o)));
  const tc = toolchainFor(meta, home);
  const jobs = Math.max(1, Math.floor(cpus().length / 2));
  const make = treeMakeArgs(meta.compiler.command, meta.release, jobs);
  const side = async (name: 'orig' | 'patched', o: Overlay, objects: readonly string[]) => {
    const t0 = performance.now();
    if (!objects.length) return { files: new Map<string, string>(), seconds: 0 };
    const r = await tc.run([...make, ...objects], o.merged, { overlay: o });
    if (r.code !== 0) {
      const log = (r.stdout + '\n' + r.stderr).split('\n');
      const errors = log.filter((l) => /\berror\b|warning: .*\[-Werror/.test(l)).slice(0, 12);
      throw new SutureError('build', `compiling the ${name} ${objects.length === 1 ? objects[0] : `objects (${objects.join(', ')})`} failed`, {
        details: (errors.length ? errors : log.slice(-12)).join('\n'),
        hint: name === 'patched' ? 'the patch does not compile against this kernel: fix it and build again' : 'the unpatched tree does not compile: the workspace may be damaged (fetch it again)',
      });
    }
    return { files: new Map(objects.map((obj) => [obj, join(o.upper, obj)])), seconds: (performance.now() - t0) / 1000 };
  };
  const [a, b] = await Promise.all([side('orig', t.orig, origToBuild), side('patched', t.patched, objects)]);
  for (const [obj, file] of a.files) {
    // Into the cache atomically: a half-copied object must never be taken for a compiled one.
    mkdirSync(dirname(cached(obj)), { recursive: true });
    copyFileSync(file, `${cached(obj)}.tmp`);
    renameSync(`${cached(obj)}.tmp`, cached(obj));
  }
  return { orig: new Map(objects.map((o) => [o, cached(o)])), patched: b.files, seconds: { orig: a.seconds, patched: b.seconds } };
}
