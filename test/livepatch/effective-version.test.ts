// SPDX-License-Identifier: GPL-2.0-only
/** Version ordering (dpkg as the oracle), the effective version, and suture uname's output. */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { compareVersions, effectiveUnameVersion, effectiveVersion, formatUname, kernelOwnVersion } from '../../src/livepatch/effective-version.js';

const PAIRS: [string, string][] = [
  ['6.1.192-2', '6.1.194-1'],
  ['6.1.194-1', '6.1.192-2'],
  ['6.1.192-2', '6.1.192-2'],
  ['6.1.192-2', '6.1.192-2+deb12u1'],
  ['6.1.192-2~bpo11+1', '6.1.192-2'],
  ['1:6.1.1-1', '6.2-1'],
  ['6.1.9-1', '6.1.10-1'],
  ['6.1-rc1', '6.1'],
  ['6.1~rc1', '6.1'],
  ['6.1.0a', '6.1.0'],
  ['6.1.0+', '6.1.0a'],
  ['6.01', '6.1'],
  ['6.1.192', '6.1.192-1'],
];

describe('compareVersions', () => {
  const dpkg = spawnSync('dpkg', ['--version']).status === 0;
  it.each(PAIRS)('%s vs %s agrees with dpkg --compare-versions', (a, b) => {
    const ours = compareVersions(a, b);
    if (!dpkg) return;
    const lt = spawnSync('dpkg', ['--compare-versions', a, 'lt', b]).status === 0;
    const eq = spawnSync('dpkg', ['--compare-versions', a, 'eq', b]).status === 0;
    expect(ours).toBe(lt ? -1 : eq ? 0 : 1);
  });
});

const U = {
  sysname: 'Linux',
  nodename: 'web1',
  release: '6.1.0-56-amd64',
  version: '#1 SMP PREEMPT_DYNAMIC Debian 6.1.192-2 (2026-11-16)',
  machine: 'x86_64',
};

describe('effective version', () => {
  it("reads the kernel's own Debian version from uname -v", () => {
    expect(kernelOwnVersion(U.version)).toBe('6.1.192-2');
    expect(kernelOwnVersion('#1 SMP Fri Jan 1')).toBeUndefined();
  });

  it('is the highest declared version above the kernel', () => {
    const e = effectiveVersion(U.version, [
      { patch: 'a', version: '6.1.193-1' },
      { patch: 'b', version: '6.1.194-1' },
      { patch: 'c', version: '6.1.190-1' },
    ]);
    expect(e).toMatchObject({ kernel: '6.1.192-2', effective: '6.1.194-1', from: 'b' });
    expect(effectiveUnameVersion(U, e)).toBe('#1 SMP PREEMPT_DYNAMIC Debian 6.1.194-1 (2026-11-16)');
  });

  it('stays the kernel version when no patch declares a higher one', () => {
    const e = effectiveVersion(U.version, [{ patch: 'old', version: '6.1.150-1' }]);
    expect(e).toMatchObject({ effective: '6.1.192-2', from: undefined });
    expect(effectiveUnameVersion(U, e)).toBe(U.version);
    expect(effectiveVersion(U.version, []).effective).toBe('6.1.192-2');
  });

  it('appends the effective version where the kernel shows none of its own', () => {
    const u = { ...U, version: '#1 SMP Fri Jan 1' };
    const e = effectiveVersion(u.version, [{ patch: 'a', version: '6.1.194-1' }]);
    expect(effectiveUnameVersion(u, e)).toBe('#1 SMP Fri Jan 1 (effective 6.1.194-1)');
  });

  it('formats like uname: -r keeps the release, -a puts the effective version in the version field', () => {
    const e = effectiveVersion(U.version, [{ patch: 'a', version: '6.1.194-1' }]);
    expect(formatUname(U, e, new Set(['r']))).toBe('6.1.0-56-amd64');
    expect(formatUname(U, e, new Set(['a']))).toBe('Linux web1 6.1.0-56-amd64 #1 SMP PREEMPT_DYNAMIC Debian 6.1.194-1 (2026-11-16) x86_64 GNU/Linux');
    expect(formatUname(U, e, new Set(['s', 'r']))).toBe('Linux 6.1.0-56-amd64');
  });
});
