// SPDX-License-Identifier: GPL-2.0-only
/** Reading /proc/<pid>/stack and naming what holds a transition up. */
import { describe, expect, it } from 'vitest';
import { blockerReason, foldScan, formatFrame, heldUpBy, markFrame, parseStack, parseStackLine, scanPending, shortStack, type Blocker, type SeenBlocker } from '../../src/livepatch/blockers.js';
import { FakeKernel } from './fake-kernel.js';

const matcher = {
  functions: new Map([
    ['vmlinux', new Set(['cmdline_proc_show'])],
    ['suture_stall_target', new Set(['suture_stall_wait'])],
  ]),
  livepatchModules: new Set(['livepatch_old']),
};

describe('stack frames', () => {
  it('parses the 6.1 /proc/<pid>/stack line format, with and without a module', () => {
    expect(parseStackLine('[<0>] suture_stall_wait+0x5a/0x90 [suture_stall_target]')).toEqual({
      function: 'suture_stall_wait',
      offset: 0x5a,
      size: 0x90,
      module: 'suture_stall_target',
    });
    expect(parseStackLine('[<ffffffff8110a1b2>] do_syscall_64+0x5b/0xc0')).toEqual({ function: 'do_syscall_64', offset: 0x5b, size: 0xc0, module: undefined });
    expect(parseStackLine('[<0>] syscall_trace_enter.constprop.0+0x1/0x2')?.function).toBe('syscall_trace_enter.constprop.0');
    expect(parseStackLine('garbage')).toBeUndefined();
    expect(parseStackLine('')).toBeUndefined();
  });

  it('marks a frame by function name in its own object only', () => {
    expect(markFrame({ function: 'suture_stall_wait', offset: 0, size: 1, module: 'suture_stall_target' }, matcher).patched).toBe(true);
    // same name in another object: not the patched function
    expect(markFrame({ function: 'suture_stall_wait', offset: 0, size: 1, module: undefined }, matcher).patched).toBe(false);
    expect(markFrame({ function: 'cmdline_proc_show', offset: 0, size: 1, module: undefined }, matcher).patched).toBe(true);
    // any frame in a livepatch module that counts
    expect(markFrame({ function: 'whatever', offset: 0, size: 1, module: 'livepatch_old' }, matcher).patched).toBe(true);
  });

  it('keeps the frames up to a little below the marked one', () => {
    const stack = parseStack(
      Array.from({ length: 12 }, (_, i) => `[<0>] f${i}+0x1/0x2`).join('\n').replace('f9+', 'cmdline_proc_show+'),
      matcher,
    );
    expect(shortStack(stack).map((f) => f.function)).toEqual(['f0', 'f1', 'f2', 'f3', 'f4', 'f5', 'f6', 'f7', 'f8', 'cmdline_proc_show', 'f10', 'f11']);
    expect(shortStack(parseStack('[<0>] a+0x1/0x2\n[<0>] b+0x1/0x2', matcher))).toHaveLength(2);
    expect(formatFrame(stack[9]!)).toBe('> cmdline_proc_show+0x1/0x2   <- patched function');
    expect(formatFrame(stack[0]!)).toBe('  f0+0x1/0x2');
  });

  it('says why a task has not switched', () => {
    const inFn = parseStack('[<0>] suture_stall_wait+0x5a/0x90 [suture_stall_target]', matcher);
    expect(blockerReason({ state: 'D', stack: inFn }, 1)).toBe('sleeping in suture_stall_wait [suture_stall_target], which the transition replaces');
    expect(blockerReason({ state: 'D', stack: inFn }, 0)).toContain('which the transition removes');
    expect(blockerReason({ state: 'R', stack: [] }, 1)).toMatch(/^running on a CPU/);
    expect(blockerReason({ state: 'S', stack: [] }, 1)).toMatch(/^no stack to check/);
    expect(blockerReason({ state: 'S', stack: parseStack('[<0>] x+0x1/0x2', matcher) }, 1)).toMatch(/^not switched yet/);
  });
});

