// SPDX-License-Identifier: GPL-2.0-only
/**
 * Bad input gets one clear line, a documented exit code, and leaves no
 * half-written cache entry. None of these needs a kernel or a VM.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { suture } from '../helpers/cli.js';

const isRoot = process.getuid?.() === 0;
const home = mkdtempSync(join(tmpdir(), 'suture-home-'));
const env = { ...process.env, SUTURE_HOME: home };
const mounts: string[] = [];

function tmpfs(opts: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'suture-tmpfs-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', opts, 'tmpfs', dir]);
  mounts.push(dir);
  return dir;
}

afterAll(() => {
  for (const m of mounts) spawnSync('umount', [m]);
});

describe('bad input', () => {
  it('a kernel name that is not debian:<release> is a usage error (exit 2)', () => {
    const r = suture(['kernel', 'fetch', 'linux-6.1'], { env });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('"linux-6.1" is not a kernel name');
    expect(r.stderr).toContain('hint: name a kernel as debian:<release>');
  });

  it('a release of another distribution, or of a Debian suture does not fetch from, is a usage error (exit 2)', () => {
    for (const [name, says] of [
      ['debian:5.15.0-91-generic', '"5.15.0-91-generic" is not a Debian kernel release'],
      ['debian:6.12.57+deb14-amd64', 'is a kernel of Debian 14; suture fetches Debian 12 (bookworm) and 13 (trixie) kernels'],
      ['ubuntu:6.8.0-31-generic', 'unknown distribution "ubuntu"'],
    ] as const) {
      const r = suture(['kernel', 'fetch', name], { env });
      expect(r.status, name).toBe(2);
      expect(r.stderr.split('\n')[0], name).toContain(says);
    }
    expect(readdirSync(home).filter((f) => f !== 'vm')).toEqual([]);
  });

  it('--debs pointing at a missing folder, or at files that are not packages, says which (exits 10 and 11), nothing cached', () => {
    const r = suture(['kernel', 'fetch', 'debian:6.1.0-56-amd64', '--debs', '/nonexistent/debs'], { env });
    expect(r.status).toBe(10);
    expect(r.stderr).toContain('--debs /nonexistent/debs: no such folder');
    const dir = mkdtempSync(join(tmpdir(), 'suture-debs-'));
    writeFileSync(join(dir, 'linux-source-6.1_6.1.192-2_all.deb'), 'not an ar archive\n');
    const r2 = suture(['kernel', 'fetch', 'debian:6.1.0-56-amd64', '--debs', dir], { env });
    expect(r2.status).toBe(11);
    expect(r2.stderr).toContain(`${join(dir, 'linux-source-6.1_6.1.192-2_all.deb')} is not a Debian package`);
    expect(existsSync(join(home, 'kernels'))).toBe(false);
  });

  it('a kernel that is not in the cache says how to fetch it (exit 10)', () => {
    const r = suture(['vm', 'run', '--kernel', 'debian:6.1.0-55-amd64', '--exec', 'true'], { env });
    expect(r.status).toBe(10);
    expect(r.stderr).toContain(`debian:6.1.0-55-amd64 is not in the cache (${home})`);
    expect(r.stderr).toContain('hint: run: suture kernel fetch debian:6.1.0-55-amd64');
    const info = suture(['kernel', 'info', 'debian:6.1.0-55-amd64', '--json'], { env });
    expect(info.status).toBe(10);
    expect(JSON.parse(info.stdout).error).toMatchObject({ kind: 'not-found', exitCode: 10 });
  });

  it('a module path that does not exist is named (exit 10), before any kernel is looked up', () => {
    const r = suture(['vm', 'run', '--kernel', 'debian:6.1.0-55-amd64', '--load', '/nonexistent/fix.ko'], { env });
    expect(r.status).toBe(10);
    expect(r.stderr).toContain('/nonexistent/fix.ko does not exist');
  });

  it('a file that is not an ELF module is refused (exit 11)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'suture-bad-'));
    writeFileSync(join(dir, 'notes.ko'), 'this is text, not a module\n');
    const r = suture(['vm', 'run', '--kernel', 'debian:6.1.0-55-amd64', '--module', join(dir, 'notes.ko')], { env });
    expect(r.status).toBe(11);
    expect(r.stderr).toMatch(/notes\.ko is not a kernel module: .*/);
    // An ELF object that is not a module (no .modinfo): a plain gcc -c output.
    writeFileSync(join(dir, 'plain.c'), 'int f(void) { return 1; }\n');
    execFileSync('gcc', ['-c', '-o', join(dir, 'plain.ko'), join(dir, 'plain.c')]);
    const r2 = suture(['vm', 'run', '--kernel', 'debian:6.1.0-55-amd64', '--load', join(dir, 'plain.ko')], { env });
    expect(r2.status).toBe(11);
    expect(r2.stderr).toContain('is an ELF object but not a kernel module');
  });

  it('a script that does not exist is a usage error naming it', () => {
    const r = suture(['vm', 'run', '--kernel', 'debian:6.1.0-55-amd64', '--script', '/nonexistent.sh'], { env });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('/nonexistent.sh does not exist');
  });

  it.runIf(isRoot)('a cache directory that is not writable is refused (exit 12) and nothing is written', () => {
    const ro = tmpfs('ro,size=1m');
    const r = suture(['kernel', 'fetch', 'debian:6.1.0-56-amd64'], { env: { ...env, SUTURE_HOME: join(ro, 'cache') } });
    expect(r.status).toBe(12);
    expect(r.stderr).toMatch(/the suture cache: .*cache(\/kernels)? is not writable \(EROFS\)/);
    expect(r.stderr).toContain('hint: set SUTURE_HOME');
    expect(readdirSync(ro)).toEqual([]);
  });

  it.runIf(isRoot)('too little disk space is refused before anything is downloaded (exit 12), leaving no entry', () => {
    const small = tmpfs('size=2m');
    const r = suture(['kernel', 'fetch', 'debian:6.1.0-56-amd64'], { env: { ...env, SUTURE_HOME: small } });
    expect(r.status).toBe(12);
    expect(r.stderr).toMatch(/not enough disk space under .*: a kernel workspace needs about 2\.5 GB, 0\.0 GB are free/);
    expect(readdirSync(join(small, 'kernels'))).toEqual([]);
    expect(suture(['kernel', 'list'], { env: { ...env, SUTURE_HOME: small } }).stdout).toContain('no kernels in');
  });

  it('kernel list on an empty cache says how to fetch one', () => {
    const r = suture(['kernel', 'list'], { env });
    expect(r.status).toBe(0);
    expect(r.stdout).toContain(`no kernels in ${home}; fetch one: suture kernel fetch debian:6.1.0-56-amd64`);
    expect(JSON.parse(suture(['kernel', 'list', '--json'], { env }).stdout)).toEqual([]);
  });

  it('an unknown option is a usage error (exit 2)', () => {
    const r = suture(['vm', 'run', '--kernel', 'debian:6.1.0-56-amd64', '--frobnicate'], { env });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("unknown option '--frobnicate'");
  });

  it('nothing was left in the cache by any of the above', () => {
    const k = join(home, 'kernels');
    expect(existsSync(k) ? readdirSync(k).filter((f) => !f.startsWith('.')) : []).toEqual([]);
    mkdirSync(k, { recursive: true });
  });
});
