// SPDX-License-Identifier: GPL-2.0-only
/**
 * The changes between two pristine kernel source trees, file by file, as the
 * patch files of the rest of the pipeline: `diff -rq` finds what differs
 * (GNU diff is the fastest correct tool for 75,000 files a side), `diff -u`
 * writes each changed file's hunks, and the patch parser reads them back, so
 * a catch-up and `suture build fix.patch` see changes the same way.
 */
import { lstatSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { mapPool } from '../../util/pool.js';
import { SutureError } from '../../util/errors.js';
import { run } from '../../util/exec.js';
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

/** One file's unified diff, parsed: the hunks against `from`. */
export async function filePatch(from: string, to: string, path: string, change: TreeChange['change'], label: string): Promise<FilePatch | undefined> {
  const a = change === 'create' ? '/dev/null' : join(from, path);
  const b = change === 'delete' ? '/dev/null' : join(to, path);
  const r = await run(['diff', '-u', '--label', change === 'create' ? '/dev/null' : `a/${path}`, '--label', change === 'delete' ? '/dev/null' : `b/${path}`, a, b], { maxCapture: 64 << 20 });
  if (r.code === 0) return undefined;
  if (r.code !== 1) throw new SutureError('environment', `diff -u of ${path} failed (exit ${r.code})`, { details: r.stderr.trim() });
  if (/^Binary files /m.test(r.stdout) && !r.stdout.includes('@@')) return undefined;
  const [fp] = parseSourcePatch(r.stdout, label, 1);
  return fp;
}

/** Every change between the trees, with its hunks; `onFile` hears progress. */
export async function treeChanges(from: string, to: string, label: string, onFile?: (done: number, total: number) => void): Promise<TreeChange[]> {
  const files = await changedFiles(from, to);
  let done = 0;
  // A few diff processes at once: each is short, and most of its time is starting up.
  const out = await mapPool(files, 4, async (f) => {
    const c: TreeChange = { ...f, patch: await filePatch(from, to, f.path, f.change, label) };
    if (++done % 200 === 0) onFile?.(done, files.length);
    return c;
  });
  onFile?.(files.length, files.length);
  return out;
}
