// SPDX-License-Identifier: GPL-2.0-only
/**
 * Source patches as people write them, read the way GNU patch and `git apply`
 * read them: unified diffs from `git diff`, `git format-patch` mail (one or
 * several messages, with their preamble, diffstat and signature), or plain
 * `diff -Nupr src.orig src`. This file is pure: it turns text into files and
 * hunks with the names as written; strip.ts decides how many leading path
 * components to drop. Applying is left to GNU patch in the build overlay.
 *
 * Unlike a generic diff parser, a hunk is read by the line counts of its
 * `@@` header and nothing more, so a mail signature (`-- `) or the next
 * message's headers after the last hunk are never taken for diff lines.
 */
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

/** One file of a patch with its names as written (prefixes and all). */
export interface RawFilePatch {
  /** The `---` name (undefined: /dev/null, or a git header without one). */
  oldName: string | undefined;
  /** The `+++` name (undefined: /dev/null). */
  newName: string | undefined;
  /** Git's extended header, when the file came with `diff --git`. */
  git?: {
    /** The two names of the `diff --git A B` line. */
    a: string;
    b: string;
    newFile: boolean;
    deletedFile: boolean;
    /** `rename from` / `rename to` (git writes these without prefixes). */
    renameFrom?: string;
    renameTo?: string;
    /** `copy from` / `copy to`. */
    copyFrom?: string;
    copyTo?: string;
    binary: boolean;
  };
  hunks: Hunk[];
  /** Line of the patch where this file starts (1-based), for messages. */
  line: number;
  /** The mail subject it came under (git format-patch), for messages. */
  subject?: string;
}

export interface FilePatch {
  /** The path inside the kernel tree (its prefix components removed). */
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

/** A name from a `---`/`+++` line: the timestamp after a tab dropped, git's quoting undone. */
function headerName(rest: string): string | undefined {
  let t = rest.replace(/\t.*$/, '').replace(/\s+$/, '');
  // diff -u writes "name<TAB>date"; some tools use two or more spaces before the date.
  t = t.replace(/ {2,}\d{4}-\d\d-\d\d.*$/, '');
  if (t.startsWith('"') && t.endsWith('"')) t = unquote(t);
  return t === '/dev/null' ? undefined : t;
}

/** Git's C-style quoted path ("a/sp\303\244ce.c"). */
function unquote(q: string): string {
  const bytes: number[] = [];
  const s = q.slice(1, -1);
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c !== '\\') {
      bytes.push(...Buffer.from(c, 'utf8'));
      continue;
    }
    const n = s[++i] ?? '';
    if (/[0-7]/.test(n)) {
      const oct = s.slice(i, i + 3);
      bytes.push(parseInt(oct, 8));
      i += 2;
    } else bytes.push(({ n: 10, t: 9, r: 13, '"': 34, '\\': 92 } as Record<string, number>)[n] ?? n.charCodeAt(0));
  }
  return Buffer.from(bytes).toString('utf8');
}