describe('scanPending', () => {
  it('counts tasks not at the target, threads included, and lists the ones in a patched function first', () => {
    const k = new FakeKernel();
    k.setPatchState(1, 1);
    k.addTask(10, 'kworker/0:1', 'I', '[<0>] worker_thread+0x1/0x2\n', 0);
    k.addTask(20, 'cat', 'D', '[<0>] suture_stall_wait+0x5a/0x90 [suture_stall_target]\n[<0>] vfs_read+0x1/0x2\n', 0);
    k.addTask(30, 'node', 'S', '[<0>] futex_wait+0x1/0x2\n', 1);
    k.addTask(30, 'node-worker', 'S', '[<0>] cmdline_proc_show+0x1/0x2\n', 0, 31);
    const s = scanPending(k.fs, 1, matcher);
    expect(s.tasks).toBe(5);
    expect(s.pending).toBe(3);
    expect(s.blockers.map((b) => [b.pid, b.tid, b.comm])).toEqual([
      [20, 20, 'cat'],
      [30, 31, 'node-worker'],
      [10, 10, 'kworker/0:1'],
    ]);
    expect(s.blockers[2]!.kernelThread).toBe(true);
    expect(s.blockers[0]!.kernelThread).toBe(false);
    // while unpatching, the tasks at 1 are the pending ones
    expect(scanPending(k.fs, 0, matcher).pending).toBe(2);
  });

  it('no transition: every task reads -1 and none is pending', () => {
    const k = new FakeKernel();
    k.addTask(2, 'a', 'S', '');
    expect(scanPending(k.fs, 1, matcher)).toEqual({ tasks: 2, pending: 0, blockers: [], completing: false });
  });

  it('every task at the target while the transition lasts: the kernel is completing it (not while tasks have no state yet)', () => {
    const k = new FakeKernel();
    k.setPatchState(1, 0);
    k.addTask(2, 'a', 'S', '', 0);
    expect(scanPending(k.fs, 0, matcher)).toMatchObject({ tasks: 2, pending: 0, completing: true });
    // the kernel sets every task back to -1 just before it clears `transition`: none pending, some switched
    k.addTask(3, 'b', 'S', '', -1);
    expect(scanPending(k.fs, 0, matcher).completing).toBe(true);
    // one task left at the old state: still a transition waiting for it
    k.addTask(4, 'c', 'S', '', 1);
    expect(scanPending(k.fs, 0, matcher)).toMatchObject({ pending: 1, completing: false });
    // the first moments (tasks not given a state yet)
    const fresh = new FakeKernel();
    expect(scanPending(fresh.fs, 1, matcher).completing).toBe(false);
  });
});

describe('foldScan / heldUpBy', () => {
  const frame = (fn: string, patched: boolean) => ({ function: fn, offset: 0x10, size: 0x40, module: undefined, patched });
  const task = (tid: number, comm: string, state: string, stack: ReturnType<typeof frame>[]): Blocker => ({
    pid: tid,
    tid,
    comm,
    state,
    kernelThread: false,
    stack,
    reason: blockerReason({ state, stack }, 1),
  });
  const scan = (...blockers: Blocker[]) => ({ tasks: 10, pending: blockers.length, blockers, completing: false });

  it('keeps why a task held the transition up after it woke on its way out, and when it was seen', () => {
    const seen = new Map<number, SeenBlocker>();
    foldScan(seen, scan(task(42, 'cat', 'D', [frame('suture_stall_wait', true), frame('vfs_read', false)])), 250);
    foldScan(seen, scan(task(42, 'cat', 'D', [frame('suture_stall_wait', true), frame('vfs_read', false)])), 750);
    // released: running, the patched function left, not switched yet; and a newcomer about to switch
    foldScan(seen, scan(task(42, 'cat', 'R', []), task(50, 'node', 'R', [])), 1250);
    const held = heldUpBy(seen);
    expect(held.map((b) => [b.comm, b.firstSeenMs, b.lastSeenMs])).toEqual([
      ['cat', 250, 1250],
      ['node', 1250, 1250],
    ]);
    expect(held[0]!.reason).toBe('sleeping in suture_stall_wait, which the transition replaces');
    expect(held[1]!.reason).toBe('running on a CPU (switches at its next kernel exit or sleep)');
  });

  it('otherwise the newest description wins, and the longest seen comes first', () => {
    const seen = new Map<number, SeenBlocker>();
    foldScan(seen, scan(task(7, 'a', 'S', [frame('do_wait', false)]), task(8, 'b', 'R', [])), 0);
    foldScan(seen, scan(task(8, 'b', 'S', [frame('pipe_read', false)])), 900);
    expect(heldUpBy(seen).map((b) => [b.comm, b.state])).toEqual([
      ['b', 'S'],
      ['a', 'S'],
    ]);
    expect(heldUpBy(seen, 1)).toHaveLength(1);
  });
});
