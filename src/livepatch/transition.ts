// SPDX-License-Identifier: GPL-2.0-only
/**
 * A livepatch transition as suture drives and watches it: an explicit state
 * machine (like kernel/livepatch/transition.c: start, try-complete, reverse,
 * force) and the watch loop that feeds it from sysfs.
 *
 *   idle ──start(patched)──> patching ──complete──> complete
 *        └─start(unpatched)> unpatching ─complete─> complete
 *   patching/unpatching ──timeout──> stalled ──complete──> complete
 *   patching/unpatching/stalled ──reverse──> reversing ──complete──> reversed
 *   reversing ──timeout──> reverse-stalled ──complete──> reversed
 *   any state in transition ──force──> forced
 *
 * Every other event is a bug in the caller and throws.
 */
import { SutureError } from '../util/errors.js';
import { foldScan, heldUpBy, scanPending, type FrameMatcher, type PendingScan, type SeenBlocker } from './blockers.js';
import type { HostFs } from './sysfs.js';

/** The kernel's target patch state: 1 patched, 0 unpatched (klp_target_state). */
export type Target = 0 | 1;

export type TransitionStateName =
  | 'idle'
  | 'patching'
  | 'unpatching'
  | 'stalled'
  | 'reversing'
  | 'reverse-stalled'
  | 'complete'
  | 'reversed'
  | 'forced';

export type TransitionEvent = 'start-patching' | 'start-unpatching' | 'complete' | 'timeout' | 'reverse' | 'force';

const TABLE: Record<TransitionStateName, Partial<Record<TransitionEvent, TransitionStateName>>> = {
  idle: { 'start-patching': 'patching', 'start-unpatching': 'unpatching' },
  patching: { complete: 'complete', timeout: 'stalled', reverse: 'reversing', force: 'forced' },
  unpatching: { complete: 'complete', timeout: 'stalled', reverse: 'reversing', force: 'forced' },
  stalled: { complete: 'complete', reverse: 'reversing', force: 'forced' },
  reversing: { complete: 'reversed', timeout: 'reverse-stalled', force: 'forced' },
  'reverse-stalled': { complete: 'reversed', force: 'forced' },
  complete: {},
  reversed: {},
  forced: {},
};

export const FINAL_STATES: readonly TransitionStateName[] = ['complete', 'reversed', 'forced'];
export const IN_TRANSITION: readonly TransitionStateName[] = ['patching', 'unpatching', 'stalled', 'reversing', 'reverse-stalled'];

export class Transition {
  private current: TransitionStateName = 'idle';
  /** The target the transition started with. */
  private startTarget: Target | undefined;
  private t0: number | undefined;
  readonly history: { state: TransitionStateName; atMs: number }[] = [];

  constructor(
    readonly patch: string,
    private readonly clock: () => number = () => performance.now(),
  ) {
    this.history.push({ state: 'idle', atMs: 0 });
  }

  get state(): TransitionStateName {
    return this.current;
  }

  /** The kernel's current target: flipped by a reversal. */
  get target(): Target {
    if (this.startTarget === undefined) throw new SutureError('internal', `transition of ${this.patch} has not started`);
    return this.current === 'reversing' || this.current === 'reverse-stalled' || this.current === 'reversed'
      ? ((1 - this.startTarget) as Target)
      : this.startTarget;
  }

  get initialTarget(): Target | undefined {
    return this.startTarget;
  }

  get inTransition(): boolean {
    return IN_TRANSITION.includes(this.current);
  }

  get done(): boolean {
    return FINAL_STATES.includes(this.current);
  }

  private fire(event: TransitionEvent): TransitionStateName {
    const next = TABLE[this.current][event];
    if (!next) {
      throw new SutureError('internal', `livepatch ${this.patch}: illegal transition event '${event}' in state '${this.current}'`);
    }
    this.current = next;
    this.history.push({ state: next, atMs: this.elapsedMs() });
    return next;
  }

