// SPDX-License-Identifier: GPL-2.0-only
/**
 * The fleet server under load: N simulated agents (default 10,000, in this one
 * process, loopback only) each checking in every --interval seconds with ±10%
 * jitter, with real Ed25519-signed requests and real facts, against `suture
 * server` (the built CLI, its own process) on SQLite or on PostgreSQL (Debian's
 * postgresql, a private cluster started here on its own port and socket
 * directory). After the first --rollout-after seconds a staged rollout of a
 * real signed bundle goes to all of them: an agent given the bundle downloads
 * it, checks its sha256 and reports it applied at once (as the agent does),
 * then stays healthy.
 *
 *   npx tsx bench/fleet-load.ts [--db sqlite|postgres] [--servers 1] [--agents 10000] [--duration 300]
 *                               [--interval 60] [--soak 30] [--stages 1,10%,50%,100%] [--show-every 10] [--json]
 *                               [--server-node-arg=--cpu-prof --server-node-arg=--cpu-prof-dir=DIR] [--pg-stats]
 *
 * Enrolment (one token and one enrolment per agent, through the API) comes
 * first and is not measured. On PostgreSQL, --servers N runs N server
 * processes on the one database, the agents spread over them (agent i talks
 * to server i mod N); their CPU and memory are summed, their own times per
 * request given for each. Then for --duration seconds: every request's
 * latency (from the first byte sent to the last byte read, in this process),
 * errors (anything but a 2xx reply, or no reply), the server's CPU (user +
 * system, from /proc, as % of one core) and resident memory, and the same for
 * the PostgreSQL cluster's processes; and the server's own time per request
 * (GET /v1/admin/stats: from reading the request to sending the reply; time a
 * request waits for the server's CPU before that is not in it). Progress
 * every 10 s on stderr.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import http from 'node:http';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { FleetClient, readIdentityFile } from '../src/fleet/client.js';
import { newIdentity, type CheckinReply, type HostFacts } from '../src/fleet/protocol.js';
import { BOUND, facts, listening, makeBundles } from '../test/fleet/helpers.js';
import { PGBIN, startPostgres, type PgCluster } from '../test/fleet/pg-cluster.js';
import { positiveInt } from './args.js';

const ROOT = join(import.meta.dirname, '..');
const CLK_TCK = 100;

const { values: v } = parseArgs({
  options: {
    db: { type: 'string', default: 'sqlite' },
    servers: { type: 'string' },
    agents: { type: 'string' },
    duration: { type: 'string' },
    interval: { type: 'string' },
    soak: { type: 'string' },
    'rollout-after': { type: 'string' },
    /** How often the admin reads the rollout as `suture fleet rollout show` does (GET /v1/admin/rollouts/ID: its report, the first page of its targets and of its log), in seconds. */
    'show-every': { type: 'string' },
    stages: { type: 'string', default: '1,10%,50%,100%' },
    /**
     * PostgreSQL: load pg_stat_statements and log lock waits over 20 ms; at the end print the statements by
     * total time (calls, per request served) and the lock waits the log recorded, by the statement that waited.
     */
    'pg-stats': { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    /** Options for the server's node (e.g. --cpu-prof --cpu-prof-dir=DIR, to find a hot spot). */
    'server-node-arg': { type: 'string', multiple: true, default: [] },
  },
});
if (v.db !== 'sqlite' && v.db !== 'postgres') throw new Error(`--db must be sqlite or postgres (got ${v.db})`);
const SERVERS = positiveInt('servers', v.servers, 1);
if (SERVERS > 1 && v.db !== 'postgres') throw new Error('--servers N > 1 needs --db postgres (SQLite serves one server process)');
const AGENTS = positiveInt('agents', v.agents, 10_000);
const DURATION = positiveInt('duration', v.duration, 300);
const INTERVAL = positiveInt('interval', v.interval, 60);
const SOAK = positiveInt('soak', v.soak, 30);
const ROLLOUT_AFTER = positiveInt('rollout-after', v['rollout-after'], 20);
const SHOW_EVERY = positiveInt('show-every', v['show-every'], 10);

const log = (s: string) => process.stderr.write(`${s}\n`);

function percentile(sorted: readonly number[], p: number): number {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]! : NaN;
}
const round = (x: number) => Math.round(x * 100) / 100;

