// SPDX-License-Identifier: GPL-2.0-only
/**
 * Everything checked before suture touches the kernel. The facts about the
 * host are gathered once (gatherFacts), then the checks are pure: each refusal
 * is one SutureError naming the file or patch and saying what to do.
 */
import { readModuleFile } from '../kernel/module-file.js';
import { SutureError } from '../util/errors.js';
import { kernelOwnVersion } from './effective-version.js';
import { MODINFO_BUILD_ID, MODINFO_EFFECTIVE_VERSION, patchObjectNames, type PatchFile } from './patch-file.js';
import type { HostFs, SysfsPatch } from './sysfs.js';

/** MODULE_NAME_LEN is 56 on 6.1: 55 characters and the NUL. */
export const MAX_MODULE_NAME = 55;

export interface HostFacts {
  release: string | undefined;
  /** The full vermagic of one of the running kernel's own modules, when /lib/modules has one. */
  reference: { file: string; vermagic: string } | undefined;
  livepatchAvailable: boolean;
  livepatchDir: string;
  ftraceEnabled: boolean | undefined;
  loadedModules: Set<string>;
  patches: SysfsPatch[];
  lockdown: string | undefined;
  isRoot: boolean;
  /** The running kernel's GNU build ID (/sys/kernel/notes). */
  buildId: string | undefined;
  /** The kernel's own distribution version (`uname -v`: Debian 6.1.192-2). */
  kernelVersion: string | undefined;
}

export function gatherFacts(fs: HostFs, opts: { isRoot?: boolean } = {}): HostFacts {
  const release = fs.osRelease();
  let reference: HostFacts['reference'];
  const refFile = release ? fs.referenceModule(release) : undefined;
  if (refFile) {
    try {
      const m = readModuleFile(refFile);
      if (m.vermagic) reference = { file: refFile, vermagic: m.vermagic };
    } catch {
      reference = undefined;
    }
  }
  return {
    release,
    reference,
    livepatchAvailable: fs.livepatchAvailable(),
    livepatchDir: fs.livepatchDir(),
    ftraceEnabled: fs.ftraceEnabled(),
    loadedModules: new Set(fs.loadedModules().map((m) => m.name)),
    patches: fs.readAllPatches(),
    lockdown: fs.lockdown(),
    isRoot: opts.isRoot ?? process.getuid?.() === 0,
    buildId: fs.kernelBuildId(),
    kernelVersion: kernelOwnVersion(fs.read('/proc/sys/kernel/version')?.trim()),
  };
}

/** The kernel release a vermagic string names (its first word). */
export function vermagicRelease(vermagic: string | undefined): string | undefined {
  return vermagic?.trim().split(/\s+/)[0] || undefined;
}

/** The file itself: a livepatch module with a usable name. Needs no host. */
export function checkPatchFile(p: PatchFile): void {
  if (!p.livepatch) {
    throw new SutureError('invalid-input', `${p.path} is not a livepatch module (its .modinfo has no livepatch=Y)`, {
      hint: 'load ordinary modules with insmod or modprobe; suture loads livepatches',
    });
  }
  if (!p.vermagic) {
    throw new SutureError('invalid-input', `${p.path} has no vermagic in its .modinfo`, { hint: 'give the .ko that kbuild produced' });
  }
  if (p.name.length > MAX_MODULE_NAME) {
    throw new SutureError('invalid-input', `${p.path}: module name ${p.name} is longer than ${MAX_MODULE_NAME} characters`, {
      hint: 'the kernel truncates longer module names; rename the module',
    });
  }
  if (!/^[A-Za-z0-9_]+$/.test(p.name)) {
    throw new SutureError('invalid-input', `${p.path}: module name ${JSON.stringify(p.name)} has characters the kernel does not use in module names`);
  }
  if (p.buildId !== undefined && !/^[0-9a-f]{2,128}$/.test(p.buildId)) {
    throw new SutureError('invalid-input', `${p.path}: modinfo ${MODINFO_BUILD_ID}=${JSON.stringify(p.buildId)} is not a GNU build ID (hex)`, {
      hint: 'build the patch again with suture build',
    });
  }
  checkEffectiveVersionClaim(p);
}

/** The upstream series (major.minor) of a kernel release or version: 6.1.0-56-amd64 and 6.1.192-2 are both 6.1. */
export function kernelSeries(v: string | undefined): string | undefined {
  return /^(\d+\.\d+)(?:[.+~-]|$)/.exec(v ?? '')?.[1];
}

/**
 * A patch's effective-version claim (modinfo suture_effective_version) must be
 * a version of the series it is built for: a 6.1 kernel patched is still a
 * 6.1 kernel, whatever a module says.
 */