  /** insmod of a livepatch (target patched) or `enabled` ← 0 (target unpatched). */
  start(target: Target): void {
    if (this.current === 'idle') this.t0 = this.clock();
    this.fire(target === 1 ? 'start-patching' : 'start-unpatching');
    this.startTarget = target;
  }

  complete(): void {
    this.fire('complete');
  }

  timeout(): void {
    this.fire('timeout');
  }

  /** The opposite value written to `enabled` during the transition. */
  reverse(): void {
    this.fire('reverse');
  }

  /** 1 written to `force`. */
  force(): void {
    this.fire('force');
  }

  /** Milliseconds since start. */
  elapsedMs(): number {
    return this.t0 === undefined ? 0 : this.clock() - this.t0;
  }
}

export interface WatchProgress {
  state: TransitionStateName;
  target: Target;
  elapsedMs: number;
  /** The latest scan of pending tasks (after the blocker threshold). */
  scan: PendingScan | undefined;
  /** Every task has switched and the kernel is completing the transition (PendingScan.completing). */
  completing: boolean;
}

export interface WatchOptions {
  /**
   * Give up waiting (state 'stalled') after this long; Infinity waits for ever. Not while every task
   * has switched and the kernel is completing the transition: that is waited for up to `completionLimitMs`.
   */
  timeoutMs: number;
  /** How long the kernel's completion of a transition is waited for once every task has switched (default 10 min). */
  completionLimitMs?: number;
  /** On timeout, reverse the transition and wait until it is back where it started. */
  revertOnTimeout: boolean;
  /** How long before pending tasks are scanned and blockers named (ms). */
  blockerThresholdMs?: number;
  /** How often the pending tasks are scanned after that (ms). */
  scanEveryMs?: number;
  /** What marks a frame as the patched function; asked for only when tasks are first scanned. */
  matcher: FrameMatcher | (() => FrameMatcher);
  onProgress?: (p: WatchProgress) => void;
  /**
   * Called the moment the transition is seen to end (complete, reversed,
   * forced) or stall, before any other bookkeeping: the "complete" line a
   * script waits for is printed from here.
   */
  onEnd?: (outcome: WatchResult['outcome'], elapsedMs: number) => void;
  /** A signal stops the watch (the transition goes on in the kernel): the result says `interrupted`. */
  signal?: AbortSignal;
  /** Injected in unit tests. */
  clock?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

export interface WatchResult {
  outcome: 'complete' | 'reversed' | 'stalled' | 'reverse-stalled' | 'forced';
  /** From start to the end of the watch. */
  elapsedMs: number;
  /** From start to when the reversal was asked for. */
  reversedAtMs: number | undefined;
  /** Most tasks seen pending at once. */
  maxPending: number;
  /** The latest scan that found pending tasks (what holds the transition up now, if it did not complete). */
  blockers: PendingScan | undefined;
  /** Every task seen pending in any scan, the ones in a patched function first, then the longest seen. */
  heldBy: SeenBlocker[];
  history: { state: TransitionStateName; atMs: number }[];
  /** The watch was stopped by a signal before the end (outcome stalled or reverse-stalled: left running). */
  interrupted: boolean;
  /**
   * From when every task was first seen switched to the end of the watch: the kernel's completion
   * (releasing replaced functions' ftrace handlers). Undefined when no scan saw it.
   */
  completingMs: number | undefined;
}

const defaultSleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * How long to wait before the next look at `transition`: an idle system
 * completes a transition within milliseconds, so look every millisecond at
 * first, then back off to 50 ms for long stalls.
 */
export function pollDelayMs(elapsedMs: number): number {
  if (elapsedMs < 100) return 1;
  if (elapsedMs < 1000) return 5;
  if (elapsedMs < 5000) return 20;
  return 50;
}

/**
 * Watch a transition that has been started (tr.start() done, the kernel told)
 * until it completes, or times out (then reverse it if asked).
 */
export async function watchTransition(fs: HostFs, tr: Transition, opts: WatchOptions): Promise<WatchResult> {
  const clock = opts.clock ?? (() => performance.now());
  const sleep = opts.sleep ?? defaultSleep;
  const threshold = opts.blockerThresholdMs ?? 250;
  const scanEvery = opts.scanEveryMs ?? 500;
  const patch = tr.patch;
  let deadline = clock() + opts.timeoutMs;
  let lastScanAt = -Infinity;
  let scan: PendingScan | undefined;
  let blockers: PendingScan | undefined;
  const seen = new Map<number, SeenBlocker>();
  let maxPending = 0;
  let reversedAtMs: number | undefined;
  const completionLimitMs = opts.completionLimitMs ?? 600_000;
  /** When a scan first saw every task switched (ms since start), while the latest scan still does. */
  let completingSince: number | undefined;
  let completingFirst: number | undefined;
  const report = () => opts.onProgress?.({ state: tr.state, target: tr.target, elapsedMs: tr.elapsedMs(), scan, completing: completingSince !== undefined });
  let interrupted = false;

  for (;;) {
    const flag = fs.transition(patch);
    if (flag === false || (flag === undefined && tr.target === 0)) {
      tr.complete();
      break;
    }
    if (flag === undefined) {
      throw new SutureError('kernel-refused', `livepatch ${patch} disappeared from ${fs.livepatchDir()} during its transition`, {
        hint: 'another process disabled it; see the kernel log (dmesg)',
      });
    }
    if (opts.signal?.aborted && (tr.state === 'patching' || tr.state === 'unpatching' || tr.state === 'reversing')) {
      interrupted = true;
      tr.timeout();
      break;
    }
    const now = clock();
    if (tr.elapsedMs() >= threshold && now - lastScanAt >= scanEvery) {
      lastScanAt = now;
      if (typeof opts.matcher === 'function') opts.matcher = opts.matcher();
      scan = scanPending(fs, tr.target, opts.matcher);
      maxPending = Math.max(maxPending, scan.pending);
      if (scan.blockers.length) blockers = scan;
      foldScan(seen, scan, tr.elapsedMs());
      if (scan.completing) completingSince ??= tr.elapsedMs();
      else completingSince = undefined;
      if (completingSince !== undefined) completingFirst ??= completingSince;
      report();
    }
    // Every task switched: the kernel is completing the transition, and no task can hold it up any
    // more; it is not stalled (and writing `enabled` now would block on the kernel's klp_mutex).
    const completing = completingSince !== undefined && tr.elapsedMs() - completingSince < completionLimitMs;
    if (now >= deadline && !completing && (tr.state === 'patching' || tr.state === 'unpatching' || tr.state === 'reversing')) {
      tr.timeout();
      report();
      if ((tr.state as TransitionStateName) === 'stalled' && opts.revertOnTimeout) {
        try {
          fs.writeEnabled(patch, tr.target === 1 ? 0 : 1);
        } catch (e) {
          // It may have completed between the last look and the write.
          if (fs.transition(patch) !== true) continue;
          throw e;
        }
        reversedAtMs = tr.elapsedMs();
        tr.reverse();
        deadline = clock() + Math.max(opts.timeoutMs, 30_000);
        report();
        continue;
      }
      break;
    }
    await sleep(pollDelayMs(tr.elapsedMs()));
  }
  const outcome = tr.state as WatchResult['outcome'];
  opts.onEnd?.(outcome, tr.elapsedMs());
  report();
  const completingMs = completingFirst === undefined ? undefined : tr.elapsedMs() - completingFirst;
  return { outcome, elapsedMs: tr.elapsedMs(), reversedAtMs, maxPending, blockers, heldBy: heldUpBy(seen), history: tr.history, interrupted, completingMs };
}
