// SPDX-License-Identifier: GPL-2.0-only
/**
 * The host's livepatch operations: load (watch the transition, revert on
 * timeout), disable, unload, replace, force. Like kernel/livepatch/core.c this
 * owns the lifecycle and calls the other pieces: validate (before anything
 * touches the kernel), loader (insmod/rmmod), transition (the state machine
 * and watch loop), sysfs, state (records). It reports through `onEvent` and
 * never prints.
 */
import { SutureError } from '../util/errors.js';
import { scanPending, type FrameMatcher, type PendingScan } from './blockers.js';
import { kernelSaysAbout, kernelTransitionTime, readKmsg, uptimeUsec, type KmsgRecord } from './kernel-log.js';
import { kmodLoader, type LoaderResult, type ModuleLoader } from './loader.js';
import { readPatchFile, type PatchFile } from './patch-file.js';
import { StateStore, patchFacts, runDirFromEnv, stateDirFromEnv } from './state.js';
import { HostFs, type SysfsPatch } from './sysfs.js';
import { Transition, watchTransition, type Target, type WatchProgress, type WatchResult } from './transition.js';
import { checkConflicts, checkLoad, checkPatchFile, gatherFacts, loadNotes, type HostFacts } from './validate.js';

export interface Host {
  fs: HostFs;
  loader: ModuleLoader;
  store: StateStore;
  kmsg: () => KmsgRecord[];
  isRoot: boolean;
}

/** The real host, with the environment's overrides (SUTURE_STATE_DIR, SUTURE_RUN_DIR). */
export function realHost(env: NodeJS.ProcessEnv = process.env): Host {
  return {
    fs: new HostFs(''),
    loader: kmodLoader,
    store: new StateStore(stateDirFromEnv(env), runDirFromEnv(env)),
    kmsg: () => readKmsg(''),
    isRoot: process.getuid?.() === 0,
  };
}

export type HostEvent =
  | { type: 'note'; message: string }
  | { type: 'insmod'; patch: string; file: string }
  | { type: 'transition'; patch: string; progress: WatchProgress }
  | { type: 'reversing'; patch: string; afterMs: number }
  | { type: 'waiting'; what: string }
  | { type: 'rmmod'; module: string }
  /** The transition has just ended (before suture reads the kernel log and tidies up). */
  | { type: 'ended'; patch: string; direction: 'patching' | 'unpatching'; outcome: WatchResult['outcome']; elapsedMs: number };

export interface TransitionOptions {
  /** Stop waiting after this long (ms); Infinity waits for ever. */
  timeoutMs: number;
  revertOnTimeout: boolean;
  onEvent?: (e: HostEvent) => void;
}

export type TransitionOutcome = WatchResult['outcome'];

