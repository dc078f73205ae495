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
import type { Lock } from '../util/lock.js';
import { scanPending, type FrameMatcher, type PendingScan } from './blockers.js';
import { kernelSaysAbout, kernelTransitionTime, readKmsg, uptimeUsec, type KmsgRecord } from './kernel-log.js';
import { kmodLoader, signatureRefusal, type LoaderResult, type ModuleLoader } from './loader.js';
import { readPatchFile, type PatchFile } from './patch-file.js';
import { StateStore, hostLock, patchFacts, runDirFromEnv, stateDirFromEnv, type LoadRecord, type PendingOp } from './records.js';
import { HostFs, type SysfsPatch } from './sysfs.js';
import { Transition, watchTransition, type Target, type WatchProgress, type WatchResult } from './transition.js';
import { checkConflicts, checkEnvironment, checkKernelMatch, checkLoad, checkPatchFile, gatherFacts, loadNotes, type HostFacts } from './validate.js';

export interface Host {
  fs: HostFs;
  loader: ModuleLoader;
  store: StateStore;
  kmsg: () => KmsgRecord[];
  isRoot: boolean;
  /** The lock of livepatch changes on this host (HOST_LOCK: no environment variable moves it). */
  lock: Lock;
}

/** The real host, with the environment's overrides (SUTURE_STATE_DIR, SUTURE_RUN_DIR). */
export function realHost(env: NodeJS.ProcessEnv = process.env): Host {
  return {
    fs: new HostFs(''),
    loader: kmodLoader,
    store: new StateStore(stateDirFromEnv(env), runDirFromEnv(env)),
    kmsg: () => readKmsg(''),
    isRoot: process.getuid?.() === 0,
    lock: hostLock(''),
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
  /** Aborted by a signal (SIGTERM, ^C): stop waiting, finish or record what must be finished, say where things stand. */
  signal?: AbortSignal;
}

/** The signal's name, for messages. */
function signalName(signal: AbortSignal | undefined): string {
  const r = signal?.reason as unknown;
  return typeof r === 'string' ? r : 'a signal';
}

/** A command stopped by a signal, saying what state it leaves. */
export function interruptedError(signal: AbortSignal | undefined, state: string, next: string): SutureError {
  return new SutureError('interrupted', `interrupted by ${signalName(signal)}: ${state}`, { hint: next });
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
async function removeModule(host: Host, name: string, onEvent?: (e: HostEvent) => void, signal?: AbortSignal, reason = 'unload'): Promise<void> {
  const { fs } = host;
  onEvent?.({ type: 'waiting', what: `${fs.livepatchDir()}/${name} to go away` });
  const gone = await waitFor(() => fs.transition(name) === undefined || !!signal?.aborted, 30_000);
  if (signal?.aborted && fs.transition(name) !== undefined) {
    host.store.addPending({ op: 'rmmod', module: name, reason, since: new Date().toISOString() });
    throw interruptedError(
      signal,
      `livepatch ${name} is disabled and the kernel is still letting go of it; its module is still loaded`,
      `the next suture command removes it once the kernel has let go (recorded in ${host.store.runDir}/pending.json); or: suture unload ${name}`,
    );
  }
  if (!gone) {
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

/**
 * Finish what an interrupted command left (pending.json): remove the modules
 * of replaced or reversed patches once the kernel has let go of them. Called
 * under the lock by every command that changes livepatch state. What cannot
 * be finished yet stays pending.
 */
export async function finishPending(host: Host, onEvent?: (e: HostEvent) => void): Promise<string[]> {
  const { fs, store } = host;
  // A command killed (SIGKILL) between its rmmod and removing its record leaves a record of nothing.
  for (const name of store.loadRecordNames()) if (!fs.moduleLoaded(name)) store.removeLoadRecord(name);
  const ops = store.pending();
  if (!ops.length) return [];
  const left: PendingOp[] = [];
  const done: string[] = [];
  for (const op of ops) {
    if (!fs.moduleLoaded(op.module)) continue;
    if (fs.transition(op.module) !== undefined || (fs.moduleRefcnt(op.module) ?? 0) !== 0) {
      left.push(op);
      continue;
    }
    onEvent?.({ type: 'note', message: `finishing what an interrupted command left: rmmod ${op.module} (${op.reason})` });
    const r = await host.loader.rmmod(op.module);
    if (r.ok || !fs.moduleLoaded(op.module)) {
      store.removeLoadRecord(op.module);
      done.push(op.module);
    } else left.push(op);
  }
  store.setPending(left);
  return done;
}

/**
 * Watch a transition to its end. `kick` starts it (the write to `enabled`), after the clock has: the
 * kernel may complete the whole transition inside that write, so its time counts, and it runs off the
 * main thread while the watch reads sysfs (until the write takes effect, `enabled` still reads the old value).
 */
async function runTransition(host: Host, patch: string, target: Target, opts: TransitionOptions, kick?: () => Promise<void>): Promise<WatchResult> {
  const tr = new Transition(patch);
  tr.start(target);
  let write: Promise<void> | undefined;
  if (kick) {
    let settled = false;
    let failed: unknown;
    write = kick().then(
      () => void (settled = true),
      (e: unknown) => void ((settled = true), (failed = e)),
    );
    while (!settled && host.fs.enabled(patch) === (target === 0)) await sleep(1);
    if (failed !== undefined) throw failed;
  }
  let reversedSeen = false;
  const result = await watchTransition(host.fs, tr, {
    timeoutMs: opts.timeoutMs,
    revertOnTimeout: opts.revertOnTimeout,
    signal: opts.signal,
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
  // The write ends when the kernel's first try does (with the whole completion, when every task switched at once).
  if (write && !result.interrupted) await write;
  return result;
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
  /** The same file was loaded by an interrupted command in this boot: watch it to the end instead of refusing. */
  resume: boolean;
}

/** This exact file (sha256) was loaded by suture in this boot and is still the kernel's patch of that name. */
function resumable(host: Host, p: PatchFile): boolean {
  if (!host.fs.readPatch(p.name)) return false;
  try {
    const rec = host.store.loadRecord(p.name);
    return !!rec && rec.sha256 === p.sha256 && (!rec.bootId || rec.bootId === host.fs.bootId());
  } catch {
    return false;
  }
}

/**
 * Read and check everything before the kernel is touched; throws the refusal.
 * The file is read once (or handed in already read): its bytes are what is
 * validated and what insmod loads (staged privately), never the path again.
 */
export function prepareLoad(host: Host, source: string | PatchFile, opts: { replace?: boolean } = {}): PreparedLoad {
  const startedAt = performance.now();
  const p = typeof source === 'string' ? readPatchFile(source) : source;
  const file = p.path;
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
  const resume = resumable(host, p);
  if (resume) {
    checkPatchFile(p);
    checkKernelMatch(p, facts);
    checkEnvironment(p, facts);
  } else checkLoad(p, facts);
  return { patch: p, facts, notes: loadNotes(p, facts), replace: !!opts.replace, startedAt, resume };
}

/** Validate, insmod, watch the transition; on a reversal, take the module out again. */
export async function loadPatch(host: Host, source: string | PatchFile, opts: LoadOptions): Promise<LoadResult> {
  return loadPrepared(host, prepareLoad(host, source, opts), opts);
}

export async function loadPrepared(host: Host, prep: PreparedLoad, opts: TransitionOptions): Promise<LoadResult> {
  const t0 = prep.startedAt;
  const { fs, store } = host;
  const p = prep.patch;
  const file = p.path;
  const notes = prep.notes;
  for (const n of notes) opts.onEvent?.({ type: 'note', message: n });
  const lock = host.lock.take(`${prep.replace ? 'replace' : 'load'} ${file}`);
  let staged: { path: string; remove: () => void } | undefined;
  try {
    await finishPending(host, opts.onEvent);
    const before = fs.patchNames();
    // Resuming an interrupted load of this same file: no insmod, watch its transition to the end.
    const resume = prep.resume && resumable(host, p);
    if (!resume) {
      // Re-read the livepatch state under the lock: another command may have changed it since.
      checkConflicts(p, { ...prep.facts, patches: fs.readAllPatches(), loadedModules: new Set(fs.loadedModules().map((m) => m.name)) });
    }
    const since = nowUsec(fs);
    let insmodDone: LoaderResult | undefined;
    let insmodThrew: { e: unknown } | undefined;
    let insmod: Promise<LoaderResult> = Promise.resolve({ ok: true, message: '', durationMs: 0 });
    if (resume) {
      opts.onEvent?.({ type: 'note', message: `${p.name} (this same file) is already loaded: watching its transition` });
      insmodDone = { ok: true, message: '', durationMs: 0 };
    } else {
      // The bytes validated above, in a private file: what insmod loads is what was checked.
      staged = store.stage(p.name, p.bytes);
      opts.onEvent?.({ type: 'insmod', patch: p.name, file });
      // klp_enable_patch() starts the transition inside the insmod call and sets `enabled` once it has
      // started; on an idle system it completes before insmod even returns. So sysfs is watched while
      // insmod runs: `enabled` = 1 means the transition is under way (or done), whatever insmod is still doing.
      insmod = host.loader.insmod(staged.path).then(
        (r) => (insmodDone = r),
        (e: unknown) => {
          insmodDone = { ok: false, message: String((e as Error)?.message ?? e), durationMs: 0 };
          insmodThrew = { e };
          return insmodDone;
        },
      );
      while (insmodDone === undefined && fs.enabled(p.name) !== true) await sleep(1);
    }
    if (insmodThrew) throw insmodThrew.e;
    if (insmodDone && !insmodDone.ok) throw refusal(host, p, insmodDone.message, since);
    if (fs.transition(p.name) === undefined) {
      throw new SutureError('kernel-refused', `insmod ${file} succeeded but ${fs.livepatchDir()}/${p.name} did not appear`, {
        hint: 'the module did not call klp_enable_patch(); see the kernel log (dmesg)',
      });
    }
    const loadedAt = (resume ? safeLoadRecord(host, p.name)?.loadedAt : undefined) ?? new Date().toISOString();
    const record = () => ({ ...patchFacts(p), file, loadedAt, bootId: fs.bootId() });
    // The record is what status shows; failing to write it (a full disk) must not turn a load the kernel did into a failure.
    const keep = (r: LoadRecord) => {
      try {
        store.writeLoadRecord(r);
      } catch (e) {
        opts.onEvent?.({ type: 'note', message: `the load record of ${p.name} could not be written: ${(e as Error).message}` });
      }
    };
    // A transition still running is recorded at once, so that status knows the patch while it
    // waits; one that is already complete (the usual case) is reported first and recorded after.
    if (fs.transition(p.name) !== false) keep(record());
    const transition = await runTransition(host, p.name, 1, opts);
    if (transition.interrupted) {
      // insmod has returned or returns on its own: the kernel is not waiting on suture.
      keep(record());
      if (opts.revertOnTimeout && fs.transition(p.name) === true) {
        // What --revert-on-timeout asks for, now: reverse it, and remove the module once the kernel lets go.
        try {
          fs.writeEnabled(p.name, 0);
        } catch {
          // it completed meanwhile
        }
        await waitFor(() => fs.transition(p.name) !== true, 2_000);
        if (fs.transition(p.name) === undefined && (fs.moduleRefcnt(p.name) ?? 0) === 0) {
          await host.loader.rmmod(p.name);
          store.removeLoadRecord(p.name);
          throw interruptedError(opts.signal, `the transition of ${p.name} was reversed and its module removed: the kernel runs the code it ran before`, `load it again when you are ready: suture load ${file}`);
        }
        store.addPending({ op: 'rmmod', module: p.name, reason: `reversed after an interrupted load (--revert-on-timeout)`, since: new Date().toISOString() });
        throw interruptedError(
          opts.signal,
          `the transition of ${p.name} is being reversed (--revert-on-timeout); its module is removed by the next suture command once the kernel lets go`,
          'see suture status',
        );
      }
      if (fs.transition(p.name) === true) {
        throw interruptedError(
          opts.signal,
          `livepatch ${p.name} is loaded and its patching transition is still running (the kernel goes on with it)`,
          `watch it to the end: suture load ${file} (the same file resumes); or reverse it: suture disable ${p.name}; suture status shows what holds it up`,
        );
      }
    }
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
      keep({ ...record(), transitionMs: Math.round(transition.elapsedMs * 1000) / 1000, kernelTransitionMs });
    }
    if (transition.outcome === 'complete' && p.structure?.replace) {
      result.replaced = before.filter((n) => n !== p.name);
      if (prep.replace) {
        // Recorded first: an interruption from here on leaves the removal to the next command.
        for (const n of result.replaced) store.addPending({ op: 'rmmod', module: n, reason: `replaced by ${p.name}`, since: new Date().toISOString() });
      }
      // The kernel frees replaced patches asynchronously; their directories go, their modules stay.
      await waitFor(() => result.replaced.every((n) => fs.transition(n) === undefined) || !!opts.signal?.aborted, 10_000);
      if (prep.replace) {
        for (const n of result.replaced) {
          if (fs.moduleLoaded(n)) {
            await removeModule(host, n, opts.onEvent, opts.signal, `replaced by ${p.name}`);
            result.removed.push(n);
          }
          store.setPending(store.pending().filter((o) => o.module !== n));
        }
      }
    }
    result.sysfs = fs.readPatch(p.name);
    return result;
  } finally {
    staged?.remove();
    lock.release();
  }
}

/** The kernel said no to an insmod: its own words from the log, one line. */
function refusal(host: Host, p: PatchFile, toolMessage: string, sinceUsec: number): SutureError {
  const records = host.kmsg();
  // the signature checks log without the module's name
  const signature = signatureRefusal(p.path, toolMessage, records.filter((r) => r.usec >= sinceUsec - 50_000).map((r) => r.text));
  if (signature) return signature;
  const said = kernelSaysAbout(records, p.name, sinceUsec - 50_000);
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
      const lock = host.lock.take(`unload ${name}`);
      try {
        await finishPending(host, opts.onEvent);
        if (fs.moduleLoaded(name)) await removeModule(host, name, opts.onEvent, opts.signal);
      } finally {
        lock.release();
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
  const lock = host.lock.take(`${opts.unload ? 'unload' : 'disable'} ${name}`);
  try {
    await finishPending(host, opts.onEvent);
    // Enabled (patched, or patching in progress: then writing 0 reverses it) → 0.
    // Already disabled (unpatching in progress): only watch.
    const transition = await runTransition(host, name, 0, opts, p.enabled ? () => fs.writeEnabledAsync(name, 0) : undefined);
    if (transition.interrupted && fs.transition(name) === true) {
      if (opts.unload) store.addPending({ op: 'rmmod', module: name, reason: 'unload was interrupted', since: new Date().toISOString() });
      throw interruptedError(
        opts.signal,
        `livepatch ${name} is disabled and its unpatching transition is still running (the kernel goes on with it)${opts.unload ? '; its module is removed by the next suture command once the kernel lets go' : ''}`,
        `watch it to the end: suture ${opts.unload ? 'unload' : 'disable'} ${name}; suture status shows what holds it up`,
      );
    }
    const kernelTransitionMs = kernelTransitionTime(host.kmsg(), name, 'unpatching');
    let removed = false;
    if (transition.outcome === 'complete' && opts.unload) {
      await removeModule(host, name, opts.onEvent, opts.signal);
      removed = true;
    } else if (transition.outcome === 'complete') {
      await waitFor(() => fs.transition(name) === undefined, 10_000);
    }
    return { patch: name, outcome: transition.outcome, transition, kernelTransitionMs, removed };
  } finally {
    lock.release();
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
  // force is the one write another suture command may be waiting on (a load or unload watching this
  // transition holds the lock), so it waits for the lock only briefly and says who holds it.
  const holder = host.lock.holder();
  const lock = holder?.alive && holder.owner?.pid !== process.pid ? undefined : host.lock.take(`force ${name}`);
  try {
    const target: Target = p.enabled ? 1 : 0;
    const forcedThrough = scanPending(fs, target, matcherFor(fs, name, target), 50);
    const replace = safeLoadRecord(host, name)?.replace === true;
    const pinned = target === 0 ? [name] : replace ? fs.patchNames().filter((n) => n !== name) : [];
    fs.writeForce(name);
    for (const n of pinned) {
      const rec = safeLoadRecord(host, n);
      store.writeLoadRecord({
        ...(rec ?? { name: n, sha256: '0'.repeat(64), replace: undefined, effectiveVersion: undefined, cves: [], description: undefined, file: '', loadedAt: '', bootId: fs.bootId() }),
        forced: true,
      });
    }
    const completed = await waitFor(() => fs.transition(name) !== true, 10_000);
    return { patch: name, target, forcedThrough, pinned, completed };
  } finally {
    lock?.release();
  }
}

function safeLoadRecord(host: Host, name: string) {
  try {
    return host.store.loadRecord(name);
  } catch {
    return undefined;
  }
}