/**
 * CPU ticks (user + system) and RSS (KiB) of a set of processes, from /proc, counted per process so
 * that one that ends (a PostgreSQL worker) does not take its ticks back out of the sum.
 */
class Usage {
  private readonly last = new Map<number, number>();
  ticks = 0;
  rssKiB = 0;
  sample(pids: number[]): this {
    this.rssKiB = 0;
    for (const pid of pids) {
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
        const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        const t = Number(f[11]) + Number(f[12]);
        this.ticks += t - (this.last.get(pid) ?? 0);
        this.last.set(pid, t);
        const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
        this.rssKiB += m ? Number(m[1]) : 0;
      } catch {
        // a process that ended
      }
    }
    return this;
  }
}

/** The postmaster and its children. */
function postgresPids(dataDir: string): number[] {
  const master = Number(readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
  const out = [master];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === master) out.push(Number(e));
    } catch {
      // gone
    }
  }
  return out;
}

function startServer(env: NodeJS.ProcessEnv, database: string): Promise<{ p: ChildProcess; base: string }> {
  const p = spawn(process.execPath, [...(v['server-node-arg'] as string[]), join(ROOT, 'bin/suture.js'), 'server', '--listen', '127.0.0.1:0', '--database', database], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  return listening(p).then((base) => ({ p, base }));
}

function psqlIn(pg: PgCluster, q: string): string {
  const r = spawnSync(join(PGBIN, 'psql'), [pg.url, '-X', '-A', '-t', '-F', '\t', '-c', q], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`psql: ${r.stderr}`);
  return r.stdout.trim();
}

/**
 * What PostgreSQL did (--pg-stats): its statements by total time, with calls per request served, and the lock
 * waits over deadlock_timeout its log recorded, counted by the statement that waited.
 */
function pgStatements(pg: PgCluster, pgDir: string, requests: number, logFrom: number): string {
  const psql = (q: string) => psqlIn(pg, q);
  const rows = psql(
    `select calls, round(total_exec_time::numeric, 0), round(mean_exec_time::numeric, 3), round(max_exec_time::numeric, 1), regexp_replace(query, '\\s+', ' ', 'g') from pg_stat_statements where query not like '%pg_stat_statements%' order by total_exec_time desc limit 25`,
  )
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split('\t'));
  const all = Number(psql('select sum(calls) from pg_stat_statements'));
  const waits = new Map<string, number>();
  const lines = readFileSync(join(pgDir, 'log')).subarray(logFrom).toString('utf8').split('\n');
  lines.forEach((l, i) => {
    if (!/still waiting for/.test(l)) return;
    const st = lines.slice(i + 1, i + 6).find((x) => /STATEMENT:/.test(x));
    const key = (st ?? '(no statement)').replace(/^.*STATEMENT:\s*/, '').slice(0, 140);
    waits.set(key, (waits.get(key) ?? 0) + 1);
  });
  return [
    `postgres: ${all} statements for ${requests} requests served (${(all / Math.max(1, requests)).toFixed(2)} a request); by total time:`,
    ...rows.map(([calls, total, mean, max, q]) => `  ${calls} calls (${(Number(calls) / Math.max(1, requests)).toFixed(3)}/request), total ${total} ms, mean ${mean} ms, max ${max} ms: ${q!.slice(0, 220)}`),
    `lock waits over 20 ms: ${[...waits.values()].reduce((a, b) => a + b, 0)}`,
    ...[...waits].sort((a, b) => b[1] - a[1]).map(([q, n]) => `  ${n}: ${q}`),
  ].join('\n');
}

/** Run fn over items with at most n at once. */
async function pool<T>(items: readonly T[], n: number, fn: (x: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (next < items.length) {
        const i = next++;
        await fn(items[i]!, i);
      }
    }),
  );
}

