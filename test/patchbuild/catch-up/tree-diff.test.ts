// SPDX-License-Identifier: GPL-2.0-only
/** The changes between two trees, as the catch-up reads them (diff -rq, then diff -u in batches of files per shell). */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { filePatches, treeChanges } from '../../../src/patchbuild/catch-up/tree-diff.js';

const dir = mkdtempSync(join(tmpdir(), 'suture-tree-diff-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function tree(name: string, files: Record<string, string | Buffer>): string {
  const root = join(dir, name);
  for (const [p, body] of Object.entries(files)) {
    mkdirSync(dirname(join(root, p)), { recursive: true });
    writeFileSync(join(root, p), body);
  }
  return root;
}

const lines = (n: number, change?: number) => Array.from({ length: n }, (_, i) => (i === change ? `changed line ${i}` : `line ${i}`)).join('\n') + '\n';

describe('tree changes', () => {
  // 250 changed files: three batches of diff -u, in parallel.
  const many = Object.fromEntries(Array.from({ length: 250 }, (_, i) => [`drivers/x/f${String(i).padStart(3, '0')}.c`, lines(20)]));
  const from = tree('from', {
    ...many,
    'fs/same.c': lines(5),
    'fs/gone.c': lines(3),
    'fs/with space $x.c': lines(4),
    'fw/blob.bin': Buffer.from([1, 0, 2, 3]),
  });
  const to = tree('to', {
    ...Object.fromEntries(Object.keys(many).map((p, i) => [p, lines(20, i % 20)])),
    'fs/same.c': lines(5),
    'fs/new.c': lines(2),
    'fs/with space $x.c': lines(4, 1),
    'fw/blob.bin': Buffer.from([1, 0, 2, 4]),
    'include/new-dir/a.h': lines(1),
  });

  it('lists every changed, created and deleted file with its hunks, in path order', async () => {
    const seen: number[] = [];
    const changes = await treeChanges(from, to, 'update', (done) => seen.push(done));
    expect(changes.map((c) => c.path)).toEqual([...Object.keys(many), 'fs/gone.c', 'fs/new.c', 'fs/with space $x.c', 'fw/blob.bin', 'include/new-dir/a.h'].sort());
    const by = new Map(changes.map((c) => [c.path, c]));
    expect(by.get('fs/gone.c')).toMatchObject({ change: 'delete' });
    expect(by.get('fs/gone.c')!.patch!.hunks[0]!.lines).toEqual(['-line 0', '-line 1', '-line 2']);
    expect(by.get('include/new-dir/a.h')).toMatchObject({ change: 'create' });
    expect(by.get('include/new-dir/a.h')!.patch!.hunks[0]!.lines).toEqual(['+line 0']);
    expect(by.get('fs/with space $x.c')!.patch!.hunks[0]!.lines).toContain('+changed line 1');
    // A binary file changes, but has no hunks to carry.
    expect(by.get('fw/blob.bin')).toMatchObject({ change: 'modify', patch: undefined });
    // Each file's hunks are its own (the batches are split at the right marker).
    for (const [i, p] of Object.keys(many).entries()) {
      const hunks = by.get(p)!.patch!.hunks;
      expect(hunks.flatMap((h) => h.lines).filter((l) => l.startsWith('+')), p).toEqual([`+changed line ${i % 20}`]);
    }
    expect(seen.at(-1)).toBe(changes.length);
  });

  it('kept in a cache file: read back and parsed again, the same changes, without diffing the trees', async () => {
    const cacheFile = join(dir, 'cache', 'changes.json');
    const direct = await treeChanges(from, to, 'update');
    expect(await treeChanges(from, to, 'update', undefined, cacheFile)).toEqual(direct);
    // The trees are not read again: a change made since does not show (pristine trees do not change).
    writeFileSync(join(to, 'fs/same.c'), lines(5, 2));
    const again = await treeChanges(from, to, 'update', undefined, cacheFile);
    expect(again).toEqual(direct);
    expect((await treeChanges(from, to, 'update')).map((c) => c.path)).toContain('fs/same.c');
    writeFileSync(join(to, 'fs/same.c'), lines(5));
  });

  it('a file diff cannot read is an error that names the batch', async () => {
    await expect(filePatches(from, to, [{ path: 'fs/missing.c', change: 'modify' }], 'update')).rejects.toThrow(/diff -u of fs\/missing\.c failed \(exit 2\)/);
  });
});
