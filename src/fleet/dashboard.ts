// SPDX-License-Identifier: GPL-2.0-only
/**
 * The dashboard, served by the fleet server: the fleet at a glance, its
 * hosts, its rollouts with their reports and plots (SVG made here), and
 * pause / resume / abort of a rollout. HTML pages, no script at all.
 *
 *   GET  /dashboard/login, POST /dashboard/login    a dashboard user (suture server dashboard-user); LOGIN_LIMIT
 *                                                   logins a minute per source address and server process (429 past it)
 *   POST /dashboard/logout
 *   GET  /dashboard                                 overview: host states, rollouts, CVEs
 *   GET  /dashboard/hosts?page=N                    the hosts, 100 a page (the query limited in SQL), each with its state and why
 *   GET  /dashboard/rollouts/:id?targets=N&log=N    one rollout: progress plot, transition times, failures, blockers;
 *                                                   its hosts and its log, 100 a page (the queries limited in SQL)
 *   POST /dashboard/rollouts/:id/:action            pause | resume | abort (a form with the session's CSRF token)
 *
 * Safety: the session cookie is HttpOnly, SameSite=Strict, Secure when the
 * server speaks TLS; every state-changing form carries the session's CSRF
 * token and a POST whose Origin is not this server is refused; every value
 * is escaped (html.ts); the Content-Security-Policy allows no script, no
 * frame, no form target elsewhere, and nothing from another origin.
 */
import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { FleetError } from './errors.js';
import { html, Html, progressPlot, transitionPlot } from './html.js';
import { ROLLOUT_PAGE } from './protocol.js';
import type { Fleet } from './service.js';
import { csrfMatches, Sessions } from './sessions.js';

const COOKIE = 'suture_session';
const MAX_FORM = 8 * 1024;
const ACTIONS = ['pause', 'resume', 'abort'] as const;
/** Logins a minute from one source address (each server process counts its own; a guess at a password costs a scrypt). */
export const LOGIN_LIMIT = 10;
/** Hosts on one page of /dashboard/hosts. */
export const HOSTS_PAGE = 100;

const CSP = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const CSS = `body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1d1f23;background:#f6f7f9}
header{background:#1d2b3a;color:#fff;padding:8px 16px;display:flex;gap:16px;align-items:center}
header a{color:#fff;text-decoration:none}header form{margin-left:auto}
main{padding:16px;max-width:1200px}h1{font-size:20px}h2{font-size:16px;margin-top:24px}
table{border-collapse:collapse;background:#fff;width:100%}td,th{border:1px solid #dde;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#eef1f5}.state-applied{color:#1f9d55}.state-failed,.state-unhealthy,.state-stalled{color:#d64545;font-weight:600}
.state-silent,.state-no-patch{color:#b7791f}.empty{color:#666}pre{margin:0;font-size:12px;white-space:pre-wrap}
svg.plot{background:#fff;border:1px solid #dde}svg text{font-size:11px;fill:#333}
.cards{display:flex;gap:12px;flex-wrap:wrap}.card{background:#fff;border:1px solid #dde;padding:8px 12px;min-width:110px}
.card b{display:block;font-size:22px}.error{color:#d64545}form.inline{display:inline}
label{display:block;margin:8px 0}input{font:inherit;padding:4px}
nav.pages{margin:8px 0}nav.pages a,nav.pages b{margin-right:8px}`;

function parseCookies(header: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of (header ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i > 0) out[part.slice(0, i).trim()] = part.slice(i + 1).trim();
  }
  return out;
}

