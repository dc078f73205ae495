// SPDX-License-Identifier: GPL-2.0-only
/**
 * Persistence: installed patches per kernel release, and `suture boot`, which
 * loads them at boot in order, guarded against crash loops.
 *
 * The guard trips only on a crash: the machine died while suture boot was
 * loading a patch, or inside the guard window after it loaded them. Never on a
 * signal (a reboot or ^C while loading), an error, or a full disk: each of
 * those ends the boot with a record that says so (`end` in boot.json).
 *
 * - Armed: before loading, `boot` writes loading.json (boot id, the patch
 *   being loaded); when every patch is handled it keeps it armed for the guard
 *   window (`--guard-window`, default 300 s of uptime) and removes it when the
 *   window ends (`suture boot --watch`, or any later suture boot/status), at a
 *   clean shutdown (`suture boot --shutdown`, the unit's ExecStop), or at once
 *   when the window is 0. Removing a file needs no free space, so a full disk
 *   never leaves it armed; when it cannot even be written, the patches still
 *   load, and the boot record says the guard was not armed.
 * - Tripped: a boot that finds another boot's loading.json trips the guard
 *   (crash-guard.json) and blames the patch that boot was loading; a kernel
 *   report (BUG, Oops, WARNING) naming a patch module or a function it
 *   replaces since the load blames that patch. When the machine died inside
 *   the window with several patches loaded and nothing named one, the guard
 *   bisects over boots: each boot loads half of the suspects and holds the
 *   others back; a window that ends without a crash clears the half it
 *   loaded, a crash keeps it; one suspect left is blamed. Blamed patches are
 *   not loaded (every other one is). Exit 35 while the guard blames or
 *   bisects, until `suture boot --clear-guard`.
 * - Stopped: `suture boot --stop` keeps every later boot from loading
 *   anything until `--resume` (the one-boot switch is `suture.boot=0` on the
 *   kernel command line, read by the unit).
 */
import { SutureError, isSutureError } from '../util/errors.js';
import type { LockHolder } from '../util/lock.js';
import { finishPending, loadPatch, type Host, type HostEvent, type LoadResult } from './core.js';
import { oopsNaming, uptimeUsec } from './kernel-log.js';
import { readPatchFile, type PatchFile } from './patch-file.js';
import type { ArmedGuard, BootEnd, BootRecord, CrashGuard, InstalledPatch } from './records.js';
import { checkPatchFile, vermagicRelease } from './validate.js';

export const DEFAULT_GUARD_WINDOW_SEC = 300;

export interface InstallResult {
  release: string;
  entry: InstalledPatch;
  updated: boolean;
  superseded: InstalledPatch[];
  /** The patch is for another kernel than the running one (it waits for a boot into it). */
  otherKernel: boolean;
  path: string;
}

/** How long install/uninstall/guard operations wait for another suture command (ms). */
export const STATE_LOCK_WAIT_MS = 60_000;

export async function installPatch(host: Host, source: string | PatchFile, onWait?: (h: LockHolder) => void, signer?: InstalledPatch['signer']): Promise<InstallResult> {
  // Read once, validate that buffer, write that buffer (mode 0600): never the path again.
  const p = typeof source === 'string' ? readPatchFile(source) : source;
  const file = p.path;
  checkPatchFile(p);
  const release = vermagicRelease(p.vermagic)!;
  const lock = await host.lock.wait(`install ${file}`, { timeoutMs: STATE_LOCK_WAIT_MS, onWait });
  try {
    const { entry, updated, superseded } = host.store.install(release, p, p.bytes, signer);
    return { release, entry, updated, superseded, otherKernel: release !== host.fs.osRelease(), path: host.store.installedFile(release, entry) };
  } finally {
    lock.release();
  }
}

export async function uninstallPatch(host: Host, name: string, release?: string, onWait?: (h: LockHolder) => void): Promise<{ release: string; entry: InstalledPatch }> {
  const r = release ?? host.fs.osRelease();
  if (!r) throw new SutureError('environment', 'cannot read the running kernel release (/proc/sys/kernel/osrelease)');
  const lock = await host.lock.wait(`uninstall ${name}`, { timeoutMs: STATE_LOCK_WAIT_MS, onWait });
  try {
    return { release: r, entry: host.store.uninstall(r, name) };
  } finally {
    lock.release();
  }
}

