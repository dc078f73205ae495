// SPDX-License-Identifier: GPL-2.0-only
/** The rollout state machine (src/fleet/rollout.ts), pure: every status × event, stage arithmetic, hand-out in batches, scenarios. */
import { describe, expect, it } from 'vitest';
import {
  ACTIVE,
  failures,
  holdsHost,
  instructionFor,
  parseStages,
  RolloutRefusal,
  stageTarget,
  transition,
  type AdminAction,
  type RolloutCore,
  type RolloutEvent,
  type RolloutStatus,
  type Target,
  type TargetCounts,
  type TargetState,
} from '../../src/fleet/rollout.js';

const MIN = 60_000;
const SOAK = 10 * MIN;
const SILENT = 3 * MIN;
const STATUSES: RolloutStatus[] = ['pending', 'running', 'paused', 'halted', 'aborted', 'rolled-back', 'done'];
const STATES: TargetState[] = ['assigned', 'applied', 'healthy', 'rollback', 'rolled-back', 'cancelled'];
const ACTIONS: AdminAction[] = ['pause', 'resume', 'abort', 'rollback'];

const core = (o: Partial<RolloutCore> = {}): RolloutCore => ({ status: 'pending', stage: -1, stageSize: 0, stages: parseStages('1,50%,100%'), soakMs: SOAK, maxFailures: 1, startAt: 0, reason: null, ...o });
const hosts = (n: number) => Array.from({ length: n }, (_, i) => `h-${String(i).padStart(2, '0')}`);
const target = (hostId: string, state: TargetState, o: Partial<Target> = {}): Target => ({ hostId, stage: 0, state, failure: null, assignedAt: 0, appliedAt: state === 'assigned' ? null : 0, lastSeen: 0, ...o });

/** Apply events in order, keeping the whole target list. */
function run(r: RolloutCore, ts: Target[], events: RolloutEvent[]) {
  const log: string[] = [];
  for (const e of events) {
    const s = transition(r, ts, e);
    r = s.rollout;
    const m = new Map(ts.map((t) => [t.hostId, t]));
    for (const t of s.changed) m.set(t.hostId, t);
    ts = [...m.values()];
    log.push(...s.log);
  }
  return { r, ts, log };
}
const tick = (now: number, candidates: string[]): Extract<RolloutEvent, { type: 'tick' }> => ({ type: 'tick', now, candidates, silentMs: SILENT });

describe('stages', () => {
  it('parseStages reads counts and percentages, refuses the rest', () => {
    expect(parseStages('1,10%,50%,100%')).toEqual([{ kind: 'count', n: 1 }, { kind: 'percent', p: 10 }, { kind: 'percent', p: 50 }, { kind: 'percent', p: 100 }]);
    for (const bad of ['', '0', '1,,2', '101%', '0%', 'x', '-1', '1.5', Array(21).fill('1').join(',')]) expect(() => parseStages(bad), bad).toThrow(/--stages/);
  });
  it('stageTarget is cumulative, at least 1, at most the population', () => {
    expect(stageTarget({ kind: 'count', n: 1 }, 1000)).toBe(1);
    expect(stageTarget({ kind: 'percent', p: 10 }, 1000)).toBe(100);
    expect(stageTarget({ kind: 'percent', p: 10 }, 5)).toBe(1);
    expect(stageTarget({ kind: 'percent', p: 33 }, 10)).toBe(4);
    expect(stageTarget({ kind: 'percent', p: 100 }, 7)).toBe(7);
    expect(stageTarget({ kind: 'count', n: 50 }, 7)).toBe(7);
    expect(stageTarget({ kind: 'count', n: 5 }, 0)).toBe(0);
  });
});