interface Agent {
  c: FleetClient;
  facts: HostFacts;
  has: boolean;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'suture-fleet-load-'));
  const env = { ...process.env, SUTURE_HOME: join(dir, 'home') };
  let pg: PgCluster | undefined;
  let database = `sqlite:${join(dir, 'fleet.db')}`;
  if (v.db === 'postgres') {
    pg = startPostgres(dir, 26432 + (process.pid % 1000), v['pg-stats'] ? ['shared_preload_libraries=pg_stat_statements', 'pg_stat_statements.track=all', 'log_lock_waits=on', 'deadlock_timeout=20ms'] : []);
    database = pg.url;
  }
  const servers: ChildProcess[] = [];
  try {
    const init = spawn(process.execPath, [join(ROOT, 'bin/suture.js'), 'server', 'init', '--database', database], { env, stdio: 'inherit' });
    await new Promise((r) => init.on('exit', r));
    const started = await Promise.all(Array.from({ length: SERVERS }, () => startServer(env, database)));
    servers.push(...started.map((x) => x.p));
    const s = started[0]!;
    const pids = () => servers.map((p) => p.pid!);
    const shared = new http.Agent({ keepAlive: true, maxSockets: 64 });
    const admin = new FleetClient(s.base, readIdentityFile(join(dir, 'home', 'server', 'admin.key')), { httpAgent: shared });
    const bundles = makeBundles();
    const published = (await admin.request('POST', '/v1/admin/bundles?channel=stable', bundles.bound)) as { id: string };
    const bundleSha = createHash('sha256').update(bundles.bound).digest('hex');
    if (published.id !== bundleSha) throw new Error('the server named the bundle by another sha256');

    // enrol every agent through the API (not measured)
    const t0 = Date.now();
    const agents: Agent[] = [];
    await pool(
      Array.from({ length: AGENTS }, (_, i) => i),
      32,
      async (i) => {
        const tok = (await admin.request('POST', '/v1/admin/enroll-tokens', { expiresSec: 3600 })) as { token: string };
        const id = newIdentity();
        const c = new FleetClient(started[i % SERVERS]!.base, id, { httpAgent: shared });
        await c.request('POST', '/v1/enroll', { token: tok.token, publicKey: id.publicKey, name: `load-${i}` });
        agents[i] = { c, facts: facts(BOUND, { bootId: randomUUID(), uptimeSec: 1000 + i }), has: false };
        if ((i + 1) % 1000 === 0) log(`enrolled ${i + 1}/${AGENTS} (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
      },
    );
    const enrolSec = (Date.now() - t0) / 1000;

    let pgLogFrom = 0;
    // the measured window (--pg-stats: PostgreSQL's statements counted from here)
    if (pg && v['pg-stats']) {
      psqlIn(pg, 'create extension if not exists pg_stat_statements');
      psqlIn(pg, 'select pg_stat_statements_reset()');
      pgLogFrom = readFileSync(join(dir, 'pg', 'log')).length;
    }
    const lat: Record<string, number[]> = { checkin: [], bundle: [], result: [] };
    const errors: string[] = [];
    let window: number[] = [];
    const timed = async <T>(kind: string, f: () => Promise<T>): Promise<T | undefined> => {
      const a = performance.now();
      try {
        const r = await f();
        const ms = performance.now() - a;
        lat[kind]!.push(ms);
        window.push(ms);
        return r;
      } catch (e) {
        errors.push(`${kind}: ${(e as Error).message}`);
        return undefined;
      }
    };
    const loaded = { loaded: [{ name: 'fake_bound', sha256: null }], installed: [{ name: 'fake_bound', sha256: null }] };
    const cycle = async (a: Agent) => {
      const r = await timed('checkin', () => a.c.request('POST', '/v1/checkin', { facts: a.facts, results: [] }) as Promise<CheckinReply>);
      const as = r?.assignment;
      if (as?.action === 'install' && !a.has) {
        const bytes = await timed('bundle', () => a.c.request('GET', as.path) as Promise<Buffer>);
        if (!bytes) return;
        if (createHash('sha256').update(bytes).digest('hex') !== as.bundleId) {
          errors.push(`bundle: ${as.bundleId} arrived with another sha256`);
          return;
        }
        a.has = true;
        a.facts = { ...a.facts, ...loaded, lastTransition: { patch: 'fake_bound', seconds: 0.002 + Math.random() * 0.01, at: Date.now(), blockers: [] } };
        await timed('result', () => a.c.request('POST', '/v1/checkin', { facts: a.facts, results: [{ rolloutId: as.rolloutId, action: 'install', outcome: 'applied', reason: null }] }));
      }
    };
    const start = Date.now();
    const end = start + DURATION * 1000;
    let stopped = false;
    const timers: NodeJS.Timeout[] = [];
    agents.forEach((a, i) => {
      const loop = () => {
        if (stopped || Date.now() >= end) return;
        void cycle(a).finally(() => {
          if (!stopped) timers[i] = setTimeout(loop, INTERVAL * 1000 * (0.9 + Math.random() * 0.2));
        });
      };
      timers[i] = setTimeout(loop, Math.random() * INTERVAL * 1000);
    });

    const pgPids = () => (pg ? postgresPids(join(dir, 'pg', 'db')) : []);
    const serverUse = new Usage().sample(pids());
    const pgUse = new Usage().sample(pgPids());
    const u0 = { server: serverUse.ticks, pg: pgUse.ticks, at: Date.now() };
    let last = u0;
    const peaks = { serverCpu: 0, serverRssKiB: 0, pgCpu: 0, pgRssKiB: 0 };
    let rolloutId: string | undefined;
    let rollout: { status: string; stage: number; stages: string; report?: { byState: Record<string, number> } } | undefined;
    const progress = setInterval(() => {
      const now = { server: serverUse.sample(pids()).ticks, pg: pgUse.sample(pgPids()).ticks, at: Date.now() };
      const secs = (now.at - last.at) / 1000;
      const sc = ((now.server - last.server) / CLK_TCK / secs) * 100;
      const pc = ((now.pg - last.pg) / CLK_TCK / secs) * 100;
      peaks.serverCpu = Math.max(peaks.serverCpu, sc);
      peaks.pgCpu = Math.max(peaks.pgCpu, pc);
      peaks.serverRssKiB = Math.max(peaks.serverRssKiB, serverUse.rssKiB);
      peaks.pgRssKiB = Math.max(peaks.pgRssKiB, pgUse.rssKiB);
      last = now;
      const w = window.sort((a, b) => a - b);
      window = [];
      log(
        `t=${Math.round((now.at - start) / 1000)} s: ${w.length} requests in 10 s, p50 ${percentile(w, 50).toFixed(1)} ms, p99 ${percentile(w, 99).toFixed(1)} ms; errors ${errors.length}; server ${sc.toFixed(0)}% CPU, ${(serverUse.rssKiB / 1024).toFixed(0)} MiB${pg ? `; postgres ${pc.toFixed(0)}% CPU` : ''}${rollout ? `; rollout ${rollout.status} stage ${rollout.stage + 1} ${JSON.stringify(rollout.report?.byState ?? {})}` : ''}; machine load ${loadavg()[0]!.toFixed(1)}`,
      );
      if (rolloutId && Math.round((now.at - start) / 1000) % SHOW_EVERY < 10) void (admin.request('GET', `/v1/admin/rollouts/${rolloutId}`) as Promise<typeof rollout>).then((r) => (rollout = r)).catch((e) => errors.push(`rollout show: ${(e as Error).message}`));
    }, 10_000);
    setTimeout(() => {
      void (admin.request('POST', '/v1/admin/rollouts', { name: 'fake_bound', channel: 'stable', stages: v.stages, soakSec: SOAK, maxFailures: 1, delaySec: 0 }) as Promise<{ id: string }>).then(
        (r) => (rolloutId = r.id),
        (e) => errors.push(`rollout create: ${(e as Error).message}`),
      );
    }, ROLLOUT_AFTER * 1000);
    await new Promise((r) => setTimeout(r, DURATION * 1000));
    stopped = true;
    for (const t of timers) clearTimeout(t);
    clearInterval(progress);
    await new Promise((r) => setTimeout(r, 2000)); // requests in flight finish
    const u1 = { server: serverUse.sample(pids()).ticks, pg: pgUse.sample(pgPids()).ticks, at: Date.now() };
    if (rolloutId) rollout = (await admin.request('GET', `/v1/admin/rollouts/${rolloutId}`)) as typeof rollout;
    const secs = (u1.at - u0.at) / 1000;
    const stats = (xs: number[]) => {
      const sorted = [...xs].sort((a, b) => a - b);
      return { n: sorted.length, p50: round(percentile(sorted, 50)), p99: round(percentile(sorted, 99)), max: round(sorted.at(-1) ?? NaN) };
    };
    const all = [...lat.checkin!, ...lat.bundle!, ...lat.result!];
    const result = {
      db: v.db,
      servers: SERVERS,
      agents: AGENTS,
      durationSec: DURATION,
      intervalSec: INTERVAL,
      enrolSec: round(enrolSec),
      requests: stats(all),
      byKind: Object.fromEntries(Object.entries(lat).map(([k, xs]) => [k, stats(xs)])),
      requestsPerSec: round(all.length / DURATION),
      /** Inside each server, from the request read to the reply written (GET /v1/admin/stats; admin reads included). */
      serverSide: await Promise.all(
        started.map(async (x) => {
          const c = new FleetClient(x.base, readIdentityFile(join(dir, 'home', 'server', 'admin.key')), { httpAgent: shared });
          return (({ served: _s, ...y }) => y)((await c.request('GET', `/v1/admin/stats?since=${start}`)) as { served: number; window: number; p50Ms: number; p99Ms: number; maxMs: number });
        }),
      ),
      errors: errors.length,
      firstErrors: errors.slice(0, 5),
      server: { cpuPercentAvg: round(((u1.server - u0.server) / CLK_TCK / secs) * 100), cpuPercentPeak10s: round(peaks.serverCpu), rssMiBPeak: round(peaks.serverRssKiB / 1024), rssMiBEnd: round(serverUse.rssKiB / 1024) },
      postgres: pg ? { cpuPercentAvg: round(((u1.pg - u0.pg) / CLK_TCK / secs) * 100), cpuPercentPeak10s: round(peaks.pgCpu), rssMiBPeak: round(peaks.pgRssKiB / 1024) } : null,
      rollout: rollout ? { status: rollout.status, stage: `${rollout.stage + 1}/${rollout.stages.split(',').length} (${rollout.stages})`, byState: rollout.report?.byState ?? {} } : null,
      machine: { cpus: cpus().length, memGiB: Math.round(totalmem() / 2 ** 30), loadavg: loadavg().map(round) },
    };
    if (pg && v['pg-stats']) log(pgStatements(pg, join(dir, 'pg'), result.serverSide.reduce((a, x) => a + x.window, 0), pgLogFrom));
    if (v.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    else {
      process.stdout.write(
        `${AGENTS} agents, every ${INTERVAL} s ±10%, ${DURATION} s on ${v.db} (${SERVERS} server process${SERVERS === 1 ? '' : 'es'}): ${result.requests.n} requests (${result.requestsPerSec}/s), p50 ${result.requests.p50} ms, p99 ${result.requests.p99} ms, max ${result.requests.max} ms; errors ${result.errors}\n` +
          result.serverSide.map((x, i) => `  inside server ${i + 1} (${x.window} requests): p50 ${round(x.p50Ms)} ms, p99 ${round(x.p99Ms)} ms, max ${round(x.maxMs)} ms\n`).join('') +
          `  check-in p50 ${result.byKind.checkin!.p50} / p99 ${result.byKind.checkin!.p99} ms; bundle p50 ${result.byKind.bundle!.p50} / p99 ${result.byKind.bundle!.p99} ms; applied-result p50 ${result.byKind.result!.p50} / p99 ${result.byKind.result!.p99} ms\n` +
          `  server CPU ${result.server.cpuPercentAvg}% of a core on average (peak 10 s: ${result.server.cpuPercentPeak10s}%), RSS peak ${result.server.rssMiBPeak} MiB` +
          (result.postgres ? `; postgres CPU ${result.postgres.cpuPercentAvg}% (peak ${result.postgres.cpuPercentPeak10s}%), RSS ${result.postgres.rssMiBPeak} MiB` : '') +
          `\n  rollout: ${JSON.stringify(result.rollout)}\n  machine: ${result.machine.cpus} cores, ${result.machine.memGiB} GiB, load ${result.machine.loadavg.join(' ')}; enrolment of ${AGENTS} took ${result.enrolSec} s\n`,
      );
    }
    admin.close();
    shared.destroy();
  } finally {
    for (const p of servers) {
      p.kill('SIGTERM');
      await new Promise((r) => (p.exitCode !== null || p.signalCode !== null ? r(null) : p.once('exit', r)));
    }
    pg?.stop();
  }
}

await main();