export interface BootItem {
  name: string;
  outcome: 'loaded' | 'already-loaded' | 'failed' | 'stalled' | 'blamed' | 'held-back' | 'not-loaded';
  load?: LoadResult;
  error?: { kind: string; message: string };
}

export interface BootResult {
  release: string;
  bootId: string;
  items: BootItem[];
  /** The tripped guard, when one holds blame (its patches were not loaded). */
  guard: CrashGuard | undefined;
  /** The first failure's kind, for the exit code. */
  firstError: SutureError | undefined;
  /** `suture boot --stop` is in force: nothing was loaded. */
  stopped: { stoppedAt: string; reason?: string } | undefined;
  /** The guard stays armed until uptime reaches this (s), when a window is kept. */
  windowUntil: number | undefined;
  warnings: string[];
  end: BootEnd;
}

export interface BootOptions {
  timeoutMs: number;
  /** Seconds of uptime after loading during which a crash blames the patches (0: none). */
  windowSec?: number;
  /** Runs each patch's load, handing it the event sink (the CLI opens a progress step per patch). */
  each?: <T>(name: string, load: (onEvent: (e: HostEvent) => void) => Promise<T>) => Promise<T>;
  /** A signal stops the boot: the current load ends its own way, no later patch is loaded, the record says so. */
  signal?: AbortSignal;
  /** How long to wait for another suture command holding the lock (ms). */
  lockWaitMs?: number;
  onLockWait?: (h: LockHolder) => void;
  /** Register a hook that must run if the process is made to exit at once (a second signal). */
  onHardExit?: (fn: () => void) => () => void;
  /** Checks an installed patch before it is loaded (signer still trusted, nothing revoked: src/bundle); throws the refusal. */
  admit?: (entry: InstalledPatch) => void;
}

export function crashLoopError(g: CrashGuard, trial?: string[]): SutureError {
  const p = g.previous;
  const what =
    g.when === 'oops'
      ? 'logged a kernel report naming a patch'
      : `died while ${g.when === 'window' ? 'inside the guard window after loading' : 'loading'} ${('loaded' in p && g.when === 'window' ? (p.trial ?? p.loaded) : p.patches).join(', ') || 'patches'}`;
  const blamed = g.blame
    ? `blamed: ${g.blame} (${g.when === 'window' ? 'the suspect left when bisecting over boots' : g.when === 'oops' ? `a kernel report names it: ${g.evidence ?? ''}` : 'it was being loaded when the machine died'})`
    : g.suspects?.length
      ? 'no kernel report named a patch'
      : 'no patch could be blamed';
  const action =
    g.suspects && g.suspects.length > 1 && trial
      ? `bisecting over boots: of the suspects ${g.suspects.join(', ')}, this boot loads ${trial.join(', ')} and holds back ${g.suspects.filter((n) => !trial.includes(n)).join(', ')}${g.blame ? `, and does not load ${g.blame}` : ''}`
      : g.blame
        ? `so suture boot does not load ${g.blame}`
        : 'so suture boot loads nothing';
  return new SutureError(
    'crash-loop',
    `crash-loop guard: the boot of ${p.startedAt} (boot id ${p.bootId}) ${what}; ${blamed}${g.suspects?.length && trial ? '; ' : ', '}${action}`,
    {
      hint: `find out why (journalctl -b -1, or the console), remove a bad patch with suture uninstall NAME, then clear the guard: suture boot --clear-guard`,
    },
  );
}

function unreadableGuardError(e: SutureError): SutureError {
  return new SutureError('crash-loop', `crash-loop guard: ${e.message}; suture treats the guard as tripped and loads nothing`, {
    hint: 'clear it (it is removed, whatever it holds): suture boot --clear-guard',
  });
}

/** The blamed patch names of a guard (older guards: none, which blocks everything). */
function blamedBy(g: CrashGuard): string[] {
  return (g.blame ?? '').split(',').filter(Boolean);
}

/**
 * Settle this boot's guard window when it has ended: a kernel report naming a
 * patch since the load trips the guard against that patch; otherwise the
 * guard is disarmed. Returns 'open' while the window runs.
 */
