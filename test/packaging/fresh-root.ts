// SPDX-License-Identifier: GPL-2.0-only
/**
 * Fresh Debian roots for the package tests: `debootstrap --variant=minbase --include=systemd` of a
 * release from the Debian mirror this machine's apt uses (as scripts/check-fresh-root.sh does),
 * made once and cached under $SUTURE_HOME/test-roots/<suite>; each test run works on a copy, so
 * every run starts from the same untouched system. No Node.js is copied in: what runs suture is
 * Debian's own nodejs, installed by apt as the package's dependency.
 */
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { sutureHome } from '../../src/util/paths.js';

export type Suite = 'bookworm' | 'trixie';

export class FreshRootError extends Error {
  constructor(message: string, readonly details?: string) {
    super(details ? `${message}\n${details}` : message);
    this.name = 'FreshRootError';
  }
}

export interface RootResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], timeoutMs = 900_000): SpawnSyncReturns<string> {
  return spawnSync(cmd, args, { encoding: 'utf8', timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024, stdio: ['ignore', 'pipe', 'pipe'] });
}

function must(cmd: string, args: string[], what: string, timeoutMs?: number): string {
  const r = run(cmd, args, timeoutMs);
  if (r.status !== 0) throw new FreshRootError(`${what} failed (exit ${r.status ?? r.signal})`, `${r.stdout}\n${r.stderr}`.trim().split('\n').slice(-30).join('\n'));
  return r.stdout;
}

/** Why these tests cannot run here, or undefined when they can. */
export function cannotRun(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (debootstrap, chroot, mount)';
  for (const tool of ['debootstrap', 'chroot', 'mount', 'dpkg-deb']) if (run('sh', ['-c', `command -v ${tool}`]).status !== 0) return `${tool} is not installed (scripts/setup.sh)`;
  return undefined;
}

/** The Debian mirror this machine's apt uses (the first .../debian URI of its sources). */
export function hostMirror(): string {
  const files = ['/etc/apt/sources.list', ...(existsSync('/etc/apt/sources.list.d') ? readdirSync('/etc/apt/sources.list.d').map((f) => join('/etc/apt/sources.list.d', f)) : [])];
  for (const f of files) {
    if (!existsSync(f)) continue;
    const m = /(https?|file):\/\/\S+\/debian\/?(?=\s|$)/m.exec(readFileSync(f, 'utf8'));
    if (m) return m[0].replace(/\/$/, '');
  }
  throw new FreshRootError('no Debian mirror in this machine\'s apt sources (/etc/apt/sources.list*)');
}

/** The cached base root of a release (made on first use: debootstrap, 1-3 min). */
export function baseRoot(suite: Suite): { path: string; madeInSeconds?: number } {
  const dir = join(sutureHome(), 'test-roots');
  const path = join(dir, `${suite}-minbase`);
  // the marker sits beside the root, not in it (nothing named suture may be in a clean root)
  const marker = `${path}.ok`;
  if (existsSync(marker) && existsSync(path)) return { path };
  const started = Date.now();
  const tmp = `${path}.tmp-${process.pid}`;
  mkdirSync(dir, { recursive: true });
  rmSync(tmp, { recursive: true, force: true });
  const mirror = hostMirror();
  // systemd as on any real host: deb-systemd-helper's links and `systemctl is-enabled` work offline.
  must('debootstrap', ['--variant=minbase', '--include=systemd', suite, tmp, mirror], `debootstrap ${suite}`, 1_200_000);
  // What a real host's apt sees: the release, its updates and its security archive.
  writeFileSync(
    join(tmp, 'etc/apt/sources.list'),
    [`deb ${mirror} ${suite} main`, `deb ${mirror} ${suite}-updates main`, `deb ${mirror}-security ${suite}-security main`, ''].join('\n'),
  );
  // This machine's apt client settings that make downloads work here (a proxy), as check-fresh-root.sh.
  for (const f of readdirSync('/etc/apt/apt.conf.d')) {
    const p = join('/etc/apt/apt.conf.d', f);
    try {
      if (/proxy|Check-Valid|Check-Date/i.test(readFileSync(p, 'utf8'))) copyFileSync(p, join(tmp, 'etc/apt/apt.conf.d', f));
    } catch {
      /* not a readable file: not a setting */
    }
  }
  rmSync(path, { recursive: true, force: true });
  renameSync(tmp, path);
  writeFileSync(marker, `${suite} from ${mirror}\n`);
  return { path, madeInSeconds: Math.round((Date.now() - started) / 1000) };
}

/** A throwaway copy of the base root, with /proc and /dev mounted (never /sys: no livepatch there). */
export class FreshRoot {
  private mounted: string[] = [];

  private constructor(readonly path: string) {}

  static create(suite: Suite): { root: FreshRoot; baseMadeInSeconds?: number; copySeconds: number } {
    const base = baseRoot(suite);
    const started = Date.now();
    const path = join(sutureHome(), 'test-roots', `run-${suite}-${process.pid}`);
    rmSync(path, { recursive: true, force: true });
    must('cp', ['-a', '--reflink=auto', base.path, path], `copy of the ${suite} root`);
    copyFileSync('/etc/resolv.conf', join(path, 'etc/resolv.conf'));
    const root = new FreshRoot(path);
    try {
      must('mount', ['-t', 'proc', 'proc', join(path, 'proc')], 'mount /proc');
      root.mounted.push(join(path, 'proc'));
      must('mount', ['--bind', '/dev', join(path, 'dev')], 'mount /dev');
      root.mounted.push(join(path, 'dev'));
    } catch (e) {
      root.destroy();
      throw e;
    }
    return { root, baseMadeInSeconds: base.madeInSeconds, copySeconds: Math.round((Date.now() - started) / 1000) };
  }

  /** Run a shell command in the root as root, with a clean environment. */
  sh(command: string, timeoutMs = 600_000): RootResult {
    const r = run('chroot', [this.path, '/usr/bin/env', '-i', 'HOME=/root', 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'LANG=C.UTF-8', 'DEBIAN_FRONTEND=noninteractive', 'bash', '-c', command], timeoutMs);
    return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
  }

  /** Copy a file from this machine into the root; returns its path inside the root. */
  put(file: string, inside: string): string {
    copyFileSync(file, join(this.path, inside));
    return inside;
  }

  destroy(): void {
    for (const m of this.mounted.reverse()) run('umount', ['-l', m]);
    this.mounted = [];
    // never delete through a mount that is still there
    const mounts = readFileSync('/proc/mounts', 'utf8');
    if (mounts.includes(` ${this.path}/`)) throw new FreshRootError(`${this.path} still has mounts; not deleting it`);
    rmSync(this.path, { recursive: true, force: true });
  }
}
