// SPDX-License-Identifier: GPL-2.0-only
/**
 * The changes between two pristine kernel source trees, file by file, as the
 * patch files of the rest of the pipeline: `diff -rq` finds what differs
 * (GNU diff is the fastest correct tool for 75,000 files a side), `diff -u`
 * writes each changed file's hunks, and the patch parser reads them back, so
 * a catch-up and `suture build fix.patch` see changes the same way.
 */
import { existsSync, lstatSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { createHash } from 'node:crypto';
import { sourceReleaseStamp, type SourceRelease } from '../../kernel/source-release.js';
import { mapPool } from '../../util/pool.js';
import { SutureError } from '../../util/errors.js';
import { run } from '../../util/exec.js';
import { writeAtomic } from '../../util/files.js';
import { parseSourcePatch, type FilePatch } from '../patch/parse.js';

export interface TreeChange {
  readonly path: string;
  readonly change: 'modify' | 'create' | 'delete';
  /** The file's hunks (undefined for a binary file). */
  readonly patch: FilePatch | undefined;
}

/** Files under a directory, relative to `root`, regular files and symlinks. */
function filesUnder(root: string, dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(join(root, d), { withFileTypes: true })) {
      const p = d ? `${d}/${e.name}` : e.name;
      if (e.isDirectory()) walk(p);
      else out.push(p);
    }
  };
  walk(dir);
  return out;
}

