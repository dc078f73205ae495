// SPDX-License-Identifier: GPL-2.0-only
/**
 * Which tasks hold a transition up, and why. During a transition every task
 * has a patch_state (0 unpatched, 1 patched); the ones not yet at the target
 * are "pending". A pending task that sleeps with a to-be-(un)patched function
 * on its stack cannot switch until it leaves it (kernel/livepatch/transition.c
 * klp_check_stack); those frames are marked here.
 */
import type { HostFs, PatchState, TaskRef } from './sysfs.js';

export interface StackFrame {
  function: string;
  offset: number;
  size: number;
  /** The module the function lives in; undefined for vmlinux. */
  module: string | undefined;
  /** A function that the transition is waiting for this task to leave. */
  patched: boolean;
}

export interface Blocker {
  pid: number;
  tid: number;
  comm: string;
  /** Scheduler state letter: R running, S sleeping, D uninterruptible, I idle. */
  state: string;
  kernelThread: boolean;
  stack: StackFrame[];
  /** Why it has not switched, in words. */
  reason: string;
}

export interface PendingScan {
  /** Tasks scanned. */
  tasks: number;
  /** Tasks not yet at the target state. */
  pending: number;
  /** Details of up to `limit` pending tasks, the ones in a patched function first. */
  blockers: Blocker[];
  /**
   * Every task is at the target state but the transition is not over: the kernel is completing it
   * (klp_complete_transition). Unpatching, and replacing a patch, takes each released function's
   * ftrace handler out, which waits for RCU-tasks grace periods (about 0.1–0.2 s a function), so a
   * patch of a thousand functions spends minutes here with nothing to wait for but the kernel.
   * Not set while the tasks have no state yet (the transition's first moments).
   */
  completing: boolean;
}

/** `[<0>] suture_stall_wait+0x5a/0x90 [suture_stall_target]` → a frame (unmarked). */
export function parseStackLine(line: string): Omit<StackFrame, 'patched'> | undefined {
  const m = /^\[<[0-9a-f]+>\]\s+([^\s+]+)\+0x([0-9a-f]+)\/0x([0-9a-f]+)(?:\s+\[([^\]]+)\])?\s*$/.exec(line.trim());
  if (!m) return undefined;
  return { function: m[1]!, offset: parseInt(m[2]!, 16), size: parseInt(m[3]!, 16), module: m[4] };
}

/**
 * What counts as "the patched function" on a stack:
 * - the old functions the transition's patch replaces (by name, in their object),
 * - any function inside a livepatch module (the previous patch's replacement
 *   while patching, this patch's own while unpatching).
 */
export interface FrameMatcher {
  /** object ('vmlinux' or module) → function names */
  functions: Map<string, Set<string>>;
  /** Names of livepatch modules whose code counts. */
  livepatchModules: Set<string>;
}

export function markFrame(f: Omit<StackFrame, 'patched'>, m: FrameMatcher): StackFrame {
  const obj = f.module ?? 'vmlinux';
  // GCC suffixes (.constprop.0, .isra.0, .cold) keep the name kallsyms shows; the object decides.
  const patched =
    (m.functions.get(obj)?.has(f.function) ?? false) || (f.module !== undefined && m.livepatchModules.has(f.module));
  return { ...f, patched };
}

export function parseStack(text: string | undefined, m: FrameMatcher): StackFrame[] {
  if (!text) return [];
  return text
    .split('\n')
    .map(parseStackLine)
    .filter((f): f is Omit<StackFrame, 'patched'> => f !== undefined)
    .map((f) => markFrame(f, m));
}

export function blockerReason(b: Pick<Blocker, 'state' | 'stack'>, target: 0 | 1): string {
  const inPatched = b.stack.find((f) => f.patched);
  if (inPatched) {
    return `sleeping in ${inPatched.function}${inPatched.module ? ` [${inPatched.module}]` : ''}, which the transition ${target === 1 ? 'replaces' : 'removes'}`;
  }
  if (b.state === 'R') return 'running on a CPU (switches at its next kernel exit or sleep)';
  if (!b.stack.length) return 'no stack to check (it switches at its next kernel exit)';
  return 'not switched yet (the kernel retries every second)';
}

