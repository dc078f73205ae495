// SPDX-License-Identifier: GPL-2.0-only
/**
 * Persistence: installed patches per kernel release, and `suture boot`, which
 * loads them at boot in order, guarded against crash loops.
 *
 * The guard: before loading anything, `boot` writes boot.json with this boot's
 * id and phase "loading" (durably); when every patch has been handled it writes
 * phase "done". If a later boot finds phase "loading" with another boot's id,
 * that boot started loading patches and never got to the end (it crashed, hung,
 * or was reset): the guard trips, this and every later `boot` loads nothing
 * until an operator clears it (`suture boot --clear-guard`).
 */
import { SutureError, isSutureError } from '../util/errors.js';
import { loadPatch, type Host, type HostEvent, type LoadResult } from './core.js';
import { readPatchFile } from './patch-file.js';
import type { BootRecord, CrashGuard, InstalledPatch } from './state.js';
import { checkPatchFile, vermagicRelease } from './validate.js';

export interface InstallResult {
  release: string;
  entry: InstalledPatch;
  updated: boolean;
  superseded: InstalledPatch[];
  /** The patch is for another kernel than the running one (it waits for a boot into it). */
  otherKernel: boolean;
  path: string;
}

export function installPatch(host: Host, file: string): InstallResult {
  const p = readPatchFile(file);
  checkPatchFile(p);
  const release = vermagicRelease(p.vermagic)!;
  const { entry, updated, superseded } = host.store.install(release, p);
  return {
    release,
    entry,
    updated,
    superseded,
    otherKernel: release !== host.fs.osRelease(),
    path: host.store.installedFile(release, entry),
  };
}

export function uninstallPatch(host: Host, name: string, release?: string): { release: string; entry: InstalledPatch } {
  const r = release ?? host.fs.osRelease();
  if (!r) throw new SutureError('environment', 'cannot read the running kernel release (/proc/sys/kernel/osrelease)');
  return { release: r, entry: host.store.uninstall(r, name) };
}

export interface BootItem {
  name: string;
  outcome: 'loaded' | 'already-loaded' | 'failed' | 'stalled';
  load?: LoadResult;
  error?: { kind: string; message: string };
}

export interface BootResult {
  release: string;
  bootId: string;
  items: BootItem[];
  /** Set when nothing was loaded because of the guard. */
  guard: CrashGuard | undefined;
  /** The first failure's kind, for the exit code. */
  firstError: SutureError | undefined;
}

export interface BootOptions {
  timeoutMs: number;
  /** Runs each patch's load, handing it the event sink (the CLI opens a progress step per patch). */
  each?: <T>(name: string, load: (onEvent: (e: HostEvent) => void) => Promise<T>) => Promise<T>;
}

function crashLoopError(g: CrashGuard): SutureError {
  const p = g.previous;
  return new SutureError(
    'crash-loop',
    `crash-loop guard: the boot of ${p.startedAt} (boot id ${p.bootId}) started loading ${p.patches.join(', ') || 'patches'} and never finished, so suture boot loads nothing`,
    {
      hint: `find out why (journalctl -b -1, or the console), remove a bad patch with suture uninstall NAME, then clear the guard: suture boot --clear-guard`,
    },
  );
}

/** Load the patches installed for the running kernel, in order, under the crash-loop guard. */
export async function bootPatches(host: Host, opts: BootOptions): Promise<BootResult> {
  const { fs, store } = host;
  const release = fs.osRelease();
  const bootId = fs.bootId();
  if (!release || !bootId) throw new SutureError('environment', 'cannot read the running kernel release or boot id from /proc/sys/kernel');
  const guard = store.guard();
  if (guard) throw crashLoopError(guard);
  const last = store.bootRecord();
  if (last && last.phase === 'loading' && last.bootId !== bootId) {
    const g: CrashGuard = { trippedAt: new Date().toISOString(), bootId, previous: last };
    store.tripGuard(g);
    throw crashLoopError(g);
  }
  const installed = store.installed(release);
  const record: BootRecord = {
    bootId,
    release,
    phase: 'loading',
    startedAt: last && last.phase === 'loading' && last.bootId === bootId ? last.startedAt : new Date().toISOString(),
    patches: installed.map((p) => p.name),
  };
  store.writeBootRecord(record);
  const items: BootItem[] = [];
  let firstError: SutureError | undefined;
  for (const p of installed) {
    const active = fs.readPatch(p.name);
    if (active?.enabled || fs.moduleLoaded(p.name)) {
      items.push({ name: p.name, outcome: 'already-loaded' });
      continue;
    }
    try {
      const load = (onEvent?: (e: HostEvent) => void) =>
        loadPatch(host, store.installedFile(release, p), { timeoutMs: opts.timeoutMs, revertOnTimeout: false, onEvent });
      const r = opts.each ? await opts.each(p.name, load) : await load();
      items.push({ name: p.name, outcome: r.outcome === 'complete' ? 'loaded' : 'stalled', load: r });
    } catch (e) {
      if (!isSutureError(e)) throw e;
      firstError ??= e;
      items.push({ name: p.name, outcome: 'failed', error: { kind: e.kind, message: e.message } });
    }
  }
  store.writeBootRecord({
    ...record,
    phase: 'done',
    finishedAt: new Date().toISOString(),
    failed: items.filter((i) => i.outcome === 'failed').map((i) => ({ name: i.name, error: i.error!.message })),
  });
  return { release, bootId, items, guard: undefined, firstError };
}
