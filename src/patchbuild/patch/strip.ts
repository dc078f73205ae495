// SPDX-License-Identifier: GPL-2.0-only
/**
 * The strip level of a patch, found the way GNU patch and `git apply` find
 * it: by which names exist in the kernel tree once N leading components are
 * dropped. `git diff` writes `a/` `b/` (level 1), kpatch's patches
 * `src.orig/` `src/` (level 1), a release tarball diff
 * `linux-6.1.192.orig/` `linux-6.1.192/` (level 1), `git diff --no-prefix`
 * nothing (level 0); a diff made above the tree has more.
 *
 * Pure: the tree is seen only through a TreeView (the caller reads the disk).
 */
import { editDistance } from '../../kernel/modules.js';
import { SutureError } from '../../util/errors.js';
import { stripComponents, type RawFilePatch } from './parse.js';

/** What the planner may ask of the kernel tree. */
export interface TreeView {
  isFile(path: string): boolean;
  isDir(path: string): boolean;
  /** Entries of a directory ([] when it is not one). */
  list(dir: string): string[];
}

export interface StripChoice {
  level: number;
  forced: boolean;
  /** One sentence: why this level. */
  why: string;
}

/** The names of a file that must exist in the tree at the right level (none for a created file). */
function namesToFind(r: RawFilePatch): { names: string[]; create: boolean } {
  if (r.git?.renameFrom && r.git.renameTo && r.git.renameFrom !== r.git.renameTo) {
    // git writes rename from/to without prefixes; the diff --git names carry them.
    return { names: [r.git.a], create: false };
  }
  const create = r.oldName === undefined || !!r.git?.newFile;
  const del = r.newName === undefined || !!r.git?.deletedFile;
  if (create && !del) return { names: [r.newName ?? r.git?.b ?? ''].filter(Boolean), create: true };
  return { names: [r.oldName, r.newName].filter((n): n is string => n !== undefined), create: false };
}

function componentCount(p: string): number {
  return p.split('/').filter(Boolean).length;
}

/** Whether a file of the patch is where level `n` puts it. */
function foundAt(r: RawFilePatch, n: number, tree: TreeView): boolean {
  const { names, create } = namesToFind(r);
  if (!names.length) return false;
  if (create) {
    const p = stripComponents(names[0]!, n);
    if (p === undefined) return false;
    const dir = p.includes('/') ? p.slice(0, p.lastIndexOf('/')) : '.';
    return tree.isDir(dir) && !tree.isFile(p);
  }
  return names.some((name) => {
    const p = stripComponents(name, n);
    return p !== undefined && tree.isFile(p);
  });
}

/**
 * Files of the tree whose path is nearest to `path`: siblings with a similar
 * name in the deepest directory that exists, and files of the same name
 * under it. At most `max`, nearest first.
 */
export function nearestPaths(path: string, tree: TreeView, max = 5): string[] {
  const parts = path.split('/').filter(Boolean);
  let depth = 0;
  while (depth < parts.length - 1 && tree.isDir(parts.slice(0, depth + 1).join('/'))) depth++;
  const dir = parts.slice(0, depth).join('/');
  const rest = parts.slice(depth);
  const out = new Map<string, number>();
  const want = rest[0] ?? '';
  for (const e of tree.list(dir || '.')) {
    const d = editDistance(e, want);
    if (d <= Math.max(2, Math.floor(want.length / 3))) {
      const p = dir ? `${dir}/${e}` : e;
      // A directory: go on with the rest of the path inside it when that exists.
      const full = rest.length > 1 ? `${p}/${rest.slice(1).join('/')}` : p;
      const shown = tree.isFile(full) ? full : p;
      out.set(shown, Math.min(out.get(shown) ?? Infinity, d));
    }
  }
  // The same file name anywhere under the deepest existing directory (bounded walk).
  const base = parts[parts.length - 1]!;
  const queue = [dir || '.'];
  let seen = 0;
  while (queue.length && seen < 40000) {
    const d = queue.shift()!;
    for (const e of tree.list(d)) {
      seen++;
      if (e.startsWith('.')) continue;
      const p = d === '.' ? e : `${d}/${e}`;
      if (e === base && tree.isFile(p)) out.set(p, Math.min(out.get(p) ?? Infinity, 1 + editDistance(p, path) / 100));
      else if (!e.includes('.') || tree.isDir(p)) {
        if (tree.isDir(p)) queue.push(p);
      }
    }
  }
  return [...out.entries()].sort((a, b) => a[1] - b[1] || a[0].localeCompare(b[0])).slice(0, max).map(([p]) => p);
}

