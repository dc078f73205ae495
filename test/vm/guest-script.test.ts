// SPDX-License-Identifier: GPL-2.0-only
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { guestInit } from '../../src/vm/guest-script.js';

describe('guestInit', () => {
  const script = guestInit({
    marker: "@@suture:ab'cd@@",
    steps: [
      { id: 'kmod:0', kind: 'kmod', path: '/kmods/0-crc16.ko' },
      { id: 'load:0', kind: 'load', path: "/modules/it's.ko" },
      { id: 'cmd:0', kind: 'cmd', path: '/cmds/0.sh' },
    ],
    transitionTimeoutSec: 60,
    collectDmesg: true,
  });

  it('guestInit() is valid shell for busybox sh', () => {
    const r = spawnSync('busybox', ['sh', '-n'], { input: script, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
  });

  it('guestInit() quotes paths and the marker, and runs setup steps before commands', () => {
    expect(script).toContain(`M='@@suture:ab'\\''cd@@'`);
    expect(script).toContain(`load_lp '/modules/it'\\''s.ko'`);
    const order = ['frame kmod:0', 'frame load:0', 'frame cmd:0', 'frame dmesg', 'poweroff -f'].map((s) => script.indexOf(s));
    expect(order.every((v, i) => v > 0 && (i === 0 || v > order[i - 1]!))).toBe(true);
  });
});