/** The two names of `diff --git A B` (each may be quoted; unquoted names split at " b/" style midpoint). */
function gitNames(rest: string): { a: string; b: string } | undefined {
  const q = /^("(?:[^"\\]|\\.)*")\s+("(?:[^"\\]|\\.)*"|\S.*)$/.exec(rest);
  if (q) return { a: unquote(q[1]!), b: q[2]!.startsWith('"') ? unquote(q[2]!) : q[2]! };
  // Unquoted: both halves have the same length after their prefixes when the name is unchanged.
  const parts = rest.split(' ');
  for (let i = 1; i < parts.length; i++) {
    const a = parts.slice(0, i).join(' ');
    const b = parts.slice(i).join(' ');
    if (a.replace(/^[^/]*\//, '') === b.replace(/^[^/]*\//, '')) return { a, b };
  }
  if (parts.length === 2) return { a: parts[0]!, b: parts[1]! };
  return undefined;
}

const HUNK_RE = /^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@/;

/**
 * Read every file of a unified diff, with names as written. Text outside
 * files (mail headers, commit messages, diffstats, signatures) is skipped.
 * A hunk whose lines run short is an error naming the patch and the line.
 */
export function readUnifiedDiff(text: string, source: string): RawFilePatch[] {
  const lines = text.replace(/\r\n/g, '\n').split('\n');
  const files: RawFilePatch[] = [];
  let git: RawFilePatch['git'] | undefined;
  let gitLine = 0;
  let subject: string | undefined;
  let cur: RawFilePatch | undefined;
  const flushGit = () => {
    // A git file with no ---/+++ (a pure rename, a mode change, an empty new file, a binary file).
    if (git && (!cur || cur.git !== git)) {
      files.push({ oldName: git.newFile ? undefined : git.a, newName: git.deletedFile ? undefined : git.b, git, hunks: [], line: gitLine, ...(subject ? { subject } : {}) });
    }
    git = undefined;
  };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (/^From [0-9a-f]{7,64} /.test(line)) {
      flushGit();
      cur = undefined;
      continue;
    }
    const subj = /^Subject: (.*)$/.exec(line);
    if (subj && !cur && !git) {
      subject = subj[1]!.trim();
      continue;
    }
    if (line.startsWith('diff --git ')) {
      flushGit();
      const names = gitNames(line.slice('diff --git '.length));
      if (!names) throw new SutureError('invalid-input', `${source}:${i + 1}: cannot read the file names of ${JSON.stringify(line)}`);
      git = { ...names, newFile: false, deletedFile: false, binary: false };
      gitLine = i + 1;
      cur = undefined;
      continue;
    }
    if (git && (!cur || cur.git !== git)) {
      let m: RegExpExecArray | null;
      if (line.startsWith('new file mode')) git.newFile = true;
      else if (line.startsWith('deleted file mode')) git.deletedFile = true;
      else if ((m = /^rename from (.*)$/.exec(line))) git.renameFrom = m[1]!.startsWith('"') ? unquote(m[1]!) : m[1]!;
      else if ((m = /^rename to (.*)$/.exec(line))) git.renameTo = m[1]!.startsWith('"') ? unquote(m[1]!) : m[1]!;
      else if ((m = /^copy from (.*)$/.exec(line))) git.copyFrom = m[1]!;
      else if ((m = /^copy to (.*)$/.exec(line))) git.copyTo = m[1]!;
      else if (line.startsWith('GIT binary patch') || /^Binary files .* differ$/.test(line)) git.binary = true;
    }
    if (line.startsWith('--- ') && lines[i + 1]?.startsWith('+++ ') && HUNK_RE.test(lines[i + 2] ?? '')) {
      cur = { oldName: headerName(line.slice(4)), newName: headerName(lines[i + 1]!.slice(4)), hunks: [], line: i + 1, ...(git ? { git } : {}), ...(subject ? { subject } : {}) };
      files.push(cur);
      i++;
      continue;
    }
    const h = HUNK_RE.exec(line);
    if (h && cur) {
      const hunk: Hunk = { oldStart: Number(h[1]), oldLines: h[2] === undefined ? 1 : Number(h[2]), newStart: Number(h[3]), newLines: h[4] === undefined ? 1 : Number(h[4]), lines: [] };
      let old = 0;
      let neu = 0;
      let j = i + 1;
      while (j < lines.length && (old < hunk.oldLines || neu < hunk.newLines)) {
        let l = lines[j]!;
        if (l === '') {
          if (j === lines.length - 1) break; // the end of the text, not a line
          l = ' '; // a context line whose trailing space a mailer or editor removed
        }
        const c = l[0];
        if (c === ' ') {
          old++;
          neu++;
        } else if (c === '-') old++;
        else if (c === '+') neu++;
        else if (c !== '\\') break;
        hunk.lines.push(l);
        j++;
      }
      if (old !== hunk.oldLines || neu !== hunk.newLines) {
        throw new SutureError('invalid-input', `${source}:${i + 1}: the hunk ${line.trim()} ends after ${old} old and ${neu} new lines`, {
          hint: 'the patch is damaged (cut short, or its lines were rewrapped by a mailer): export it again with git format-patch or diff -u',
        });
      }
      // "\ No newline at end of file" belongs to the last line of the hunk.
      if (lines[j]?.startsWith('\\')) hunk.lines.push(lines[j++]!);
      cur.hunks.push(hunk);
      i = j - 1;
      continue;
    }
  }
  flushGit();
  return files;
}

/** Drop `n` leading components of a path, as `patch -pN` does (undefined when it has too few). */
export function stripComponents(p: string, n: number): string | undefined {
  if (n === 0) return p;
  const parts = p.split('/').filter((x, i) => x !== '' || i === 0);
  if (parts[0] === '') parts.shift(); // an absolute path: "/" is not a component of its own here
  if (parts.length <= n) return undefined;
  return parts.slice(n).join('/');
}

/**
 * The files of a patch with `strip` leading components removed from every
 * name. Created, deleted and renamed are what the patch says (git's headers,
 * /dev/null), never inferred from two names that differ: `--- fs/x.c.orig`
 * `+++ fs/x.c` modifies fs/x.c, as GNU patch reads it.
 */
export function stripPatch(raw: readonly RawFilePatch[], strip: number, source: string, exists?: (path: string) => boolean): FilePatch[] {
  const files: FilePatch[] = [];
  for (const r of raw) {
    const s = (n: string | undefined) => (n === undefined ? undefined : stripComponents(n, strip));
    let oldPath = s(r.oldName);
    let newPath = s(r.newName);
    const create = r.oldName === undefined || !!r.git?.newFile;
    const del = r.newName === undefined || !!r.git?.deletedFile;
    const renamed = !!(r.git?.renameFrom && r.git.renameTo && r.git.renameFrom !== r.git.renameTo);
    if (renamed) {
      oldPath = r.git!.renameFrom;
      newPath = r.git!.renameTo;
    }
    for (const [name, p] of [[r.oldName, oldPath], [r.newName, newPath]] as const) {
      if (name !== undefined && p === undefined && !renamed) {
        throw new SutureError('invalid-input', `${source}:${r.line}: ${name} has no path left after removing ${strip} leading component${strip === 1 ? '' : 's'}`, {
          hint: `give the strip level with -p N (the number of leading directories to drop, as patch -pN); ${strip} is too many for this name`,
        });
      }
    }
    let change: FilePatch['change'];
    let path: string;
    if (renamed) {
      change = 'rename';
      path = newPath!;
    } else if (create && !del) {
      change = 'create';
      path = newPath!;
    } else if (del && !create) {
      change = 'delete';
      path = oldPath!;
    } else if (create && del) {
      continue; // /dev/null to /dev/null: nothing
    } else {
      change = 'modify';
      // Two different names (diff -u x.c.orig x.c): the file is the one that exists, the new name first.
      path = oldPath === newPath || !exists ? newPath! : exists(newPath!) ? newPath! : exists(oldPath!) ? oldPath! : newPath!;
      oldPath = path;
      newPath = path;
    }
    if (path.startsWith('/') || path.split('/').includes('..')) {
      throw new SutureError('invalid-input', `${source}: the path ${path} points outside the kernel tree`, {
        hint: 'paths in the patch must be relative to the top of the kernel tree (as `git diff` writes them)',
      });
    }
    files.push({
      path,
      oldPath: change === 'create' ? undefined : oldPath,
      newPath: change === 'delete' ? undefined : newPath,
      change,
      kind: fileKind(path),
      hunks: r.hunks,
      source,
    });
  }
  return files;
}

/**
 * Parse one patch's text with a known strip level (default 1, or no strip
 * for names without a/ b/ style prefixes when `strip` is undefined: the
 * common `git diff` shape). Build code detects the level against the tree
 * (strip.ts); this is for tests and tools that already know it.
 */
export function parseSourcePatch(text: string, source: string, strip?: number): FilePatch[] {
  const raw = readUnifiedDiff(text, source);
  if (!raw.length) {
    throw new SutureError('invalid-input', `${source} changes no file`, {
      hint: 'is it empty, or not a unified diff? give the output of `git diff`, `git format-patch` or `diff -u` against the kernel tree',
    });
  }
  const level = strip ?? (raw.every((r) => [r.oldName, r.newName].every((n) => n === undefined || /^[ab]\//.test(n))) ? 1 : 0);
  return stripPatch(raw, level, source);
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
