// SPDX-License-Identifier: GPL-2.0-only
/**
 * The two trees of a diff build: `orig` and `patched`, each an overlay mounted
 * over the prepared tree's own path (so every absolute path kbuild recorded
 * stays valid and nothing is rebuilt but the objects asked for). All writes
 * land in the build's own upper directories under $SUTURE_HOME/builds/<id>;
 * the prepared tree is never modified, even if suture is killed. Also here:
 * checking that a patch applies (where each hunk lands) and applying it in
 * the patched overlay. The compile step is compile.ts.
 */
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { SutureError } from '../util/errors.js';
import { run } from '../util/exec.js';
import { runWithOverlay, type Overlay } from '../kernel/toolchain.js';
import type { KernelMetadata } from '../kernel/workspace.js';
import { authorHeaders } from './author-headers.js';
import { locateHunks } from './patch/located.js';
import { formatPatch, type FilePatch } from './patch/parse.js';
import type { LoadedPatch } from './patch/inputs.js';

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
  // suture.h, kpatch-macros.h and kpatch-syscall.h on the patched side's include path (the tree's include/),
  // for patches that `#include "kpatch-macros.h"`; the orig side never sees them.
  mkdirSync(join(t.patched.upper, 'include'), { recursive: true });
  for (const h of authorHeaders()) copyFileSync(h.path, join(t.patched.upper, 'include', h.name));
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
 * Check that a patch applies to the prepared tree, nothing written there; a
 * clear error with each failing hunk otherwise. GNU patch is run for real on
 * copies of the files it touches, not with --dry-run: a dry run checks every
 * section against the unpatched file, so the second of two fixes to one file
 * (a series, or two patch files given together) would be refused although it
 * applies on top of the first.
 */
export async function checkPatchApplies(tree: string, patchFile: string, source: string, paths: readonly string[]): Promise<string> {
  const scratch = mkdtempSync(join(dirname(patchFile), 'apply-check-'));
  try {
    for (const p of new Set(paths)) {
      const from = join(tree, p);
      if (!existsSync(from)) continue;
      mkdirSync(dirname(join(scratch, p)), { recursive: true });
      copyFileSync(from, join(scratch, p));
    }
    const r = await run(['patch', ...PATCH_ARGS, '-i', patchFile], { cwd: scratch });
    if (r.code !== 0) {
      const fails = patchFailures(r.stdout + r.stderr);
      throw new SutureError('invalid-input', `${source} does not apply to the kernel source (${fails.length || 'some'} hunk${fails.length === 1 ? '' : 's'} failed)`, {
        details: (fails.length ? fails.map((f) => `${f.file}: ${f.text}`) : (r.stdout + r.stderr).trim().split('\n').slice(-8)).join('\n'),
        hint: 'the patch must be made against this kernel\'s source (Debian\'s tree for this release), not another version',
      });
    }
    return r.stdout;
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
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

/**
 * The apply-check stage: the patches, combined, must apply to the prepared
 * tree (GNU patch's dry run, -p1 on the tree-relative names); each hunk is
 * moved to the line GNU patch applies it at (a patch for a nearby kernel
 * applies with an offset; fuzz is refused). `update` hears each patch's strip
 * level and each moved hunk.
 */
export async function locatePatches(tree: string, buildRoot: string, loaded: readonly LoadedPatch[], update: (detail: string) => void): Promise<FilePatch[]> {
  const stated = loaded.flatMap((l) => l.files);
  const combined = join(buildRoot, 'user.patch');
  writeFileSync(combined, formatPatch(stated));
  for (const l of loaded) update(`${l.label}: -p${l.strip.level} (${l.strip.why})`);
  const what = loaded.map((l) => l.label).join(' + ');
  const located = locateHunks(stated, await checkPatchApplies(tree, combined, what, patchedPaths(stated)), what);
  located.forEach((f, i) =>
    f.hunks.forEach((h, j) => {
      const said = stated[i]!.hunks[j]!.oldStart;
      if (h.oldStart !== said) update(`${f.path}: hunk #${j + 1} applies at line ${h.oldStart} (${h.oldStart - said} lines from where it says)`);
    }),
  );
  return located;
}

/** The tree paths a patch may read: each section's path and old name (those that do not exist are skipped). */
export function patchedPaths(files: readonly FilePatch[]): string[] {
  return files.flatMap((f) => [f.path, ...(f.oldPath !== undefined ? [f.oldPath] : [])]);
}
