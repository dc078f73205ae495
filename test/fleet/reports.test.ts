// SPDX-License-Identifier: GPL-2.0-only
/**
 * The fleet's reports and pins through the HTTP API (Fastify inject, real
 * SQLite, real signed bundles): each host state with its reason, a rollout's
 * report (progress, the pinned host skipped and named, failures with reasons,
 * transition times, the blocking task across hosts with its stack, the
 * progress series), per-CVE coverage; pin and unpin refusals change nothing.
 */
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../../src/fleet/db.js';
import type { Identity } from '../../src/fleet/protocol.js';
import { distribution, STALLED_SEC } from '../../src/fleet/reports.js';
import { apiOnSqlite, BOUND, call, type Clock, enrollHost, facts, makeBundles, OTHER, snapshot } from './helpers.js';

const MIN = 60_000;
let d: Database;
let app: FastifyInstance;
let clock: Clock;
let admin: Identity;
let bundles: ReturnType<typeof makeBundles>;
const h: Record<string, Identity & { hostId: string }> = {};

const CAT_STACK = ['[<0>] fake_cmdline_proc_show+0x10/0x40 [patched]', '[<0>] seq_read_iter+0x10a/0x4a0', '[<0>] vfs_read+0x1f0/0x2e0'];
const loadedBound = { loaded: [{ name: 'fake_bound', sha256: null }], installed: [{ name: 'fake_bound', sha256: null }] };

beforeAll(async () => {
  bundles = makeBundles();
  ({ d, app, clock, admin } = await apiOnSqlite('suture-fleet-reports-'));
  for (const n of ['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf']) h[n] = await enrollHost(app, clock, admin, n);
  for (const b of [bundles.bound, bundles.cumulative]) expect((await call(app, clock, admin, 'POST', '/v1/admin/bundles?channel=stable', b)).status).toBe(200);
});
afterAll(async () => {
  await app?.close();
  await d?.db.destroy();
});

const checkin = (who: Identity, f = facts(BOUND), results: unknown[] = []) => call(app, clock, who, 'POST', '/v1/checkin', { facts: f, results });
const hostsNow = async () => Object.fromEntries(((await call(app, clock, admin, 'GET', '/v1/admin/hosts')).json.hosts as any[]).map((x) => [x.name, x]));

describe('host states', () => {
  it('each state, with its reason', async () => {
    await checkin(h.golf!); // checks in once, then goes silent
    clock.advance(4 * MIN);
    await checkin(h.alpha!, facts(BOUND, { ...loadedBound, effectiveVersion: '6.1.194-1' }));
    await checkin(h.bravo!, facts(BOUND, { health: { ok: false, reasons: ['health command "/usr/local/bin/check" exited 1: disk full'] } }));
    // a transition still running when charlie checked in (its time is the check-in's), held up by cat
    await checkin(h.charlie!, facts(BOUND, { ...loadedBound, lastTransition: { patch: 'fake_bound', seconds: 45, at: clock.now(), blockers: [{ pid: 812, comm: 'cat', stack: CAT_STACK }] } }));
    await checkin(h.delta!);
    await checkin(h.echo!, facts(OTHER));
    const s = await hostsNow();
    expect(Object.fromEntries(Object.entries(s).map(([k, v]) => [k, (v as { state: string }).state]))).toEqual({
      alpha: 'applied',
      bravo: 'unhealthy',
      charlie: 'stalled',
      delta: 'not-applied',
      echo: 'no-patch',
      foxtrot: 'unreported',
      golf: 'silent',
    });
    expect(s.alpha.stateReason).toBe('loaded: fake_bound; effective version 6.1.194-1');
    expect(s.bravo.stateReason).toMatch(/disk full/);
    expect(s.charlie.stateReason).toBe(`transition of fake_bound running for 45 s, held up by cat[812]`);
    expect(s.echo.stateReason).toBe(`no bundle is published for its kernel (6.1.0-56-amd64, build ${OTHER}): it needs a reboot into a kernel that has one`);
    expect(s.golf.stateReason).toBe('no check-in for 240 s');
    expect(s.charlie.lastTransition.blockers[0].stack).toEqual(CAT_STACK);
    // the same transition reported as finished (its time long before the check-in) is no stall
    clock.advance(MIN);
    await checkin(h.charlie!, facts(BOUND, { ...loadedBound, lastTransition: { patch: 'fake_bound', seconds: STALLED_SEC + 1, at: clock.now() - 10 * MIN, blockers: [{ pid: 812, comm: 'cat', stack: CAT_STACK }] } }));
    expect((await hostsNow()).charlie.state).toBe('applied');
  });
});

