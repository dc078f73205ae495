// SPDX-License-Identifier: GPL-2.0-only
/**
 * The fleet server on a real PostgreSQL (Debian's `postgresql` package,
 * started here by initdb/pg_ctl on a private port and socket directory under
 * a temporary directory) with TWO server processes (`suture server`, from
 * source) sharing it: hosts check in through both at once, both tick every
 * 100 ms, two rollouts of the same build race for the same hosts. Then the
 * database shows each stage started once, no host in two rollouts, every
 * host healthy exactly once, and the host pinned to another patch in neither.
 * Both hand out at most 2 hosts per tick; a stage of 24 hosts is handed out
 * over several ticks, both servers killed in the middle of it and started
 * again: the hand-out goes on where it stopped, the stage is not started
 * again, no host is taken twice, and the rollout ends only with all 24.
 * A host's result is not held up by a hand-out holding the rollout's row
 * (FOR NO KEY UPDATE), and is by an admin action or a halt (FOR UPDATE); one
 * that read its target before such a change does not write over it. A replayed
 * check-in is refused by either server with nothing written.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FleetClient, readIdentityFile } from '../../src/fleet/client.js';
import { openDatabase, type Database } from '../../src/fleet/db.js';
import { newIdentity, signRequest, type CheckinReply } from '../../src/fleet/protocol.js';
import { BOUND, facts, listening, makeBundles, OTHER } from './helpers.js';
import { startPostgres, type PgCluster } from './pg-cluster.js';

const ROOT = join(import.meta.dirname, '..', '..');
const PORT = 25432 + (process.pid % 1000);

let dir: string;
let url: string;
let servers: { p: ChildProcess; base: string }[] = [];
let d: Database;
let pg: PgCluster | undefined;

function cli(args: string[]) {
  return spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'test/fleet/serve.ts'), ...args], { encoding: 'utf8', timeout: 120_000, cwd: ROOT, env: { ...process.env, SUTURE_HOME: dir } });
}

/** Start `suture server` on a free port; resolve with its URL once it listens (bounded). */
function startServer(tickMs = 100): Promise<{ p: ChildProcess; base: string }> {
  const p = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'test/fleet/serve.ts'), 'server', '--listen', '127.0.0.1:0', '--database', url, '--tick', String(tickMs), '--hand-out-batch', '2'], { cwd: ROOT, env: { ...process.env, SUTURE_HOME: dir }, stdio: ['ignore', 'ignore', 'pipe'] });
  return listening(p).then((base) => ({ p, base }));
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'suture-fleet-pg-'));
  pg = startPostgres(dir, PORT, ['fsync=off']);
  url = pg.url;
  const init = cli(['server', 'init', '--database', url, '--json']);
  expect(init.status, init.stderr).toBe(0);
  servers = await Promise.all([startServer(), startServer()]);
  d = openDatabase(url);
}, 180_000);

afterAll(async () => {
  for (const s of servers) s.p.kill('SIGTERM');
  await d?.db.destroy();
  pg?.stop();
});

