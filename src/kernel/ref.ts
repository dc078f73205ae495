// SPDX-License-Identifier: GPL-2.0-only
/**
 * Kernel references as users type them: `debian:6.1.0-56-amd64`.
 * The part after the colon is the kernel release (`uname -r`), which is also
 * the Debian ABI name used in the image and headers package names.
 */
import { SutureError } from '../util/errors.js';

export interface KernelRef {
  distro: 'debian';
  /** `uname -r` of the kernel: 6.1.0-56-amd64, 6.12.48+deb12-amd64 */
  release: string;
  /** Release without the flavour: 6.1.0-56, 6.12.48+deb12 */
  abi: string;
  /** amd64, cloud-amd64, rt-amd64 */
  flavour: string;
  /** Upstream series, which names the source and kbuild packages: 6.1, 6.12 */
  series: string;
  /** The Debian release whose archive carries it (and whose compiler built it): bookworm, trixie. */
  codename: DebianCodename;
}

/** The Debian releases suture fetches kernels from, by the number in their `+debNN` ABI suffix. */
export const DEBIAN_CODENAMES = { 12: 'bookworm', 13: 'trixie' } as const;
export type DebianCodename = (typeof DEBIAN_CODENAMES)[keyof typeof DEBIAN_CODENAMES];

const FLAVOURS = ['cloud-amd64', 'rt-amd64', 'amd64'] as const;

export function parseKernelRef(text: string): KernelRef {
  const m = /^([a-z]+):(.+)$/.exec(text.trim());
  if (!m) {
    throw new SutureError('usage', `"${text}" is not a kernel name`, {
      hint: 'name a kernel as debian:<release>, e.g. debian:6.1.0-56-amd64 (see `suture kernel list`)',
    });
  }
  const [, distro, release] = m as unknown as [string, string, string];
  if (distro !== 'debian') {
    throw new SutureError('usage', `unknown distribution "${distro}" in "${text}"`, {
      hint: 'suture knows Debian kernels for now: debian:<release>, e.g. debian:6.1.0-56-amd64',
    });
  }
  const flavour = FLAVOURS.find((f) => release.endsWith(`-${f}`));
  const abi = flavour ? release.slice(0, -(flavour.length + 1)) : '';
  const series = /^(\d+\.\d+)[.]/.exec(abi)?.[1];
  if (!flavour || !series || !/^[0-9][0-9a-z.+~-]*$/.test(abi)) {
    throw new SutureError('usage', `"${release}" is not a Debian kernel release`, {
      hint: `a release looks like 6.1.0-56-amd64 (ABI 6.1.0-56, flavour amd64); flavours: ${FLAVOURS.join(', ')}`,
    });
  }
  return { distro: 'debian', release, abi, flavour, series, codename: codenameOf(release, abi) };
}

/**
 * Which Debian release a kernel ABI belongs to: `6.12.57+deb13` is trixie's,
 * `6.12.48+deb12` bookworm's (backports or security); bookworm's own 6.1
 * kernels carry no suffix (`6.1.0-56`).
 */
function codenameOf(release: string, abi: string): DebianCodename {
  const deb = /\+deb(\d+)(?:[+.]\d+)?$/.exec(abi)?.[1];
  if (deb !== undefined) {
    const name = (DEBIAN_CODENAMES as Record<string, DebianCodename | undefined>)[deb];
    if (!name) {
      throw new SutureError('usage', `"${release}" is a kernel of Debian ${deb}; suture fetches Debian 12 (bookworm) and 13 (trixie) kernels`, {
        hint: 'name a bookworm (6.1.0-N-amd64, 6.12.N+deb12-amd64) or trixie (6.12.N+deb13-amd64) release',
      });
    }
    return name;
  }
  // Debian's older naming (6.1.0-56; 5.10.0-N of Debian 11 before it): of the releases suture fetches, bookworm's.
  // Another series of that naming is looked up there too, and the archive's answer lists what exists.
  if (/^\d+\.\d+\.0-\d+$/.test(abi)) return 'bookworm';
  throw new SutureError('usage', `"${release}" is not a release name Debian uses`, {
    hint: 'Debian 12 names its kernels 6.1.0-N-amd64 (and 6.12.N+deb12-amd64 in backports); Debian 13 names them 6.12.N+deb13-amd64',
  });
}

export function formatKernelRef(ref: KernelRef): string {
  return `${ref.distro}:${ref.release}`;
}
