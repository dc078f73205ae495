// SPDX-License-Identifier: GPL-2.0-only
/**
 * Debian host images for `suture vm host`: a real Debian 12 or 13 system
 * (systemd as init, Debian's nodejs, kmod) with the target kernel's own image
 * package installed, made once and cached under $SUTURE_HOME/images/:
 *
 *   images/base-<suite>/            debootstrap of the release (kept: a second kernel reuses it)
 *   images/<suite>-<release>/       root.img (raw ext4, the backing file of every boot's overlay),
 *                                   initrd.img (the image's own initramfs, made by initramfs-tools
 *                                   when dpkg installed the kernel), image.json (written last)
 *
 * The guest unit (host-guest.ts) is part of the image: it runs the commands a
 * boot was given on a second disk and powers the machine off.
 */
import { copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { findMirrors, type Mirrors } from '../kernel/apt.js';
import type { DebianCodename } from '../kernel/ref.js';
import type { KernelMetadata } from '../kernel/workspace.js';
import { SutureError } from '../util/errors.js';
import { runChecked, which } from '../util/exec.js';
import { GUEST_UNIT, GUEST_UNIT_NAME, GUEST_RUNNER, GUEST_RUNNER_PATH } from './host-guest.js';

/** Bumped when images must be made again (a changed unit, package list or layout). */
export const HOST_IMAGE_SCHEMA = 1;

/** What debootstrap installs beside the release's required packages (minbase). */
export const HOST_IMAGE_PACKAGES = [
  'systemd',
  'systemd-sysv',
  'udev',
  'dbus',
  'nodejs',
  'kmod',
  'e2fsprogs',
  'procps',
  'initramfs-tools',
  'linux-base',
] as const;

/** Size of the root file system (sparse: only what is written takes space). */
const ROOT_SIZE_MIB = 4096;

export interface HostImage {
  schema: number;
  suite: DebianCodename;
  release: string;
  dir: string;
  /** Raw ext4 image of the root file system: the read-only backing file of every overlay. */
  root: string;
  /** The image's own initramfs for the kernel. */
  initrd: string;
  /** The kernel image package installed in it. */
  kernelPackage: { name: string; version: string; file: string };
  nodeVersion: string;
  mirror: string;
  madeAt: string;
  /** Seconds each making step took (debootstrap is absent when the base was cached). */
  timings: Record<string, number>;
}

export function hostImageDir(home: string, suite: DebianCodename, release: string): string {
  return join(home, 'images', `${suite}-${release}`);
}

/** The cached image, or undefined when it is missing or made by another schema. */
export function readHostImage(home: string, suite: DebianCodename, release: string): HostImage | undefined {
  const dir = hostImageDir(home, suite, release);
  const file = join(dir, 'image.json');
  if (!existsSync(file)) return undefined;
  try {
    const img = JSON.parse(readFileSync(file, 'utf8')) as HostImage;
    if (img.schema !== HOST_IMAGE_SCHEMA || !existsSync(img.root) || !existsSync(img.initrd)) return undefined;
    return img;
  } catch {
    return undefined;
  }
}

export interface EnsureImageOptions {
  home: string;
  suite: DebianCodename;
  meta: KernelMetadata;
  mirrors?: Mirrors;
  onProgress?: (line: string) => void;
}

/** The host image for this kernel and release: the cached one, or made now (as root). */
export async function ensureHostImage(o: EnsureImageOptions): Promise<{ image: HostImage; made: boolean }> {
  const cached = readHostImage(o.home, o.suite, o.meta.release);
  if (cached) return { image: cached, made: false };
  return { image: await makeHostImage(o), made: true };
}

function requireRootAndTools(suite: string): void {
  if (process.getuid?.() !== 0) {
    throw new SutureError('environment', `making the Debian ${suite} host image needs root (debootstrap, chroot)`, {
      hint: 'run this once as root; later runs reuse the image under $SUTURE_HOME/images',
    });
  }
  const need: [string, string][] = [
    ['debootstrap', 'debootstrap'],
    ['chroot', 'coreutils'],
    ['mke2fs', 'e2fsprogs'],
    ['qemu-img', 'qemu-utils'],
  ];
  for (const [tool, pkg] of need) {
    if (!which(tool, `${process.env.PATH ?? ''}:/usr/sbin:/sbin`)) {
      throw new SutureError('environment', `${tool} is not installed; it is needed to make a Debian host image`, {
        hint: `install it: apt-get install ${pkg}`,
      });
    }
  }
}

function secondsSince(t: number): number {
  return Math.round((performance.now() - t) / 100) / 10;
}

/** debootstrap of the release with the host packages, kept under images/base-<suite>. */
async function ensureBase(home: string, suite: DebianCodename, mirrors: Mirrors, onProgress?: (l: string) => void): Promise<{ path: string; seconds?: number }> {
  const path = join(home, 'images', `base-${suite}`);
  const mark = `${path}.ok`;
  if (existsSync(mark) && existsSync(path)) {
    const want = HOST_IMAGE_PACKAGES.join(',');
    if (readFileSync(mark, 'utf8').includes(`packages ${want}\n`)) return { path };
  }
  const t = performance.now();
  const tmp = `${path}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(join(home, 'images'), { recursive: true });
  const keyring = '/usr/share/keyrings/debian-archive-keyring.gpg';
  onProgress?.(`debootstrap ${suite} from ${mirrors.main} (once; kept under ${path})`);
  await runChecked(
    [
      'debootstrap',
      '--variant=minbase',
      `--include=${HOST_IMAGE_PACKAGES.join(',')}`,
      ...(existsSync(keyring) ? [`--keyring=${keyring}`] : []),
      suite,
      tmp,
      mirrors.main,
    ],
    { kind: 'environment', what: `debootstrap of the ${suite} host image`, timeoutMs: 60 * 60_000, onLine: (l) => onProgress?.(l) },
  );
  rmSync(path, { recursive: true, force: true });
  renameSync(tmp, path);
  writeFileSync(mark, `${suite} from ${mirrors.main}\npackages ${HOST_IMAGE_PACKAGES.join(',')}\n`);
  return { path, seconds: secondsSince(t) };
}

async function inRoot(root: string, argv: string[], what: string, onProgress?: (l: string) => void): Promise<string> {
  const r = await runChecked(
    ['chroot', root, '/usr/bin/env', '-i', 'HOME=/root', 'PATH=/usr/sbin:/usr/bin:/sbin:/bin', 'LANG=C.UTF-8', 'DEBIAN_FRONTEND=noninteractive', ...argv],
    { kind: 'environment', what, timeoutMs: 30 * 60_000, onLine: (l) => onProgress?.(l) },
  );
  return r.stdout;
}

async function makeHostImage(o: EnsureImageOptions): Promise<HostImage> {
  const { home, suite, meta } = o;
  requireRootAndTools(suite);
  const kpkg = meta.packages.find((p) => p.role === 'image');
  if (!kpkg || !existsSync(kpkg.file) || !statSync(kpkg.file).isFile()) {
    throw new SutureError('not-found', `the workspace of ${meta.name} has no linux-image package file${kpkg ? ` (${kpkg.file} is missing)` : ''}`, {
      hint: `run: suture kernel fetch ${meta.name} (a workspace made from an installed /boot has no .deb: use --debs DIR with the image package)`,
    });
  }
  const mirrors = o.mirrors ?? findMirrors();
  const timings: Record<string, number> = {};
  const base = await ensureBase(home, suite, mirrors, o.onProgress);
  if (base.seconds !== undefined) timings.debootstrap = base.seconds;

  const dir = hostImageDir(home, suite, meta.release);
  const tmp = `${dir}.tmp-${process.pid}`;
  const tree = join(tmp, 'tree');
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  try {
    let t = performance.now();
    await runChecked(['cp', '-a', '--reflink=auto', base.path, tree], { kind: 'environment', what: 'copying the base root' });
    timings.copy = secondsSince(t);

    // The kernel's own package, installed by dpkg: its modules, and its initramfs made by initramfs-tools.
    t = performance.now();
    o.onProgress?.(`installing ${basename(kpkg.file)} in the image`);
    copyFileSync(kpkg.file, join(tree, 'tmp', basename(kpkg.file)));
    for (const m of ['proc', 'sys', 'dev']) mkdirSync(join(tree, m), { recursive: true });
    await runChecked(['mount', '-t', 'proc', 'proc', join(tree, 'proc')], { kind: 'environment', what: 'mounting /proc in the image tree' });
    try {
      await inRoot(tree, ['dpkg', '-i', `/tmp/${basename(kpkg.file)}`], `dpkg -i ${basename(kpkg.file)} in the image`, o.onProgress);
    } finally {
      await runChecked(['umount', '-l', join(tree, 'proc')], { kind: 'environment', what: 'unmounting /proc of the image tree' });
    }
    rmSync(join(tree, 'tmp', basename(kpkg.file)));
    timings.kernel = secondsSince(t);
    const initrdIn = join(tree, 'boot', `initrd.img-${meta.release}`);
    if (!existsSync(initrdIn)) {
      throw new SutureError('environment', `installing ${kpkg.name} made no initramfs (${initrdIn} is missing)`, {
        hint: 'initramfs-tools should have run from the kernel package\'s postinst; see the dpkg output above',
      });
    }
    const nodeVersion = (await inRoot(tree, ['node', '--version'], 'node --version in the image')).trim();

    configureTree(tree, meta.release);
    copyFileSync(initrdIn, join(tmp, 'initrd.img'));

    t = performance.now();
    const root = join(tmp, 'root.img');
    await runChecked(
      ['mke2fs', '-q', '-F', '-t', 'ext4', '-L', 'suture-root', '-d', tree, root, `${ROOT_SIZE_MIB}M`],
      { kind: 'environment', what: 'mke2fs of the host image', timeoutMs: 30 * 60_000, env: { ...process.env, PATH: `${process.env.PATH ?? ''}:/usr/sbin:/sbin` } },
    );
    timings.mkfs = secondsSince(t);
    rmSync(tree, { recursive: true, force: true });

    const image: HostImage = {
      schema: HOST_IMAGE_SCHEMA,
      suite,
      release: meta.release,
      dir,
      root: join(dir, 'root.img'),
      initrd: join(dir, 'initrd.img'),
      kernelPackage: { name: kpkg.name, version: kpkg.version, file: kpkg.file },
      nodeVersion,
      mirror: mirrors.main,
      madeAt: new Date().toISOString(),
      timings,
    };
    writeFileSync(join(tmp, 'image.json'), `${JSON.stringify(image, null, 2)}\n`);
    rmSync(dir, { recursive: true, force: true });
    renameSync(tmp, dir);
    return image;
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}

/** What makes the tree a bootable, quiet, offline host: fstab, names, the guest unit. */
function configureTree(tree: string, release: string): void {
  const w = (p: string, text: string, mode = 0o644) => {
    mkdirSync(join(tree, p, '..'), { recursive: true });
    writeFileSync(join(tree, p), text, { mode });
  };
  // No fsck pass: a boot that follows a crash replays the ext4 journal at mount anyway.
  w('etc/fstab', '/dev/vda / ext4 rw,errors=remount-ro 0 0\n');
  w('etc/hostname', 'suture-host\n');
  w('etc/hosts', '127.0.0.1 localhost\n127.0.1.1 suture-host\n');
  // One fixed machine id for the image: no first-boot setup at every throwaway boot.
  w('etc/machine-id', '5375747572655f686f73745f696d6167\n');
  w(GUEST_RUNNER_PATH, GUEST_RUNNER, 0o755);
  w(`etc/systemd/system/${GUEST_UNIT_NAME}`, GUEST_UNIT);
  mkdirSync(join(tree, 'etc/systemd/system/multi-user.target.wants'), { recursive: true });
  const link = join(tree, 'etc/systemd/system/multi-user.target.wants', GUEST_UNIT_NAME);
  rmSync(link, { force: true });
  writeSymlink(`/etc/systemd/system/${GUEST_UNIT_NAME}`, link);
  // Nothing in the guest waits on a network or on timers that fetch.
  for (const unit of ['apt-daily.timer', 'apt-daily-upgrade.timer', 'e2scrub_all.timer', 'systemd-networkd-wait-online.service', 'fstrim.timer']) {
    const m = join(tree, 'etc/systemd/system', unit);
    rmSync(m, { force: true });
    writeSymlink('/dev/null', m);
  }
  w('etc/suture-vm-image', `suture vm host image for ${release}\n`);
}

/** Absolute links, as systemctl writes them. */
function writeSymlink(target: string, path: string): void {
  symlinkSync(target, path);
}
