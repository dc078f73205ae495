// SPDX-License-Identifier: GPL-2.0-only
/**
 * The fleet server's HTTP API through Fastify's inject (no socket) on SQLite,
 * with real signed bundles of gcc-built fake livepatch modules: enrolment,
 * publish, check-ins, a staged rollout to done, a canary that halts and rolls
 * back; then bad requests on every endpoint, each refused with nothing changed.
 * The dashboard's hosts page in pages of 100, and its login limit per address.
 * A rollout of 250 hosts read in pages (API and dashboard), its report summed
 * by the database (the same as summed here from every value).
 */
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate, type Database } from '../../src/fleet/db.js';
import { newIdentity, signRequest, type Identity } from '../../src/fleet/protocol.js';
import { apiOnSqlite, BOUND, call, type Clock, enrollHost, facts, makeBundles, OTHER, send, snapshot } from './helpers.js';
import { HOSTS_PAGE, LOGIN_LIMIT } from '../../src/fleet/dashboard.js';
import { distribution, SERIES_POINTS } from '../../src/fleet/reports.js';
import { Sessions } from '../../src/fleet/sessions.js';

const MIN = 60_000;
let d: Database;
let app: FastifyInstance;
let clock: Clock;
let admin: Identity;
let bundles: ReturnType<typeof makeBundles>;
let hosts: (Identity & { hostId: string })[];
let other: Identity & { hostId: string };
let boundId: string;

beforeAll(async () => {
  bundles = makeBundles();
  let migrated: string[];
  ({ d, app, clock, admin, migrated } = await apiOnSqlite('suture-fleet-db-'));
  expect(migrated).toEqual(['0001-fleet', '0002-reports-pins', '0003-dashboard', '0004-stage-size', '0005-rollout-pages']);
  expect(await migrate(d)).toEqual([]); // a second migration does nothing
});
afterAll(async () => {
  await app?.close();
  await d?.db.destroy();
});

const checkin = (h: Identity, f = facts(BOUND), results: unknown[] = []) => call(app, clock, h, 'POST', '/v1/checkin', { facts: f, results });
const loaded = (name = 'fake_bound') => facts(BOUND, { loaded: [{ name, sha256: null }], installed: [{ name, sha256: null }] });

describe('enrol, publish, check in', () => {
  it('hosts enrol with one-time tokens and their own keys', async () => {
    hosts = [];
    for (const n of ['web1', 'web2', 'web3', 'web4']) hosts.push(await enrollHost(app, clock, admin, n));
    other = await enrollHost(app, clock, admin, 'old-kernel');
    expect(new Set(hosts.map((h) => h.hostId)).size).toBe(4);
    expect(hosts[0]!.hostId).toBe(`h-${hosts[0]!.keyId}`);
  });

  it('publish parses the bundle and stores it; hosts check in and get nothing yet', async () => {
    const p = await call(app, clock, admin, 'POST', '/v1/admin/bundles?channel=stable', bundles.bound);
    expect(p.status).toBe(200);
    expect(p.json).toMatchObject({ name: 'fake_bound', buildId: BOUND, channel: 'stable', release: '6.1.0-56-amd64' });
    boundId = p.json.id;
    expect((await call(app, clock, admin, 'POST', '/v1/admin/bundles?channel=stable', bundles.rebuild)).status).toBe(200);
    // publishing the same bundle again is idempotent
    expect((await call(app, clock, admin, 'POST', '/v1/admin/bundles?channel=stable', bundles.bound)).json.id).toBe(boundId);
    for (const h of hosts) expect((await checkin(h)).json).toEqual({ hostId: h.hostId, assignment: null, nextCheckinSec: 60 });
    expect((await checkin(other, facts(OTHER))).status).toBe(200);
    const list = await call(app, clock, admin, 'GET', '/v1/admin/hosts');
    expect(list.json.hosts.map((h: { buildId: string }) => h.buildId).sort()).toEqual([OTHER, BOUND, BOUND, BOUND, BOUND]);
  });
});