const when = (ms: number | null) => (ms === null ? '-' : new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z'));

/** A page number from the query (absent: 1); anything else than 1, 2, … is refused. */
function pageAsked(query: unknown, name: string): number {
  const v = (query ?? {}) as Record<string, unknown>;
  const asked = v[name] === undefined ? '1' : String(v[name]);
  if (!/^[1-9]\d{0,6}$/.test(asked)) throw new FleetError('bad-request', `${name} ${asked.slice(0, 20)} is not a page number (1, 2, …)`, { type: 'request', id: name });
  return Number(asked);
}

/** Links to the first, previous, nearby, next and last pages (nothing when there is one page). */
function pageNav(n: number, pages: number, href: (k: number) => string): Html | '' {
  if (pages <= 1) return '';
  const link = (k: number, text: string, rel?: string) => (k === n ? html`<b>${text}</b>` : html`<a href="${href(k)}"${rel ? html` rel="${rel}"` : ''}>${text}</a>`);
  const near = Array.from({ length: pages }, (_, i) => i + 1).filter((k) => Math.abs(k - n) <= 3);
  return html`<nav class="pages">${n > 1 ? html`${link(1, 'First')}${link(n - 1, 'Previous', 'prev')}` : ''}${near.map((k) => link(k, String(k)))}${n < pages ? html`${link(n + 1, 'Next', 'next')}${link(pages, 'Last')}` : ''}</nav>`;
}

function page(title: string, body: Html, user?: string, csrf?: string): string {
  return html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${title} · suture fleet</title><link rel="stylesheet" href="/dashboard/style.css"></head>
<body><header><a href="/dashboard"><b>suture fleet</b></a><a href="/dashboard">Overview</a><a href="/dashboard/hosts">Hosts</a>${
    user ? html`<form method="post" action="/dashboard/logout"><input type="hidden" name="csrf" value="${csrf}">${user} <button>Log out</button></form>` : ''
  }</header>
<main>${body}</main></body></html>`.text;
}

export interface DashboardOptions {
  /** The server speaks TLS: the cookie is Secure. */
  secure: boolean;
}

type Session = { user: string; csrf: string; cookie: string };

export function registerDashboard(app: FastifyInstance, fleet: Fleet, o: DashboardOptions): void {
  const sessions = new Sessions(fleet.d, fleet.now);

  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'buffer', bodyLimit: MAX_FORM }, (req, body: Buffer, done) => {
    if (!req.url.startsWith('/dashboard/')) return done(new FleetError('bad-request', `${req.method} ${req.url.split('?')[0]} takes no form body`, { type: 'request', id: req.url.split('?')[0]! }), undefined);
    done(null, Object.fromEntries(new URLSearchParams(body.toString('utf8'))));
  });

  const send = (reply: FastifyReply, status: number, body: string) =>
    reply
      .code(status)
      .header('content-type', 'text/html; charset=utf-8')
      .header('content-security-policy', CSP)
      .header('x-content-type-options', 'nosniff')
      .header('referrer-policy', 'same-origin') // with no-referrer, chromium sends a form's Origin as null
      .header('cache-control', 'no-store')
      .send(body);

  const cookieFlags = `HttpOnly; SameSite=Strict; Path=/dashboard${o.secure ? '; Secure' : ''}`;

  async function current(req: FastifyRequest): Promise<Session | undefined> {
    const cookie = parseCookies(req.headers.cookie)[COOKIE];
    const s = await sessions.session(cookie);
    return s && { ...s, cookie: cookie! };
  }

  /** A POST from a page of this server: Origin (when the browser sends it) is this server's. */
  function sameOrigin(req: FastifyRequest): boolean {
    const origin = req.headers.origin;
    if (origin === undefined) return true;
    const host = req.headers.host;
    return origin === `${o.secure ? 'https' : 'http'}://${host}`;
  }

  /** A state-changing form: a session, this server's origin, and the session's CSRF token; else the refusal is sent. */
  async function formSession(req: FastifyRequest, reply: FastifyReply): Promise<Session | undefined> {
    const s = await current(req);
    const body = (req.body ?? {}) as Record<string, string>;
    if (!s) {
      send(reply, 403, page('Refused', html`<h1 class="error">Refused</h1><p>This form needs a logged-in session (none came with it). <a href="/dashboard/login">Log in</a>.</p>`));
      return undefined;
    }
    if (!sameOrigin(req) || !csrfMatches(s, body.csrf)) {
      send(reply, 403, page('Refused', html`<h1 class="error">Refused</h1><p>The form did not come from this dashboard (no valid CSRF token${sameOrigin(req) ? '' : `, Origin ${req.headers.origin ?? ''}`}): nothing was changed.</p>`, s.user, s.csrf));
      return undefined;
    }
    return s;
  }

  /** GET pages: a session or the login page. */
  function guarded(path: string, render: (req: FastifyRequest, s: Session) => Promise<string>) {
    app.get(path, async (req, reply) => {
      const s = await current(req);
      if (!s) return reply.code(303).header('location', '/dashboard/login').send();
      try {
        return send(reply, 200, await render(req, s));
      } catch (e) {
        if (e instanceof FleetError) return send(reply, e.status, page('Not found', html`<h1 class="error">${e.message}</h1>`, s.user, s.csrf));
        throw e;
      }
    });
  }

  app.get('/dashboard/style.css', async (_req, reply) => reply.header('content-type', 'text/css; charset=utf-8').header('x-content-type-options', 'nosniff').send(CSS));

  const loginPage = (error?: string) =>
    page(
      'Log in',
      html`<h1>Log in</h1>${error ? html`<p class="error">${error}</p>` : ''}
<form method="post" action="/dashboard/login"><label>User <input name="user" autocomplete="username" required></label>
<label>Password <input name="password" type="password" autocomplete="current-password" required></label><button>Log in</button></form>`,
    );
  app.get('/dashboard/login', async (_req, reply) => send(reply, 200, loginPage()));
  // The login, limited per source address by @fastify/rate-limit (in its own scope: the limit is this route's only).
  // The socket's address: a server behind a proxy sees the proxy's (Fastify's trustProxy is off).
  app.register(async (scope) => {
    await scope.register(rateLimit, {
      global: false,
      errorResponseBuilder: (req, ctx) => Object.assign(new Error(`too many logins from ${req.ip}`), { statusCode: 429, loginLimited: Math.max(1, Math.ceil(ctx.ttl / 1000)) }),
    });
    scope.post(
      '/dashboard/login',
      {
        config: { rateLimit: { max: LOGIN_LIMIT, timeWindow: 60_000 } },
        errorHandler: (err: Error & { loginLimited?: number }, req, reply) => {
          if (err.loginLimited === undefined) throw err;
          return send(reply, 429, loginPage(`Too many logins from your address (${req.ip}): try again in ${err.loginLimited} s.`));
        },
      },
      async (req, reply) => {
        if (!sameOrigin(req)) return send(reply, 403, loginPage('A login must come from this dashboard’s own page.'));
        const b = (req.body ?? {}) as Record<string, string>;
        const s = await sessions.login(String(b.user ?? ''), String(b.password ?? ''));
        if (!s) return send(reply, 401, loginPage('Wrong user or password.'));
        return reply.code(303).header('set-cookie', `${COOKIE}=${s.cookie}; ${cookieFlags}; Max-Age=${12 * 3600}`).header('location', '/dashboard').send();
      },
    );
  });
  app.post('/dashboard/logout', async (req, reply) => {
    const s = await formSession(req, reply);
    if (!s) return reply;
    await sessions.logout(s.cookie);
    return reply.code(303).header('set-cookie', `${COOKIE}=; ${cookieFlags}; Max-Age=0`).header('location', '/dashboard/login').send();
  });
  app.get('/', async (_req, reply) => reply.code(303).header('location', '/dashboard').send());

  guarded('/dashboard', async (_req, s) => {
    const [hosts, rollouts, cves] = await Promise.all([fleet.listHosts(), fleet.listRollouts(), fleet.cves()]);
    const byState = new Map<string, number>();
    for (const h of hosts) byState.set(h.state, (byState.get(h.state) ?? 0) + 1);
    return page(
      'Overview',
      html`<h1>Fleet</h1>
<div class="cards"><div class="card"><b>${hosts.length}</b>hosts</div>${[...byState].map(([k, n]) => html`<div class="card state-${k}"><b>${n}</b>${k}</div>`)}</div>
<h2>Rollouts</h2>${
        rollouts.length
          ? html`<table><tr><th>Rollout</th><th>Patch</th><th>Channel</th><th>Status</th><th>Stage</th><th>Failures</th><th>Created</th></tr>${[...rollouts].reverse().map(
              (r) => html`<tr><td><a href="/dashboard/rollouts/${r.id}">${r.id}</a></td><td>${r.name}</td><td>${r.channel}</td><td>${r.status}${r.reason ? html`: ${r.reason}` : ''}</td><td>${r.stage + 1}/${r.stages.split(',').length} (${r.stages})</td><td>${r.failures}/${r.maxFailures}</td><td>${when(r.createdAt)}</td></tr>`,
            )}</table>`
          : html`<p class="empty">No rollout yet.</p>`
      }
<h2>CVEs</h2>${
        cves.cves.length
          ? html`<table><tr><th>CVE</th><th>Covered</th><th>Not covered</th></tr>${cves.cves.map(
              (c) => html`<tr><td>${c.id}</td><td>${c.covered.length} of ${c.covered.length + c.notCovered.length}</td><td>${c.notCovered.slice(0, 5).map((h) => html`${h.name}: ${h.reason}<br>`)}${c.notCovered.length > 5 ? html`… and ${c.notCovered.length - 5} more` : ''}</td></tr>`,
            )}</table>`
          : html`<p class="empty">No published bundle names a CVE.</p>`
      }`,
      s.user,
      s.csrf,
    );
  });

  guarded('/dashboard/hosts', async (req, s) => {
    const n = pageAsked(req.query, 'page');
    const total = await fleet.countHosts();
    const pages = Math.max(1, Math.ceil(total / HOSTS_PAGE));
    if (n > pages) throw new FleetError('not-found', `there is no page ${n} of hosts: ${total} host${total === 1 ? '' : 's'} fill ${pages} page${pages === 1 ? '' : 's'} of ${HOSTS_PAGE}`, { type: 'request', id: 'page' });
    const hosts = await fleet.listHosts({ offset: (n - 1) * HOSTS_PAGE, limit: HOSTS_PAGE });
    const nav = pageNav(n, pages, (k) => `/dashboard/hosts?page=${k}`);
    return page(
      'Hosts',
      html`<h1>Hosts (${total})</h1>
<p id="range">${total ? html`Hosts ${(n - 1) * HOSTS_PAGE + 1}–${(n - 1) * HOSTS_PAGE + hosts.length} of ${total}, page ${n} of ${pages}.` : 'No host is enrolled yet.'}</p>${nav}
<table><tr><th>Name</th><th>State</th><th>Why</th><th>Kernel</th><th>Effective version</th><th>Loaded</th><th>Pin</th><th>Rollout</th><th>Last seen</th></tr>${hosts.map(
        (h) =>
          html`<tr><td title="${h.id}">${h.name}</td><td class="state-${h.state}">${h.state}</td><td>${h.stateReason}</td><td>${h.release ?? '-'}<br><small>${h.buildId?.slice(0, 12) ?? ''}</small></td><td>${h.effectiveVersion ?? '-'}</td><td>${h.loaded.join(', ') || '-'}</td><td>${h.pin ?? '-'}</td><td>${h.rolloutId ? html`<a href="/dashboard/rollouts/${h.rolloutId}">${h.rolloutId}</a>` : '-'}</td><td>${when(h.lastSeen)}</td></tr>`,
      )}</table>${nav}`,
      s.user,
      s.csrf,
    );
  });

  guarded('/dashboard/rollouts/:id', async (req, s) => {
    const id = (req.params as { id: string }).id;
    if (!/^r-[0-9a-f]{16}$/.test(id)) throw new FleetError('not-found', `rollout ${id} does not exist`, { type: 'rollout', id: id.slice(0, 40) });
    const tp = pageAsked(req.query, 'targets');
    const lp = pageAsked(req.query, 'log');
    const r = await fleet.showRollout(id, { targets: tp, log: lp, per: ROLLOUT_PAGE });
    const tPages = Math.max(1, Math.ceil(r.pages.targets.count / ROLLOUT_PAGE));
    const lPages = Math.max(1, Math.ceil(r.pages.log.count / ROLLOUT_PAGE));
    if (tp > tPages || lp > lPages) throw new FleetError('not-found', `rollout ${id} has ${tPages} page${tPages === 1 ? '' : 's'} of hosts and ${lPages} of its log (${ROLLOUT_PAGE} a page)`, { type: 'request', id: 'page' });
    const href = (t: number, l: number) => `/dashboard/rollouts/${r.id}?targets=${t}&log=${l}`;
    const tNav = pageNav(tp, tPages, (k) => `${href(k, lp)}#hosts`);
    const lNav = pageNav(lp, lPages, (k) => `${href(tp, k)}#log`);
    const p = r.report;
    const t = p.transitions;
    const sec = (v: number | null) => (v === null ? '-' : v < 1 ? `${Math.round(v * 1000)} ms` : `${v.toFixed(1)} s`);
    const actions = ACTIONS.filter((a) => (a === 'resume' ? r.status === 'paused' : a === 'pause' ? r.status === 'running' || r.status === 'pending' : ['pending', 'running', 'paused', 'halted'].includes(r.status)));
    return page(
      `Rollout ${r.id}`,
      html`<h1>Rollout ${r.id}: ${r.name}</h1>
<p>Channel ${r.channel}, bundle ${r.bundleId.slice(0, 12)} for build ${r.buildId}. Status <b id="status">${r.status}</b>${r.reason ? html` (${r.reason})` : ''}; stage ${r.stage + 1} of ${r.stages}; soak ${r.soakSec} s; failures ${r.failures}/${r.maxFailures}.</p>
${actions.map((a) => html`<form class="inline" method="post" action="/dashboard/rollouts/${r.id}/${a}"><input type="hidden" name="csrf" value="${s.csrf}"><button name="action" value="${a}">${a[0]!.toUpperCase() + a.slice(1)}</button></form> `)}
<p>Progress: ${Object.entries(p.byState).map(([k, n]) => html`${n} ${k}; `)}</p>
${p.pinned.length ? html`<p>Skipped (pinned to another patch): ${p.pinned.map((x) => html`${x.name} → ${x.patch}; `)}</p>` : ''}
<h2>Progress over time</h2>${progressPlot(p.series, `rollout ${r.id} progress`)}
<h2>Transition times</h2><p>${t.count} hosts; p50 ${sec(t.p50)}, p90 ${sec(t.p90)}, max ${sec(t.max)}.</p>${transitionPlot(t.buckets, `rollout ${r.id} transition times`)}
<h2>Failures</h2>${p.failures.length ? html`<table><tr><th>Host</th><th>When</th><th>Reason</th></tr>${p.failures.map((f) => html`<tr><td>${f.name}</td><td>${when(f.at)}</td><td>${f.reason}</td></tr>`)}</table>` : html`<p class="empty">None.</p>`}
<h2>Tasks that held transitions up</h2>${
        p.blockers.length
          ? html`<table><tr><th>Task</th><th>Hosts</th><th>Stack</th></tr>${p.blockers.map((b) => html`<tr><td>${b.comm}</td><td>${b.hosts.join(', ')}</td><td><pre>${b.stack.join('\n')}</pre></td></tr>`)}</table>`
          : html`<p class="empty">None reported.</p>`
      }
<h2 id="hosts">Hosts (${r.pages.targets.count})</h2><p id="targets-range">${r.pages.targets.count ? `In the order they were assigned: ${(tp - 1) * ROLLOUT_PAGE + 1}–${(tp - 1) * ROLLOUT_PAGE + (r.targets ?? []).length} of ${r.pages.targets.count}, page ${tp} of ${tPages}.` : 'No host assigned yet.'}</p>${tNav}
<table><tr><th>Host</th><th>Stage</th><th>State</th><th>Failure</th></tr>${(r.targets ?? []).map((x) => html`<tr><td>${x.hostId}</td><td>${x.stage + 1}</td><td>${x.state}</td><td>${x.failure ?? ''}</td></tr>`)}</table>${tNav}
<h2 id="log">Log (${r.pages.log.count} lines)</h2><p id="log-range">${lp === 1 ? 'The newest lines' : `Page ${lp} of ${lPages}, newest first`}; each page in time order.</p>${lNav}<pre>${(r.log ?? []).map((l) => `${when(l.at)} ${l.text}\n`).join('')}</pre>${lNav}`,
      s.user,
      s.csrf,
    );
  });

  app.post('/dashboard/rollouts/:id/:action', async (req, reply) => {
    const s = await formSession(req, reply);
    if (!s) return reply;
    const { id, action } = req.params as { id: string; action: string };
    if (!/^r-[0-9a-f]{16}$/.test(id) || !(ACTIONS as readonly string[]).includes(action)) return send(reply, 404, page('Not found', html`<h1>No such action</h1>`, s.user, s.csrf));
    try {
      await fleet.act({ role: 'admin', id: `dashboard:${s.user}`, keyId: '' }, id, action as (typeof ACTIONS)[number]);
    } catch (e) {
      if (e instanceof FleetError) return send(reply, e.status, page('Refused', html`<h1 class="error">Refused</h1><p>${e.message}</p><p><a href="/dashboard/rollouts/${id}">Back</a></p>`, s.user, s.csrf));
      throw e;
    }
    return reply.code(303).header('location', `/dashboard/rollouts/${id}`).send();
  });
}

