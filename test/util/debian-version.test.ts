// SPDX-License-Identifier: GPL-2.0-only
/** Debian version ordering and relations: expected values written down, dpkg as an extra oracle where installed. */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { compareVersions, newestVersion, parseRelations, satisfies } from '../../src/util/debian-version.js';

/** [a, b, expected sign of compareVersions(a, b)] */
const PAIRS: [string, string, -1 | 0 | 1][] = [
  ['6.1.192-2', '6.1.194-1', -1],
  ['6.1.194-1', '6.1.192-2', 1],
  ['6.1.192-2', '6.1.192-2', 0],
  ['6.1.192-2', '6.1.192-3', -1],
  ['6.1.192-2', '6.1.192-2+deb12u1', -1],
  ['6.1.192-2~bpo11+1', '6.1.192-2', -1],
  ['6.12.48-1~bpo12+1', '6.12.48-1', -1],
  ['6.12.48-1~deb12u1', '6.12.48-1~bpo12+1', 1],
  ['1:6.1.1-1', '6.2-1', 1],
  ['6.1.9-1', '6.1.10-1', -1],
  ['6.1-rc1', '6.1', 1],
  ['6.1~rc1', '6.1', -1],
  ['6.1.0a', '6.1.0', 1],
  ['6.1.0+', '6.1.0a', 1],
  ['6.01', '6.1', 0],
  ['6.1.192', '6.1.192-1', -1],
];

const dpkg = spawnSync('dpkg', ['--version']).status === 0;

describe('compareVersions', () => {
  it.each(PAIRS)('%s vs %s is %i', (a, b, want) => {
    expect(compareVersions(a, b)).toBe(want);
    expect(compareVersions(b, a)).toBe(-want || 0);
  });
  it.skipIf(!dpkg)('agrees with dpkg --compare-versions on every pair', () => {
    for (const [a, b, want] of PAIRS) {
      const lt = spawnSync('dpkg', ['--compare-versions', a, 'lt', b]).status === 0;
      const eq = spawnSync('dpkg', ['--compare-versions', a, 'eq', b]).status === 0;
      expect([a, b, lt ? -1 : eq ? 0 : 1]).toEqual([a, b, want]);
    }
  });
});

describe('parseRelations', () => {
  it('reads a real linux-headers Depends field', () => {
    const f = 'linux-headers-6.1.0-56-common (= 6.1.192-2), linux-kbuild-6.1 (>= 6.1.192-2), linux-compiler-gcc-12-x86';
    expect(parseRelations(f)).toEqual([
      [{ package: 'linux-headers-6.1.0-56-common', op: '=', version: '6.1.192-2' }],
      [{ package: 'linux-kbuild-6.1', op: '>=', version: '6.1.192-2' }],
      [{ package: 'linux-compiler-gcc-12-x86' }],
    ]);
  });
  it('reads alternatives, architecture qualifiers and the obsolete < and > spellings', () => {
    expect(parseRelations('initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool, libc6:amd64 (> 2.34), x (< 2)')).toEqual([
      [{ package: 'initramfs-tools', op: '>=', version: '0.120+deb8u2' }, { package: 'linux-initramfs-tool' }],
      [{ package: 'libc6', op: '>=', version: '2.34' }],
      [{ package: 'x', op: '<=', version: '2' }],
    ]);
    expect(parseRelations(undefined)).toEqual([]);
  });
});

describe('satisfies / newestVersion', () => {
  it('>= takes a newer kbuild for older headers, = only the exact one', () => {
    const ge = { package: 'linux-kbuild-6.1', op: '>=', version: '6.1.192-2' } as const;
    const eq = { package: 'linux-kbuild-6.1', op: '=', version: '6.1.192-2' } as const;
    expect(satisfies('6.1.192-3', ge)).toBe(true);
    expect(satisfies('6.1.176-1', ge)).toBe(false);
    expect(satisfies('6.1.192-3', eq)).toBe(false);
    expect(satisfies('6.1.192-2', eq)).toBe(true);
    expect(satisfies('1', { package: 'p' })).toBe(true);
    expect(satisfies('1', { package: 'p', op: '<<', version: '1' })).toBe(false);
    expect(satisfies('1', { package: 'p', op: '>>', version: '0.9' })).toBe(true);
  });
  it('newestVersion uses dpkg order, not a locale compare', () => {
    const v = ['6.1.192-3', '6.1.192-10', '6.1.192-2~bpo11+1'].map((version) => ({ version }));
    expect(newestVersion(v)?.version).toBe('6.1.192-10');
    expect(newestVersion([])).toBeUndefined();
  });
});