describe('a staged rollout', () => {
  let rid: string;
  let canary: Identity & { hostId: string };
  it('stage 1 assigns the canary only (matching build ID); its bundle downloads, the other build cannot fetch it', async () => {
    const r = await call(app, clock, admin, 'POST', '/v1/admin/rollouts', { name: 'fake_bound', channel: 'stable', stages: '1,50%,100%', soakSec: 600, maxFailures: 1, delaySec: 0 });
    expect(r.status).toBe(200);
    rid = r.json.id;
    expect(r.json).toMatchObject({ status: 'running', stage: 0, stages: '1,50%,100%', buildId: BOUND });
    expect(r.json.targets).toHaveLength(1);
    canary = hosts.find((h) => h.hostId === r.json.targets[0].hostId)!;
    const a = await checkin(canary);
    expect(a.json.assignment).toEqual({ action: 'install', rolloutId: rid, bundleId: boundId, name: 'fake_bound', path: `/v1/bundles/${boundId}`, soakSec: 600 });
    for (const h of hosts.filter((x) => x !== canary)) expect((await checkin(h)).json.assignment).toBeNull();
    const dl = await call(app, clock, canary, 'GET', `/v1/bundles/${boundId}`);
    expect(dl.status).toBe(200);
    expect(Buffer.compare(dl.body, bundles.bound)).toBe(0);
    const no = await call(app, clock, other, 'GET', `/v1/bundles/${boundId}`);
    expect(no.status).toBe(403);
    expect(no.json.error).toMatchObject({ code: 'forbidden', entity: { type: 'bundle', id: boundId } });
  });

  it('applied, healthy past the soak → stage 2 (50%) → stage 3 → done; a repeated check-in changes nothing', async () => {
    await checkin(canary, loaded(), [{ rolloutId: rid, action: 'install', outcome: 'applied', reason: null }]);
    const snap = await snapshot(d);
    await checkin(canary, loaded(), [{ rolloutId: rid, action: 'install', outcome: 'applied', reason: null }]);
    const after = await snapshot(d);
    expect(after.rollout_targets).toEqual(snap.rollout_targets);
    expect(after.rollout_events).toEqual(snap.rollout_events);
    // Agents: check in; install what is assigned (and say so); every host checks in each minute of the soak.
    const has = new Set([canary.hostId]);
    const stages: number[] = [];
    let s: any;
    for (let round = 0; round < 6; round++) {
      for (let minute = 0; minute <= 10; minute++) {
        for (const h of hosts) {
          const r = await checkin(h, has.has(h.hostId) ? loaded() : facts(BOUND));
          if (r.json.assignment?.action === 'install' && !has.has(h.hostId)) {
            has.add(h.hostId);
            await checkin(h, loaded(), [{ rolloutId: rid, action: 'install', outcome: 'applied', reason: null }]);
          }
        }
        clock.advance(MIN);
      }
      s = (await call(app, clock, admin, 'GET', `/v1/admin/rollouts/${rid}`)).json;
      stages.push(s.stage);
      if (s.status === 'done') break;
    }
    expect(s.status).toBe('done');
    expect(stages).toEqual([1, 2, 2]);
    expect(s.targets.map((t: { stage: number; state: string }) => `${t.stage}:${t.state}`).sort()).toEqual(['0:healthy', '1:healthy', '2:healthy', '2:healthy']);
    expect(s.log.filter((l: { text: string }) => /^stage 2\/3/.test(l.text))).toHaveLength(1);
    expect(s.log.at(-1).text).toBe('done: 4 hosts healthy');
    expect((await checkin(canary, loaded())).json.assignment).toBeNull(); // done: the host is free again
  });

  it('fleet rollouts lists it', async () => {
    const l = await call(app, clock, admin, 'GET', '/v1/admin/rollouts');
    expect(l.json.rollouts.map((r: { id: string; status: string }) => [r.id, r.status])).toEqual([[rid, 'done']]);
    // the server's own request times: every request so far is counted; those since the clock's now only (a real clock: none)
    const st = (await call(app, clock, admin, 'GET', '/v1/admin/stats')).json;
    expect(st.served).toBeGreaterThan(50);
    expect(st.window).toBe(st.served);
    expect(st.p50Ms).toBeGreaterThan(0);
    expect(st.p99Ms).toBeGreaterThanOrEqual(st.p50Ms);
    expect((await call(app, clock, admin, 'GET', `/v1/admin/stats?since=${Date.now() + 3_600_000}`)).json).toMatchObject({ window: 0, p50Ms: null });
  });
});