export interface LoadResult {
  patch: string;
  file: string;
  notes: string[];
  outcome: TransitionOutcome;
  /** Start of the command to the end of the transition (ms). */
  totalMs: number;
  insmodMs: number;
  transition: WatchResult;
  kernelTransitionMs: number | undefined;
  /** Patches a cumulative patch replaced (their livepatch directories are gone). */
  replaced: string[];
  /** Modules suture removed afterwards: replaced patches (replace), or this one after a reversal. */
  removed: string[];
  /** The patch as sysfs shows it at the end (undefined once it is gone). */
  sysfs: SysfsPatch | undefined;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Wait until `cond` holds, checking every few ms; false on timeout. */
async function waitFor(cond: () => boolean, timeoutMs: number): Promise<boolean> {
  const end = performance.now() + timeoutMs;
  let delay = 1;
  for (;;) {
    if (cond()) return true;
    if (performance.now() >= end) return false;
    await sleep(delay);
    delay = Math.min(delay * 2, 50);
  }
}

/** The frames that block this patch's transition (see blockers.ts). */
export function matcherFor(fs: HostFs, patch: string, target: Target): FrameMatcher {
  const p = fs.readPatch(patch);
  const functions = new Map<string, Set<string>>();
  for (const o of p?.objects ?? []) functions.set(o.name, new Set(o.functions.map((f) => f.name)));
  const lp = fs.livepatchModules();
  // Patching: a previous patch's replacement counts (it is what is being replaced).
  // Unpatching: only this patch's own replacements.
  const livepatchModules = new Set(target === 1 ? lp.filter((m) => m !== patch) : [patch]);
  return { functions, livepatchModules };
}

function nowUsec(fs: HostFs): number {
  return uptimeUsec(fs.read('/proc/uptime')) ?? 0;
}

/** Take the module of a livepatch out once the kernel has let go of it. */
async function removeModule(host: Host, name: string, onEvent?: (e: HostEvent) => void): Promise<void> {
  const { fs } = host;
  onEvent?.({ type: 'waiting', what: `${fs.livepatchDir()}/${name} to go away` });
  if (!(await waitFor(() => fs.transition(name) === undefined, 30_000))) {
    throw new SutureError('kernel-refused', `livepatch ${name} is still in ${fs.livepatchDir()} 30 s after it was disabled`, {
      hint: 'see the kernel log (dmesg); try again with suture unload',
    });
  }
  if (!(await waitFor(() => (fs.moduleRefcnt(name) ?? 0) === 0, 10_000))) {
    const forced = host.store.loadRecord(name)?.forced;
    throw new SutureError(
      'kernel-refused',
      `module ${name} is still in use (refcnt ${fs.moduleRefcnt(name)})${forced ? ': its transition was forced, so the kernel keeps it for good' : ''}`,
      { hint: forced ? 'a forced livepatch module cannot be removed; it goes away at the next reboot' : 'see lsmod for what holds it' },
    );
  }
  onEvent?.({ type: 'rmmod', module: name });
  const r = await host.loader.rmmod(name);
  if (!r.ok && fs.moduleLoaded(name)) {
    throw new SutureError('kernel-refused', `rmmod ${name} failed: ${r.message}`, { hint: 'see the kernel log (dmesg)' });
  }
  host.store.removeLoadRecord(name);
}

async function runTransition(host: Host, patch: string, target: Target, opts: TransitionOptions): Promise<WatchResult> {
  const tr = new Transition(patch);
  tr.start(target);
  let reversedSeen = false;
  return watchTransition(host.fs, tr, {
    timeoutMs: opts.timeoutMs,
    revertOnTimeout: opts.revertOnTimeout,
    onEnd: (outcome, elapsedMs) => opts.onEvent?.({ type: 'ended', patch, direction: target === 1 ? 'patching' : 'unpatching', outcome, elapsedMs }),
    // Only a transition that takes a while needs it: the first look at `transition` comes first.
    matcher: () => matcherFor(host.fs, patch, target),
    onProgress: (progress) => {
      if (progress.state === 'reversing' && !reversedSeen) {
        reversedSeen = true;
        opts.onEvent?.({ type: 'reversing', patch, afterMs: progress.elapsedMs });
      }
      opts.onEvent?.({ type: 'transition', patch, progress });
    },
  });
}

export interface LoadOptions extends TransitionOptions {
  /** `suture replace`: the file must be a cumulative patch, and the modules it replaces are removed. */
  replace?: boolean;
}

/** A load that passed every check and has not touched the kernel yet. */
export interface PreparedLoad {
  patch: PatchFile;
  facts: HostFacts;
  notes: string[];
  replace: boolean;
  startedAt: number;
}

/** Read and check everything before the kernel is touched; throws the refusal. */
export function prepareLoad(host: Host, file: string, opts: { replace?: boolean } = {}): PreparedLoad {
  const startedAt = performance.now();
  const p = readPatchFile(file);
  checkPatchFile(p);
  if (opts.replace && p.structure?.replace !== true) {
    throw new SutureError(
      'invalid-input',
      p.structure
        ? `${file} is not a cumulative patch (its klp_patch has replace = false): loading it would stack it on top of the others`
        : `${file}: suture cannot tell whether it is a cumulative patch (its klp_patch was not found in the file)`,
      { hint: `build it with .replace = true, or load it on top with: suture load ${file}` },
    );
  }
  const facts = gatherFacts(host.fs, { isRoot: host.isRoot });
  checkLoad(p, facts);
  return { patch: p, facts, notes: loadNotes(p, facts), replace: !!opts.replace, startedAt };
}

/** Validate, insmod, watch the transition; on a reversal, take the module out again. */
export async function loadPatch(host: Host, file: string, opts: LoadOptions): Promise<LoadResult> {
  return loadPrepared(host, prepareLoad(host, file, opts), opts);
}

export async function loadPrepared(host: Host, prep: PreparedLoad, opts: TransitionOptions): Promise<LoadResult> {
  const t0 = prep.startedAt;
  const { fs, store } = host;
  const p = prep.patch;
  const file = p.path;
  const notes = prep.notes;
  for (const n of notes) opts.onEvent?.({ type: 'note', message: n });
  const unlock = store.lock(`${prep.replace ? 'replace' : 'load'} ${file}`);
  try {
    // Re-read the livepatch state under the lock: another command may have changed it since.
    checkConflicts(p, { ...prep.facts, patches: fs.readAllPatches(), loadedModules: new Set(fs.loadedModules().map((m) => m.name)) });
    const before = fs.patchNames();
    const since = nowUsec(fs);
    opts.onEvent?.({ type: 'insmod', patch: p.name, file });
    // klp_enable_patch() starts the transition inside the insmod call and sets `enabled` once it has
    // started; on an idle system it completes before insmod even returns. So sysfs is watched while
    // insmod runs: `enabled` = 1 means the transition is under way (or done), whatever insmod is still doing.
    let insmodDone: LoaderResult | undefined;
    const insmod = host.loader.insmod(file).then((r) => (insmodDone = r));
    while (insmodDone === undefined && fs.enabled(p.name) !== true) await sleep(1);
    if (insmodDone && !insmodDone.ok) throw refusal(host, p, insmodDone.message, since);
    if (fs.transition(p.name) === undefined) {
      throw new SutureError('kernel-refused', `insmod ${file} succeeded but ${fs.livepatchDir()}/${p.name} did not appear`, {
        hint: 'the module did not call klp_enable_patch(); see the kernel log (dmesg)',
      });
    }
    const loadedAt = new Date().toISOString();
    const record = () => ({ ...patchFacts(p), file, loadedAt, bootId: fs.bootId() });
    // A transition still running is recorded at once, so that status knows the patch while it
    // waits; one that is already complete (the usual case) is reported first and recorded after.
    if (fs.transition(p.name) !== false) store.writeLoadRecord(record());
    const transition = await runTransition(host, p.name, 1, opts);
    const ins = insmodDone ?? (await insmod);
    if (!ins.ok) {
      // Enabled, yet insmod says it failed: report both; the patch is in the kernel.
      throw new SutureError('kernel-refused', `insmod ${file} failed after livepatch ${p.name} was enabled: ${ins.message}`, {
        hint: `see the kernel log (dmesg) and suture status; suture unload ${p.name} removes it`,
      });
    }
    const kernelTransitionMs = kernelTransitionTime(host.kmsg(), p.name, 'patching');
    const result: LoadResult = {
      patch: p.name,
      file,
      notes,
      outcome: transition.outcome,
      totalMs: performance.now() - t0,
      insmodMs: ins.durationMs,
      transition,
      kernelTransitionMs,
      replaced: [],
      removed: [],
      sysfs: undefined,
    };
    if (transition.outcome === 'reversed') {
      await removeModule(host, p.name, opts.onEvent);
      result.removed.push(p.name);
      return result;
    }
    if (transition.outcome === 'complete') {
      store.writeLoadRecord({ ...record(), transitionMs: Math.round(transition.elapsedMs * 1000) / 1000, kernelTransitionMs });
    }
    if (transition.outcome === 'complete' && p.structure?.replace) {
      result.replaced = before.filter((n) => n !== p.name);
      // The kernel frees replaced patches asynchronously; their directories go, their modules stay.
      await waitFor(() => result.replaced.every((n) => fs.transition(n) === undefined), 10_000);
      if (prep.replace) {
        for (const n of result.replaced) {
          if (fs.moduleLoaded(n)) {
            await removeModule(host, n, opts.onEvent);
            result.removed.push(n);
          }
        }
      }
    }
    result.sysfs = fs.readPatch(p.name);
    return result;
  } finally {
    unlock();
  }
}

/** The kernel said no to an insmod: its own words from the log, one line. */
function refusal(host: Host, p: PatchFile, toolMessage: string, sinceUsec: number): SutureError {
  const said = kernelSaysAbout(host.kmsg(), p.name, sinceUsec - 50_000);
  const reason = said.length ? said.join('; ') : toolMessage || 'no reason given';
  return new SutureError('kernel-refused', `the kernel refused ${p.path}: ${reason}`, {
    details: said.length && toolMessage ? toolMessage : undefined,
    hint: /version magic|disagrees about version/.test(reason)
      ? 'build the patch against this exact kernel'
      : /Unknown symbol/.test(reason)
        ? 'the patch references symbols this kernel does not export'
        : 'the kernel is unchanged; see the kernel log (dmesg) for more',
  });
}

export interface DisableResult {
  patch: string;
  outcome: TransitionOutcome | 'already-disabled';
  transition: WatchResult | undefined;
  kernelTransitionMs: number | undefined;
  /** The module was removed (unload). */
  removed: boolean;
}

/** Why a name is not an active livepatch, as an error. */
function notActive(host: Host, name: string): SutureError {
  const { fs } = host;
  const known = fs.patchNames();
  const lpMods = fs.livepatchModules();
  return new SutureError('not-found', `no livepatch named ${name} is loaded`, {
    hint: known.length || lpMods.length ? `loaded: ${[...new Set([...known, ...lpMods])].join(', ')}` : 'no livepatch is loaded (suture list)',
  });
}

/** Refuse early (before any progress output) when a name is not a livepatch the kernel has. */
export function requireKnown(host: Host, name: string): void {
  if (!host.isRoot) throw new SutureError('environment', 'changing livepatches needs root', { hint: 'run suture as root' });
  if (host.fs.readPatch(name)) return;
  if (host.fs.moduleLoaded(name) && (host.fs.moduleTaint(name) ?? '').includes('K')) return;
  throw notActive(host, name);
}

/**
 * Disable a patch: `enabled` ← 0 and watch the unpatching transition. When
 * the patch is itself in a patching transition, that write reverses it.
 */
export async function disablePatch(host: Host, name: string, opts: TransitionOptions & { unload?: boolean }): Promise<DisableResult> {
  const { fs, store } = host;
  if (!host.isRoot) throw new SutureError('environment', 'changing livepatches needs root', { hint: 'run suture as root' });
  const p = fs.readPatch(name);
  if (!p) {
    if (fs.moduleLoaded(name) && (fs.moduleTaint(name) ?? '').includes('K')) {
      if (!opts.unload) return { patch: name, outcome: 'already-disabled', transition: undefined, kernelTransitionMs: undefined, removed: false };
      const unlock = store.lock(`unload ${name}`);
      try {
        await removeModule(host, name, opts.onEvent);
      } finally {
        unlock();
      }
      return { patch: name, outcome: 'already-disabled', transition: undefined, kernelTransitionMs: undefined, removed: true };
    }
    throw notActive(host, name);
  }
  const other = fs.readAllPatches().find((x) => x.transition && x.name !== name);
  if (other) {
    throw new SutureError('conflict', `livepatch ${other.name} is in transition; the kernel runs one transition at a time`, {
      hint: `wait for it, then run this again (suture status shows what blocks it)`,
    });
  }
  const unlock = store.lock(`${opts.unload ? 'unload' : 'disable'} ${name}`);
  try {
    // Enabled (patched, or patching in progress: then writing 0 reverses it) → 0.
    // Already disabled (unpatching in progress): only watch.
    if (p.enabled) fs.writeEnabled(name, 0);
    const transition = await runTransition(host, name, 0, opts);
    const kernelTransitionMs = kernelTransitionTime(host.kmsg(), name, 'unpatching');
    let removed = false;
    if (transition.outcome === 'complete' && opts.unload) {
      await removeModule(host, name, opts.onEvent);
      removed = true;
    } else if (transition.outcome === 'complete') {
      await waitFor(() => fs.transition(name) === undefined, 10_000);
    }
    return { patch: name, outcome: transition.outcome, transition, kernelTransitionMs, removed };
  } finally {
    unlock();
  }
}

export interface ForceResult {
  patch: string;
  target: Target;
  /** The pending tasks just before: they were switched without a stack check. */
  forcedThrough: PendingScan;
  /**
   * Patches the kernel marks forced, whose modules it then keeps for good
   * (kernel/livepatch/transition.c klp_force_transition): the patch itself when
   * the transition was unpatching; the patches a cumulative patch replaces when
   * it was patching. Forcing an ordinary patching transition marks none.
   */
  pinned: string[];
  /** The transition had completed when suture stopped waiting (the kernel finishes it at its next retry, about 1 s). */
  completed: boolean;
}

/** Write `force`: every task is switched at once; the kernel completes the transition at its next retry. */
export async function forcePatch(host: Host, name: string): Promise<ForceResult> {
  const { fs, store } = host;
  if (!host.isRoot) throw new SutureError('environment', 'changing livepatches needs root', { hint: 'run suture as root' });
  const p = fs.readPatch(name);
  if (!p) throw notActive(host, name);
  if (!p.transition) {
    throw new SutureError('conflict', `livepatch ${name} is not in transition: there is nothing to force`, {
      hint: 'force only completes a transition that is stuck (suture status shows it)',
    });
  }
  const target: Target = p.enabled ? 1 : 0;
  const forcedThrough = scanPending(fs, target, matcherFor(fs, name, target), 50);
  const replace = store.loadRecord(name)?.replace === true;
  const pinned = target === 0 ? [name] : replace ? fs.patchNames().filter((n) => n !== name) : [];
  fs.writeForce(name);
  for (const n of pinned) {
    const rec = store.loadRecord(n);
    store.writeLoadRecord({
      ...(rec ?? { name: n, sha256: '', replace: undefined, effectiveVersion: undefined, cves: [], description: undefined, file: '', loadedAt: '', bootId: fs.bootId() }),
      forced: true,
    });
  }
  const completed = await waitFor(() => fs.transition(name) !== true, 10_000);
  return { patch: name, target, forcedThrough, pinned, completed };
}