describe('a rollout that completes', () => {
  it('pending → stage 1 (1 host) → soak → stage 2 (50%) → stage 3 (100%) → done; only candidates are taken', () => {
    const hs = hosts(10);
    let s = run(core({ startAt: 5 * MIN }), [], [tick(MIN, hs)]);
    expect(s.r.status).toBe('pending'); // --delay not over
    s = run(s.r, s.ts, [tick(5 * MIN, hs)]);
    expect(s.r).toMatchObject({ status: 'running', stage: 0 });
    expect(s.ts.map((t) => [t.hostId, t.state])).toEqual([['h-00', 'assigned']]);
    let now = 6 * MIN;
    s = run(s.r, s.ts, [{ type: 'host-applied', hostId: 'h-00', now }, { type: 'host-report', hostId: 'h-00', now: now + MIN, healthy: true, reasons: [] }, tick(now + MIN, hs)]);
    expect(s.ts[0]!.state).toBe('applied'); // soak not over
    expect(s.r.stage).toBe(0);
    now += SOAK;
    s = run(s.r, s.ts, [{ type: 'host-report', hostId: 'h-00', now, healthy: true, reasons: [] }, tick(now, hs)]);
    expect(s.ts.find((t) => t.hostId === 'h-00')!.state).toBe('healthy');
    expect(s.r.stage).toBe(1);
    expect(s.ts.filter((t) => t.stage === 1).map((t) => t.hostId)).toEqual(['h-01', 'h-02', 'h-03', 'h-04']);
    // a second tick at the same time changes nothing: the stage is not advanced twice
    const again = transition(s.r, s.ts, tick(now, hs));
    expect(again.changed).toEqual([]);
    expect(again.rollout).toEqual(s.r);
    for (let stage = 1; stage <= 2; stage++) {
      const mine = s.ts.filter((t) => t.stage === stage).map((t) => t.hostId);
      const ev: RolloutEvent[] = mine.flatMap((h) => [{ type: 'host-applied', hostId: h, now } as RolloutEvent, { type: 'host-report', hostId: h, now: now + SOAK, healthy: true, reasons: [] } as RolloutEvent]);
      now += SOAK;
      s = run(s.r, s.ts.map((t) => ({ ...t, lastSeen: now })), [...ev, tick(now, hs)]);
    }
    expect(s.r.status).toBe('done');
    expect(s.ts).toHaveLength(10);
    expect(s.ts.every((t) => t.state === 'healthy')).toBe(true);
    expect(s.log.at(-1)).toMatch(/^done: 10 hosts healthy/);
  });

  it('a fleet with no matching host waits in pending; it never reports done to nobody', () => {
    const s = run(core(), [], [tick(MIN, []), tick(2 * MIN, [])]);
    expect(s.r.status).toBe('pending');
    expect(s.ts).toEqual([]);
  });

  it('with fewer hosts than the counts, each stage takes what there is and the rollout still ends', () => {
    let s = run(core({ stages: parseStages('5,100%') }), [], [tick(0, hosts(2))]);
    expect(s.ts).toHaveLength(2);
    s = run(s.r, s.ts, [...hosts(2).flatMap((h) => [{ type: 'host-applied', hostId: h, now: 0 } as RolloutEvent, { type: 'host-report', hostId: h, now: SOAK, healthy: true, reasons: [] } as RolloutEvent]), tick(SOAK, hosts(2))]);
    expect(s.r.status).toBe('done');
  });
});

/** The counts a server gives a tick instead of the targets. */
const countsOf = (ts: readonly Target[]): TargetCounts => ({ have: ts.length, open: ts.filter((t) => t.state === 'assigned' || t.state === 'applied').length, healthy: ts.filter((t) => t.state === 'healthy').length });
/** Every target of `stage` applies and proves healthy past the soak (at `now`; they check in at `now`). */
const settle = (ts: Target[], stage: number, now: number): RolloutEvent[] =>
  ts.filter((t) => t.stage === stage && t.state === 'assigned').flatMap((t) => [{ type: 'host-applied', hostId: t.hostId, now: now - SOAK } as RolloutEvent, { type: 'host-report', hostId: t.hostId, now, healthy: true, reasons: [] } as RolloutEvent]);