describe('an unhealthy canary', () => {
  it('halts at --max-failures 1: the canary is told to roll back, the others never get the bundle; pause/resume refused after halt', async () => {
    const r = await call(app, clock, admin, 'POST', '/v1/admin/rollouts', { name: 'fake_bound', channel: 'stable', stages: '1,100%', soakSec: 600, maxFailures: 1, delaySec: 0 });
    const rid = r.json.id;
    const canary = hosts.find((h) => h.hostId === r.json.targets[0].hostId)!;
    await checkin(canary, loaded(), [{ rolloutId: rid, action: 'install', outcome: 'applied', reason: null }]);
    clock.advance(MIN);
    const bad = await checkin(canary, facts(BOUND, { loaded: [{ name: 'fake_bound', sha256: null }], health: { ok: false, reasons: ['WARNING: CPU: 0 PID: 42 at fs/proc/cmdline.c:12'] } }));
    expect(bad.json.assignment).toMatchObject({ action: 'rollback', rolloutId: rid });
    const s = (await call(app, clock, admin, 'GET', `/v1/admin/rollouts/${rid}`)).json;
    expect(s).toMatchObject({ status: 'halted', failures: 1 });
    expect(s.reason).toMatch(/WARNING/);
    expect(s.targets).toHaveLength(1);
    for (const h of hosts.filter((x) => x !== canary)) expect((await checkin(h)).json.assignment).toBeNull();
    const p = await call(app, clock, admin, 'POST', `/v1/admin/rollouts/${rid}/resume`, {});
    expect(p.status).toBe(409);
    expect(p.json.error).toMatchObject({ code: 'conflict', entity: { type: 'rollout', id: rid } });
    // the host removes it and says so: rolled back, free again
    await checkin(canary, facts(BOUND), [{ rolloutId: rid, action: 'rollback', outcome: 'rolled-back', reason: null }]);
    const t = (await call(app, clock, admin, 'GET', `/v1/admin/rollouts/${rid}`)).json.targets[0];
    expect(t).toMatchObject({ state: 'rolled-back', failure: expect.stringMatching(/unhealthy in the soak: WARNING/) });
    expect((await checkin(canary)).json.assignment).toBeNull();
    expect((await call(app, clock, admin, 'POST', `/v1/admin/rollouts/${rid}/abort`, {})).json.status).toBe('aborted');
  });
});

