// SPDX-License-Identifier: GPL-2.0-only
/**
 * KbuildObjects against the real prepared 6.1 tree, checked against Debian's
 * own build output: the modules.order of the image package says which module
 * each .ko came from.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KbuildObjects } from '../../src/kernel/kbuild-objects.js';
import { moduleName } from '../../src/kernel/modules.js';
import { ensureKernel } from '../helpers/kernel.js';

let kb: KbuildObjects;
let modulesOrder: string[];
let tree: string;

beforeAll(async () => {
  const meta = await ensureKernel();
  tree = meta.paths.source;
  kb = new KbuildObjects(tree);
  modulesOrder = readFileSync(join(meta.paths.modules, 'modules.order'), 'utf8').split('\n').filter(Boolean);
});
afterAll(() => kb?.close());

describe('KbuildObjects.home', () => {
  it.each([
    ['fs/proc/cmdline.c', { kind: 'vmlinux' }],
    ['kernel/sys.c', { kind: 'vmlinux' }],
    ['lib/string.c', { kind: 'vmlinux' }], // lib-y: linked into vmlinux from lib.a
    ['arch/x86/kernel/process_64.c', { kind: 'vmlinux' }], // obj-y += process_$(BITS).o
    ['fs/ext4/inode.c', { kind: 'module', module: 'ext4' }], // composite: ext4-y := ... inode.o
    ['fs/binfmt_misc.c', { kind: 'module', module: 'binfmt_misc' }],
    ['lib/crc16.c', { kind: 'module', module: 'crc16' }],
  ])('home(%s) is %o', async (src, expected) => {
    expect(await kb.home(src)).toMatchObject(expected);
  });

  it('home() says why a file is not built', async () => {
    expect(await kb.home('fs/ntfs/super.c')).toMatchObject({ kind: 'not-built', why: expect.stringContaining('does not exist') });
    // CONFIG_DEBUG_KMEMLEAK_TEST is not set in Debian's config.
    expect(await kb.home('samples/kmemleak/kmemleak-test.c')).toMatchObject({ kind: 'not-built' });
  });

  it('home() agrees with modules.order of the image for every module under fs/ and net/ipv4/', async () => {
    let checked = 0;
    for (const ko of modulesOrder.filter((m) => /^kernel\/(fs|net\/ipv4)\//.test(m))) {
      const rel = ko.replace(/^kernel\//, '').replace(/\.ko$/, '');
      const dir = posix.dirname(rel);
      const name = posix.basename(rel);
      const d = await kb.dir(dir);
      // A source of this module: name.c itself, or the first .c part of its composite.
      const parts = d?.composites.get(name) ?? [`${name}.o`];
      const src = parts.map((p) => `${dir}/${p.replace(/\.o$/, '.c')}`).find((p) => !p.endsWith('/.c') && existsSync(join(tree, p)));
      if (!src) continue;
      expect(await kb.home(src), src).toMatchObject({ kind: 'module', module: moduleName(name) });
      checked++;
    }
    expect(checked).toBeGreaterThan(60);
  });
});