describe('pins', () => {
  it('refusals change nothing: an unknown host, an unknown patch, a patch name of the wrong form', async () => {
    const before = await snapshot(d);
    const r1 = await call(app, clock, admin, 'POST', '/v1/admin/hosts/nohost/pin', { patch: 'fake_cumulative' });
    expect(r1.status).toBe(404);
    expect(r1.json.error).toMatchObject({ code: 'not-found', entity: { type: 'host', id: 'nohost' } });
    const r2 = await call(app, clock, admin, 'POST', '/v1/admin/hosts/delta/pin', { patch: 'never_published' });
    expect(r2.status).toBe(404);
    expect(r2.json.error).toMatchObject({ code: 'not-found', entity: { type: 'bundle', id: 'never_published' } });
    expect((await call(app, clock, admin, 'POST', '/v1/admin/hosts/delta/pin', { patch: '../x' })).status).toBe(400);
    expect((await call(app, clock, h.delta!, 'POST', '/v1/admin/hosts/delta/pin', { patch: 'fake_cumulative' })).status).toBe(403);
    expect(await snapshot(d)).toEqual(before);
  });

  it('a host pinned to another patch is skipped by a rollout, and its report says so; unpinned, the next rollout takes it', async () => {
    const p = await call(app, clock, admin, 'POST', '/v1/admin/hosts/delta/pin', { patch: 'fake_cumulative' });
    expect(p.json).toEqual({ hostId: h.delta!.hostId, name: 'delta', pin: 'fake_cumulative' });
    expect((await hostsNow()).delta.pin).toBe('fake_cumulative');
    for (const x of ['alpha', 'bravo', 'charlie', 'delta']) await checkin(h[x]!, x === 'alpha' || x === 'charlie' ? facts(BOUND, loadedBound) : facts(BOUND));
    const r = await call(app, clock, admin, 'POST', '/v1/admin/rollouts', { name: 'fake_bound', channel: 'stable', stages: '100%', soakSec: 120, maxFailures: 2, delaySec: 0 });
    expect(r.status, JSON.stringify(r.json)).toBe(200);
    const rid = r.json.id;
    expect(r.json.targets.map((t: { hostId: string }) => t.hostId).sort()).toEqual([h.alpha!.hostId, h.bravo!.hostId, h.charlie!.hostId].sort());
    expect(r.json.report.pinned).toEqual([{ hostId: h.delta!.hostId, name: 'delta', patch: 'fake_cumulative' }]);
    expect((await checkin(h.delta!)).json.assignment).toBeNull();

    // alpha applies in 2 ms; charlie in 45 s, held up by cat; bravo fails
    clock.advance(MIN);
    await checkin(h.alpha!, facts(BOUND, { ...loadedBound, lastTransition: { patch: 'fake_bound', seconds: 0.002, at: clock.now(), blockers: [] } }), [{ rolloutId: rid, action: 'install', outcome: 'applied', reason: null }]);
    await checkin(h.charlie!, facts(BOUND, { ...loadedBound, lastTransition: { patch: 'fake_bound', seconds: 45, at: clock.now() - 1000, blockers: [{ pid: 812, comm: 'cat', stack: CAT_STACK }] } }), [{ rolloutId: rid, action: 'install', outcome: 'applied', reason: null }]);
    await checkin(h.bravo!, facts(BOUND, { lastTransition: { patch: 'fake_bound', seconds: 60, at: clock.now(), blockers: [{ pid: 77, comm: 'cat', stack: CAT_STACK }] } }), [{ rolloutId: rid, action: 'install', outcome: 'failed', reason: 'transition not complete within 60 s: reversed and removed' }]);
    clock.advance(3 * MIN);
    for (const x of ['alpha', 'charlie']) await checkin(h[x]!, facts(BOUND, loadedBound));
    const s = (await call(app, clock, admin, 'GET', `/v1/admin/rollouts/${rid}`)).json;
    const rep = s.report;
    expect(rep.byState).toEqual({ healthy: 2, 'rolled-back': 1 }); // bravo's facts show it gone already
    expect(rep.failures).toEqual([{ hostId: h.bravo!.hostId, name: 'bravo', reason: 'transition not complete within 60 s: reversed and removed', at: clock.now() - 3 * MIN }]);
    expect(rep.transitions).toMatchObject({ count: 3, p50: 45, max: 60 });
    expect(rep.transitions.buckets.filter((b: { count: number }) => b.count)).toEqual([
      { le: 0.01, count: 1 },
      { le: 60, count: 2 },
    ]);
    // one blocking task, the same stack on two hosts: grouped, both named
    expect(rep.blockers).toEqual([{ comm: 'cat', stack: CAT_STACK, hosts: ['bravo', 'charlie'] }]);
    // the series: 3 assigned, then 2 applied + 1 failed, then 2 healthy
    expect(rep.series.map((p: any) => [p.assigned, p.applied, p.healthy, p.failed])).toEqual([
      [3, 0, 0, 0],
      [3, 2, 0, 1],
      [3, 2, 2, 1],
    ]);
    expect((await hostsNow()).bravo.state).toBe('failed');
    expect((await hostsNow()).bravo.stateReason).toBe(`rollout ${rid}: transition not complete within 60 s: reversed and removed`);

    const u = await call(app, clock, admin, 'POST', `/v1/admin/hosts/${h.delta!.hostId}/unpin`, {});
    expect(u.json).toEqual({ hostId: h.delta!.hostId, name: 'delta', pin: null });
    await call(app, clock, admin, 'POST', `/v1/admin/rollouts/${rid}/abort`, {});
    await checkin(h.delta!);
    const r2 = await call(app, clock, admin, 'POST', '/v1/admin/rollouts', { name: 'fake_cumulative', channel: 'stable', stages: '100%', soakSec: 0, maxFailures: 1, delaySec: 0 });
    expect(r2.json.targets.map((t: { hostId: string }) => t.hostId)).toContain(h.delta!.hostId);
    expect(r2.json.report.pinned).toEqual([]);
    await call(app, clock, admin, 'POST', `/v1/admin/rollouts/${r2.json.id}/abort`, {});
  });

  it('a host pinned to the rollout\'s own patch is taken', async () => {
    await call(app, clock, admin, 'POST', '/v1/admin/hosts/delta/pin', { patch: 'fake_cumulative' });
    for (const x of ['alpha', 'charlie', 'delta']) await checkin(h[x]!, facts(BOUND));
    const r = await call(app, clock, admin, 'POST', '/v1/admin/rollouts', { name: 'fake_cumulative', channel: 'stable', stages: '100%', soakSec: 0, maxFailures: 1, delaySec: 0 });
    expect(r.json.targets.map((t: { hostId: string }) => t.hostId)).toContain(h.delta!.hostId);
    expect(r.json.report.pinned).toEqual([]);
    await call(app, clock, admin, 'POST', `/v1/admin/rollouts/${r.json.id}/abort`, {});
    await call(app, clock, admin, 'POST', '/v1/admin/hosts/delta/unpin', {});
  });
});