/** A seeded PRNG (mulberry32), so a failing case is the same case again. */
function prng(seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('hand-out in batches', () => {
  const btick = (now: number, candidates: string[], batch: number, o: Partial<Extract<RolloutEvent, { type: 'tick' }>> = {}): Extract<RolloutEvent, { type: 'tick' }> => ({ type: 'tick', now, candidates, silentMs: SILENT, batch, ...o });
  const free = (hs: string[], ts: Target[]) => hs.filter((h) => !ts.some((t) => t.hostId === h));

  it('a stage gets at most `batch` hosts a tick; its size is fixed when it starts; it settles only once all its hosts exist', () => {
    const hs = hosts(10);
    let now = MIN;
    const log: string[] = [];
    const go = (r: RolloutCore, ts: Target[], ev: RolloutEvent[]) => {
      const x = run(r, ts, ev);
      log.push(...x.log);
      return x;
    };
    let s = go(core({ stages: parseStages('1,100%') }), [], [btick(now, hs, 3)]);
    expect(s.r).toMatchObject({ status: 'running', stage: 0, stageSize: 1 });
    now += SOAK;
    s = go(s.r, s.ts, [...settle(s.ts, 0, now), btick(now, free(hs, s.ts), 3)]);
    expect(s.r).toMatchObject({ stage: 1, stageSize: 10 });
    expect(s.ts.filter((t) => t.stage === 1).map((t) => t.hostId)).toEqual(['h-01', 'h-02', 'h-03']);
    expect(s.log.at(-1)).toBe('stage 2/2 (100%) started: 3 hosts assigned, 4 of 10 in all');
    // every host there is settled, but the stage is not: 6 of its hosts do not exist yet
    now += SOAK;
    s = go(s.r, s.ts.map((t) => ({ ...t, lastSeen: now })), [...settle(s.ts, 1, now), btick(now, free(hs, s.ts), 3)]);
    expect(s.r).toMatchObject({ status: 'running', stage: 1, stageSize: 10 });
    expect(s.ts).toHaveLength(7);
    expect(s.log.at(-1)).toBe('stage 2/2: 3 more hosts assigned, 7 of 10 in all');
    s = go(s.r, s.ts, [btick(now, free(hs, s.ts), 3)]);
    expect(s.ts).toHaveLength(10);
    s = go(s.r, s.ts, [btick(now, free(hs, s.ts), 3)]);
    expect(s.ts).toHaveLength(10); // nobody left to take; the stage is not settled yet
    expect(s.r.status).toBe('running');
    now += SOAK;
    s = go(s.r, s.ts.map((t) => ({ ...t, lastSeen: now })), [...settle(s.ts, 1, now), btick(now, [], 3)]);
    expect(s.r.status).toBe('done');
    expect(s.log.at(-1)).toBe('done: 10 hosts healthy');
    // each stage started once
    expect(log.filter((l) => / started: /.test(l))).toEqual(['stage 1/2 (1) started: 1 host assigned, 1 of 1 in all', 'stage 2/2 (100%) started: 3 hosts assigned, 4 of 10 in all']);
  });

  it('a tick with the counts of the targets (none given) does what a tick with the targets does when no host is silent', () => {
    let compared = 0;
    for (let seed = 1; seed <= 40; seed++) {
      const rnd = prng(seed);
      const hs = hosts(20 + Math.floor(rnd() * 20));
      const batch = 1 + Math.floor(rnd() * 6);
      let s = run(core({ stages: parseStages('1,25%,50%,100%'), maxFailures: 3 }), [], []);
      let now = MIN;
      for (let step = 0; step < 60 && s.r.status !== 'done'; step++) {
        now += MIN + Math.floor(rnd() * SOAK);
        // some hosts apply, some report, one in a while fails; all of them check in now (none silent)
        const ev: RolloutEvent[] = [];
        for (const t of s.ts) {
          const x = rnd();
          if (t.state === 'assigned' && x < 0.6) ev.push({ type: 'host-applied', hostId: t.hostId, now });
          else if (t.state === 'applied' && x < 0.8) ev.push({ type: 'host-report', hostId: t.hostId, now, healthy: x > 0.01, reasons: ['bad'] });
        }
        s = run(s.r, s.ts.map((t) => ({ ...t, lastSeen: now })), ev);
        const waiting = free(hs, s.ts).length;
        const e = btick(now, free(hs, s.ts).slice(0, batch + 2), batch, { waiting });
        const full = transition(s.r, s.ts, e);
        const counted = transition(s.r, [], { ...e, counts: countsOf(s.ts) });
        const ctx = `seed ${seed} step ${step}`;
        expect(counted.rollout, ctx).toEqual(full.rollout);
        expect(counted.log, ctx).toEqual(full.log);
        expect(counted.changed, ctx).toEqual(full.changed);
        expect(full.changed.length, ctx).toBeLessThanOrEqual(batch);
        compared++;
        s = run(s.r, s.ts, [e]);
      }
    }
    expect(compared).toBeGreaterThan(400);
  });

  it('a stage grows when more hosts match later, and never waits for more hosts than there are', () => {
    const hs = hosts(10);
    let s = run(core({ stages: parseStages('50%,100%') }), [], [btick(0, hs, 2)]);
    expect(s.r).toMatchObject({ stage: 0, stageSize: 5 });
    // ten more hosts enrol: 50% of 20
    s = run(s.r, s.ts, [btick(0, [...free(hs, s.ts), ...hosts(20).slice(10)], 2)]);
    expect(s.r.stageSize).toBe(10);
    expect(s.ts).toHaveLength(4);
    // now all but one of the hosts not in it are gone (another rollout took them): 5 in all can be had, not 10
    s = run(s.r, s.ts, [btick(0, ['h-19'], 2, { waiting: 1 })]);
    expect(s.ts).toHaveLength(5);
    s = run(s.r, s.ts.map((t) => ({ ...t, lastSeen: SOAK })), [...settle(s.ts, 0, SOAK), btick(SOAK, [], 2, { waiting: 0 })]);
    // stage 1 settled with the 5 there were; stage 2 finds nobody more, and the rollout ends with the 5
    expect(s.log.slice(-2)).toEqual(['stage 2/2 (100%) started: 0 hosts assigned, 5 of 5 in all', 'done: 5 hosts healthy']);
    expect(s.r).toMatchObject({ status: 'done', stage: 1 });
  });

  it('a server that stops in the middle of a hand-out: the next tick, from the stored rollout and the counts alone, goes on with the same stage', () => {
    const hs = hosts(30);
    let s = run(core({ stages: parseStages('100%') }), [], [btick(0, hs, 4)]);
    expect(s.r).toMatchObject({ stage: 0, stageSize: 30 });
    expect(s.ts).toHaveLength(4);
    // another process reads the rollout row back (as stored) and counts the targets
    const stored = JSON.parse(JSON.stringify(s.r)) as RolloutCore;
    const next = transition(stored, [], btick(1000, free(hs, s.ts).slice(0, 4), 4, { waiting: 26, counts: countsOf(s.ts) }));
    expect(next.rollout).toEqual(stored);
    expect(next.changed.map((t) => [t.hostId, t.stage, t.state])).toEqual([
      ['h-04', 0, 'assigned'],
      ['h-05', 0, 'assigned'],
      ['h-06', 0, 'assigned'],
      ['h-07', 0, 'assigned'],
    ]);
    expect(next.log).toEqual(['stage 1/1: 4 more hosts assigned, 8 of 30 in all']);
    // the same tick again from a process that has not seen that one's result would hand out the same hosts:
    // the server runs ticks one at a time (fleet_lock) and counts under the rollout's lock, so it never does
  });
});

describe('failures', () => {
  it('an unhealthy canary halts at --max-failures 1: it rolls back, nobody else gets the bundle', () => {
    const hs = hosts(5);
    let s = run(core(), [], [tick(0, hs), { type: 'host-applied', hostId: 'h-00', now: MIN }]);
    s = run(s.r, s.ts, [{ type: 'host-report', hostId: 'h-00', now: 2 * MIN, healthy: false, reasons: ['WARNING: at fs/proc/cmdline.c:12'] }, tick(20 * MIN, hs)]);
    expect(s.r).toMatchObject({ status: 'halted', stage: 0 });
    expect(s.r.reason).toMatch(/1 host failed \(max 1\); last: h-00: unhealthy in the soak: WARNING/);
    expect(s.ts).toEqual([expect.objectContaining({ hostId: 'h-00', state: 'rollback', failure: expect.stringMatching(/WARNING/) })]);
    s = run(s.r, s.ts, [{ type: 'host-rolled-back', hostId: 'h-00', now: 21 * MIN }]);
    expect(s.ts[0]!.state).toBe('rolled-back');
    expect(holdsHost(s.r.status, s.ts[0]!)).toBe(false);
  });

  it('below --max-failures a failure is rolled back and the rollout goes on; on halt, hosts in the soak roll back, unapplied ones are cancelled, healthy ones keep it', () => {
    const hs = hosts(10);
    let s = run(core({ maxFailures: 2, stages: parseStages('1,100%') }), [], [tick(0, hs), { type: 'host-applied', hostId: 'h-00', now: 0 }, { type: 'host-report', hostId: 'h-00', now: SOAK, healthy: true, reasons: [] }, tick(SOAK, hs)]);
    expect(s.ts).toHaveLength(10);
    s = run(s.r, s.ts.map((t) => ({ ...t, lastSeen: SOAK })), [{ type: 'host-applied', hostId: 'h-01', now: SOAK }, { type: 'host-failed', hostId: 'h-02', now: SOAK, reason: 'transition timed out' }]);
    expect(s.r.status).toBe('running');
    expect(failures(s.ts)).toBe(1);
    s = run(s.r, s.ts, [{ type: 'host-failed', hostId: 'h-03', now: SOAK, reason: 'load refused' }]);
    expect(s.r.status).toBe('halted');
    const st = Object.fromEntries(s.ts.map((t) => [t.hostId, t.state]));
    expect(st).toMatchObject({ 'h-00': 'healthy', 'h-01': 'rollback', 'h-02': 'rollback', 'h-03': 'rollback', 'h-04': 'cancelled', 'h-09': 'cancelled' });
    expect(failures(s.ts)).toBe(2); // h-01 rolls back without having failed
  });

  it('a silent host (no check-in for silentMs) fails; a host that checks in does not', () => {
    let s = run(core({ maxFailures: 5, stages: parseStages('2') }), [], [tick(0, hosts(2))]);
    s = run(s.r, s.ts.map((t) => (t.hostId === 'h-00' ? { ...t, lastSeen: SILENT } : t)), [tick(SILENT + 1, [])]);
    expect(s.ts.find((t) => t.hostId === 'h-01')).toMatchObject({ state: 'rollback', failure: expect.stringMatching(/^silent: no check-in for 180 s/) });
    expect(s.ts.find((t) => t.hostId === 'h-00')!.state).toBe('assigned');
  });

  it('a failure is counted once, however often it is reported', () => {
    const s = run(core({ maxFailures: 3 }), [], [tick(0, hosts(3)), ...Array(4).fill({ type: 'host-failed', hostId: 'h-00', now: 1, reason: 'x' })]);
    expect(failures(s.ts)).toBe(1);
    expect(s.r.status).toBe('running');
  });
});

describe('admin actions', () => {
  const allowed: Record<AdminAction, RolloutStatus[]> = {
    pause: ['pending', 'running'],
    resume: ['paused'],
    abort: ['pending', 'running', 'paused', 'halted'],
    rollback: ['pending', 'running', 'paused', 'halted', 'aborted', 'done'],
  };
  for (const action of ACTIONS) {
    for (const status of STATUSES) {
      const ok = allowed[action].includes(status);
      it(`${action} a ${status} rollout: ${ok ? 'allowed' : 'refused'}`, () => {
        const r = core({ status, stage: status === 'pending' ? -1 : 0 });
        const ts = STATES.map((s, i) => target(`h-${i}`, s));
        const e: RolloutEvent = { type: 'admin', action, now: 1, by: 'a-x' };
        if (!ok) {
          expect(() => transition(r, ts, e)).toThrow(RolloutRefusal);
          return;
        }
        const s = transition(r, ts, e);
        const want = { pause: 'paused', resume: 'running', abort: 'aborted', rollback: 'rolled-back' }[action];
        expect(s.rollout.status).toBe(want);
        const by = Object.fromEntries([...ts, ...s.changed].map((t) => [t.hostId, t.state]));
        if (action === 'rollback') expect(Object.values(by).sort()).toEqual(['cancelled', 'rollback', 'rollback', 'rollback', 'rollback', 'rolled-back'].sort());
        if (action === 'abort') expect(by['h-0']).toBe('cancelled');
        if (action === 'pause' || action === 'resume') expect(s.changed).toEqual([]);
      });
    }
  }
  it('resume of a paused rollout that never started goes back to pending', () => {
    const s = run(core(), [], [{ type: 'admin', action: 'pause', now: 0, by: 'a' }, tick(MIN, hosts(3))]);
    expect(s.r.status).toBe('paused');
    expect(s.ts).toEqual([]); // paused: no stage starts
    expect(run(s.r, s.ts, [{ type: 'admin', action: 'resume', now: 0, by: 'a' }]).r.status).toBe('pending');
  });
});

describe('every status × target state × event (exhaustive)', () => {
  const events = (h: string): RolloutEvent[] => [
    tick(SOAK * 2, ['h-new']),
    { ...tick(SOAK * 2, ['h-new', 'h-new2', 'h-new3']), batch: 2 },
    { type: 'host-applied', hostId: h, now: SOAK },
    { type: 'host-failed', hostId: h, now: SOAK, reason: 'r' },
    { type: 'host-report', hostId: h, now: SOAK * 2, healthy: true, reasons: [] },
    { type: 'host-report', hostId: h, now: SOAK * 2, healthy: false, reasons: ['bad'] },
    { type: 'host-rolled-back', hostId: h, now: SOAK },
    { type: 'host-applied', hostId: 'h-stranger', now: SOAK },
    ...ACTIONS.map((action): RolloutEvent => ({ type: 'admin', action, now: SOAK, by: 'a' })),
  ];
  /** The only target moves there are. */
  const EDGES = new Set(['assigned>applied', 'assigned>rollback', 'assigned>cancelled', 'applied>healthy', 'applied>rollback', 'healthy>rollback', 'rollback>rolled-back']);
  it('invariants hold for all combinations', () => {
    let n = 0;
    for (const status of STATUSES) {
      for (const state of STATES) {
        for (const e of events('h-0')) {
          const r = core({ status, stage: status === 'pending' ? -1 : 0, stages: parseStages('1,100%'), maxFailures: 1 });
          const ts = [target('h-0', state, { lastSeen: SOAK * 2 })];
          let s;
          try {
            s = transition(r, ts, e);
          } catch (err) {
            expect(err, `${status}/${state}/${JSON.stringify(e)}`).toBeInstanceOf(RolloutRefusal);
            expect(e.type).toBe('admin');
            continue;
          }
          n++;
          const ctx = `${status}/${state}/${e.type}${'action' in e ? `:${e.action}` : ''}`;
          const after = new Map([...ts, ...s.changed].map((t) => [t.hostId, t]));
          const t = after.get('h-0')!;
          // a target moves only along the drawn edges (rolled-back and cancelled are final)
          if (state !== t.state) expect(EDGES.has(`${state}>${t.state}`), `${ctx}: ${state}>${t.state}`).toBe(true);
          // failures never decrease; a failure always means rollback or rolled-back
          expect(failures([...after.values()]), ctx).toBeGreaterThanOrEqual(failures(ts));
          for (const x of after.values()) if (x.failure !== null) expect(['rollback', 'rolled-back'], ctx).toContain(x.state);
          // the stage never goes back; a finished rollout stays finished, only rollback changes done/aborted
          expect(s.rollout.stage, ctx).toBeGreaterThanOrEqual(r.stage);
          if (['done', 'aborted', 'rolled-back'].includes(status) && e.type !== 'admin') expect(s.rollout.status, ctx).toBe(status);
          // a non-active rollout assigns nobody new; a tick assigns at most its batch
          if (!ACTIVE.includes(status)) expect(after.has('h-new'), ctx).toBe(false);
          if (e.type === 'tick' && e.batch !== undefined) expect(s.changed.filter((x) => x.hostId.startsWith('h-new')).length, ctx).toBeLessThanOrEqual(e.batch);
          expect(s.rollout.stageSize, ctx).toBeGreaterThanOrEqual(0);
          // the event from a host not in the rollout changes nothing
          expect(after.has('h-stranger'), ctx).toBe(false);
          // what the host is told follows from its state
          expect(instructionFor(t), ctx).toBe({ assigned: 'install', applied: 'install', healthy: 'install', rollback: 'rollback', 'rolled-back': null, cancelled: null }[t.state]);
          // halted at max failures
          if (failures([...after.values()]) >= 1 && ['running', 'paused'].includes(status)) expect(s.rollout.status, ctx).not.toMatch(/^(running|paused)$/);
        }
      }
    }
    expect(n).toBeGreaterThan(300);
  });
});