/** `diff -rq` between the trees: every changed, created and deleted file, sorted by path. */
export async function changedFiles(from: string, to: string): Promise<{ path: string; change: TreeChange['change'] }[]> {
  const r = await run(['diff', '-rq', '--no-dereference', from, to], { maxCapture: 256 << 20, timeoutMs: 30 * 60_000 });
  if (r.code !== 0 && r.code !== 1) {
    throw new SutureError('environment', `comparing ${from} with ${to} failed (diff exit ${r.code})`, { details: r.stderr.trim().split('\n').slice(-5).join('\n') });
  }
  const out: { path: string; change: TreeChange['change'] }[] = [];
  for (const line of r.stdout.split('\n')) {
    if (!line) continue;
    let m = /^Files (.+) and (.+) differ$/.exec(line);
    if (m) {
      out.push({ path: relative(from, m[1]!), change: 'modify' });
      continue;
    }
    m = /^Only in (.+?): (.+)$/.exec(line);
    if (m) {
      const side = m[1]!.startsWith(to) && (m[1] === to || m[1]![to.length] === '/') ? 'to' : 'from';
      const root = side === 'to' ? to : from;
      const rel = relative(root, join(m[1]!, m[2]!));
      const st = lstatSync(join(root, rel));
      const paths = st.isDirectory() ? filesUnder(root, rel) : [rel];
      for (const p of paths) out.push({ path: p, change: side === 'to' ? 'create' : 'delete' });
      continue;
    }
    m = /^File (.+) is a .+ while file (.+) is a .+$/.exec(line);
    if (m) out.push({ path: relative(from, m[1]!), change: 'modify' });
    // "Symbolic links ... differ" and the like: a change of the same path.
    m = /^Symbolic links (.+) and (.+) differ$/.exec(line);
    if (m) out.push({ path: relative(from, m[1]!), change: 'modify' });
  }
  return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/**
 * `diff -u` of a batch of files in one shell: each file's diff followed by a
 * marker line with diff's status. One process per file cost more than the
 * diffs (3,382 files in the whole 6.1.187 → 192 update: a fork of this
 * process each), so a batch of files shares one.
 */
const DIFF_BATCH = `a=$1 b=$2; shift 2
while [ $# -gt 1 ]; do
  c=$1 p=$2; shift 2
  fa="$a/$p" la="a/$p" fb="$b/$p" lb="b/$p"
  [ "$c" = create ] && fa=/dev/null la=/dev/null
  [ "$c" = delete ] && fb=/dev/null lb=/dev/null
  diff -u --label "$la" --label "$lb" "$fa" "$fb"
  printf '\\001suture-diff %s\\n' $?
done
`;
const MARKER = /^\x01suture-diff (\d+)$/;

/** The unified diffs of some files as diff wrote them (undefined: no text change). */
export async function fileDiffs(from: string, to: string, files: readonly { path: string; change: TreeChange['change'] }[]): Promise<(string | undefined)[]> {
  const r = await run(['sh', '-c', DIFF_BATCH, 'suture-diff', from, to, ...files.flatMap((f) => [f.change, f.path])], { maxCapture: 512 << 20 });
  if (r.code !== 0) throw new SutureError('environment', `diff -u of ${files.length} files under ${to} failed (exit ${r.code})`, { details: r.stderr.trim() });
  const out: (string | undefined)[] = [];
  let text: string[] = [];
  for (const line of r.stdout.split('\n')) {
    const m = MARKER.exec(line);
    if (!m) {
      text.push(line);
      continue;
    }
    const f = files[out.length];
    if (!f) throw new SutureError('internal', `diff -u under ${to} said more files than it was given (${files.length})`);
    const status = Number(m[1]);
    if (status > 1) throw new SutureError('environment', `diff -u of ${f.path} failed (exit ${status})`, { details: r.stderr.trim() });
    out.push(status === 0 ? undefined : `${text.join('\n')}\n`);
    text = [];
  }
  if (out.length !== files.length) throw new SutureError('environment', `diff -u under ${to} stopped after ${out.length} of ${files.length} files`, { details: r.stderr.trim() });
  return out;
}

/** One file's diff parsed: the hunks against `from` (undefined: no text change, or a binary file). */
function parsedDiff(text: string | undefined, label: string): FilePatch | undefined {
  if (text === undefined || (/^Binary files /m.test(text) && !text.includes('@@'))) return undefined;
  return parseSourcePatch(text, label, 1)[0];
}

/** The unified diffs of some files, parsed. */
export async function filePatches(from: string, to: string, files: readonly { path: string; change: TreeChange['change'] }[], label: string): Promise<(FilePatch | undefined)[]> {
  return (await fileDiffs(from, to, files)).map((t) => parsedDiff(t, label));
}

/** Where the changes between two extracted releases are kept: beside the newer, keyed by both extractions. */
export function treeChangesCacheFile(older: SourceRelease, newer: SourceRelease): string {
  const key = createHash('sha256').update(sourceReleaseStamp(older)).update('\0').update(sourceReleaseStamp(newer)).digest('hex').slice(0, 24);
  return join(dirname(dirname(newer.tree)), 'changes', `${key}.json`);
}

interface RawChange {
  readonly path: string;
  readonly change: TreeChange['change'];
  readonly diff?: string;
}

/**
 * Every change between the trees, with its hunks; `onFile` hears progress.
 * With `cacheFile`, what diff wrote is kept there and read back next time
 * (the trees must not change under it: pristine sources, extracted once); it
 * is parsed again each time, so a newer parser never reads an older one's output.
 */
export async function treeChanges(from: string, to: string, label: string, onFile?: (done: number, total: number) => void, cacheFile?: string): Promise<TreeChange[]> {
  let raw: RawChange[] | undefined;
  if (cacheFile && existsSync(cacheFile)) {
    try {
      raw = JSON.parse(readFileSync(cacheFile, 'utf8')) as RawChange[];
      onFile?.(raw.length, raw.length);
    } catch {
      raw = undefined; // an unreadable cache is made again
    }
  }
  if (!raw) {
    const files = await changedFiles(from, to);
    const batches: (typeof files)[] = [];
    for (let i = 0; i < files.length; i += 100) batches.push(files.slice(i, i + 100));
    let done = 0;
    // A few shells at once, across the cores.
    const diffs = await mapPool(batches, 4, async (batch) => {
      const texts = await fileDiffs(from, to, batch);
      done += batch.length;
      onFile?.(done, files.length);
      return batch.map((f, i): RawChange => ({ ...f, ...(texts[i] !== undefined ? { diff: texts[i] } : {}) }));
    });
    raw = diffs.flat();
    if (cacheFile) writeAtomic(cacheFile, JSON.stringify(raw), 0o644, { mkdir: true });
  }
  return raw.map((c) => ({ path: c.path, change: c.change, patch: parsedDiff(c.diff, label) }));
}