describe('bad requests: refused, nothing changed', () => {
  it('on every endpoint', async () => {
    const h = hosts[1]!;
    const tok = (await call(app, clock, admin, 'POST', '/v1/admin/enroll-tokens', { expiresSec: 3600 })).json.token;
    const rid = (await call(app, clock, admin, 'GET', '/v1/admin/rollouts')).json.rollouts[0].id;
    const before = await snapshot(d);
    const endpoints: [('GET' | 'POST'), string, unknown, Identity][] = [
      ['POST', '/v1/checkin', { facts: facts(BOUND), results: [] }, h],
      ['GET', `/v1/bundles/${boundId}`, undefined, h],
      ['POST', '/v1/admin/enroll-tokens', { expiresSec: 600 }, admin],
      ['POST', '/v1/admin/bundles?channel=stable', bundles.bound, admin],
      ['GET', '/v1/admin/bundles', undefined, admin],
      ['GET', '/v1/admin/hosts', undefined, admin],
      ['GET', '/v1/admin/rollouts', undefined, admin],
      ['POST', '/v1/admin/rollouts', { name: 'fake_bound', channel: 'stable', stages: '1', soakSec: 0, maxFailures: 1, delaySec: 0 }, admin],
      ['GET', `/v1/admin/rollouts/${rid}`, undefined, admin],
      ['POST', `/v1/admin/rollouts/${rid}/rollback`, {}, admin],
      ['GET', '/v1/admin/cves', undefined, admin],
      ['GET', '/v1/admin/stats', undefined, admin],
      ['POST', `/v1/admin/hosts/${h.hostId}/pin`, { patch: 'fake_bound' }, admin],
      ['POST', `/v1/admin/hosts/${h.hostId}/unpin`, {}, admin],
    ];
    const expectRefused = (r: { status: number; json: any }, status: number, code: string, what: string) => {
      expect(r.status, `${what}: ${JSON.stringify(r.json)}`).toBe(status);
      expect(r.json.error.code, what).toBe(code);
      expect(r.json.error.entity.id, what).toBeTruthy();
    };
    for (const [m, url, body, who] of endpoints) {
      // unauthenticated: no signature at all
      expectRefused(await call(app, clock, null, m, url, body), 401, 'unauthenticated', `${m} ${url} unsigned`);
      // forged: signed by a key nobody enrolled
      expectRefused(await call(app, clock, newIdentity(), m, url, body), 401, 'unauthenticated', `${m} ${url} unknown key`);
      // another's identity: a stranger's signature under the real caller's key id
      const stranger = newIdentity();
      expectRefused(
        await call(app, clock, stranger, m, url, body, (hd) => {
          Object.assign(hd, signRequest({ ...stranger, keyId: who.keyId }, m, url, body === undefined ? Buffer.alloc(0) : Buffer.isBuffer(body) ? body : Buffer.from(JSON.stringify(body)), clock.now()));
        }),
        401,
        'unauthenticated',
        `${m} ${url} as another`,
      );
      // a valid signature moved to another body or path
      if (body !== undefined) expectRefused(await call(app, clock, who, m, url, body, (_hd, raw) => Buffer.concat([raw, Buffer.from(' ')])), 401, 'unauthenticated', `${m} ${url} body changed`);
      // a stale time
      const old = await call(app, clock, who, m, url, body, (hd) => {
        Object.assign(hd, signRequest(who, m, url, body === undefined ? Buffer.alloc(0) : Buffer.isBuffer(body) ? body : Buffer.from(JSON.stringify(body)), clock.now() - 10 * MIN));
      });
      expectRefused(old, 401, 'unauthenticated', `${m} ${url} stale`);
      // the wrong role: a host on an admin route, an admin on the check-in
      const wrong = url.startsWith('/v1/admin') ? h : url === '/v1/checkin' ? admin : null;
      if (wrong) expectRefused(await call(app, clock, wrong, m, url, body), 403, 'forbidden', `${m} ${url} wrong role`);
      // oversized
      if (m === 'POST' && !Buffer.isBuffer(body)) expectRefused(await call(app, clock, who, m, url, { pad: 'x'.repeat(300 * 1024) }), 413, 'too-large', `${m} ${url} oversized`);
      // malformed: not JSON; JSON of the wrong shape
      if (m === 'POST' && !Buffer.isBuffer(body)) {
        expectRefused(await call(app, clock, who, m, url, Buffer.from('{"facts":'), (hd) => void (hd['content-type'] = 'application/json')), 400, 'bad-request', `${m} ${url} not JSON`);
        expectRefused(await call(app, clock, who, m, url, { nonsense: 1 }), 400, 'bad-request', `${m} ${url} wrong shape`);
      }
      // an unexpected query parameter
      expectRefused(await call(app, clock, who, m, `${url}${url.includes('?') ? '&' : '?'}x=1`, body), 400, 'bad-request', `${m} ${url} query`);
    }
    // replayed: a well-signed request sent twice (the first one is an allowed read)
    const first = await call(app, clock, admin, 'GET', '/v1/admin/hosts');
    expect(first.status).toBe(200);
    expectRefused(await send(app, 'GET', '/v1/admin/hosts', first.headers, first.raw), 401, 'unauthenticated', 'replay');
    const ck = await call(app, clock, h, 'POST', '/v1/checkin', { facts: facts(BOUND), results: [] });
    expect(ck.status).toBe(200);
    const snap2 = await snapshot(d);
    expectRefused(await send(app, 'POST', '/v1/checkin', ck.headers, ck.raw), 401, 'unauthenticated', 'replayed check-in');
    expect(await snapshot(d)).toEqual(snap2);
    // a bundle for another build ID: the host of build OTHER asks for BOUND's bundle
    expectRefused(await call(app, clock, other, 'GET', `/v1/bundles/${boundId}`), 403, 'forbidden', 'other build');
    // a tampered bundle: one byte of the module changed (SHA256SUMS no longer matches)
    const bad = Buffer.from(bundles.bound);
    bad[bad.length - 2048] ^= 1;
    const t = await call(app, clock, admin, 'POST', '/v1/admin/bundles?channel=stable', bad);
    expectRefused(t, 422, 'invalid-bundle', 'tampered');
    expect(t.json.error.message).toMatch(/changed after it was signed|not|damaged/);
    expectRefused(await call(app, clock, admin, 'POST', '/v1/admin/bundles?channel=stable', Buffer.from('not a tar')), 422, 'invalid-bundle', 'garbage bundle');
    // a rollout of a bundle that does not exist; bad stages
    expectRefused(await call(app, clock, admin, 'POST', '/v1/admin/rollouts', { name: 'nope', channel: 'stable', stages: '1', soakSec: 0, maxFailures: 1, delaySec: 0 }), 404, 'not-found', 'no bundle');
    expectRefused(await call(app, clock, admin, 'POST', '/v1/admin/rollouts', { name: 'fake_bound', channel: 'stable', stages: '0,200%', soakSec: 0, maxFailures: 1, delaySec: 0 }), 400, 'bad-request', 'bad stages');
    expectRefused(await call(app, clock, admin, 'GET', '/v1/admin/rollouts/r-0000000000000000'), 404, 'not-found', 'no rollout');
    // enrolment: a token not made here, an existing key, a key that did not sign it
    const k = newIdentity();
    expectRefused(await call(app, clock, k, 'POST', '/v1/enroll', { token: `st_${'A'.repeat(43)}`, publicKey: k.publicKey, name: 'x' }), 401, 'unauthenticated', 'unknown token');
    expectRefused(await call(app, clock, h, 'POST', '/v1/enroll', { token: tok, publicKey: h.publicKey, name: 'x' }), 409, 'conflict', 'key enrolled already');
    expectRefused(await call(app, clock, newIdentity(), 'POST', '/v1/enroll', { token: tok, publicKey: k.publicKey, name: 'x' }), 401, 'unauthenticated', 'not signed by the enrolled key');
    // pins: an unknown host, an unpublished patch
    expectRefused(await call(app, clock, admin, 'POST', '/v1/admin/hosts/h-00000000000000000000000000000000/pin', { patch: 'fake_bound' }), 404, 'not-found', 'pin: no host');
    expectRefused(await call(app, clock, admin, 'POST', `/v1/admin/hosts/${h.hostId}/pin`, { patch: 'never_published' }), 404, 'not-found', 'pin: no bundle');
    // the dashboard: pages without a session go to the login page; forms without a session, or with a bad login, change nothing
    const page = await app.inject({ method: 'GET', url: '/dashboard/hosts' });
    expect([page.statusCode, page.headers.location]).toEqual([303, '/dashboard/login']);
    const form = (url: string, payload: string, headers: Record<string, string> = {}) => app.inject({ method: 'POST', url, headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, payload });
    expect((await form(`/dashboard/rollouts/${rid}/abort`, 'csrf=x')).statusCode).toBe(403);
    expect((await form('/dashboard/logout', 'csrf=x')).statusCode).toBe(403);
    expect((await form('/dashboard/login', 'user=admin&password=wrong-password-here')).statusCode).toBe(401);
    expect((await form('/dashboard/login', 'user=admin&password=x', { origin: 'http://evil.example' })).statusCode).toBe(403);
    expect((await form('/dashboard/login', `user=${'x'.repeat(9000)}`)).statusCode).toBe(413);
    expect((await form('/v1/checkin', 'facts=1')).statusCode).toBe(400); // a form body on an API route
    expect(await snapshot(d)).toEqual(before);
    // the token is still good for one enrolment, and only one
    expect((await call(app, clock, k, 'POST', '/v1/enroll', { token: tok, publicKey: k.publicKey, name: 'x' })).status).toBe(200);
    const k2 = newIdentity();
    expectRefused(await call(app, clock, k2, 'POST', '/v1/enroll', { token: tok, publicKey: k2.publicKey, name: 'y' }), 409, 'conflict', 'token used');
  });
});

