// SPDX-License-Identifier: GPL-2.0-only
/**
 * The compiler a kernel was built with, exactly: the host's when its version
 * text matches CONFIG_CC_VERSION_TEXT to the last digit, otherwise a Debian
 * build root that suture makes once per suite with debootstrap.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SutureError } from '../util/errors.js';
import { run, runChecked, which, type RunOptions, type RunResult } from '../util/exec.js';
import type { Mirrors } from './apt.js';
import type { DebianCodename } from './ref.js';
import { compilerCommand, compilerPackage } from './config.js';
import type { CompilerInfo } from './workspace.js';

/**
 * An overlay of a kernel tree: `merged` shows `lower` with every write going to
 * `upper`, so a prepared tree can be patched and built in without changing it.
 */
export interface Overlay {
  lower: string;
  upper: string;
  work: string;
  merged: string;
}

export interface ToolchainRunOptions extends RunOptions {
  /** Mount this overlay (in a private mount namespace) for the duration of the command. */
  overlay?: Overlay;
}

/** Runs kernel build commands with the kernel's own compiler. */
export interface Toolchain {
  info: CompilerInfo;
  /** Run argv in cwd with this toolchain (inside the build root when there is one). */
  run(argv: readonly string[], cwd: string, opts?: ToolchainRunOptions): Promise<RunResult>;
}

/** Packages a build root needs to prepare a tree and build modules, besides the compiler. */
const BUILDROOT_PACKAGES = ['make', 'flex', 'bison', 'bc', 'libelf-dev', 'libssl-dev', 'libc6-dev', 'kmod', 'xz-utils', 'cpio', 'python3', 'perl', 'dwarves', 'patch'];

/** The first line of `<cc> --version`, or undefined if cc is not there. */
export async function compilerVersionText(cc: string, wrap?: (argv: string[]) => string[]): Promise<string | undefined> {
  const argv = wrap ? wrap([cc, '--version']) : [cc, '--version'];
  if (!wrap && !which(cc)) return undefined;
  const r = await run(argv);
  return r.code === 0 ? r.stdout.split('\n')[0]!.trim() : undefined;
}

const here = dirname(fileURLToPath(import.meta.url));
/** A script of libexec/, from dist/kernel/ or src/kernel/. */
function libexec(name: string): string {
  const p = join(here, '..', '..', 'libexec', name);
  if (!existsSync(p)) throw new SutureError('internal', `${p} is missing from this suture installation`);
  return p;
}

/** A private mount namespace (with a user namespace when not root, where the kernel allows it). */
function unshareMount(): string[] {
  return process.getuid?.() === 0
    ? ['unshare', '--mount', '--propagation', 'private', '--']
    : ['unshare', '--user', '--map-root-user', '--mount', '--propagation', 'private', '--'];
}

function overlayArgs(o: Overlay): string[] {
  for (const d of [o.upper, o.work, o.merged]) mkdirSync(d, { recursive: true });
  return ['sh', libexec('in-overlay.sh'), o.lower, o.upper, o.work, o.merged, '--'];
}

/** What kbuild runs on the host besides the compiler to prepare a tree (checked before preparing). */
export const HOST_BUILD_TOOLS = ['make', 'flex', 'bison', 'bc', 'python3', 'perl', 'pahole'];

/** Run a host program with an overlay mounted for its duration (e.g. `patch` into a build overlay). */
export function runWithOverlay(argv: readonly string[], cwd: string, overlay: Overlay, opts: RunOptions = {}): Promise<RunResult> {
  return run([...unshareMount(), ...overlayArgs(overlay), 'env', `--chdir=${cwd}`, ...argv], opts);
}

export function hostToolchain(text: string): Toolchain {
  const info: CompilerInfo = { text, command: compilerCommand(text), via: 'host' };
  return {
    info,
    run: (argv, cwd, opts = {}) => (opts.overlay ? runWithOverlay(argv, cwd, opts.overlay, opts) : run(argv, { ...opts, cwd })),
  };
}