export function checkEffectiveVersionClaim(p: PatchFile): void {
  const claim = p.effectiveVersion;
  if (claim === undefined) return;
  const series = kernelSeries(vermagicRelease(p.vermagic));
  const claimed = kernelSeries(claim);
  if (!claimed || !/^[0-9][A-Za-z0-9.+~-]*$/.test(claim) || (series && claimed !== series)) {
    throw new SutureError(
      'invalid-input',
      `${p.path} claims (modinfo ${MODINFO_EFFECTIVE_VERSION}) to make the kernel version ${JSON.stringify(claim)}, which is not a version of the ${series ?? 'kernel'} series it is built for`,
      { hint: `a livepatch can only bring a kernel up to a later version of its own series (e.g. ${series ?? '6.1'}.194-1); build it with a correct --effective-version` },
    );
  }
}

/** The file against this kernel: built for it (vermagic). */
export function checkKernelMatch(p: PatchFile, h: HostFacts): void {
  const built = vermagicRelease(p.vermagic);
  if (h.release && built !== h.release) {
    throw new SutureError('wrong-kernel', `${p.path} was built for kernel ${built}, but this kernel is ${h.release}`, {
      hint: `build the patch for ${h.release}, or install it for its own kernel (suture install keeps it per release)`,
    });
  }
  if (p.buildId && h.buildId && p.buildId !== h.buildId) {
    throw new SutureError(
      'wrong-kernel',
      `${p.path} was built for the kernel build with GNU build ID ${p.buildId}, but the running ${h.release ?? 'kernel'} is build ${h.buildId} (/sys/kernel/notes): another build of the same release`,
      { hint: `build the patch against the kernel that runs here (same release, other build: its functions may differ)` },
    );
  }
  if (h.reference && p.vermagic !== h.reference.vermagic) {
    throw new SutureError(
      'wrong-kernel',
      `${p.path} has vermagic '${p.vermagic}', but this kernel's modules have '${h.reference.vermagic}' (${h.reference.file})`,
      { hint: 'the kernel would refuse it: build the patch against this exact kernel configuration' },
    );
  }
}

/** The host can take a livepatch at all. */
export function checkEnvironment(p: PatchFile, h: HostFacts): void {
  if (!h.isRoot) {
    throw new SutureError('environment', 'loading and changing livepatches needs root (CAP_SYS_MODULE)', { hint: 'run suture as root' });
  }
  if (!h.livepatchAvailable) {
    throw new SutureError('environment', `livepatch is not available: ${h.livepatchDir} does not exist`, {
      hint: 'the kernel needs CONFIG_LIVEPATCH=y and sysfs mounted on /sys',
    });
  }
  if (h.ftraceEnabled === false) {
    throw new SutureError('environment', 'ftrace is disabled (kernel.ftrace_enabled = 0); livepatch redirects functions through ftrace', {
      hint: 'enable it: sysctl kernel.ftrace_enabled=1',
    });
  }
  if ((h.lockdown === 'integrity' || h.lockdown === 'confidentiality') && !p.signed) {
    throw new SutureError('environment', `the kernel is locked down (${h.lockdown}) and ${p.path} is not signed`, {
      hint: 'sign the module with a key the kernel trusts (scripts/sign-file; enrol the key with mokutil under Secure Boot)',
    });
  }
}

/** The host's livepatch state lets this patch in now. */
export function checkConflicts(p: PatchFile, h: HostFacts): void {
  const own = h.patches.find((x) => x.name === p.name);
  if (own) {
    throw new SutureError('conflict', `livepatch ${p.name} is already loaded (${own.enabled ? 'enabled' : 'disabled'}${own.transition ? ', in transition' : ''})`, {
      hint: `to load a new build of it: suture unload ${p.name}, then load again; or use a cumulative patch with suture replace`,
    });
  }
  if (h.loadedModules.has(p.name)) {
    throw new SutureError('conflict', `module ${p.name} is already loaded (no longer an active livepatch: disabled or replaced)`, {
      hint: `remove it first: suture unload ${p.name}`,
    });
  }
  const busy = h.patches.find((x) => x.transition);
  if (busy) {
    throw new SutureError('conflict', `livepatch ${busy.name} is in transition; the kernel runs one transition at a time`, {
      hint: `wait for it (suture status shows what blocks it), or reverse it: suture disable ${busy.name}`,
    });
  }
}

/** Everything, in the order a user wants to hear about it: the file, the kernel, the host, the state. */
export function checkLoad(p: PatchFile, h: HostFacts): void {
  checkPatchFile(p);
  checkKernelMatch(p, h);
  checkEnvironment(p, h);
  checkConflicts(p, h);
}

/** Things worth saying before a load that are not refusals. */
export function loadNotes(p: PatchFile, h: HostFacts): string[] {
  const notes: string[] = [];
  if (p.buildId && !h.buildId) notes.push(`the running kernel's build ID cannot be read (/sys/kernel/notes): only the release and vermagic of ${p.path} were checked`);
  for (const obj of patchObjectNames(p)) {
    if (obj !== 'vmlinux' && !h.loadedModules.has(obj)) {
      notes.push(`module ${obj} is not loaded: the kernel patches it when it loads`);
    }
  }
  if (p.structure?.replace) {
    const others = h.patches.filter((x) => x.name !== p.name).map((x) => x.name);
    if (others.length) notes.push(`cumulative patch: it replaces ${others.join(', ')}`);
  }
  return notes;
}
