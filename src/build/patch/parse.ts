// SPDX-License-Identifier: GPL-2.0-only
/**
 * Source patches as suture reads them: unified diffs (git or plain `diff -u`),
 * one or more files each, split into files and hunks. Applying them is left to
 * GNU patch in the build overlay; this is for planning and reporting.
 */
import { parsePatch, type StructuredPatch } from 'diff';
import { SutureError } from '../../util/errors.js';

export type FileKind = 'c' | 'header' | 'asm' | 'build' | 'other';

export interface Hunk {
  oldStart: number;
  oldLines: number;
  newStart: number;
  newLines: number;
  /** Lines with their ' ', '+', '-' or '\' prefix. */
  lines: string[];
}

export interface FilePatch {
  /** The path inside the kernel tree (a/ and b/ prefixes removed). */
  path: string;
  oldPath: string | undefined;
  newPath: string | undefined;
  change: 'modify' | 'create' | 'delete' | 'rename';
  kind: FileKind;
  hunks: Hunk[];
  /** The patch file this came from, for messages. */
  source: string;
}

/** What kind of file a path is, for the rules that follow. */
export function fileKind(path: string): FileKind {
  if (/\.c$/.test(path)) return 'c';
  if (/\.h$/.test(path)) return 'header';
  if (/\.S$/.test(path)) return 'asm';
  if (/(^|\/)(Makefile|Kbuild|Kconfig)[^/]*$/.test(path) || /\.(mk|lds|lds\.S)$/.test(path)) return 'build';
  return 'other';
}

function stripPrefix(p: string | undefined): string | undefined {
  if (!p || p === '/dev/null') return undefined;
  const t = p.replace(/\t.*$/, '').trim();
  return t.replace(/^[ab]\//, '');
}

/** Parse one patch file's text. Errors name the patch file and what is wrong. */
export function parseSourcePatch(text: string, source: string): FilePatch[] {
  let parsed: StructuredPatch[];
  try {
    parsed = parsePatch(text);
  } catch (e) {
    throw new SutureError('invalid-input', `${source} is not a unified diff: ${(e as Error).message}`, {
      hint: 'give the output of `git diff`, `git format-patch` or `diff -u` against the kernel tree',
    });
  }
  const files: FilePatch[] = [];
  for (const p of parsed) {
    const oldPath = stripPrefix(p.oldFileName);
    const newPath = stripPrefix(p.newFileName);
    const path = newPath ?? oldPath;
    if (!path) continue; // an empty trailing record (mail signature, etc.)
    if (path.startsWith('/') || path.split('/').includes('..')) {
      throw new SutureError('invalid-input', `${source}: the path ${path} points outside the kernel tree`, {
        hint: 'paths in the patch must be relative to the top of the kernel tree (as `git diff` writes them)',
      });
    }
    const change: FilePatch['change'] = !oldPath ? 'create' : !newPath ? 'delete' : oldPath !== newPath ? 'rename' : 'modify';
    files.push({
      path,
      oldPath,
      newPath,
      change,
      kind: fileKind(path),
      hunks: p.hunks.map((h) => ({ oldStart: h.oldStart, oldLines: h.oldLines, newStart: h.newStart, newLines: h.newLines, lines: [...h.lines] })),
      source,
    });
  }
  if (!files.length) {
    throw new SutureError('invalid-input', `${source} changes no file`, { hint: 'is it empty, or not a unified diff?' });
  }
  return files;
}

/** Write files back as one unified diff (a/ b/ prefixes, as `patch -p1` expects). */
export function formatPatch(files: readonly FilePatch[]): string {
  const out: string[] = [];
  for (const f of files) {
    out.push(`--- ${f.oldPath ? `a/${f.oldPath}` : '/dev/null'}`);
    out.push(`+++ ${f.newPath ? `b/${f.newPath}` : '/dev/null'}`);
    for (const h of f.hunks) {
      const range = (start: number, n: number) => (n === 1 ? `${start}` : `${start},${n}`);
      out.push(`@@ -${range(h.oldStart, h.oldLines)} +${range(h.newStart, h.newLines)} @@`);
      out.push(...h.lines);
    }
  }
  return `${out.join('\n')}\n`;
}
