// SPDX-License-Identifier: GPL-2.0-only
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { findMirrors, hostAptUris, parseControlRecords } from '../../src/kernel/apt.js';
import { SutureError } from '../../src/util/errors.js';

function etc(files: Record<string, string>): string {
  const d = mkdtempSync(join(tmpdir(), 'suture-etc-apt-'));
  mkdirSync(join(d, 'sources.list.d'));
  for (const [f, t] of Object.entries(files)) writeFileSync(join(d, f), t);
  return d;
}

describe('findMirrors', () => {
  it('findMirrors() reads deb822 sources of a Debian 13 host', () => {
    const d = etc({
      'sources.list.d/debian.sources':
        'Types: deb\nURIs: http://mirror.example/debian\nSuites: trixie trixie-updates\nComponents: main\n\nTypes: deb\nURIs: http://mirror.example/debian-security\nSuites: trixie-security\n',
    });
    expect(findMirrors({}, d)).toMatchObject({ main: 'http://mirror.example/debian', security: 'http://mirror.example/debian-security' });
  });
  it('findMirrors() reads one-line sources and derives the security archive', () => {
    const d = etc({ 'sources.list': '# comment\ndeb [arch=amd64] http://m.example/debian/ bookworm main\n' });
    expect(hostAptUris(d)).toEqual(['http://m.example/debian/']);
    expect(findMirrors({}, d)).toMatchObject({ main: 'http://m.example/debian', security: 'http://m.example/debian-security' });
  });
  it('findMirrors() prefers SUTURE_DEBIAN_MIRROR', () => {
    const d = etc({});
    expect(findMirrors({ SUTURE_DEBIAN_MIRROR: 'http://a/debian', SUTURE_DEBIAN_SECURITY_MIRROR: 'http://b/sec' }, d)).toMatchObject({
      main: 'http://a/debian',
      security: 'http://b/sec',
    });
  });
  it('findMirrors() on a host without Debian sources says which variable to set', () => {
    const d = etc({ 'sources.list.d/ubuntu.sources': 'URIs: http://archive.example/ubuntu\n' });
    let err: unknown;
    try {
      findMirrors({}, d);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SutureError);
    expect((err as SutureError).message).toContain('no Debian archive mirror');
    expect((err as SutureError).hint).toContain('SUTURE_DEBIAN_MIRROR');
  });
});

describe('parseControlRecords', () => {
  it('parseControlRecords() reads several records with continuation lines', () => {
    const r = parseControlRecords('Package: a\nVersion: 1\nDescription: x\n more\n\nPackage: b\nVersion: 2\n');
    expect(r.map((m) => m.get('Package'))).toEqual(['a', 'b']);
    expect(r[0]!.get('Description')).toBe('x\nmore');
  });
});
