// SPDX-License-Identifier: GPL-2.0-only
/** kbuild's directory evaluations kept between runs: reused while a Makefile's stamp holds, made again when it changes. */
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { KbuildObjects } from '../../src/kernel/kbuild-objects.js';

const tree = mkdtempSync(join(tmpdir(), 'suture-kbuild-cache-'));
afterAll(() => rmSync(tree, { recursive: true, force: true }));
const put = (rel: string, text: string) => {
  mkdirSync(join(tree, rel, '..'), { recursive: true });
  writeFileSync(join(tree, rel), text);
};
put('include/config/auto.conf', 'CONFIG_FOO=y\nCONFIG_BAR=m\n');
put('scripts/Kbuild.include', '');
put('drv/Makefile', 'obj-$(CONFIG_FOO) += a.o\nobj-$(CONFIG_BAR) += b.o\n');
put('drv/a.c', '');
put('drv/b.c', '');
put('bad/Makefile', '$(error no parent variables here)\n');
put('bad/c.c', '');
const cacheFile = join(tree, 'kbuild-dirs.json');

async function homes(): Promise<string[]> {
  const kb = new KbuildObjects(tree, cacheFile);
  try {
    const out = [];
    for (const f of ['drv/a.c', 'drv/b.c']) {
      const h = await kb.home(f);
      out.push(`${f} ${h.kind}`);
    }
    out.push(await kb.home('bad/c.c').then(
      () => 'bad/c.c evaluated',
      (e: Error) => `bad/c.c ${e.message}`,
    ));
    return out;
  } finally {
    kb.close();
  }
}

describe('kbuild evaluations kept between runs', () => {
  it('are reused while the Makefile keeps its size and mtime, and made again when either changes', async () => {
    const mk = join(tree, 'drv/Makefile');
    const t = 1_700_000_000; // whole seconds: restored exactly below
    utimesSync(mk, t, t);
    const first = await homes();
    expect(first).toEqual(['drv/a.c vmlinux', 'drv/b.c module', `bad/c.c kbuild could not evaluate bad/Makefile in ${tree}`]);
    // Same size and mtime, other contents: the kept answer (which shows it was not evaluated again).
    writeFileSync(mk, 'obj-$(CONFIG_BAR) += a.o\nobj-$(CONFIG_FOO) += b.o\n');
    utimesSync(mk, t, t);
    expect(await homes()).toEqual(first);
    // A new mtime: evaluated again.
    utimesSync(mk, t, t + 5);
    expect((await homes()).slice(0, 2)).toEqual(['drv/a.c module', 'drv/b.c vmlinux']);
    // Another config: nothing kept holds.
    put('include/config/auto.conf', 'CONFIG_FOO=y\n');
    expect((await homes()).slice(0, 2)).toEqual(['drv/a.c not-built', 'drv/b.c vmlinux']);
  });
});