/**
 * The strip level for one patch: `forced` when given (checked: every file
 * must be found there), else the smallest level at which every file it
 * modifies or deletes exists and every file it creates has its directory.
 * When no level fits, the error names each file missing at the level that
 * finds the most, with the nearest paths the tree has.
 */
export function detectStrip(raw: readonly RawFilePatch[], tree: TreeView, source: string, forced?: number): StripChoice {
  const checked = raw.filter((r) => namesToFind(r).names.length > 0);
  const maxLevel = Math.max(0, Math.min(8, ...checked.flatMap((r) => namesToFind(r).names.map((n) => componentCount(n) - 1))));
  const okAt = (n: number) => checked.filter((r) => foundAt(r, n, tree));
  if (forced !== undefined) {
    const ok = okAt(forced);
    if (ok.length === checked.length) return { level: forced, forced: true, why: `-p${forced} as given` };
    throw missing(checked.filter((r) => !ok.includes(r)), forced, tree, source, true);
  }
  const levels = Array.from({ length: maxLevel + 1 }, (_, n) => n);
  for (const n of levels) {
    if (okAt(n).length === checked.length) {
      const sample = checked[0];
      const name = sample ? namesToFind(sample).names[0]! : '';
      const prefix = n > 0 && name ? name.split('/').filter(Boolean).slice(0, n).join('/') : '';
      return {
        level: n,
        forced: false,
        why: n === 0 ? 'the names are paths of the kernel tree as written' : `the names are paths of the kernel tree once ${n === 1 ? `the leading component (${prefix}/) is` : `${n} leading components (${prefix}/) are`} dropped`,
      };
    }
  }
  // None fits every file: report against the level that finds the most (the lower one on a tie, but 1 when nothing is found, as git would write).
  let best = checked.length && okAt(1).length === 0 && levels.every((n) => okAt(n).length === 0) ? Math.min(1, maxLevel) : 0;
  for (const n of levels) if (okAt(n).length > okAt(best).length) best = n;
  const ok = okAt(best);
  throw missing(checked.filter((r) => !ok.includes(r)), best, tree, source, false);
}

function missing(files: readonly RawFilePatch[], level: number, tree: TreeView, source: string, forced: boolean): SutureError {
  const lines: string[] = [];
  for (const r of files) {
    const { names, create } = namesToFind(r);
    const p = stripComponents(names[0]!, level) ?? names[0]!;
    const near = nearestPaths(create && p.includes('/') ? p.slice(0, p.lastIndexOf('/')) : p, tree);
    const what = create ? `${p}: the patch creates it, but its directory is not in the kernel tree` : `${p} is not in the kernel tree`;
    lines.push(`${source}:${r.line}: ${what}${near.length ? `; nearest: ${near.join(', ')}` : ''}`);
  }
  const first = files[0] ? namesToFind(files[0]).names[0]! : '';
  return new SutureError('not-found', `${source}: ${files.length === 1 ? 'a file it changes is' : `${files.length} files it changes are`} not in the kernel tree (${forced ? `with -p${level} as given` : `read as -p${level}, the level that finds the most`})`, {
    details: lines.join('\n'),
    hint: forced
      ? `check -p: ${first} with ${level} leading component${level === 1 ? '' : 's'} dropped is not a path of this kernel's tree`
      : 'is the patch for this kernel (Debian\'s tree of this release)? If its names have another prefix, give the strip level with -p N',
  });
}
