// SPDX-License-Identifier: GPL-2.0-only
/**
 * What is on this host, for `list`, `status`, `info` and `uname`: every
 * livepatch the kernel has (sysfs) or still holds as a module, joined with
 * what suture recorded when it loaded or installed them, the kernel and its
 * effective version, a transition in progress with its blockers, the
 * installed patches and the boot guard.
 */
import { machine } from 'node:os';
import { isSutureError } from '../util/errors.js';
import { scanPending, type Blocker } from './blockers.js';
import { matcherFor, type Host } from './core.js';
import { effectiveVersion, type DeclaredVersion, type EffectiveVersion, type UnameFacts } from './effective-version.js';
import { readPatchFile, type PatchFile } from './patch-file.js';
import type { ArmedGuard, BootRecord, CrashGuard, InstalledPatch, LoadRecord, StopSwitch } from './records.js';
import type { SysfsObject } from './sysfs.js';
import { checkLoad, gatherFacts, vermagicRelease } from './validate.js';

export type PatchStateName = 'enabled' | 'patching' | 'unpatching' | 'disabled';

export interface PatchStatus {
  name: string;
  /**
   * enabled: patched, transition done; patching/unpatching: in transition;
   * disabled: no longer active (disabled or replaced), its module still loaded.
   */
  state: PatchStateName;
  enabled: boolean;
  transition: boolean;
  objects: SysfsObject[];
  /** suture's record of loading it in this boot, if suture loaded it. */
  loadedBySuture: boolean;
  loadedAt: string | undefined;
  file: string | undefined;
  sha256: string | undefined;
  replace: boolean | undefined;
  effectiveVersion: string | undefined;
  cves: string[];
  description: string | undefined;
  forced: boolean;
  /** Installed for the running kernel (suture boot loads it). */
  installed: boolean;
  refcnt: number | undefined;
}

export interface KernelStatus {
  release: string | undefined;
  /** `uname -v` */
  version: string | undefined;
  effective: EffectiveVersion;
  tainted: number | undefined;
  livepatchAvailable: boolean;
  ftraceEnabled: boolean | undefined;
  bootId: string | undefined;
  /** The running kernel's GNU build ID (/sys/kernel/notes): patches bound to another build are refused. */
  buildId: string | undefined;
}

export interface TransitionStatus {
  patch: string;
  target: 'patched' | 'unpatched';
  tasks: number;
  pendingTasks: number;
  /** Every task has switched: the kernel is completing the transition (PendingScan.completing). */
  completing: boolean;
  blockers: Blocker[];
}

export interface InstalledStatus extends InstalledPatch {
  loaded: boolean;
}

export interface HostStatus {
  kernel: KernelStatus;
  patches: PatchStatus[];
  transition: TransitionStatus | undefined;
  installed: InstalledStatus[];
  boot: {
    last: BootRecord | undefined;
    guard: CrashGuard | undefined;
    /** loading.json: a boot loading now, or its guard window after loading. */
    armed: ArmedGuard | undefined;
    stopped: StopSwitch | undefined;
    uptime: number | undefined;
  };
  /** Things an operator should look at; empty when all is well. */
  attention: string[];
}

function recordFor(host: Host, name: string, bootId: string | undefined): LoadRecord | undefined {
  try {
    const r = host.store.loadRecord(name);
    return r && (!r.bootId || !bootId || r.bootId === bootId) ? r : undefined;
  } catch (e) {
    if (isSutureError(e)) return undefined;
    throw e;
  }
}

