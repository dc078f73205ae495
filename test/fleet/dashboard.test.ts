// SPDX-License-Identifier: GPL-2.0-only
/**
 * The dashboard in a real browser: Debian's headless chromium driven by
 * puppeteer-core (nothing downloads a browser), against a real fleet server
 * (Fastify listening on 127.0.0.1, real SQLite, hosts enrolled and checking in
 * through the signed API, a real signed bundle rolled out). Login; the
 * overview, hosts and rollout pages render that data, with the plots; a host
 * name `<script>…` and a health reason with markup stay text; a cross-site
 * form POST and a POST without the CSRF token are refused with nothing
 * changed; pause and resume through the buttons work. Screenshots go to
 * test-output/dashboard/.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/fleet/app.js';
import { FleetClient } from '../../src/fleet/client.js';
import { migrate, openDatabase, type Database } from '../../src/fleet/db.js';
import { newIdentity, type HostFacts, type Identity } from '../../src/fleet/protocol.js';
import { Fleet } from '../../src/fleet/service.js';
import { Sessions } from '../../src/fleet/sessions.js';
import { BOUND, facts, makeBundles, snapshot } from './helpers.js';

const CHROMIUM = '/usr/bin/chromium';
const SHOTS = join(import.meta.dirname, '..', '..', 'test-output', 'dashboard');
const EVIL = '<script>window.__pwned=1</script>';
const PASSWORD = 'correct horse battery staple';
const CAT_STACK = ['[<0>] cmdline_proc_show+0x10/0x40 [patched]', '[<0>] seq_read_iter+0x10a/0x4a0', '[<0>] vfs_read+0x1f0/0x2e0'];

let d: Database;
let app: FastifyInstance;
let base = '';
let browser: Browser;
let page: Page;
let evil: Server;
let evilBase = '';
let rid = '';

async function shot(name: string): Promise<void> {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`this test needs Debian's chromium at ${CHROMIUM}: apt-get install chromium (scripts/setup.sh installs it)`);
  mkdirSync(SHOTS, { recursive: true });
  d = openDatabase(`sqlite:${join(mkdtempSync(join(tmpdir(), 'suture-dashboard-')), 'fleet.db')}`);
  await migrate(d);
  const fleet = new Fleet(d);
  app = buildApp(fleet);
  await app.listen({ host: '127.0.0.1', port: 0 });
  base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
  const adminId = newIdentity();
  await fleet.addAdmin(adminId.publicKey, 'admin');
  await new Sessions(d).setUser('ops', PASSWORD);
  const admin = new FleetClient(base, adminId);

  // five hosts enrol and check in through the signed API
  const hosts: Identity[] = [];
  for (let i = 0; i < 5; i++) {
    const tok = (await admin.request('POST', '/v1/admin/enroll-tokens', { expiresSec: 600 })) as { token: string };
    const id = newIdentity();
    await new FleetClient(base, id).request('POST', '/v1/enroll', { token: tok.token, publicKey: id.publicKey, name: `web${i}` });
    hosts.push(id);
  }
  const client = (h: Identity) => new FleetClient(base, h);
  for (const h of hosts) await client(h).request('POST', '/v1/checkin', { facts: facts(BOUND), results: [] });
  // markup in a health reason (free text from a host) and, written straight into the database, a host name
  await client(hosts[4]!).request('POST', '/v1/checkin', { facts: facts(BOUND, { health: { ok: false, reasons: ['<img src=x onerror="window.__pwned=2">disk <b>full</b>'] } }), results: [] });
  await d.db.updateTable('hosts').set({ name: EVIL }).where('id', '=', `h-${hosts[3]!.keyId}`).execute();

  await admin.request('POST', '/v1/admin/bundles?channel=stable', makeBundles().bound);
  const r = (await admin.request('POST', '/v1/admin/rollouts', { name: 'fake_bound', channel: 'stable', stages: '1,100%', soakSec: 0, maxFailures: 3, delaySec: 0 })) as { id: string; targets: { hostId: string }[] };
  rid = r.id;
  // the hosts apply what they are given; one transition was held up by cat for 12 s
  const has = new Map<number, HostFacts>();
  const sick = { health: { ok: false, reasons: ['<img src=x onerror="window.__pwned=2">disk <b>full</b>'] } };
  for (let round = 0; round < 3; round++) {
    for (const [i, h] of hosts.entries()) {
      const c = client(h);
      const reply = (await c.request('POST', '/v1/checkin', { facts: has.get(i) ?? facts(BOUND, i === 4 ? sick : {}), results: [] })) as { assignment: { action: string; rolloutId: string } | null };
      if (reply.assignment?.action === 'install' && !has.has(i)) {
        const lt = { patch: 'fake_bound', seconds: i === 1 ? 12.5 : 0.002 + i / 1000, at: Date.now(), blockers: i === 1 ? [{ pid: 812, comm: 'cat', stack: CAT_STACK }] : [] };
        has.set(i, facts(BOUND, { loaded: [{ name: 'fake_bound', sha256: null }], installed: [{ name: 'fake_bound', sha256: null }], lastTransition: lt, ...(i === 4 ? sick : {}) }));
        await c.request('POST', '/v1/checkin', { facts: has.get(i), results: [{ rolloutId: reply.assignment.rolloutId, action: 'install', outcome: 'applied', reason: null }] });
      }
    }
  }

  // a page of another origin with a form that posts to the dashboard (no token: it cannot read one)
  evil = createServer((_req, res) => {
    res.setHeader('content-type', 'text/html');
    res.end(`<!doctype html><form method="post" action="${base}/dashboard/rollouts/${rid}/pause"><input name="action" value="pause"><button id="go">win a prize</button></form>`);
  });
  await new Promise<void>((r) => evil.listen(0, '127.0.0.1', r));
  evilBase = `http://localhost:${(evil.address() as { port: number }).port}`;

  browser = await puppeteer.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
  page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 900 });
}, 120_000);

afterAll(async () => {
  await browser?.close();
  evil?.close();
  await app?.close();
  await d?.db.destroy();
});

describe('the dashboard in chromium', () => {
  it('sends an unauthenticated visitor to the login page; a wrong password is refused; the right one logs in with a strict cookie', async () => {
    await page.goto(`${base}/dashboard/hosts`);
    expect(new URL(page.url()).pathname).toBe('/dashboard/login');
    await page.type('input[name=user]', 'ops');
    await page.type('input[name=password]', 'wrong password!!');
    await Promise.all([page.waitForNavigation(), page.click('button')]);
    expect(await page.$eval('p.error', (e) => e.textContent)).toBe('Wrong user or password.');
    await page.type('input[name=user]', 'ops');
    await page.type('input[name=password]', PASSWORD);
    await shot('login');
    await Promise.all([page.waitForNavigation(), page.click('button')]);
    expect(new URL(page.url()).pathname).toBe('/dashboard');
    const [c] = (await browser.cookies()).filter((x) => x.name === 'suture_session');
    expect(c).toMatchObject({ httpOnly: true, sameSite: 'Strict', secure: false, path: '/dashboard' });
  });

  it('the overview: host states, the rollout, the CVEs', async () => {
    const text = await page.$eval('main', (e) => e.textContent ?? '');
    expect(text).toMatch(/5\s*hosts/);
    expect(text).toMatch(/1\s*unhealthy/);
    expect(text).toContain(rid);
    expect(text).toMatch(/CVE-0000-0010/);
    await shot('overview');
  });

  it('the hosts page: each host, its state and why; a host name <script> and markup in a reason stay text', async () => {
    await page.goto(`${base}/dashboard/hosts`);
    const rows = await page.$$eval('table tr', (trs) => trs.slice(1).map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent ?? '')));
    expect(rows).toHaveLength(5);
    const byName = Object.fromEntries(rows.map((r) => [r[0], r]));
    expect(byName[EVIL]).toBeDefined(); // the name, as text
    expect(byName.web0![1]).toBe('applied');
    expect(byName.web4![1]).toBe('unhealthy');
    expect(byName.web4![2]).toBe('<img src=x onerror="window.__pwned=2">disk <b>full</b>');
    expect(await page.$$eval('script, main img, main b', (e) => e.length)).toBe(0);
    expect(await page.evaluate(() => (globalThis as unknown as { __pwned?: number }).__pwned)).toBeUndefined();
    await shot('hosts');
  });

  it('the rollout page: the progress plot, the transition-time histogram, the blocking task with its stack', async () => {
    await page.goto(`${base}/dashboard/rollouts/${rid}`);
    expect(await page.$eval('#status', (e) => e.textContent)).toBe('done');
    const plots = await page.$$eval('svg.plot', (s) => s.map((x) => ({ label: x.getAttribute('aria-label'), paths: x.querySelectorAll('path').length, bars: x.querySelectorAll('rect.bar').length })));
    expect(plots).toEqual([
      { label: `rollout ${rid} progress`, paths: 4, bars: 0 },
      { label: `rollout ${rid} transition times`, paths: 0, bars: 11 },
    ]);
    const text = await page.$eval('main', (e) => e.textContent ?? '');
    expect(text).toMatch(/5 hosts; p50 \d+ ms, p90 12\.5 s, max 12\.5 s/);
    expect(text).toContain('cmdline_proc_show+0x10/0x40 [patched]');
    expect(await page.$$eval('main table', (t) => t.some((x) => /cat\s*web1/.test(x.textContent ?? '')))).toBe(true);
    await shot('rollout');
  });

  it('a cross-site form POST (no token, another origin) is refused, and so is a same-origin POST without the token: nothing changes', async () => {
    // a running rollout to act on
    const fleet = new Fleet(d);
    const before = await snapshot(d);
    await page.goto(evilBase);
    await Promise.all([page.waitForNavigation(), page.click('#go')]);
    expect(await page.$eval('h1', (e) => e.textContent)).toBe('Refused');
    expect(await page.$eval('main', (e) => e.textContent ?? '')).toMatch(/needs a logged-in session|did not come from this dashboard/);
    await shot('cross-site-refused');
    // with the session cookie (taken from the browser) but without the token
    const cookie = (await browser.cookies()).find((x) => x.name === 'suture_session')!;
    const r = await fetch(`${base}/dashboard/rollouts/${rid}/abort`, { method: 'POST', headers: { cookie: `suture_session=${cookie.value}`, 'content-type': 'application/x-www-form-urlencoded' }, body: 'action=abort', redirect: 'manual' });
    expect(r.status).toBe(403);
    expect(await r.text()).toContain('no valid CSRF token');
    // a token from another session does not do either
    const other = await new Sessions(d).login('ops', PASSWORD);
    const r2 = await fetch(`${base}/dashboard/rollouts/${rid}/abort`, { method: 'POST', headers: { cookie: `suture_session=${cookie.value}`, 'content-type': 'application/x-www-form-urlencoded' }, body: `csrf=${other!.csrf}`, redirect: 'manual' });
    expect(r2.status).toBe(403);
    const after = await snapshot(d);
    expect(after.rollouts).toEqual(before.rollouts);
    expect(after.rollout_events).toEqual(before.rollout_events);
    expect((await fleet.showRollout(rid)).status).toBe('done');
  });

  it('pause and resume through the buttons (forms with the CSRF token)', async () => {
    const fleet = new Fleet(d);
    const admin = (await d.db.selectFrom('admins').select('id').executeTakeFirstOrThrow()).id;
    const r = await fleet.createRollout({ role: 'admin', id: admin, keyId: '' }, { name: 'fake_bound', channel: 'stable', stages: '1', soakSec: 600, maxFailures: 1, delaySec: 3600 });
    await page.goto(`${base}/dashboard/rollouts/${r.id}`);
    expect(await page.$eval('#status', (e) => e.textContent)).toBe('pending');
    await Promise.all([page.waitForNavigation(), page.click('button[value=pause]')]);
    expect(await page.$eval('#status', (e) => e.textContent)).toBe('paused');
    expect((await fleet.showRollout(r.id)).log!.at(-1)!.text).toBe('paused by dashboard:ops');
    await Promise.all([page.waitForNavigation(), page.click('button[value=resume]')]);
    expect(await page.$eval('#status', (e) => e.textContent)).toBe('pending');
    await shot('rollout-resumed');
    await Promise.all([page.waitForNavigation(), page.click('button[value=abort]')]);
    expect(await page.$eval('#status', (e) => e.textContent)).toBe('aborted');
  });

  it('logs out: the session is gone', async () => {
    await page.goto(`${base}/dashboard`);
    await Promise.all([page.waitForNavigation(), page.click('header button')]);
    expect(new URL(page.url()).pathname).toBe('/dashboard/login');
    await page.goto(`${base}/dashboard`);
    expect(new URL(page.url()).pathname).toBe('/dashboard/login');
  });
});

describe('the cookie over TLS', () => {
  it('is Secure as well (a server with --tls-cert)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'suture-dashboard-tls-'));
    execFileSync('/usr/bin/openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(dir, 'k.pem'), '-out', join(dir, 'c.pem'), '-days', '1', '-subj', '/CN=127.0.0.1'], { stdio: 'ignore' });
    const tlsApp = buildApp(new Fleet(d), { tls: { cert: readFileSync(join(dir, 'c.pem')), key: readFileSync(join(dir, 'k.pem')) } });
    const r = await tlsApp.inject({ method: 'POST', url: '/dashboard/login', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: `user=ops&password=${encodeURIComponent(PASSWORD)}` });
    expect(r.statusCode).toBe(303);
    expect(String(r.headers['set-cookie'])).toMatch(/^suture_session=[A-Za-z0-9_-]{43}; HttpOnly; SameSite=Strict; Path=\/dashboard; Secure; Max-Age=43200$/);
    await tlsApp.close();
  });
});