describe('dashboard: the hosts page pages; logins are limited per address', () => {
  const PASSWORD = 'correct horse battery staple';
  let a: Awaited<ReturnType<typeof apiOnSqlite>>;
  let cookie = '';
  const login = (remoteAddress: string, password: string) =>
    a.app.inject({ method: 'POST', url: '/dashboard/login', remoteAddress, headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: new URLSearchParams({ user: 'ops', password }).toString() });
  const get = (url: string) => a.app.inject({ method: 'GET', url, headers: { cookie } });

  beforeAll(async () => {
    a = await apiOnSqlite('suture-fleet-dash-');
    await new Sessions(a.d, a.clock.now).setUser('ops', PASSWORD);
    // one a millisecond: the page lists hosts in enrolment order
    for (let i = 0; i < 250; i++, a.clock.advance(1)) await enrollHost(a.app, a.clock, a.admin, `p-${String(i).padStart(3, '0')}`);
    const r = await login('192.0.2.1', PASSWORD);
    expect(r.statusCode).toBe(303);
    cookie = String(r.headers['set-cookie']).split(';')[0]!;
  });

  it(`250 hosts: ${HOSTS_PAGE} a page, with links; the query limited in SQL; a page past the end or not a number refused`, async () => {
    const rows = (body: string) => [...body.matchAll(/<td title="h-[0-9a-f]+">(p-\d+)<\/td>/g)].map((m) => m[1]);
    const p1 = await get('/dashboard/hosts');
    expect(p1.statusCode).toBe(200);
    expect(rows(p1.body)).toEqual(Array.from({ length: 100 }, (_, i) => `p-${String(i).padStart(3, '0')}`));
    expect(p1.body).toContain('Hosts 1–100 of 250, page 1 of 3.');
    expect(p1.body).toContain('<a href="/dashboard/hosts?page=2" rel="next">Next</a><a href="/dashboard/hosts?page=3">Last</a>');
    expect(p1.body).not.toContain('rel="prev"');
    const p3 = await get('/dashboard/hosts?page=3');
    expect(rows(p3.body)).toEqual(Array.from({ length: 50 }, (_, i) => `p-${200 + i}`));
    expect(p3.body).toContain('Hosts 201–250 of 250, page 3 of 3.');
    expect(p3.body).toContain('<a href="/dashboard/hosts?page=1">First</a><a href="/dashboard/hosts?page=2" rel="prev">Previous</a>');
    expect(p3.body).not.toContain('rel="next"');
    expect(rows((await get('/dashboard/hosts?page=2')).body)[0]).toBe('p-100');
    // the service reads one page only
    expect((await a.fleet.listHosts({ offset: 240, limit: 100 })).map((h) => h.name)).toEqual(Array.from({ length: 10 }, (_, i) => `p-${240 + i}`));
    const past = await get('/dashboard/hosts?page=4');
    expect(past.statusCode).toBe(404);
    expect(past.body).toContain('there is no page 4 of hosts: 250 hosts fill 3 pages of 100');
    for (const bad of ['0', 'abc', '1e3', '-1']) {
      const r = await get(`/dashboard/hosts?page=${bad}`);
      expect(r.statusCode, bad).toBe(400);
      expect(r.body).toContain(`page ${bad} is not a page number`);
    }
  });

  it('a rollout of the 250 hosts: its hosts and its log in pages (API, dashboard), its report summed by the database', async () => {
    const adminCall = (url: string) => call(a.app, a.clock, a.admin, 'GET', url);
    expect((await call(a.app, a.clock, a.admin, 'POST', '/v1/admin/bundles?channel=stable', makeBundles().bound)).status).toBe(200);
    const keys = new Map<string, Identity>();
    // 250 more hosts that check in (those above never did: no kernel build, no rollout for them)
    for (let i = 0; i < 250; i++) {
      const h = await enrollHost(a.app, a.clock, a.admin, `q-${String(i).padStart(3, '0')}`);
      keys.set(h.hostId, h);
      expect((await call(a.app, a.clock, h, 'POST', '/v1/checkin', { facts: facts(BOUND), results: [] })).status).toBe(200);
    }
    const created = await call(a.app, a.clock, a.admin, 'POST', '/v1/admin/rollouts', { name: 'fake_bound', channel: 'stable', stages: '100%', soakSec: 0, maxFailures: 1, delaySec: 0 });
    expect(created.status).toBe(200);
    const rid = created.json.id as string;
    // every host applies it at its own millisecond, with its own transition time: 251 times, more than a series' points
    const seconds: number[] = [];
    let i = 0;
    for (const [hostId, h] of keys) {
      a.clock.advance(1);
      const sec = (++i) * 0.01;
      seconds.push(sec);
      const f = facts(BOUND, { loaded: [{ name: 'fake_bound', sha256: null }], installed: [{ name: 'fake_bound', sha256: null }], lastTransition: { patch: 'fake_bound', seconds: sec, at: a.clock.now(), blockers: [] } });
      const r = await call(a.app, a.clock, h, 'POST', '/v1/checkin', { facts: f, results: [{ rolloutId: rid, action: 'install', outcome: 'applied', reason: null }] });
      expect(r.status, hostId).toBe(200);
    }
    const s = (await adminCall(`/v1/admin/rollouts/${rid}`)).json;
    expect(s.status).toBe('done');
    expect(s.pages).toEqual({ per: 100, targets: { page: 1, count: 250 }, log: { page: 1, count: 3 + 250 + 250 + 1 } });
    expect(s.targets).toHaveLength(100);
    expect(s.log).toHaveLength(100);
    expect(s.log.at(-1).text).toBe('done: 250 hosts healthy');
    // all assigned by one tick: in the order of their ids
    const order = [...keys.keys()].sort();
    expect(s.targets.map((t: { hostId: string }) => t.hostId)).toEqual(order.slice(0, 100));
    expect((await adminCall(`/v1/admin/rollouts/${rid}?targets=3`)).json.targets.map((t: { hostId: string }) => t.hostId)).toEqual(order.slice(200));
    expect((await adminCall(`/v1/admin/rollouts/${rid}?targets=4`)).json.targets).toEqual([]);
    // the log's second page of 5: the 5 lines before the newest 5, in time order
    const newest10 = (await adminCall(`/v1/admin/rollouts/${rid}?per=10`)).json.log;
    expect((await adminCall(`/v1/admin/rollouts/${rid}?log=2&per=5`)).json.log).toEqual(newest10.slice(0, 5));
    const oldest = (await adminCall(`/v1/admin/rollouts/${rid}?log=101&per=5`)).json.log.map((l: { text: string }) => l.text);
    expect(oldest).toHaveLength(4);
    expect(oldest[0]).toMatch(/^created by /);
    expect(oldest[1]).toBe('started');
    // the report: counts, the transition times summed in SQL are what every value gives, the series at most SERIES_POINTS
    const rep = s.report;
    expect(rep.byState).toEqual({ healthy: 250 });
    expect(rep.transitions).toEqual(distribution(seconds));
    expect(rep.transitions.p50).toBe(seconds[124]);
    expect(rep.series.length).toBeLessThanOrEqual(SERIES_POINTS);
    expect(rep.series.length).toBeGreaterThan(SERIES_POINTS / 2);
    // 251 times in 200 spans of 2 ms: the first holds the hand-out and the first host's result
    expect(rep.series[0]).toMatchObject({ assigned: 250, applied: 1, healthy: 1, failed: 0 });
    expect(rep.series.at(-1)).toMatchObject({ assigned: 250, applied: 250, healthy: 250, failed: 0 });
    for (let k = 1; k < rep.series.length; k++) {
      expect(rep.series[k].at).toBeGreaterThan(rep.series[k - 1].at);
      expect(rep.series[k].healthy).toBeGreaterThanOrEqual(rep.series[k - 1].healthy);
    }
    // bad pages: refused at the edge
    for (const q of ['per=0', 'per=1001', 'targets=0', 'log=x', 'page=1']) expect((await adminCall(`/v1/admin/rollouts/${rid}?${q}`)).status, q).toBe(400);
    // the dashboard's page: 100 hosts and 100 log lines a page, with links
    const hostRows = (body: string) => [...body.matchAll(/<tr><td>(h-[0-9a-f]+)<\/td><td>1<\/td>/g)].map((m) => m[1]);
    const d1 = await get(`/dashboard/rollouts/${rid}`);
    expect(d1.statusCode).toBe(200);
    expect(d1.body).toContain('Hosts (250)');
    expect(d1.body).toContain('In the order they were assigned: 1–100 of 250, page 1 of 3.');
    expect(d1.body).toContain(`<a href="/dashboard/rollouts/${rid}?targets=2&amp;log=1#hosts" rel="next">Next</a>`);
    expect(d1.body).toContain(`<a href="/dashboard/rollouts/${rid}?targets=1&amp;log=2#log" rel="next">Next</a>`);
    expect(hostRows(d1.body)).toEqual(order.slice(0, 100));
    expect(d1.body).toContain('done: 250 hosts healthy');
    const d3 = await get(`/dashboard/rollouts/${rid}?targets=3&log=6`);
    expect(hostRows(d3.body)).toEqual(order.slice(200));
    expect(d3.body).toContain('started\n');
    expect(d3.body).not.toContain('done: 250 hosts healthy');
    expect((await get(`/dashboard/rollouts/${rid}?targets=4`)).statusCode).toBe(404);
    expect((await get(`/dashboard/rollouts/${rid}?log=0`)).statusCode).toBe(400);
  });

  it(`${LOGIN_LIMIT} logins a minute per address: the next is refused (429, even with the right password), another address is not`, async () => {
    for (let i = 0; i < LOGIN_LIMIT; i++) expect((await login('192.0.2.7', 'wrong password here')).statusCode).toBe(401);
    const limited = await login('192.0.2.7', PASSWORD);
    expect(limited.statusCode).toBe(429);
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
    expect(limited.headers['content-type']).toMatch(/^text\/html/);
    expect(limited.body).toMatch(/Too many logins from your address \(192\.0\.2\.7\): try again in \d+ s\./);
    expect(limited.headers['set-cookie']).toBeUndefined();
    expect((await login('192.0.2.8', PASSWORD)).statusCode).toBe(303);
    // pages and the API are not limited
    expect((await get('/dashboard/hosts')).statusCode).toBe(200);
  });
});
