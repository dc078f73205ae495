// SPDX-License-Identifier: GPL-2.0-only
/** The effective version and suture uname's output (version ordering: test/util/debian-version.test.ts). */
import { describe, expect, it } from 'vitest';
import { effectiveUnameVersion, effectiveVersion, formatUname, kernelOwnVersion } from '../../src/livepatch/effective-version.js';

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
