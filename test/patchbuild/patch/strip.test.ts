// SPDX-License-Identifier: GPL-2.0-only
/**
 * Patches in the shapes people write them, read against a small real tree on
 * disk; GNU patch is the oracle: the level suture finds is the -pN with which
 * `patch --dry-run` applies the text as written, and the normalized patch
 * (formatPatch) applies with -p1.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { diskTree, loadPatches, parseSeries, readPatchInputs } from '../../../src/patchbuild/patch/inputs.js';
import { formatPatch, readUnifiedDiff } from '../../../src/patchbuild/patch/parse.js';
import { detectStrip, nearestPaths } from '../../../src/patchbuild/patch/strip.js';
import { isSutureError } from '../../../src/util/errors.js';

const MEMINFO = ['#include <linux/fs.h>', '', 'static int meminfo_proc_show(void)', '{', '\treturn 0;', '}', ''].join('\n');

function kernelTree(): string {
  const d = mkdtempSync(join(tmpdir(), 'suture-strip-'));
  for (const f of ['fs/proc/meminfo.c', 'fs/proc/cmdline.c', 'fs/nfsd/export.c', 'kernel/fork.c', 'include/linux/fs.h']) {
    mkdirSync(join(d, f, '..'), { recursive: true });
    writeFileSync(join(d, f), MEMINFO);
  }
  return d;
}

/** The meminfo hunk with the given --- / +++ names. */
function hunk(oldName: string, newName: string, extra = ''): string {
  return `--- ${oldName}${extra}\n+++ ${newName}${extra}\n@@ -4,3 +4,3 @@\n {\n-\treturn 0;\n+\treturn 1;\n }\n`;
}

function patchApplies(tree: string, text: string, level: number): boolean {
  return spawnSync('patch', [`-p${level}`, '--dry-run', '--batch', '-f'], { cwd: tree, input: text }).status === 0;
}

function errorOf(fn: () => unknown): { message: string; details: string; hint: string } {
  try {
    fn();
  } catch (e) {
    if (isSutureError(e)) return { message: e.message, details: e.details ?? '', hint: e.hint ?? '' };
    throw e;
  }
  throw new Error('no error');
}

