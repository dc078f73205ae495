// SPDX-License-Identifier: GPL-2.0-only
/** The transition state machine and the watch loop, against a pretend sysfs. */
import { describe, expect, it } from 'vitest';
import { pollDelayMs, Transition, watchTransition, type TransitionEvent } from '../../src/livepatch/transition.js';
import { FakeKernel } from './fake-kernel.js';

const noMatcher = { functions: new Map<string, Set<string>>(), livepatchModules: new Set<string>() };

function fakeClock() {
  let t = 0;
  return { clock: () => t, sleep: async (ms: number) => void (t += ms), advance: (ms: number) => void (t += ms) };
}

/** What marks the test module's sleeping function as patched. */
const stallMatcher = { functions: new Map([['suture_stall_target', new Set(['suture_stall_wait'])]]), livepatchModules: new Set<string>() };

/** Livepatch p enabled and in its patching transition, watched on a fake clock from 0. */
function patchingP() {
  const k = new FakeKernel();
  k.put('/sys/kernel/livepatch/p/transition', '1\n');
  k.put('/sys/kernel/livepatch/p/enabled', '1\n');
  const c = fakeClock();
  const tr = new Transition('p', c.clock);
  tr.start(1);
  return { k, c, tr };
}

describe('Transition state machine', () => {
  it('start → complete, with the target and the history', () => {
    const c = fakeClock();
    const tr = new Transition('p', c.clock);
    expect(tr.state).toBe('idle');
    tr.start(1);
    expect(tr.state).toBe('patching');
    expect(tr.target).toBe(1);
    expect(tr.inTransition).toBe(true);
    c.advance(7);
    tr.complete();
    expect(tr.state).toBe('complete');
    expect(tr.done).toBe(true);
    expect(tr.history).toEqual([
      { state: 'idle', atMs: 0 },
      { state: 'patching', atMs: 0 },
      { state: 'complete', atMs: 7 },
    ]);
  });

  it('a reversal flips the target; its completion is "reversed"', () => {
    const tr = new Transition('p');
    tr.start(1);
    tr.timeout();
    expect(tr.state).toBe('stalled');
    tr.reverse();
    expect(tr.state).toBe('reversing');
    expect(tr.target).toBe(0);
    expect(tr.initialTarget).toBe(1);
    tr.complete();
    expect(tr.state).toBe('reversed');
    expect(tr.target).toBe(0);
  });

  it('unpatching reverses to patching', () => {
    const tr = new Transition('p');
    tr.start(0);
    expect(tr.state).toBe('unpatching');
    tr.reverse();
    expect(tr.target).toBe(1);
  });

  it('force ends any transition in progress', () => {
    for (const path of [[], ['timeout'], ['reverse'], ['reverse', 'timeout']] as TransitionEvent[][]) {
      const tr = new Transition('p');
      tr.start(1);
      for (const e of path) (tr as unknown as Record<string, () => void>)[e]!();
      tr.force();
      expect(tr.state).toBe('forced');
    }
  });

  it.each([
    ['complete before start', (t: Transition) => t.complete()],
    ['reverse before start', (t: Transition) => t.reverse()],
    ['force before start', (t: Transition) => t.force()],
    ['start twice', (t: Transition) => (t.start(1), t.start(1))],
    ['complete twice', (t: Transition) => (t.start(1), t.complete(), t.complete())],
    ['reverse after completion', (t: Transition) => (t.start(1), t.complete(), t.reverse())],
    ['reverse a reversal', (t: Transition) => (t.start(1), t.reverse(), t.reverse())],
    ['timeout when stalled', (t: Transition) => (t.start(1), t.timeout(), t.timeout())],
    ['force after completion', (t: Transition) => (t.start(1), t.complete(), t.force())],
  ])('asserts an illegal transition: %s', (_name, f) => {
    const tr = new Transition('p');
    expect(() => f(tr)).toThrow(/livepatch p: illegal transition event '\w[\w-]*' in state '[\w-]+'/);
  });

  it('target is not defined before start', () => {
    expect(() => new Transition('p').target).toThrow(/has not started/);
  });
});

describe('pollDelayMs', () => {
  it('polls every millisecond at first, then backs off to 50 ms', () => {
    expect(pollDelayMs(0)).toBe(1);
    expect(pollDelayMs(99)).toBe(1);
    expect(pollDelayMs(500)).toBe(5);
    expect(pollDelayMs(2000)).toBe(20);
    expect(pollDelayMs(60_000)).toBe(50);
  });
});

