// SPDX-License-Identifier: GPL-2.0-only
/**
 * The effective kernel version: the version the running kernel is equivalent
 * to once its enabled livepatches are counted. Each patch may declare one in
 * modinfo (`suture_effective_version`, in the distribution's own version form:
 * the Debian linux-image package version such as 6.1.194-1); the effective
 * version is the highest declared by an enabled patch, if it is higher than
 * the kernel's own.
 *
 * Where it shows (`suture uname`): on Debian the release (`uname -r`,
 * 6.1.0-56-amd64) is an ABI name that a livepatch never changes, and modules
 * under /lib/modules/<release> keep loading; the version the kernel was built
 * from is in `uname -v` ("#1 SMP PREEMPT_DYNAMIC Debian 6.1.192-2 (2026-11-16)"),
 * which is what vulnerability scanners read. So `-r` stays, and `-v`/`-a` carry
 * the effective version in place of the kernel's own.
 */
import { compareVersions } from '../util/debian-version.js';

/** The kernel's own distribution version from its version string (`uname -v`), e.g. Debian's "6.1.192-2". */
export function kernelOwnVersion(unameV: string | undefined): string | undefined {
  return /\bDebian (\S+)/.exec(unameV ?? '')?.[1];
}

export interface DeclaredVersion {
  patch: string;
  version: string;
  /** Where the claim comes from (the patch's own modinfo, in its file). */
  source?: string;
}

/** The upstream series (major.minor) of a version: 6.1.192-2 is 6.1. */
function series(v: string | undefined): string | undefined {
  return /^(\d+\.\d+)(?:[.+~-]|$)/.exec(v ?? '')?.[1];
}

export interface EffectiveVersion {
  /** The kernel's own version (from `uname -v`), if it shows one. */
  kernel: string | undefined;
  /** What the enabled patches make it: the highest declared version above the kernel's own, else the kernel's. */
  effective: string | undefined;
  /** The patch that declares the effective version, if a patch raised it. */
  from: string | undefined;
  /** Every declaration seen, for reports. */
  declared: DeclaredVersion[];
  /** Declarations that are not versions of the kernel's series: never counted. */
  ignored: DeclaredVersion[];
}

export function effectiveVersion(unameV: string | undefined, declared: readonly DeclaredVersion[]): EffectiveVersion {
  const kernel = kernelOwnVersion(unameV);
  // A claim counts only as a version of the running kernel's own series (a 6.1 kernel stays 6.1).
  const ks = series(kernel);
  const ok = (d: DeclaredVersion) => !!series(d.version) && (!ks || series(d.version) === ks);
  const ignored = declared.filter((d) => !ok(d));
  let best: DeclaredVersion | undefined;
  for (const d of declared.filter(ok)) if (!best || compareVersions(d.version, best.version) > 0) best = d;
  if (best && (!kernel || compareVersions(best.version, kernel) > 0)) {
    return { kernel, effective: best.version, from: best.patch, declared: [...declared], ignored };
  }
  return { kernel, effective: kernel, from: undefined, declared: [...declared], ignored };
}

export interface UnameFacts {
  sysname: string;
  nodename: string;
  release: string;
  /** The kernel's version string (`uname -v`). */
  version: string;
  machine: string;
}

/** `uname -v` with the effective version in place of the kernel's own (or appended when it shows none). */
export function effectiveUnameVersion(u: UnameFacts, e: EffectiveVersion): string {
  if (!e.from || !e.effective) return u.version;
  if (e.kernel && u.version.includes(`Debian ${e.kernel}`)) return u.version.replace(`Debian ${e.kernel}`, `Debian ${e.effective}`);
  return `${u.version} (effective ${e.effective})`;
}

export type UnameField = 's' | 'n' | 'r' | 'v' | 'm' | 'o' | 'a';

/** The line `suture uname` prints for the given flags, in uname's field order. */
export function formatUname(u: UnameFacts, e: EffectiveVersion, fields: ReadonlySet<UnameField>): string {
  const all = fields.has('a');
  const parts: string[] = [];
  if (all || fields.has('s')) parts.push(u.sysname);
  if (all || fields.has('n')) parts.push(u.nodename);
  if (all || fields.has('r')) parts.push(u.release);
  if (all || fields.has('v')) parts.push(effectiveUnameVersion(u, e));
  if (all || fields.has('m')) parts.push(u.machine);
  if (all || fields.has('o')) parts.push('GNU/Linux');
  return parts.join(' ');
}
