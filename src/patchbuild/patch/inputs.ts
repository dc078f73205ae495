// SPDX-License-Identifier: GPL-2.0-only
/**
 * The patches a user names on the command line, read from disk: single
 * patch files (`git diff`, `diff -Nupr`, `git format-patch` mail with one or
 * several messages) and quilt-style folders (a `series` file listing the
 * patches in order, `#` comments, an optional `-pN` after a name). Each patch
 * then gets its strip level against the kernel tree (strip.ts) and its files
 * with tree-relative paths.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join, relative, resolve } from 'node:path';
import { SutureError, fsError } from '../../util/errors.js';
import { readUnifiedDiff, stripPatch, type FilePatch } from './parse.js';
import { detectStrip, type StripChoice, type TreeView } from './strip.js';

export interface PatchInput {
  /** The file on disk. */
  file: string;
  /** How messages name it: the file name, or `series-dir/name` for a series entry. */
  label: string;
  text: string;
  /** A strip level the series file gives for it (`name -p0`). */
  strip?: number;
}

/** A series line: `name [-pN]`, `#` comments. */
export function parseSeries(text: string, file: string): { name: string; strip?: number }[] {
  const out: { name: string; strip?: number }[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/(^|\s)#.*$/, '').trim();
    if (!line) return;
    const [name, ...opts] = line.split(/\s+/);
    let strip: number | undefined;
    for (const o of opts) {
      const m = /^-p(\d+)$/.exec(o);
      if (m) strip = Number(m[1]);
      else {
        throw new SutureError('invalid-input', `${file}:${i + 1}: unknown option ${o} for ${name}`, {
          hint: 'a series line is a patch file name, optionally followed by -pN (as quilt writes it)',
        });
      }
    }
    out.push({ name: name!, ...(strip !== undefined ? { strip } : {}) });
  });
  return out;
}

function readText(file: string, what: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    throw fsError(e, what, file);
  }
}

/** The patch inputs behind the command-line arguments, in order. */
export function readPatchInputs(args: readonly string[]): PatchInput[] {
  const out: PatchInput[] = [];
  for (const arg of args) {
    let st;
    try {
      st = statSync(arg);
    } catch (e) {
      throw fsError(e, 'reading the patch', arg);
    }
    if (!st.isDirectory()) {
      out.push({ file: arg, label: basename(arg), text: readText(arg, 'reading the patch') });
      continue;
    }
    const series = join(arg, 'series');
    let seriesText: string;
    try {
      seriesText = readFileSync(series, 'utf8');
    } catch {
      const patches = readdirSync(arg).filter((f) => /\.(patch|diff)$/.test(f));
      throw new SutureError('invalid-input', `${arg} is a folder without a series file`, {
        hint: patches.length
          ? `write ${series} listing its patches in the order they apply (${patches.slice(0, 3).join(', ')}${patches.length > 3 ? ', ...' : ''}), or name the patch files themselves`
          : 'give patch files, or a quilt folder whose series file lists them in order',
      });
    }
    const entries = parseSeries(seriesText, series);
    if (!entries.length) throw new SutureError('invalid-input', `${series} lists no patch`, { hint: 'one patch file name per line, in the order they apply' });
    for (const e of entries) {
      const file = join(arg, e.name);
      const label = `${basename(arg)}/${e.name}`;
      let text: string;
      try {
        text = readFileSync(file, 'utf8');
      } catch (err) {
        throw new SutureError('not-found', `${series} lists ${e.name}, but ${relative(process.cwd(), file) || file} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`, {
          hint: 'fix the name in the series file, or add the patch',
        });
      }
      out.push({ file, label, text, ...(e.strip !== undefined ? { strip: e.strip } : {}) });
    }
  }
  return out;
}

/** The kernel tree on disk, as the strip planner sees it. */
export function diskTree(root: string): TreeView {
  const stat = (p: string) => {
    try {
      return statSync(join(root, p));
    } catch {
      return undefined;
    }
  };
  return {
    isFile: (p) => stat(p)?.isFile() ?? false,
    isDir: (p) => stat(p)?.isDirectory() ?? false,
    list: (d) => {
      try {
        return readdirSync(join(root, d));
      } catch {
        return [];
      }
    },
  };
}

export interface LoadedPatch {
  label: string;
  strip: StripChoice;
  files: FilePatch[];
}

/**
 * Every input's files with tree-relative paths. `forced` (-p N) applies to
 * every input; otherwise a series line's -pN, else the detected level.
 */
export function loadPatches(inputs: readonly PatchInput[], tree: TreeView, forced?: number): LoadedPatch[] {
  return inputs.map((input) => {
    const raw = readUnifiedDiff(input.text, input.label);
    if (!raw.length) {
      throw new SutureError('invalid-input', `${input.label} changes no file`, {
        hint: 'is it empty, or not a unified diff? give the output of `git diff`, `git format-patch` or `diff -u` against the kernel tree',
      });
    }
    const level = forced ?? input.strip;
    const strip = detectStrip(raw, tree, input.label, level);
    if (level !== undefined && input.strip !== undefined && forced === undefined) strip.why = `-p${level} from the series file`;
    return { label: input.label, strip, files: stripPatch(raw, strip.level, input.label, tree.isFile) };
  });
}

/** The patches of one build, read and stripped: the first stage of `suture build fix.patch`. */
export interface PatchSet {
  readonly patches: readonly LoadedPatch[];
  /** Every file of every patch, in order, with tree-relative paths (as stated: before hunks are located). */
  readonly files: readonly FilePatch[];
  /** sha256 of the patch texts as read (modinfo suture_patch_sha256). */
  readonly sha256: string;
  /** What the module is named after: the first patch file, or its directory when its name is generic (fix.patch). */
  readonly label: string;
}

/** Read the patches behind the command-line arguments; each one's strip level found against the tree unless `forced`. */
export function readPatchSet(args: readonly string[], tree: TreeView, forced?: number): PatchSet {
  const texts = readPatchInputs(args);
  const patches = loadPatches(texts, tree, forced);
  const first = resolve(args[0]!);
  const stem = basename(first).replace(/\.(patch|diff)$/, '');
  return {
    patches,
    files: patches.flatMap((l) => l.files),
    sha256: createHash('sha256').update(texts.map((t) => t.text).join('\n')).digest('hex'),
    label: /^(fix|patch|diff|\d+)$/.test(stem) ? basename(resolve(first, '..')) : stem,
  };
}