/** Every livepatch the kernel has, active or not. */
export function listPatches(host: Host): PatchStatus[] {
  const { fs } = host;
  const bootId = fs.bootId();
  const release = fs.osRelease();
  const installed = release ? safeInstalled(host, release) : [];
  const out: PatchStatus[] = [];
  const seen = new Set<string>();
  const add = (name: string, base: Pick<PatchStatus, 'state' | 'enabled' | 'transition' | 'objects'>, kernelReplace?: boolean) => {
    seen.add(name);
    const rec = recordFor(host, name, bootId);
    const inst = installed.find((i) => i.name === name);
    const facts = rec ?? inst;
    out.push({
      name,
      ...base,
      loadedBySuture: !!rec,
      loadedAt: rec?.loadedAt || undefined,
      file: rec?.file || (inst && release ? host.store.installedFile(release, inst) : undefined),
      sha256: facts?.sha256 || undefined,
      // The kernel says it where it can (6.12's sysfs), else the record of the file suture loaded or installed.
      replace: kernelReplace ?? facts?.replace,
      effectiveVersion: facts?.effectiveVersion,
      cves: facts?.cves ?? [],
      description: facts?.description,
      forced: rec?.forced ?? false,
      installed: !!inst,
      refcnt: fs.moduleRefcnt(name),
    });
  };
  for (const p of fs.readAllPatches()) {
    add(p.name, {
      state: p.transition ? (p.enabled ? 'patching' : 'unpatching') : p.enabled ? 'enabled' : 'unpatching',
      enabled: p.enabled,
      transition: p.transition,
      objects: p.objects,
    }, p.replace);
  }
  for (const m of fs.livepatchModules()) {
    if (!seen.has(m)) add(m, { state: 'disabled', enabled: false, transition: false, objects: [] });
  }
  return out;
}

function safeInstalled(host: Host, release: string): InstalledPatch[] {
  try {
    return host.store.installed(release);
  } catch (e) {
    if (isSutureError(e)) return [];
    throw e;
  }
}

export function kernelStatus(host: Host, patches: PatchStatus[] = listPatches(host)): KernelStatus {
  const { fs } = host;
  const version = fs.read('/proc/sys/kernel/version')?.trim();
  const declared: DeclaredVersion[] = patches
    .filter((p) => p.enabled && p.effectiveVersion)
    .map((p) => ({ patch: p.name, version: p.effectiveVersion!, source: `modinfo suture_effective_version of ${p.file ?? `module ${p.name}`}` }));
  return {
    release: fs.osRelease(),
    version,
    effective: effectiveVersion(version, declared),
    tainted: fs.tainted(),
    livepatchAvailable: fs.livepatchAvailable(),
    ftraceEnabled: fs.ftraceEnabled(),
    bootId: fs.bootId(),
    buildId: fs.kernelBuildId(),
  };
}

export function unameFacts(host: Host): UnameFacts {
  const { fs } = host;
  return {
    sysname: fs.read('/proc/sys/kernel/ostype')?.trim() || 'Linux',
    nodename: fs.hostname() ?? '',
    release: fs.osRelease() ?? '',
    version: fs.read('/proc/sys/kernel/version')?.trim() ?? '',
    machine: machine(),
  };
}

export function transitionStatus(host: Host, patches: PatchStatus[]): TransitionStatus | undefined {
  const busy = patches.find((p) => p.transition);
  if (!busy) return undefined;
  const target = busy.enabled ? 1 : 0;
  const scan = scanPending(host.fs, target, matcherFor(host.fs, busy.name, target), 20);
  return {
    patch: busy.name,
    target: target === 1 ? 'patched' : 'unpatched',
    tasks: scan.tasks,
    pendingTasks: scan.pending,
    completing: scan.completing,
    blockers: scan.blockers,
  };
}