export function settleWindow(host: Host, opts: { now?: number; force?: 'shutdown' } = {}): 'none' | 'open' | 'settled' | 'tripped' {
  const { fs, store } = host;
  let armed: ArmedGuard | undefined;
  try {
    armed = store.armed();
  } catch {
    return 'none';
  }
  if (!armed || armed.bootId !== fs.bootId() || !armed.window) return 'none';
  const evidence = oopsNaming(
    host.kmsg(),
    armed.window.fromUptime * 1e6 - 60e6,
    armed.loaded.map((name) => ({ name, functions: (fs.readPatch(name)?.objects ?? []).flatMap((o) => o.functions.map((f) => f.name)) })),
  );
  if (evidence.length) {
    const e = evidence[0]!;
    const old = safeGuard(host);
    store.tripGuard({
      trippedAt: new Date().toISOString(),
      bootId: armed.bootId,
      previous: armed,
      blame: [...new Set([...(old ? blamedBy(old) : []), e.patch])].join(','),
      when: 'oops',
      evidence: e.lines.join(' / '),
    });
    store.disarm();
    return 'tripped';
  }
  const now = opts.now ?? fs.uptime() ?? 0;
  if (opts.force !== 'shutdown' && now < armed.window.untilUptime) return 'open';
  // A bisecting boot that lived through its window clears the suspects it loaded (a clean
  // shutdown inside the window proves nothing: the suspects stay as they were).
  const g = safeGuard(host);
  if (opts.force !== 'shutdown' && armed.trial && g?.suspects) {
    const left = g.suspects.filter((n) => !armed.trial!.includes(n));
    if (left.length === 1) store.tripGuard({ ...g, suspects: undefined, blame: [...blamedBy(g), left[0]!].join(','), when: 'window' });
    else if (left.length > 1) store.tripGuard({ ...g, suspects: left });
    else if (!blamedBy(g).length) store.clearGuard();
    else store.tripGuard({ ...g, suspects: undefined });
  }
  store.disarm();
  return 'settled';
}

function safeGuard(host: Host): CrashGuard | undefined {
  try {
    return host.store.guard();
  } catch {
    return undefined;
  }
}

/** Load the patches installed for the running kernel, in order, under the crash-loop guard. */
export async function bootPatches(host: Host, opts: BootOptions): Promise<BootResult> {
  const { fs, store } = host;
  const release = fs.osRelease();
  const bootId = fs.bootId();
  if (!release || !bootId) throw new SutureError('environment', 'cannot read the running kernel release or boot id from /proc/sys/kernel');
  const lock = await host.lock.wait('boot', { timeoutMs: opts.lockWaitMs ?? 600_000, onWait: opts.onLockWait, signal: opts.signal });
  try {
    await finishPending(host);
    return await bootLocked(host, release, bootId, opts);
  } finally {
    lock.release();
  }
}

