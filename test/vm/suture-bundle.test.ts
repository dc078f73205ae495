// SPDX-License-Identifier: GPL-2.0-only
/** What --with-suture carries into the guest: node's libraries, the app, the production packages. */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { guestInit } from '../../src/vm/guest-script.js';
import { GUEST_APP, parseLdd, sutureBundle } from '../../src/vm/suture-bundle.js';

const ROOT = join(import.meta.dirname, '..', '..');

describe('suture bundle', () => {
  it('parseLdd takes the resolved paths and the interpreter, not the vdso', () => {
    const text = [
      '\tlinux-vdso.so.1 (0x00007ffd)',
      '\tlibdl.so.2 => /lib/x86_64-linux-gnu/libdl.so.2 (0x00007f5a6181f000)',
      '\tlibstdc++.so.6 => /lib/x86_64-linux-gnu/libstdc++.so.6 (0x00007f5a61600000)',
      '\t/lib64/ld-linux-x86-64.so.2 (0x00007f5a61838000)',
    ].join('\n');
    expect(parseLdd(text)).toEqual(['/lib/x86_64-linux-gnu/libdl.so.2', '/lib/x86_64-linux-gnu/libstdc++.so.6', '/lib64/ld-linux-x86-64.so.2']);
    expect(() => parseLdd('\tlibfoo.so.1 => not found')).toThrow(/a library node needs is missing: libfoo\.so\.1 => not found/);
  });

  it("carries node, every library ldd names, the CLI bundle and a /usr/bin/suture wrapper, and no node_modules", async () => {
    // dist/ is what `npm test` builds first.
    const b = await sutureBundle({ appRoot: ROOT }, ['usr', 'usr/bin', 'bin']);
    const paths = b.entries.map((e) => e.path.replace(/^\/+/, ''));
    expect(paths).toContain(`${GUEST_APP.slice(1)}/node`);
    expect(paths).toContain(`${GUEST_APP.slice(1)}/dist/bundle/main.js`);
    expect(paths.some((p) => p.startsWith(`${GUEST_APP.slice(1)}/node_modules/`))).toBe(false);
    expect(paths.some((p) => p.startsWith(`${GUEST_APP.slice(1)}/dist/`) && !p.startsWith(`${GUEST_APP.slice(1)}/dist/bundle`))).toBe(false);
    expect(paths.some((p) => p.endsWith('.map'))).toBe(false);
    for (const lib of b.libraries) expect(paths).toContain(lib.slice(1));
    expect(b.libraries.some((l) => /ld-linux/.test(l))).toBe(true);
    // parents before children, each directory once, none of the ones given again
    const dirs = b.entries.filter((e) => e.type === 'dir').map((e) => e.path);
    expect(new Set(dirs).size).toBe(dirs.length);
    expect(dirs).not.toContain('usr/bin');
    const wrapper = b.entries.find((e) => e.path === 'usr/bin/suture');
    expect(wrapper && wrapper.type === 'file' && Buffer.from(wrapper.data).toString()).toBe(`#!/bin/sh\nexec ${GUEST_APP}/node ${GUEST_APP}/bin/suture.js "$@"\n`);
    expect(b.bytes).toBeGreaterThan(50 * 1024 * 1024);
  });

  it('the guest init mounts a disk before the livepatches and commands, and syncs before power-off', () => {
    const script = guestInit({
      marker: '@@m@@',
      steps: [
        { id: 'kmod:0', kind: 'kmod', path: '/kmods/0-ext4.ko' },
        { id: 'mount:0', kind: 'mount', path: '/dev/vda', mountpoint: '/var/lib/suture' },
        { id: 'cmd:0', kind: 'cmd', path: '/cmds/0.sh' },
      ],
      transitionTimeoutSec: 60,
      collectDmesg: true,
    });
    expect(spawnSync('busybox', ['sh', '-n'], { input: script }).status).toBe(0);
    expect(script).toContain(`frame mount:0 mount_disk '/dev/vda' '/var/lib/suture'`);
    const order = ['frame kmod:0', 'frame mount:0', 'frame cmd:0', 'sync', 'poweroff -f'].map((s) => script.lastIndexOf(s));
    expect(order.every((v, i) => v > 0 && (i === 0 || v > order[i - 1]!))).toBe(true);
  });
});