export function hostStatus(host: Host): HostStatus {
  const patches = listPatches(host);
  const kernel = kernelStatus(host, patches);
  const transition = transitionStatus(host, patches);
  const release = kernel.release;
  const installed: InstalledStatus[] = (release ? safeInstalled(host, release) : []).map((i) => ({
    ...i,
    loaded: patches.some((p) => p.name === i.name && p.enabled),
  }));
  let last: BootRecord | undefined;
  let guard: CrashGuard | undefined;
  let armed: ArmedGuard | undefined;
  const attention: string[] = [];
  const tryRead = <T>(f: () => T, what: string): T | undefined => {
    try {
      return f();
    } catch (e) {
      if (!isSutureError(e)) throw e;
      attention.push(`${e.message}${what ? `: ${what}` : ''}${e.hint ? ` (${e.hint})` : ''}`);
      return undefined;
    }
  };
  last = tryRead(() => host.store.bootRecord(), '');
  guard = tryRead(() => host.store.guard(), 'suture boot treats the guard as tripped');
  armed = tryRead(() => host.store.armed(), '');
  const stopped = host.store.stopSwitch();
  if (transition) {
    attention.push(
      transition.completing
        ? `livepatch ${transition.patch} is in transition: every task has switched and the kernel is completing it`
        : `livepatch ${transition.patch} is in transition (${transition.pendingTasks} tasks still to switch)`,
    );
  }
  if (guard) {
    attention.push(
      guard.suspects && guard.suspects.length > 1
        ? `the crash-loop guard has tripped and is bisecting over boots: the suspects are ${guard.suspects.join(', ')}; each boot loads half of them until one is left (suture boot --clear-guard stops it)`
        : guard.blame
          ? `the crash-loop guard has tripped, blaming ${guard.blame}: suture boot does not load ${guard.blame.includes(',') ? 'them' : 'it'} until it is cleared (suture boot --clear-guard)`
          : `the crash-loop guard has tripped: suture boot loads nothing until it is cleared (suture boot --clear-guard)`,
    );
  }
  if (stopped) attention.push(`suture boot is stopped (since ${stopped.stoppedAt}): it loads nothing until suture boot --resume`);
  if (last?.end === 'interrupted') attention.push(`the last suture boot was interrupted (${last.reason ?? 'a signal'}), not a crash: run suture boot to load the rest`);
  if (last?.end === 'error') attention.push(`the last suture boot ended with an error: ${last.reason ?? '?'}`);
  for (const w of last?.bootId === kernel.bootId ? (last?.warnings ?? []) : []) attention.push(`suture boot: ${w}`);
  if (armed && armed.bootId === kernel.bootId && !armed.window) attention.push(`suture boot is loading patches now (or was killed while loading${armed.current ? ` ${armed.current}` : ''})`);
  for (const p of patches) if (p.forced) attention.push(`livepatch ${p.name} was forced: the kernel keeps its module for good; reboot when you can`);
  // A replaced patch is superseded by a cumulative one that is loaded: that is expected, not a problem.
  const replacedByCumulative = (name: string) => patches.some((p) => p.enabled && p.replace && p.name !== name);
  for (const i of installed) {
    if (!i.loaded && !replacedByCumulative(i.name)) attention.push(`${i.name} is installed for ${release} but not loaded`);
  }
  if (!kernel.livepatchAvailable) attention.push('livepatch is not available on this kernel (/sys/kernel/livepatch is missing)');
  if (kernel.ftraceEnabled === false) attention.push('ftrace is disabled (kernel.ftrace_enabled = 0): no livepatch can load');
  return { kernel, patches, transition, installed, boot: { last, guard, armed, stopped, uptime: host.fs.uptime() }, attention };
}

export interface FileInfo {
  kind: 'file';
  patch: PatchFile;
  /** Built for this release (first word of vermagic). */
  release: string | undefined;
  /** Whether `suture load` would accept it here now, and if not why. */
  loadable: boolean;
  refusal: string | undefined;
  /** Loaded now under its name. */
  loaded: PatchStatus | undefined;
}

export interface NameInfo {
  kind: 'name';
  name: string;
  loaded: PatchStatus | undefined;
  installed: InstalledPatch | undefined;
  /** The structure read from the installed or recorded file, when there is one. */
  patch: PatchFile | undefined;
}

export function fileInfo(host: Host, path: string): FileInfo {
  const patch = readPatchFile(path);
  let refusal: string | undefined;
  try {
    checkLoad(patch, gatherFacts(host.fs, { isRoot: host.isRoot }));
  } catch (e) {
    if (!isSutureError(e)) throw e;
    refusal = e.message;
  }
  return {
    kind: 'file',
    patch,
    release: vermagicRelease(patch.vermagic),
    loadable: refusal === undefined,
    refusal,
    loaded: listPatches(host).find((p) => p.name === patch.name),
  };
}

export function nameInfo(host: Host, name: string): NameInfo | undefined {
  const loaded = listPatches(host).find((p) => p.name === name);
  const release = host.fs.osRelease();
  const installed = release ? safeInstalled(host, release).find((i) => i.name === name) : undefined;
  if (!loaded && !installed) return undefined;
  const file = loaded?.file ?? (installed && release ? host.store.installedFile(release, installed) : undefined);
  let patch: PatchFile | undefined;
  try {
    patch = file ? readPatchFile(file) : undefined;
  } catch {
    patch = undefined;
  }
  return { kind: 'name', name, loaded, installed, patch };
}