describe('strip levels (GNU patch as oracle)', () => {
  const tree = kernelTree();
  const view = diskTree(tree);
  const shapes: [string, string, number][] = [
    ['git diff (a/ b/)', `diff --git a/fs/proc/meminfo.c b/fs/proc/meminfo.c\nindex 1111111..2222222 100644\n${hunk('a/fs/proc/meminfo.c', 'b/fs/proc/meminfo.c')}`, 1],
    ["kpatch's diff -Nupr src.orig src", `diff -Nupr src.orig/fs/proc/meminfo.c src/fs/proc/meminfo.c\n${hunk('src.orig/fs/proc/meminfo.c', 'src/fs/proc/meminfo.c', '\t2022-10-24 13:38:38.000000000 -0400')}`, 1],
    ['a release tarball diff', hunk('linux-6.1.192.orig/fs/proc/meminfo.c', 'linux-6.1.192/fs/proc/meminfo.c', '\t2025-01-01 00:00:00.000000000 +0000'), 1],
    ['git diff --no-prefix', hunk('fs/proc/meminfo.c', 'fs/proc/meminfo.c'), 0],
    ['a diff made above the tree', hunk('work/linux-orig/fs/proc/meminfo.c', 'work/linux/fs/proc/meminfo.c'), 2],
  ];
  it.each(shapes)('%s', (_what, text, level) => {
    const raw = readUnifiedDiff(text, 'x.patch');
    const choice = detectStrip(raw, view, 'x.patch');
    expect(choice.level).toBe(level);
    expect(patchApplies(tree, text, level)).toBe(true);
    const [l] = loadPatches([{ file: 'x.patch', label: 'x.patch', text }], view);
    expect(l!.files.map((f) => [f.path, f.change])).toEqual([['fs/proc/meminfo.c', 'modify']]);
    expect(patchApplies(tree, formatPatch(l!.files), 1)).toBe(true);
  });

  it('src.orig/ src/ is a modification, not a file created, deleted or renamed', () => {
    const text = hunk('src.orig/fs/proc/meminfo.c', 'src/fs/proc/meminfo.c');
    const [l] = loadPatches([{ file: 'x', label: 'x', text }], view);
    expect(l!.files[0]!.change).toBe('modify');
    // diff -u x.c.orig x.c: GNU patch patches the file that exists
    const [m] = loadPatches([{ file: 'y', label: 'y', text: hunk('fs/proc/meminfo.c.orig', 'fs/proc/meminfo.c') }], view);
    expect(m!.files.map((f) => [f.path, f.change])).toEqual([['fs/proc/meminfo.c', 'modify']]);
    expect(m!.strip.level).toBe(0);
  });

  it('-p N forces the level and is checked', () => {
    const text = hunk('src.orig/fs/proc/meminfo.c', 'src/fs/proc/meminfo.c');
    expect(loadPatches([{ file: 'x', label: 'x', text }], view, 1)[0]!.strip).toMatchObject({ level: 1, forced: true });
    const e = errorOf(() => loadPatches([{ file: 'x', label: 'x.patch', text }], view, 2));
    expect(e.message).toMatch(/not in the kernel tree \(with -p2 as given\)/);
    expect(e.details).toContain('proc/meminfo.c is not in the kernel tree');
    expect(patchApplies(tree, text, 2)).toBe(false);
  });

  it('a path at no level is named as missing, with the nearest paths of the tree', () => {
    const text = hunk('a/fs/proc/meminfoo.c', 'b/fs/proc/meminfoo.c') + hunk('a/fs/proc/cmdline.c', 'b/fs/proc/cmdline.c');
    const e = errorOf(() => loadPatches([{ file: 'x', label: 'typo.patch', text }], view));
    expect(e.message).toBe('typo.patch: a file it changes is not in the kernel tree (read as -p1, the level that finds the most)');
    expect(e.details).toBe('typo.patch:1: fs/proc/meminfoo.c is not in the kernel tree; nearest: fs/proc/meminfo.c');
    expect(nearestPaths('fs/nfs/export.c', view)).toContain('fs/nfsd/export.c');
  });

  it('created, deleted and renamed only when the patch says so (git headers, /dev/null)', () => {
    const text = [
      'diff --git a/fs/proc/cmdline.c b/fs/proc/cmdline2.c',
      'similarity index 100%',
      'rename from fs/proc/cmdline.c',
      'rename to fs/proc/cmdline2.c',
      'diff --git a/fs/proc/new.c b/fs/proc/new.c',
      'new file mode 100644',
      'index 0000000..1111111',
      '--- /dev/null',
      '+++ b/fs/proc/new.c',
      '@@ -0,0 +1 @@',
      '+int x;',
      'diff --git a/kernel/fork.c b/kernel/fork.c',
      'deleted file mode 100644',
      'index 1111111..0000000',
      '--- a/kernel/fork.c',
      '+++ /dev/null',
      ...MEMINFO.trimEnd().split('\n').map((l, i, a) => (i === 0 ? `@@ -1,${a.length} +0,0 @@\n-${l}` : `-${l}`)),
      '',
    ].join('\n');
    const [l] = loadPatches([{ file: 'x', label: 'x', text }], view);
    expect(l!.strip.level).toBe(1);
    expect(l!.files.map((f) => [f.path, f.change, f.oldPath])).toEqual([
      ['fs/proc/cmdline2.c', 'rename', 'fs/proc/cmdline.c'],
      ['fs/proc/new.c', 'create', undefined],
      ['kernel/fork.c', 'delete', 'kernel/fork.c'],
    ]);
  });
});