describe('two server processes on one PostgreSQL', () => {
  it('race to advance the same rollouts: each stage starts once, no host in two rollouts, all done', async () => {
    const adminId = readIdentityFile(join(dir, 'server', 'admin.key'));
    const [A, B] = servers.map((s) => new FleetClient(s.base, adminId));
    const bundles = makeBundles();
    // eight hosts enrol, half through each server
    const hosts: { id: ReturnType<typeof newIdentity>; via: FleetClient[]; has: boolean }[] = [];
    for (let i = 0; i < 8; i++) {
      const srv = i % 2 ? A! : B!;
      const tok = (await srv.request('POST', '/v1/admin/enroll-tokens', { expiresSec: 600 })) as { token: string };
      const id = newIdentity();
      const c = new FleetClient(servers[i % 2]!.base, id);
      await c.request('POST', '/v1/enroll', { token: tok.token, publicKey: id.publicKey, name: `pg${i}` });
      hosts.push({ id, via: [new FleetClient(servers[0]!.base, id), new FleetClient(servers[1]!.base, id)], has: false });
    }
    const checkinAll = () =>
      Promise.all(
        hosts.map(async (h, i) => {
          const c = h.via[(i + Math.floor(Math.random() * 2)) % 2]!;
          const f = h.has ? facts(BOUND, { loaded: [{ name: 'fake_bound', sha256: null }], installed: [{ name: 'fake_bound', sha256: null }] }) : facts(BOUND);
          const r = (await c.request('POST', '/v1/checkin', { facts: f, results: [] })) as CheckinReply;
          if (r.assignment?.action === 'install' && !h.has) {
            h.has = true;
            await h.via[(i + 1) % 2]!.request('POST', '/v1/checkin', { facts: facts(BOUND, { loaded: [{ name: 'fake_bound', sha256: null }], installed: [] }), results: [{ rolloutId: r.assignment.rolloutId, action: 'install', outcome: 'applied', reason: null }] });
          }
        }),
      );
    await checkinAll();
    await A!.request('POST', '/v1/admin/bundles?channel=stable', bundles.bound);
    // pg7 is pinned to another patch: both rollouts skip it, and say so
    await A!.request('POST', '/v1/admin/bundles?channel=stable', bundles.cumulative);
    await B!.request('POST', '/v1/admin/hosts/pg7/pin', { patch: 'fake_cumulative' });
    // two rollouts of the same build, created at once through the two servers, race for the same hosts
    const req = { name: 'fake_bound', channel: 'stable', stages: '1,50%,100%', soakSec: 0, maxFailures: 1, delaySec: 0 };
    const [r1, r2] = (await Promise.all([A!.request('POST', '/v1/admin/rollouts', req), B!.request('POST', '/v1/admin/rollouts', req)])) as { id: string }[];
    for (let round = 0; round < 40; round++) {
      await checkinAll();
      const st = (await Promise.all([r1!, r2!].map((r) => A!.request('GET', `/v1/admin/rollouts/${r.id}`)))) as { status: string }[];
      if (st.every((s) => s.status === 'done')) break;
      await new Promise((r) => setTimeout(r, 150));
    }
    const rows = await d.db.selectFrom('rollout_targets').selectAll().execute();
    const rollouts = await d.db.selectFrom('rollouts').select(['id', 'status']).orderBy('id').execute();
    expect(rollouts.map((r) => r.status)).toEqual(['done', 'done']);
    // every host got the bundle, healthy; a host is in a second rollout only after the first one finished with it
    expect(new Set(rows.map((r) => r.host_id)).size).toBe(7);
    const pg7 = (await d.db.selectFrom('hosts').select('id').where('name', '=', 'pg7').executeTakeFirstOrThrow()).id;
    expect(rows.some((r) => r.host_id === pg7)).toBe(false);
    for (const r of [r1!, r2!]) expect(((await A!.request('GET', `/v1/admin/rollouts/${r.id}`)) as { report: { pinned: unknown } }).report.pinned).toEqual([{ hostId: pg7, name: 'pg7', patch: 'fake_cumulative' }]);
    expect(rows.every((r) => r.state === 'healthy')).toBe(true);
    const doneAt = new Map((await d.db.selectFrom('rollout_events').select(['rollout_id', 'at']).where('text', 'like', 'done:%').execute()).map((e) => [e.rollout_id, e.at]));
    for (const h of new Set(rows.map((r) => r.host_id))) {
      const mine = rows.filter((r) => r.host_id === h).sort((x, y) => x.assigned_at - y.assigned_at);
      for (let i = 1; i < mine.length; i++) expect(mine[i]!.assigned_at, h).toBeGreaterThanOrEqual(doneAt.get(mine[i - 1]!.rollout_id)!);
    }
    expect(await d.db.selectFrom('host_active').selectAll().execute()).toEqual([]);
    // each stage of each rollout started once; "done" once
    for (const r of [r1!, r2!]) {
      const log = (await d.db.selectFrom('rollout_events').select('text').where('rollout_id', '=', r.id).orderBy('id').execute()).map((e) => e.text);
      const started = log.filter((l) => /^stage \d\/3 .* started/.test(l));
      expect(new Set(started.map((l) => l.slice(0, 9))).size, log.join('\n')).toBe(started.length);
      expect(log.filter((l) => l.startsWith('done:'))).toHaveLength(1);
    }
    const applied = await d.db.selectFrom('rollout_events').select('text').where('text', 'like', '%applied the bundle%').execute();
    expect(applied).toHaveLength(rows.length);
  }, 240_000);

  it('hand out a stage over several ticks; both killed in the middle of it and started again, they go on where they stopped', async () => {
    const adminId = readIdentityFile(join(dir, 'server', 'admin.key'));
    const admin = () => new FleetClient(servers[0]!.base, adminId);
    // 24 new hosts of another kernel build (the first test's hosts and rollouts stay out of it)
    const hosts: { c: () => FleetClient; i: number; has: boolean; hostId: string }[] = [];
    for (let i = 0; i < 24; i++) {
      const tok = (await admin().request('POST', '/v1/admin/enroll-tokens', { expiresSec: 600 })) as { token: string };
      const id = newIdentity();
      const r = (await new FleetClient(servers[i % 2]!.base, id).request('POST', '/v1/enroll', { token: tok.token, publicKey: id.publicKey, name: `ho${i}` })) as { hostId: string };
      hosts.push({ c: () => new FleetClient(servers[i % 2]!.base, id), i, has: false, hostId: r.hostId });
    }
    const checkinAll = () =>
      Promise.all(
        hosts.map(async (h) => {
          const f = h.has ? facts(OTHER, { loaded: [{ name: 'fake_rebuild', sha256: null }], installed: [{ name: 'fake_rebuild', sha256: null }] }) : facts(OTHER);
          const r = (await h.c().request('POST', '/v1/checkin', { facts: f, results: [] })) as CheckinReply;
          if (r.assignment?.action === 'install' && !h.has) {
            h.has = true;
            await h.c().request('POST', '/v1/checkin', { facts: facts(OTHER, { loaded: [{ name: 'fake_rebuild', sha256: null }], installed: [] }), results: [{ rolloutId: r.assignment.rolloutId, action: 'install', outcome: 'applied', reason: null }] });
          }
        }),
      );
    // restart both servers ticking every 400 ms, so that the hand-out (2 hosts a tick) takes a few seconds
    for (const s of servers) s.p.kill('SIGTERM');
    servers = await Promise.all([startServer(400), startServer(400)]);
    await checkinAll();
    await admin().request('POST', '/v1/admin/bundles?channel=stable', makeBundles().rebuild);
    const { id: rid } = (await admin().request('POST', '/v1/admin/rollouts', { name: 'fake_rebuild', channel: 'stable', stages: '100%', soakSec: 0, maxFailures: 1, delaySec: 0 })) as { id: string };
    const count = async () => (await d.db.selectFrom('rollout_targets').select('host_id').where('rollout_id', '=', rid).execute()).length;
    let n = 0;
    for (let i = 0; i < 200 && (n = await count()) < 6; i++) await new Promise((r) => setTimeout(r, 20));
    // killed in the middle of the hand-out (any transaction open then is rolled back by PostgreSQL)
    for (const s of servers) s.p.kill('SIGKILL');
    await Promise.all(servers.map((s) => new Promise((r) => (s.p.exitCode !== null || s.p.signalCode !== null ? r(null) : s.p.once('exit', r)))));
    n = await count();
    expect(n).toBeGreaterThanOrEqual(6);
    expect(n).toBeLessThan(24);
    const row = await d.db.selectFrom('rollouts').select(['status', 'stage', 'stage_size']).where('id', '=', rid).executeTakeFirstOrThrow();
    expect(row).toEqual({ status: 'running', stage: 0, stage_size: 24 });
    servers = await Promise.all([startServer(), startServer()]);
    for (let round = 0; round < 60; round++) {
      await checkinAll();
      if (((await admin().request('GET', `/v1/admin/rollouts/${rid}`)) as { status: string }).status === 'done') break;
      await new Promise((r) => setTimeout(r, 150));
    }
    const rows = await d.db.selectFrom('rollout_targets').select(['host_id', 'state', 'stage']).where('rollout_id', '=', rid).execute();
    expect(rows).toHaveLength(24);
    expect(new Set(rows.map((r) => r.host_id))).toEqual(new Set(hosts.map((h) => h.hostId)));
    expect(rows.every((r) => r.state === 'healthy' && r.stage === 0)).toBe(true);
    const log = (await d.db.selectFrom('rollout_events').select('text').where('rollout_id', '=', rid).orderBy('id').execute()).map((e) => e.text);
    // started once; every later tick gave the same stage at most 2 more hosts; 24 in all; done once
    expect(log.filter((l) => l.includes(' started: ')), log.join('\n')).toEqual(['stage 1/1 (100%) started: 2 hosts assigned, 2 of 24 in all']);
    const more = log.filter((l) => /^stage 1\/1: \d+ more hosts? assigned/.test(l)).map((l) => Number(/: (\d+) more/.exec(l)![1]));
    expect(more.every((x) => x >= 1 && x <= 2)).toBe(true);
    expect(2 + more.reduce((a, x) => a + x, 0)).toBe(24);
    expect(log.filter((l) => l.startsWith('done:'))).toEqual(['done: 24 hosts healthy']);
    expect(await d.db.selectFrom('host_active').selectAll().where('rollout_id', '=', rid).execute()).toEqual([]);
  }, 240_000);

  it('a host\'s result does not wait for a hand-out holding the rollout row; it waits for an exclusive lock (admin, halt)', async () => {
    const adminId = readIdentityFile(join(dir, 'server', 'admin.key'));
    const admin = new FleetClient(servers[0]!.base, adminId);
    const hosts: FleetClient[] = [];
    const hostIds: string[] = [];
    for (const name of ['locks-a', 'locks-b', 'locks-c']) {
      const tok = (await admin.request('POST', '/v1/admin/enroll-tokens', { expiresSec: 600 })) as { token: string };
      const id = newIdentity();
      const host = new FleetClient(servers[1]!.base, id);
      hostIds.push(((await host.request('POST', '/v1/enroll', { token: tok.token, publicKey: id.publicKey, name, channel: 'testing' })) as { hostId: string }).hostId);
      await host.request('POST', '/v1/checkin', { facts: facts(OTHER), results: [] });
      hosts.push(host);
    }
    await admin.request('POST', '/v1/admin/bundles?channel=testing', makeBundles().rebuild);
    // a long soak: an applied result leaves its target unsettled (a settled last target would tick at once, and wait)
    const { id: rid } = (await admin.request('POST', '/v1/admin/rollouts', { name: 'fake_rebuild', channel: 'testing', stages: '3', soakSec: 600, maxFailures: 1, delaySec: 0 })) as { id: string };
    const states = async () => (await d.db.selectFrom('rollout_targets').select('state').where('rollout_id', '=', rid).execute()).map((t) => t.state).sort();
    for (let i = 0; i < 100 && (await states()).length < 3; i++) await new Promise((r) => setTimeout(r, 50));
    expect(await states()).toEqual(['assigned', 'assigned', 'assigned']);
    const applied = { facts: facts(OTHER, { loaded: [{ name: 'fake_rebuild', sha256: null }], installed: [{ name: 'fake_rebuild', sha256: null }] }), results: [{ rolloutId: rid, action: 'install', outcome: 'applied', reason: null }] };
    /** Hold the rollout's row in one mode while `during` runs; then let go. */
    const holding = (mode: 'forNoKeyUpdate' | 'forUpdate', during: () => Promise<void>) =>
      d.db.transaction().execute(async (tx) => {
        await tx.selectFrom('rollouts').select('id').where('id', '=', rid)[mode]().execute();
        await during();
      });
    // a hand-out's lock: the first host's applied result goes through at once
    await holding('forNoKeyUpdate', async () => {
      const t0 = performance.now();
      await hosts[0]!.request('POST', '/v1/checkin', applied);
      expect(performance.now() - t0).toBeLessThan(1500);
      expect(await states()).toEqual(['applied', 'assigned', 'assigned']);
    });
    // an exclusive lock: the second host's waits until it is let go
    let done = false;
    let reply: Promise<unknown> | undefined;
    await holding('forUpdate', async () => {
      reply = hosts[1]!.request('POST', '/v1/checkin', applied).then(() => (done = true));
      await new Promise((r) => setTimeout(r, 1500));
      expect(done).toBe(false);
      expect(await states()).toEqual(['applied', 'assigned', 'assigned']);
    });
    await reply;
    expect(await states()).toEqual(['applied', 'applied', 'assigned']);
    // A host's result read its target before a change that holds the rollout exclusively (here: the third host's
    // target cancelled, as an abort does) and is written after it: it finds the target changed and writes
    // nothing over it (it runs again under the locks, where 'applied' does not apply to a cancelled target).
    await d.db.transaction().execute(async (tx) => {
      await tx.selectFrom('rollouts').select('id').where('id', '=', rid).forUpdate().execute();
      reply = hosts[2]!.request('POST', '/v1/checkin', applied);
      await new Promise((r) => setTimeout(r, 1000));
      await tx.updateTable('rollout_targets').set({ state: 'cancelled' }).where('rollout_id', '=', rid).where('host_id', '=', hostIds[2]!).execute();
    });
    expect(((await reply) as CheckinReply).assignment).toBeNull();
    expect(await states()).toEqual(['applied', 'applied', 'cancelled']);
  }, 120_000);

  it('a replayed check-in is refused by either server, having written nothing (its nonce is recorded in the check-in\'s own statement)', async () => {
    const admin = new FleetClient(servers[0]!.base, readIdentityFile(join(dir, 'server', 'admin.key')));
    const tok = (await admin.request('POST', '/v1/admin/enroll-tokens', { expiresSec: 600 })) as { token: string };
    const id = newIdentity();
    const { hostId } = (await new FleetClient(servers[0]!.base, id).request('POST', '/v1/enroll', { token: tok.token, publicKey: id.publicKey, name: 'replayed', channel: 'replay' })) as { hostId: string };
    const signed = (uptimeSec: number) => {
      const raw = Buffer.from(JSON.stringify({ facts: facts(OTHER, { uptimeSec }), results: [] }));
      return { raw, headers: { ...signRequest(id, 'POST', '/v1/checkin', raw), 'content-type': 'application/json' } };
    };
    const send = (base: string, r: ReturnType<typeof signed>) => fetch(`${base}/v1/checkin`, { method: 'POST', headers: r.headers, body: r.raw });
    const uptime = async () => (JSON.parse((await d.db.selectFrom('hosts').select('facts').where('id', '=', hostId).executeTakeFirstOrThrow()).facts!) as { uptimeSec: number }).uptimeSec;
    const first = signed(111);
    expect((await send(servers[0]!.base, first)).status).toBe(200);
    expect((await send(servers[1]!.base, signed(222))).status).toBe(200);
    expect(await uptime()).toBe(222);
    for (const s of servers) {
      const again = await send(s.base, first);
      expect(again.status).toBe(401);
      expect(((await again.json()) as { error: { message: string } }).error.message).toMatch(/was used already: a replayed request/);
    }
    expect(await uptime()).toBe(222);
  }, 60_000);
});