export function buildrootToolchain(text: string, root: string, home: string): Toolchain {
  const info: CompilerInfo = { text, command: compilerCommand(text), via: 'buildroot', buildroot: root };
  // The overlay (under $SUTURE_HOME) is mounted first; in-buildroot.sh then binds $SUTURE_HOME, submounts included.
  const wrap = (argv: readonly string[], cwd: string, overlay?: Overlay) => [
    'unshare', '--mount', '--propagation', 'private', '--',
    ...(overlay ? overlayArgs(overlay) : []),
    'sh', libexec('in-buildroot.sh'), root, home, cwd, '--', ...argv,
  ];
  return {
    info,
    run: (argv, cwd, opts = {}) =>
      run(wrap(argv, cwd, opts.overlay), { ...opts, env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C.UTF-8', HOME: '/root' } }),
  };
}

/**
 * Pick the toolchain for a kernel: the host's compiler if it matches exactly,
 * else the build root (made now if missing).
 */
export async function ensureToolchain(opts: {
  ccVersionText: string;
  /** The Debian release whose gcc built the kernel (bookworm for 6.1 and the 6.12 backports, trixie for 6.12+deb13). */
  suite: DebianCodename;
  home: string;
  mirrors: Mirrors;
  onProgress?: (line: string) => void;
}): Promise<Toolchain> {
  const cc = compilerCommand(opts.ccVersionText);
  const hostText = await compilerVersionText(cc);
  if (hostText === opts.ccVersionText) {
    const missing = HOST_BUILD_TOOLS.filter((t) => !which(t));
    if (missing.length) {
      throw new SutureError('environment', `preparing the kernel tree needs ${missing.join(', ')}, not installed here`, {
        hint: 'run scripts/setup.sh, or: apt-get install make flex bison bc python3 perl dwarves libelf-dev libssl-dev',
      });
    }
    return hostToolchain(opts.ccVersionText);
  }
  const suite = opts.suite;
  const root = join(opts.home, 'buildroots', suite);
  const tc = buildrootToolchain(opts.ccVersionText, root, opts.home);
  const ready = join(root, '.suture-ready');
  if (!existsSync(ready)) {
    opts.onProgress?.(
      `host ${cc} is ${hostText ? `"${hostText}"` : 'missing'}; making a ${suite} build root with "${opts.ccVersionText}"`,
    );
    await makeBuildroot(root, suite, cc, opts.mirrors, opts.onProgress);
  } else {
    // A build root made by an older suture may lack packages this one needs.
    const have = readReady(ready);
    const missing = [compilerPackage(cc), ...BUILDROOT_PACKAGES].filter((p) => !have.includes(p));
    if (missing.length) {
      opts.onProgress?.(`adding ${missing.join(', ')} to the ${suite} build root`);
      for (const argv of [['apt-get', 'update', '-q'], ['apt-get', 'install', '-y', '-q', '--no-install-recommends', ...missing]]) {
        const r = await tc.run(argv, '/', { extraEnv: { DEBIAN_FRONTEND: 'noninteractive' } });
        if (r.code !== 0) {
          throw new SutureError('environment', `installing ${missing.join(', ')} into the build root ${root} failed`, {
            details: r.stderr.trim().split('\n').slice(-5).join('\n'),
          });
        }
      }
      writeReady(ready, [compilerPackage(cc), ...BUILDROOT_PACKAGES]);
    }
  }
  const probe = await tc.run([cc, '--version'], '/');
  const inside = probe.stdout.split('\n')[0]?.trim();
  if (inside !== opts.ccVersionText) {
    throw new SutureError(
      'environment',
      probe.code === 0
        ? `the ${suite} build root at ${root} has "${inside}", the kernel was built with "${opts.ccVersionText}"`
        : `running ${cc} in the ${suite} build root at ${root} failed (exit ${probe.code})`,
      {
        hint: `remove ${root} and fetch again; if the archive moved on, this kernel's compiler is no longer downloadable`,
        details: probe.stderr.trim().split('\n').slice(-5).join('\n') || undefined,
      },
    );
  }
  return tc;
}

async function makeBuildroot(
  root: string,
  suite: string,
  cc: string,
  mirrors: Mirrors,
  onProgress?: (line: string) => void,
): Promise<void> {
  if (process.getuid?.() !== 0) {
    throw new SutureError('environment', `making a build root needs root (debootstrap, chroot); the host's ${cc} does not match the kernel's`, {
      hint: `run the fetch as root once, or install the kernel's exact compiler on the host`,
    });
  }
  for (const tool of ['debootstrap', 'unshare', 'chroot']) {
    if (!which(tool)) {
      throw new SutureError('environment', `${tool} is not installed; it is needed to make a ${suite} build root`, {
        hint: 'install it: apt-get install debootstrap (unshare and chroot come with util-linux and coreutils)',
      });
    }
  }
  rmSync(root, { recursive: true, force: true });
  mkdirSync(dirname(root), { recursive: true });
  const keyring = '/usr/share/keyrings/debian-archive-keyring.gpg';
  const include = [compilerPackage(cc), ...BUILDROOT_PACKAGES].join(',');
  await runChecked(
    [
      'debootstrap',
      '--variant=minbase',
      `--include=${include}`,
      ...(existsSync(keyring) ? [`--keyring=${keyring}`] : []),
      suite,
      root,
      mirrors.main,
    ],
    { kind: 'environment', what: `debootstrap of a ${suite} build root`, timeoutMs: 60 * 60_000, onLine: (l) => onProgress?.(l) },
  );
  // The security suite carries the newest point release of the compiler (deb12uN).
  writeFileSync(
    join(root, 'etc', 'apt', 'sources.list'),
    `deb ${mirrors.main} ${suite} main\ndeb ${mirrors.main} ${suite}-updates main\ndeb ${mirrors.security} ${suite}-security main\n`,
  );
  mkdirSync(join(root, 'tmp'), { recursive: true });
  writeReady(join(root, '.suture-ready'), [compilerPackage(cc), ...BUILDROOT_PACKAGES]);
}

/** The packages a build root was made with (recorded in its ready mark). */
function readReady(file: string): string[] {
  try {
    const v = JSON.parse(readFileSync(file, 'utf8')) as { packages?: string[] };
    return v.packages ?? [];
  } catch {
    return []; // an older mark: plain text
  }
}

function writeReady(file: string, packages: string[]): void {
  writeFileSync(file, `${JSON.stringify({ madeAt: new Date().toISOString(), packages })}\n`);
}