/**
 * Scan every task's patch_state and describe the pending ones. `target` is the
 * transition's target state (1 while patching, 0 while unpatching).
 */
export function scanPending(fs: HostFs, target: 0 | 1, matcher: FrameMatcher, limit = 8): PendingScan {
  const tasks = fs.tasks();
  const pending: TaskRef[] = [];
  let switched = 0;
  for (const t of tasks) {
    const s: PatchState | undefined = fs.patchState(t);
    if (s !== undefined && s !== -1 && s !== target) pending.push(t);
    else if (s === target) switched++;
  }
  const described: Blocker[] = [];
  for (const t of pending) {
    const stack = parseStack(fs.stack(t), matcher);
    const state = fs.schedState(t) ?? '?';
    const b = {
      pid: t.pid,
      tid: t.tid,
      comm: fs.comm(t) ?? '?',
      state,
      kernelThread: fs.isKernelThread(t),
      stack,
      reason: '',
    };
    b.reason = blockerReason(b, target);
    described.push(b);
  }
  described.sort((a, b) => Number(b.stack.some((f) => f.patched)) - Number(a.stack.some((f) => f.patched)) || a.pid - b.pid);
  return { tasks: tasks.length, pending: pending.length, blockers: described.slice(0, limit), completing: pending.length === 0 && switched > 0 };
}

/** A task seen pending during a watched transition, with when it was seen (ms since the transition started). */
export interface SeenBlocker extends Blocker {
  firstSeenMs: number;
  lastSeenMs: number;
}

/**
 * Fold one scan into the tasks seen so far (keyed by thread id). A task that
 * held the transition up for seconds must still be named after it switched,
 * even if the last scan before completion only saw an idle task or a running
 * one that switches at its next kernel exit. The newest description wins,
 * except that one with a patched function on the stack (why it held the
 * transition up) is not replaced by a later one without (a task woken on its
 * way out, not switched yet).
 */
export function foldScan(seen: Map<number, SeenBlocker>, scan: PendingScan, atMs: number): void {
  const inPatched = (b: Blocker) => b.stack.some((f) => f.patched);
  for (const b of scan.blockers) {
    const prev = seen.get(b.tid);
    const keep = prev && inPatched(prev) && !inPatched(b) ? prev : b;
    seen.set(b.tid, { ...keep, firstSeenMs: prev?.firstSeenMs ?? atMs, lastSeenMs: atMs });
  }
}

/** The tasks that held a transition up: those in a patched function first, then the longest seen. */
export function heldUpBy(seen: ReadonlyMap<number, SeenBlocker>, limit = 8): SeenBlocker[] {
  const inPatched = (b: SeenBlocker) => Number(b.stack.some((f) => f.patched));
  return [...seen.values()]
    .sort((a, b) => inPatched(b) - inPatched(a) || b.lastSeenMs - b.firstSeenMs - (a.lastSeenMs - a.firstSeenMs) || a.pid - b.pid || a.tid - b.tid)
    .slice(0, limit);
}

/** The frames worth showing: up to the first marked frame and a few below it, or the top few. */
export function shortStack(stack: readonly StackFrame[], depth = 6): StackFrame[] {
  const i = stack.findIndex((f) => f.patched);
  const end = i < 0 ? depth : Math.max(depth, i + 3);
  return stack.slice(0, end);
}

export function formatFrame(f: StackFrame): string {
  return `${f.patched ? '>' : ' '} ${f.function}+0x${f.offset.toString(16)}/0x${f.size.toString(16)}${f.module ? ` [${f.module}]` : ''}${f.patched ? '   <- patched function' : ''}`;
}