async function bootLocked(host: Host, release: string, bootId: string, opts: BootOptions): Promise<BootResult> {
  const { fs, store } = host;
  const warnings: string[] = [];
  const startedAt = new Date().toISOString();
  const result: BootResult = { release, bootId, items: [], guard: undefined, firstError: undefined, stopped: undefined, windowUntil: undefined, warnings, end: 'complete' };
  const record = (end: BootEnd, reason?: string): BootRecord => ({
    bootId,
    release,
    startedAt,
    finishedAt: new Date().toISOString(),
    end,
    reason,
    patches: result.items.map((i) => i.name),
    items: result.items.map((i) => ({ name: i.name, outcome: i.outcome, ...(i.error ? { error: i.error.message } : {}) })),
    failed: result.items.filter((i) => i.outcome === 'failed').map((i) => ({ name: i.name, error: i.error!.message })),
    ...(warnings.length ? { warnings } : {}),
  });
  const writeRecord = (end: BootEnd, reason?: string) => {
    try {
      store.writeBootRecord(record(end, reason));
    } catch (e) {
      warnings.push(`the boot record could not be written: ${(e as Error).message}`);
    }
  };

  // 1. The stop switch.
  const stop = store.stopSwitch();
  if (stop) {
    result.stopped = stop;
    result.end = 'stopped';
    writeRecord('stopped', stop.reason);
    return result;
  }

  // 2. The guard: tripped before, or armed by a boot that died.
  let guard: CrashGuard | undefined;
  try {
    guard = store.guard();
  } catch (e) {
    if (!isSutureError(e)) throw e;
    const err = unreadableGuardError(e);
    writeRecord('guard', err.message);
    throw err;
  }
  let armed: ArmedGuard | undefined;
  let armedDamaged = false;
  try {
    armed = store.armed();
  } catch (e) {
    if (!isSutureError(e)) throw e;
    armedDamaged = true;
  }
  let last: BootRecord | undefined;
  try {
    last = store.bootRecord();
  } catch (e) {
    if (!isSutureError(e)) throw e;
    const to = store.setAside(store.bootPath);
    warnings.push(`${e.message}${to ? `; moved to ${to}` : ''}`);
  }
  // Records of the version before loading.json: "loading" in boot.json meant armed.
  if (!armed && !armedDamaged && last && !last.version && last.phase === 'loading') {
    armed = { bootId: last.bootId, release: last.release, startedAt: last.startedAt, patches: last.patches, loaded: [] };
  }
  if (armedDamaged || (armed && armed.bootId !== bootId)) {
    const prev: ArmedGuard = armed ?? { bootId: '?', release, startedAt: '?', patches: [], loaded: [] };
    const before = guard ? blamedBy(guard) : [];
    let blame: string | undefined;
    let suspects: string[] | undefined;
    if (prev.current) blame = prev.current;
    else if (prev.window) {
      // Died inside the window: the suspects are what that boot loaded (its trial, when bisecting).
      const candidates = (prev.trial ?? prev.loaded).filter((n) => !before.includes(n));
      if (candidates.length === 1) blame = candidates[0];
      else if (candidates.length > 1) suspects = candidates;
    }
    const blamed = [...new Set([...before, ...(blame ? [blame] : [])])];
    guard = {
      trippedAt: new Date().toISOString(),
      bootId,
      previous: prev,
      blame: armedDamaged || (!blame && !suspects) || !blamed.length ? undefined : blamed.join(','),
      ...(suspects && !armedDamaged ? { suspects } : {}),
      when: prev.window && !prev.current ? 'window' : 'loading',
    };
    try {
      store.tripGuard(guard);
      store.disarm();
    } catch (e) {
      // The guard could not be written (a full disk): loading.json stays, so the next boot trips again.
      warnings.push(`the tripped guard could not be written: ${(e as Error).message}`);
    }
  }
  const blamed = guard ? blamedBy(guard) : [];
  const suspects = (guard?.suspects ?? []).filter((n) => !blamed.includes(n));
  if (guard && !blamed.length && suspects.length < 2) {
    const err = crashLoopError(guard);
    writeRecord('guard', err.message);
    throw err;
  }
  // Bisecting: load the first half of the suspects, hold the rest back.
  const trial = suspects.length >= 2 ? suspects.slice(0, Math.ceil(suspects.length / 2)) : undefined;
  const heldBack = suspects.filter((n) => !trial?.includes(n));
  result.guard = guard;

  // 3. What to load.
  let installed: InstalledPatch[];
  try {
    installed = store.installed(release);
  } catch (e) {
    if (isSutureError(e)) writeRecord('error', e.message);
    throw e;
  }

  // 4. Arm, load, end (whatever happens, the arm is removed unless the machine dies).
  const arm: ArmedGuard = { bootId, release, startedAt, patches: installed.map((p) => p.name), loaded: [], ...(trial ? { trial } : {}) };
  let armedOk = true;
  const rearm = () => {
    if (!armedOk) return;
    try {
      store.arm(arm);
    } catch (e) {
      armedOk = false;
      warnings.push(`the crash-loop guard is not armed (${(e as Error).message}): loading anyway`);
    }
  };
  rearm();
  let ended = false;
  const end = (how: BootEnd, reason?: string) => {
    if (ended) return;
    ended = true;
    result.end = how;
    const window = opts.windowSec ?? DEFAULT_GUARD_WINDOW_SEC;
    const up = fs.uptime();
    if (how !== 'interrupted' && armedOk && arm.loaded.length && window > 0 && up !== undefined) {
      arm.current = undefined;
      arm.window = { fromUptime: up, untilUptime: up + window, seconds: window };
      try {
        store.arm(arm);
        result.windowUntil = arm.window.untilUptime;
      } catch {
        store.disarm();
      }
    } else {
      try {
        store.disarm();
      } catch (e) {
        warnings.push(`the crash-loop guard could not be disarmed: ${(e as Error).message}`);
      }
    }
    writeRecord(how, reason);
  };
  const unhook = opts.onHardExit?.(() => end('interrupted', String(opts.signal?.reason ?? 'signal')));
  try {
    for (const p of installed) {
      if (blamed.includes(p.name)) {
        result.items.push({ name: p.name, outcome: 'blamed', error: { kind: 'crash-loop', message: crashLoopError(guard!, trial).message } });
        continue;
      }
      if (heldBack.includes(p.name)) {
        result.items.push({ name: p.name, outcome: 'held-back', error: { kind: 'crash-loop', message: crashLoopError(guard!, trial).message } });
        continue;
      }
      if (opts.signal?.aborted) {
        result.items.push({ name: p.name, outcome: 'not-loaded', error: { kind: 'interrupted', message: `not loaded: interrupted by ${String(opts.signal.reason)}` } });
        continue;
      }
      const active = fs.readPatch(p.name);
      if (active?.enabled || fs.moduleLoaded(p.name)) {
        result.items.push({ name: p.name, outcome: 'already-loaded' });
        arm.loaded.push(p.name);
        continue;
      }
      try {
        opts.admit?.(p);
        const file = store.installedFile(release, p);
        // Read once, strictly (no symlink, root's, not writable by others), and only the bytes that were installed.
        const pf: PatchFile = readPatchFile(file, { strict: true });
        if (pf.sha256 !== p.sha256) {
          throw new SutureError('invalid-input', `${file} has changed since it was installed (sha256 ${pf.sha256.slice(0, 16)}…, installed ${p.sha256.slice(0, 16)}…): suture will not load it`, {
            hint: `install the patch again: suture install PATCH.ko`,
          });
        }
        arm.current = p.name;
        rearm();
        const load = (onEvent?: (e: HostEvent) => void) => loadPatch(host, pf, { timeoutMs: opts.timeoutMs, revertOnTimeout: false, onEvent, signal: opts.signal });
        const r = opts.each ? await opts.each(p.name, load) : await load();
        arm.loaded.push(p.name);
        arm.current = undefined;
        result.items.push({ name: p.name, outcome: r.outcome === 'complete' ? 'loaded' : 'stalled', load: r });
      } catch (e) {
        if (!isSutureError(e)) throw e;
        arm.current = undefined;
        if (e.kind === 'interrupted' && fs.readPatch(p.name)) arm.loaded.push(p.name);
        result.firstError ??= e;
        result.items.push({ name: p.name, outcome: e.kind === 'interrupted' ? 'not-loaded' : 'failed', error: { kind: e.kind, message: e.message } });
      }
    }
    if (opts.signal?.aborted) {
      end('interrupted', String(opts.signal.reason));
      const loaded = result.items.filter((i) => i.outcome === 'loaded' || i.outcome === 'already-loaded').map((i) => i.name);
      const left = result.items.filter((i) => i.outcome === 'not-loaded').map((i) => i.name);
      result.firstError = new SutureError(
        'interrupted',
        `suture boot was interrupted by ${String(opts.signal.reason)}: ${loaded.length ? `loaded ${loaded.join(', ')}` : 'nothing loaded'}${left.length ? `; not loaded: ${left.join(', ')}` : ''}. This is not a crash: the guard is not tripped`,
        { hint: 'run suture boot again to load the rest (the next boot does it too)' },
      );
    } else {
      end(result.items.some((i) => i.outcome === 'failed') ? 'failed' : 'complete');
    }
    if (blamed.length || suspects.length) result.firstError ??= crashLoopError(guard!, trial);
    return result;
  } catch (e) {
    end('error', (e as Error)?.message ?? String(e));
    throw e;
  } finally {
    unhook?.();
  }
}