describe('git format-patch mail and quilt series', () => {
  const tree = kernelTree();
  const view = diskTree(tree);
  const mail = (n: number, subject: string, body: string) =>
    [
      `From ${'0123456789abcdef'.repeat(2).slice(0, 39)}${n} Mon Sep 17 00:00:00 2001`,
      'From: A Author <a@example.org>',
      'Date: Mon, 1 Jan 2024 00:00:00 +0000',
      `Subject: [PATCH ${n}/2] ${subject}`,
      '',
      'Why it is needed.',
      '',
      '---',
      ' fs/proc/meminfo.c | 2 +-',
      ' 1 file changed, 1 insertion(+), 1 deletion(-)',
      '',
      body.trimEnd(),
      '-- ',
      '2.39.5',
      '',
    ].join('\n');

  it('reads every message of an mbox, skipping headers, diffstat and signatures', () => {
    const text = mail(1, 'proc: one', `diff --git a/fs/proc/meminfo.c b/fs/proc/meminfo.c\nindex 1..2 100644\n${hunk('a/fs/proc/meminfo.c', 'b/fs/proc/meminfo.c')}`) +
      '\n' + mail(2, 'proc: two', `diff --git a/fs/proc/cmdline.c b/fs/proc/cmdline.c\nindex 1..2 100644\n${hunk('a/fs/proc/cmdline.c', 'b/fs/proc/cmdline.c')}`);
    const raw = readUnifiedDiff(text, 'series.mbox');
    expect(raw.map((r) => [r.newName, r.subject, r.hunks.length, r.hunks[0]!.lines.length])).toEqual([
      ['b/fs/proc/meminfo.c', '[PATCH 1/2] proc: one', 1, 4],
      ['b/fs/proc/cmdline.c', '[PATCH 2/2] proc: two', 1, 4],
    ]);
    const [l] = loadPatches([{ file: 'm', label: 'series.mbox', text }], view);
    expect(l!.files.map((f) => f.path)).toEqual(['fs/proc/meminfo.c', 'fs/proc/cmdline.c']);
    // GNU patch applies the mail as it is, and suture's normalized form the same way.
    expect(patchApplies(tree, text, 1)).toBe(true);
    expect(patchApplies(tree, formatPatch(l!.files), 1)).toBe(true);
  });

  it('a hunk cut short is an error naming the line', () => {
    const e = errorOf(() => readUnifiedDiff('--- a/x.c\n+++ b/x.c\n@@ -1,3 +1,3 @@\n a\n-b\n', 'cut.patch'));
    expect(e.message).toBe('cut.patch:3: the hunk @@ -1,3 +1,3 @@ ends after 2 old and 1 new lines');
  });

  it('a quilt folder: series order, comments, per-patch -pN', () => {
    const dir = mkdtempSync(join(tmpdir(), 'suture-quilt-'));
    writeFileSync(join(dir, 'series'), '# fixes for 6.1\n0002-cmdline.patch -p0\n0001-meminfo.patch   # the first\n\n');
    writeFileSync(join(dir, '0001-meminfo.patch'), hunk('src.orig/fs/proc/meminfo.c', 'src/fs/proc/meminfo.c'));
    writeFileSync(join(dir, '0002-cmdline.patch'), hunk('fs/proc/cmdline.c', 'fs/proc/cmdline.c'));
    expect(parseSeries('a.patch -p2 # x\n#b\n', 's')).toEqual([{ name: 'a.patch', strip: 2 }]);
    const inputs = readPatchInputs([dir]);
    expect(inputs.map((i) => [i.label.split('/')[1], i.strip])).toEqual([['0002-cmdline.patch', 0], ['0001-meminfo.patch', undefined]]);
    const loaded = loadPatches(inputs, view);
    expect(loaded.map((l) => [l.files[0]!.path, l.strip.level, l.strip.why])).toEqual([
      ['fs/proc/cmdline.c', 0, '-p0 from the series file'],
      ['fs/proc/meminfo.c', 1, 'the names are paths of the kernel tree once the leading component (src.orig/) is dropped'],
    ]);
    writeFileSync(join(dir, 'series'), 'missing.patch\n');
    expect(errorOf(() => readPatchInputs([dir])).message).toMatch(/series lists missing\.patch, but .* cannot be read \(ENOENT\)/);
    const empty = mkdtempSync(join(tmpdir(), 'suture-quilt-'));
    writeFileSync(join(empty, 'a.patch'), '');
    expect(errorOf(() => readPatchInputs([empty]))).toMatchObject({ message: `${empty} is a folder without a series file` });
    execFileSync('true');
  });
});