describe('watchTransition', () => {
  it('sees a transition that is already complete on the first look, without sleeping', async () => {
    const k = new FakeKernel();
    k.put('/sys/kernel/livepatch/p/transition', '0\n');
    k.put('/sys/kernel/livepatch/p/enabled', '1\n');
    const c = fakeClock();
    let sleeps = 0;
    const tr = new Transition('p', c.clock);
    tr.start(1);
    const r = await watchTransition(k.fs, tr, { timeoutMs: 1000, revertOnTimeout: false, matcher: noMatcher, clock: c.clock, sleep: async () => void sleeps++ });
    expect(r.outcome).toBe('complete');
    expect(sleeps).toBe(0);
    expect(r.elapsedMs).toBe(0);
  });

  it('waits while transition reads 1, names the blocker after the threshold, completes when it clears', async () => {
    const { k, c, tr } = patchingP();
    k.addTask(42, 'cat', 'D', '[<0>] suture_stall_wait+0x5a/0x90 [suture_stall_target]\n[<0>] suture_stall_read+0x1c/0x40 [suture_stall_target]\n[<0>] vfs_read+0xb0/0x2a0\n', 0);
    k.addTask(43, 'sh', 'S', '[<0>] do_wait+0x1/0x2\n', 1);
    const seen: number[] = [];
    const r = await watchTransition(k.fs, tr, {
      timeoutMs: 60_000,
      revertOnTimeout: false,
      matcher: stallMatcher,
      clock: c.clock,
      sleep: async (ms) => {
        c.advance(ms);
        if (c.clock() >= 3000) k.put('/sys/kernel/livepatch/p/transition', '0\n');
      },
      onProgress: (p) => seen.push(p.scan?.pending ?? -1),
    });
    expect(r.outcome).toBe('complete');
    expect(r.elapsedMs).toBeGreaterThanOrEqual(3000);
    expect(r.elapsedMs).toBeLessThan(3100);
    expect(r.maxPending).toBe(1);
    expect(seen).toContain(1);
    const b = r.blockers!.blockers[0]!;
    expect(b).toMatchObject({ pid: 42, comm: 'cat', state: 'D' });
    expect(b.stack[0]).toMatchObject({ function: 'suture_stall_wait', module: 'suture_stall_target', patched: true });
    expect(b.stack[1]!.patched).toBe(false);
    expect(b.reason).toBe('sleeping in suture_stall_wait [suture_stall_target], which the transition replaces');
  });

  it('still names the task that held it up after it switched, when the last scans only saw a task about to switch', async () => {
    // Seen in the guest: cat leaves the patched function, then the last scan
    // before completion finds only a running task; the result must name cat.
    const { k, c, tr } = patchingP();
    k.addTask(42, 'cat', 'D', '[<0>] suture_stall_wait+0x5a/0x90 [suture_stall_target]\n[<0>] vfs_read+0xb0/0x2a0\n', 0);
    k.addTask(50, 'node', 'R', '', 1);
    const r = await watchTransition(k.fs, tr, {
      timeoutMs: 60_000,
      revertOnTimeout: false,
      matcher: stallMatcher,
      clock: c.clock,
      sleep: async (ms) => {
        c.advance(ms);
        if (c.clock() >= 2000 && c.clock() < 2100) {
          k.setPatchState(42, 1);
          k.setPatchState(50, 0);
        }
        if (c.clock() >= 3600) k.put('/sys/kernel/livepatch/p/transition', '0\n');
      },
    });
    expect(r.outcome).toBe('complete');
    // the latest scan saw only node
    expect(r.blockers!.blockers.map((b) => b.comm)).toEqual(['node']);
    expect(r.heldBy.map((b) => b.comm)).toEqual(['cat', 'node']);
    const cat = r.heldBy[0]!;
    expect(cat.firstSeenMs).toBeGreaterThanOrEqual(250);
    expect(cat.firstSeenMs).toBeLessThan(300);
    expect(cat.lastSeenMs).toBeGreaterThan(1500);
    expect(cat.lastSeenMs).toBeLessThan(2000);
    expect(r.heldBy[1]!.firstSeenMs).toBeGreaterThanOrEqual(2000);
  });

  it('times out and leaves the transition running without --revert-on-timeout', async () => {
    const { k, c, tr } = patchingP();
    const r = await watchTransition(k.fs, tr, { timeoutMs: 2000, revertOnTimeout: false, matcher: noMatcher, clock: c.clock, sleep: c.sleep });
    expect(r.outcome).toBe('stalled');
    expect(k.get('/sys/kernel/livepatch/p/enabled')).toBe('1\n');
    expect(r.history.map((h) => h.state)).toEqual(['idle', 'patching', 'stalled']);
  });

  it('every task switched but `transition` still 1 (the kernel completing it): not stalled at the timeout, waited for up to the completion limit', async () => {
    const k = new FakeKernel();
    k.put('/sys/kernel/livepatch/p/transition', '1\n');
    k.put('/sys/kernel/livepatch/p/enabled', '0\n');
    k.setPatchState(1, 0);
    k.addTask(2, 'a', 'S', '[<0>] do_epoll_wait+0x1/0x2\n', 0);
    const c = fakeClock();
    const tr = new Transition('p', c.clock);
    tr.start(0);
    const progress: boolean[] = [];
    // the kernel releases its functions for 5 s (an RCU-tasks grace period each), past the 2 s timeout
    const sleep = async (ms: number) => {
      c.advance(ms);
      if (c.clock() >= 5000) k.put('/sys/kernel/livepatch/p/transition', '0\n');
    };
    const r = await watchTransition(k.fs, tr, { timeoutMs: 2000, revertOnTimeout: true, matcher: noMatcher, clock: c.clock, sleep, onProgress: (p) => progress.push(p.completing) });
    expect(r.outcome).toBe('complete');
    expect(r.history.map((h) => h.state)).toEqual(['idle', 'unpatching', 'complete']);
    expect(k.get('/sys/kernel/livepatch/p/enabled')).toBe('0\n'); // no reversal written
    expect(r.completingMs).toBeGreaterThan(4500);
    expect(progress).toContain(true);

    // ... but only up to the completion limit
    const k2 = new FakeKernel();
    k2.put('/sys/kernel/livepatch/p/transition', '1\n');
    k2.setPatchState(1, 0);
    const c2 = fakeClock();
    const tr2 = new Transition('p', c2.clock);
    tr2.start(0);
    const r2 = await watchTransition(k2.fs, tr2, { timeoutMs: 2000, completionLimitMs: 10_000, revertOnTimeout: false, matcher: noMatcher, clock: c2.clock, sleep: c2.sleep });
    expect(r2.outcome).toBe('stalled');
    expect(c2.clock()).toBeGreaterThanOrEqual(10_000);
    expect(c2.clock()).toBeLessThan(12_000);
  });

  it('on timeout with revert: writes 0 to enabled, waits for the reversal, ends "reversed"', async () => {
    const { k, c, tr } = patchingP();
    const r = await watchTransition(k.fs, tr, {
      timeoutMs: 2000,
      revertOnTimeout: true,
      matcher: noMatcher,
      clock: c.clock,
      sleep: async (ms) => {
        c.advance(ms);
        // the kernel completes the reversal a little later and frees the patch
        if (k.get('/sys/kernel/livepatch/p/enabled') === '0\n' && c.clock() > 2500) k.free('p');
      },
    });
    expect(r.outcome).toBe('reversed');
    expect(r.reversedAtMs).toBeGreaterThanOrEqual(2000);
    expect(r.history.map((h) => h.state)).toEqual(['idle', 'patching', 'stalled', 'reversing', 'reversed']);
  });

  it('an unpatching transition completes when the directory goes away', async () => {
    const k = new FakeKernel();
    const tr = new Transition('gone');
    tr.start(0);
    const r = await watchTransition(k.fs, tr, { timeoutMs: 1000, revertOnTimeout: false, matcher: noMatcher });
    expect(r.outcome).toBe('complete');
  });

  it('a patching transition whose directory vanishes is an error naming it', async () => {
    const k = new FakeKernel();
    const tr = new Transition('gone');
    tr.start(1);
    await expect(watchTransition(k.fs, tr, { timeoutMs: 1000, revertOnTimeout: false, matcher: noMatcher })).rejects.toThrow(
      /livepatch gone disappeared from .*\/sys\/kernel\/livepatch during its transition/,
    );
  });
});