describe('CVEs', () => {
  it('per CVE: covered where a bundle carrying it is loaded for the host\'s build; the others named with why', async () => {
    await checkin(h.alpha!, facts(BOUND, loadedBound));
    await checkin(h.echo!, facts(OTHER, { loaded: [{ name: 'fake_bound', sha256: null }] })); // same name, another build: not covered
    const r = (await call(app, clock, admin, 'GET', '/v1/admin/cves')).json;
    expect(r.cves.map((c: { id: string }) => c.id)).toEqual(['CVE-0000-0010', 'CVE-0000-0011', 'CVE-0000-0012']);
    const c = r.cves[0];
    expect(c.bundles.map((b: { name: string }) => b.name).sort()).toEqual(['fake_bound', 'fake_cumulative']);
    expect(c.covered.map((x: { name: string }) => x.name)).toContain('alpha');
    const why = Object.fromEntries(c.notCovered.map((x: { name: string; reason: string }) => [x.name, x.reason]));
    expect(why.echo).toBe(`no bundle carrying CVE-0000-0010 is published for its kernel (6.1.0-56-amd64, build ${OTHER}): it needs a reboot into a kernel that has one`);
    expect(why.foxtrot).toBe('never checked in');
    expect(why.delta).toBe('fake_bound or fake_cumulative (for its kernel) is not loaded');
    expect(c.covered.length + c.notCovered.length).toBe(7);
  });
});

describe('distribution', () => {
  it('percentiles and buckets', () => {
    expect(distribution([])).toMatchObject({ count: 0, p50: null, max: null });
    const x = distribution([0.002, 0.003, 1.5, 45, 400]);
    expect(x).toMatchObject({ count: 5, p50: 1.5, p90: 400, max: 400 });
    expect(x.buckets.at(-1)).toEqual({ le: null, count: 1 });
    expect(x.buckets.reduce((a, b) => a + b.count, 0)).toBe(5);
  });
});
