// SPDX-License-Identifier: GPL-2.0-only
/**
 * The fleet on three real Debian 12 hosts (issue 12's proof). Three hosts boot
 * at once from the 6.1.0-56 image with `suture vm host --net-port`: each one's
 * network reaches nothing but two loopback ports of this machine, the fleet
 * server (`suture server`, SQLite) and this test's control port. Each host
 * installs the .deb with apt, trusts the builder's key, enrols its agent with a
 * one-time token and runs it as suture-agent.service (check-ins every 3 s,
 * a health command that reads /proc/version). Then, on the same three boots:
 *
 *   (a)+(c) a staged rollout (1, 100%) of a signed bundle; the server is
 *           stopped mid-rollout and started again on the same database; the
 *           rollout resumes and completes on all three hosts;
 *   (b)     a rollout of a bundle whose patch (the corpus's WARN_ONCE in
 *           version_proc_show) logs a WARNING when the health command reads
 *           /proc/version: the canary's agent sees it in the kernel log,
 *           reports unhealthy, the rollout halts at stage 1 and the canary
 *           rolls back; the other two never get the bundle;
 *   (d)     a host whose agent is stopped during its stage: the stage waits
 *           for it (neither skipped nor failed); back, it applies, and the
 *           rollout completes.
 *
 * The control port: each host runs one command, control.mjs, which long-polls
 * this test for shell scripts to run and posts their status and output back;
 * so the test drives the hosts while they stay up, and ends them at the end.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FleetClient, readIdentityFile } from '../../src/fleet/client.js';
import { sutureHome } from '../../src/util/paths.js';
import { netArgv } from '../../src/vm/host.js';
import { hostBootScript } from '../../src/vm/host-guest.js';
import { ensureHostImage } from '../../src/vm/host-image.js';
import { BIN, ROOT, suture } from '../helpers/cli.js';
import { ensureKernel, REFERENCE_KERNEL } from '../helpers/kernel.js';

const skip = process.getuid?.() !== 0 ? 'needs root (the host image is made with debootstrap and chroot)' : undefined;
const HOSTS = ['host-1', 'host-2', 'host-3'] as const;
const GW = '10.0.2.100';
const CORPUS = join(ROOT, 'test/patches/debian-6.1.0-56');

let dir = '';
let home = '';
let serverPort = 0;
let server: ChildProcess | undefined;
let admin: FleetClient;
let control: Control;
const vms = new Map<string, { proc: ChildProcess; out: string; err: string; exited: Promise<number | null> }>();
const files: Record<string, string> = {};
const t0 = performance.now();
const timeline: string[] = [];
const mark = (what: string) => {
  const line = `${((performance.now() - t0) / 1000).toFixed(1)} s ${what}`;
  timeline.push(line);
  console.log(`hosts.vm: ${line}`);
};

// ---------- the control port ----------

interface Job {
  id: number;
  script: string;
}
interface JobResult {
  status: number | null;
  output: string;
}

/** Hands shell scripts to the hosts' control.mjs (long poll) and takes their results. */
class Control {
  readonly server: Server;
  private next = 1;
  private readonly queues = new Map<string, Job[]>();
  private readonly waiting = new Map<string, ServerResponse>();
  private readonly pending = new Map<number, { host: string; resolve: (r: JobResult) => void; reject: (e: Error) => void }>();
  private readonly polled = new Map<string, () => void>();
  readonly up = new Map<string, Promise<void>>();
  private readonly gone = new Map<string, string>();

  constructor() {
    for (const h of HOSTS) this.up.set(h, new Promise((resolve) => this.polled.set(h, resolve)));
    this.server = createServer((req, res) => void this.handle(req, res));
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return (this.server.address() as AddressInfo).port;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const u = new URL(req.url ?? '/', 'http://x');
    const host = u.searchParams.get('host') ?? '';
    if (req.method === 'GET' && u.pathname === '/next') {
      this.polled.get(host)?.();
      const q = this.queues.get(host);
      if (q?.length) return void res.end(JSON.stringify(q.shift()));
      this.waiting.get(host)?.writeHead(204).end();
      this.waiting.set(host, res);
      const t = setTimeout(() => {
        if (this.waiting.get(host) === res) this.waiting.delete(host);
        res.writeHead(204).end();
      }, 20_000);
      res.on('close', () => clearTimeout(t));
      return;
    }
    if (req.method === 'POST' && u.pathname === '/done') {
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      const p = this.pending.get(Number(u.searchParams.get('id')));
      if (p) {
        this.pending.delete(Number(u.searchParams.get('id')));
        p.resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')) as JobResult);
      }
      return void res.end('{}');
    }
    res.writeHead(404).end();
  }

  private send(host: string, job: Job | { end: true }): void {
    const w = this.waiting.get(host);
    if (w) {
      this.waiting.delete(host);
      w.end(JSON.stringify(job));
      return;
    }
    const q = this.queues.get(host) ?? [];
    q.push(job as Job);
    this.queues.set(host, q);
  }

  /** Run a shell script as root on a host; its exit status and output (stdout and stderr). */
  run(host: string, script: string): Promise<JobResult> {
    const gone = this.gone.get(host);
    if (gone) return Promise.reject(new Error(`${host} is gone: ${gone}`));
    const id = this.next++;
    const p = new Promise<JobResult>((resolve, reject) => this.pending.set(id, { host, resolve, reject }));
    this.send(host, { id, script });
    return p;
  }

  /** Run it and require status 0. */
  async must(host: string, script: string): Promise<string> {
    const r = await this.run(host, script);
    if (r.status !== 0) throw new Error(`${host}: ${script.split('\n')[0]}… exited ${r.status}:\n${r.output}`);
    return r.output;
  }

  end(host: string): void {
    this.send(host, { end: true });
  }

  /** The host's VM stopped: fail what waits on it. */
  lost(host: string, why: string): void {
    this.gone.set(host, why);
    for (const [id, p] of this.pending) {
      if (p.host !== host) continue;
      this.pending.delete(id);
      p.reject(new Error(`${host} stopped: ${why}`));
    }
  }

  close(): void {
    for (const w of this.waiting.values()) w.writeHead(204).end();
    this.server.close();
  }
}

/** The host side of the control port: node 18 on Debian 12, node:http only. */
const CONTROL_MJS = `// test/fleet/hosts.vm.test.ts: run the scripts the test hands out, post status and output back
import { request } from 'node:http';
import { spawn } from 'node:child_process';
const [base, host] = process.argv.slice(2);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
function call(method, path, body) {
  return new Promise((resolve, reject) => {
    const req = request(new URL(path, base), { method, timeout: 60000 }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, text: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end(body);
  });
}
function sh(script) {
  return new Promise((resolve) => {
    const c = spawn('/bin/sh', ['-c', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    c.stdout.on('data', (d) => (output += d));
    c.stderr.on('data', (d) => (output += d));
    c.on('close', (status) => resolve({ status, output }));
  });
}
for (;;) {
  let job;
  try {
    const r = await call('GET', '/next?host=' + host);
    if (r.status !== 200) continue;
    job = JSON.parse(r.text);
  } catch (e) {
    console.log('control: ' + e.message);
    await sleep(1000);
    continue;
  }
  if (job.end) break;
  const r = await sh(job.script);
  for (let i = 0; i < 60; i++) {
    try {
      await call('POST', '/done?host=' + host + '&id=' + job.id, JSON.stringify(r));
      break;
    } catch (e) {
      await sleep(1000);
    }
  }
}
console.log('control: end');
`;

/** Which connections a host's network allows: only the forwarded ports of 10.0.2.100. */
const NETCHECK_MJS = `import { connect } from 'node:net';
const [server, ctl] = process.argv.slice(2).map(Number);
const tries = [['${GW}', server], ['${GW}', ctl], ['${GW}', 22], ['10.0.2.2', server], ['10.0.2.3', 53], ['1.1.1.1', 80]];
const one = ([h, p]) => new Promise((resolve) => {
  const s = connect({ host: h, port: p, timeout: 5000 });
  s.on('connect', () => { s.destroy(); resolve(h + ':' + p + ' connected'); });
  s.on('error', (e) => resolve(h + ':' + p + ' ' + e.code));
  s.on('timeout', () => { s.destroy(); resolve(h + ':' + p + ' timeout'); });
});
for (const t of tries) console.log(await one(t));
`;

// ---------- the fleet server ----------

async function startServer(port: number): Promise<number> {
  const env = { ...process.env, SUTURE_HOME: home };
  const p = spawn(process.execPath, [BIN, 'server', '--listen', `127.0.0.1:${port}`, '--tick', '500', '--database', `sqlite:${join(home, 'fleet.db')}`], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  server = p;
  return new Promise<number>((resolve, reject) => {
    let err = '';
    const t = setTimeout(() => reject(new Error(`suture server did not start in 60 s: ${err}`)), 60_000);
    p.stderr!.on('data', (b: Buffer) => {
      err += b.toString();
      const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(err);
      if (m) {
        clearTimeout(t);
        resolve(Number(m[1]));
      }
    });
    p.on('exit', (c) => {
      clearTimeout(t);
      reject(new Error(`suture server exited ${c}: ${err}`));
    });
  });
}

async function stopServer(): Promise<void> {
  const p = server;
  server = undefined;
  if (!p || p.exitCode !== null) return;
  const gone = new Promise((resolve) => p.once('exit', resolve));
  p.kill('SIGTERM');
  await gone;
}

// ---------- admin view ----------

interface Target {
  hostId: string;
  stage: number;
  state: string;
  failure: string | null;
}
interface Rollout {
  id: string;
  status: string;
  stage: number;
  reason: string | null;
  failures: number;
  targets: Target[];
  log: { at: number; text: string }[];
}
interface HostView {
  id: string;
  name: string;
  release: string | null;
  buildId: string | null;
  loaded: string[];
  healthOk: boolean | null;
}

const rollout = async (id: string) => (await admin.request('GET', `/v1/admin/rollouts/${id}`)) as Rollout;
const hostsView = async () => ((await admin.request('GET', '/v1/admin/hosts')) as { hosts: HostView[] }).hosts;
const hostId = new Map<string, string>();
const nameOf = (id: string) => [...hostId].find(([, v]) => v === id)?.[0] ?? id;

async function createRollout(name: string, soakSec: number): Promise<Rollout> {
  return (await admin.request('POST', '/v1/admin/rollouts', { name, channel: 'stable', stages: '1,100%', soakSec, maxFailures: 1, delaySec: 0 })) as Rollout;
}

/** Poll until `check` returns a value (not undefined); the last state seen goes into the failure. */
async function waitFor<T>(what: string, timeoutMs: number, check: () => Promise<T | undefined>, describeLast?: () => Promise<string>): Promise<T> {
  const end = performance.now() + timeoutMs;
  for (;;) {
    const v = await check().catch(() => undefined);
    if (v !== undefined) return v;
    if (performance.now() > end) {
      const last = describeLast ? await describeLast().catch((e: Error) => e.message) : '';
      const agents = await Promise.all(HOSTS.map((h) => control.run(h, 'journalctl -u suture-agent.service --no-pager -n 15 -o cat').then((r) => `${h}:\n${r.output}`, (e: Error) => `${h}: ${e.message}`)));
      throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}\n${last}\n${agents.join('\n')}`);
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}

const showRollout = (id: string) => async () => {
  const r = await rollout(id);
  return `${r.status} stage ${r.stage} ${JSON.stringify(r.targets.map((t) => [nameOf(t.hostId), t.state, t.failure]))}\n${r.log.map((l) => l.text).join('\n')}`;
};

/** Poll a rollout until `pick` finds what it waits for in it. */
const untilRollout = <T>(id: string, what: string, timeoutMs: number, pick: (x: Rollout) => T | undefined) => waitFor(what, timeoutMs, async () => pick(await rollout(id)), showRollout(id));

/** The rollout once it is done or halted. */
const finished = (id: string) => untilRollout(id, 'the rollout to finish', 300_000, (x) => (x.status === 'done' || x.status === 'halted' ? x : undefined));

// ---------- setup ----------

beforeAll(async () => {
  if (skip) return;
  const meta = await ensureKernel();
  dir = mkdtempSync(join(tmpdir(), 'suture-fleet-hosts-'));
  home = join(dir, 'home');
  // the image once, before three boots want it at the same time
  await ensureHostImage({ home: sutureHome(), suite: 'bookworm', meta });
  const p = spawnSync('bash', [join(ROOT, 'scripts/package.sh'), join(dir, 'deb')], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, LINTIAN: '0' } });
  if (p.status !== 0) throw new Error(`scripts/package.sh failed (exit ${p.status}):\n${p.stderr}`);
  files.deb = p.stdout.trim().split('\n').pop()!;
  const must = (args: string[]) => {
    const r = suture(args, { timeoutMs: 600_000 });
    if (r.status !== 0) throw new Error(`suture ${args.join(' ')}: ${r.status}\n${r.stderr}`);
    return r.stdout;
  };
  must(['key', 'generate', join(dir, 'builder')]);
  files.pub = join(dir, 'builder.pub');
  // three signed bundles built from patches: the demo's /proc/cmdline, the corpus's WARN_ONCE, a new function
  const builds: [string, string][] = [
    ['lp_cmdline', join(ROOT, 'examples/proc-cmdline.patch')],
    ['lp_version_warn', join(CORPUS, '07-version-warn-once/fix.patch')],
    ['lp_version_new', join(CORPUS, '03-version-new-function/fix.patch')],
  ];
  for (const [name, patch] of builds) {
    must(['build', '--kernel', REFERENCE_KERNEL, patch, '--name', name, '-o', join(dir, `${name}.ko`), '--sign', join(dir, 'builder.key')]);
  }
  files.control = join(dir, 'control.mjs');
  writeFileSync(files.control, CONTROL_MJS);
  files.netcheck = join(dir, 'netcheck.mjs');
  writeFileSync(files.netcheck, NETCHECK_MJS);
  files.health = join(dir, 'suture-health');
  writeFileSync(files.health, '#!/bin/sh\n# the host\'s own health check: /proc/version must read (lp_version_warn makes that log a WARNING)\ncat /proc/version >/dev/null\n', { mode: 0o755 });
  for (const f of Object.values(files)) chmodSync(f, 0o755);
  mark('built the package and three signed bundles');

  const init = suture(['server', 'init', '--database', `sqlite:${join(home, 'fleet.db')}`, '--admin-key', join(home, 'admin.key'), '--json'], { env: { ...process.env, SUTURE_HOME: home } });
  if (init.status !== 0) throw new Error(`suture server init: ${init.stderr}`);
  serverPort = await startServer(0);
  admin = new FleetClient(`http://127.0.0.1:${serverPort}`, readIdentityFile(join(home, 'admin.key')));
  for (const [name] of builds) await admin.request('POST', '/v1/admin/bundles?channel=stable', readFileSync(join(dir, `${name}.suture`)));
  control = new Control();
  const ctlPort = await control.listen();
  mark(`server on 127.0.0.1:${serverPort} (SQLite), control on 127.0.0.1:${ctlPort}`);

  for (const h of HOSTS) {
    const args = ['vm', 'host', '--kernel', REFERENCE_KERNEL, '--net-port', String(serverPort), '--net-port', String(ctlPort), '--timeout', '2400', '--json'];
    for (const f of [files.deb!, files.pub!, files.control!, files.netcheck!, files.health!]) args.push('--file', f);
    args.push('--exec', `node "$SUTURE_VM_FILES/control.mjs" http://${GW}:${ctlPort} ${h}`);
    const proc = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    const vm = { proc, out: '', err: '', exited: undefined as unknown as Promise<number | null> };
    proc.stdout!.on('data', (b: Buffer) => (vm.out += b.toString()));
    proc.stderr!.on('data', (b: Buffer) => (vm.err += b.toString()));
    vm.exited = new Promise((resolve) =>
      proc.on('exit', (code) => {
        control.lost(h, `suture vm host exited ${code}: ${vm.err.slice(-2000)}`);
        resolve(code);
      }),
    );
    vms.set(h, vm);
  }
  const booted = performance.now();
  await Promise.all(
    HOSTS.map((h) =>
      Promise.race([
        control.up.get(h)!.then(() => mark(`${h} up (QEMU start to its control loop: ${((performance.now() - booted) / 1000).toFixed(1)} s)`)),
        vms.get(h)!.exited.then((c) => {
          throw new Error(`${h}: suture vm host exited ${c} before the host was up:\n${vms.get(h)!.err}\n${vms.get(h)!.out.slice(-4000)}`);
        }),
      ]),
    ),
  );
}, 1_800_000);

afterAll(async () => {
  if (skip) return;
  for (const h of HOSTS) control?.end(h);
  await Promise.race([Promise.all([...vms.values()].map((v) => v.exited)), new Promise((r) => setTimeout(r, 120_000))]);
  for (const v of vms.values()) if (v.proc.exitCode === null) v.proc.kill('SIGTERM');
  control?.close();
  await stopServer();
  console.log(`hosts.vm: timeline\n  ${timeline.join('\n  ')}`);
  if (dir) rmSync(dir, { recursive: true, force: true });
}, 300_000);

describe.skipIf(!!skip)('the fleet on three real Debian 12 hosts', () => {
  it('each host reaches only the two forwarded ports, installs the package, trusts the key and enrols its agent with a one-time token', async () => {
    const net = await control.must('host-1', `node "$SUTURE_VM_FILES/netcheck.mjs" ${serverPort} ${(control.server.address() as AddressInfo).port}`);
    expect(net).toContain(`${GW}:${serverPort} connected`);
    expect(net).toContain(`${GW}:${(control.server.address() as AddressInfo).port} connected`);
    // a port not forwarded, the build machine's own address, slirp's DNS, the world: nothing answers
    for (const closed of [`${GW}:22`, `10.0.2.2:${serverPort}`, '10.0.2.3:53', '1.1.1.1:80']) expect(net).toMatch(new RegExp(`^${closed.replace(/\./g, '\\.')} (?!connected)`, 'm'));

    const tokens = await Promise.all(HOSTS.map(async () => ((await admin.request('POST', '/v1/admin/enroll-tokens', { expiresSec: 600 })) as { token: string }).token));
    const outs = await Promise.all(
      HOSTS.map(async (h, i) => {
        const out = await control.must(
          h,
          [
            'set -e',
            'F=$SUTURE_VM_FILES',
            'apt-get install -y -q "$F"/suture_*_all.deb >/tmp/apt.log 2>&1 || { tail -n 20 /tmp/apt.log; exit 1; }',
            'install -D -m 0644 "$F/builder.pub" /etc/suture/keys.d/builder.pub',
            'install -m 0755 "$F/suture-health" /usr/local/bin/suture-health',
            `suture agent --server http://${GW}:${serverPort} --token ${tokens[i]} --name ${h} --once --json > /tmp/enrol.json`,
            'cat /tmp/enrol.json',
            'echo \'SUTURE_AGENT_OPTS="--interval 3 --health-cmd /usr/local/bin/suture-health"\' > /etc/default/suture-agent',
            'systemctl enable --now suture-agent.service 2>&1',
            'systemctl is-active suture-agent.service',
            'node --version',
          ].join('\n'),
        );
        mark(`${h} installed the package and enrolled`);
        return out;
      }),
    );
    mark('three hosts installed the package and enrolled');
    for (const [i, out] of outs.entries()) {
      const enrol = JSON.parse(out.slice(out.indexOf('{'), out.lastIndexOf('}') + 1)) as { hostId: string; healthy: boolean; checkins: number };
      expect(enrol.healthy).toBe(true);
      hostId.set(HOSTS[i]!, enrol.hostId);
      expect(out).toMatch(/\nactive\nv18\.\d+\.\d+\n$/);
    }
    // a token is good once: host-1 cannot enrol a second time with host-2's
    const again = await control.run('host-1', `suture agent --dir /tmp/second --server http://${GW}:${serverPort} --token ${tokens[1]} --once; echo "rc=$?"`);
    expect(again.output).toMatch(/token/i);
    expect(again.output).not.toMatch(/rc=0/);
    const hosts = await waitFor('three hosts checking in with their kernel', 60_000, async () => {
      const hs = await hostsView();
      return hs.length === 3 && hs.every((h) => h.release === '6.1.0-56-amd64' && h.buildId && h.healthOk === true) ? hs : undefined;
    });
    expect(new Set(hosts.map((h) => h.id))).toEqual(new Set(hostId.values()));
  }, 900_000);

  it('(a)+(c) a staged rollout completes on all three, though the server was stopped and started again mid-rollout', async () => {
    const start = performance.now();
    const r = await createRollout('lp_cmdline', 10);
    const canary = await untilRollout(r.id, 'the canary to apply lp_cmdline', 240_000, (x) => x.targets.find((t) => t.state === 'applied' || t.state === 'healthy'));
    mark(`lp_cmdline applied on the canary ${nameOf(canary.hostId)} in ${((performance.now() - start) / 1000).toFixed(1)} s`);
    const before = await rollout(r.id);
    expect(before.status).toBe('running');
    expect(before.targets).toHaveLength(1);
    await stopServer();
    mark('server stopped mid-rollout');
    await new Promise((res) => setTimeout(res, 12_000));
    expect(await startServer(serverPort)).toBe(serverPort);
    mark('server started again on the same database');
    const done = await finished(r.id);
    mark(`rollout lp_cmdline ${done.status} in ${((performance.now() - start) / 1000).toFixed(1)} s`);
    expect(done.status, done.log.map((l) => l.text).join('\n')).toBe('done');
    expect(done.targets.map((t) => t.state)).toEqual(['healthy', 'healthy', 'healthy']);
    expect(done.targets.filter((t) => t.stage === 0)).toHaveLength(1);
    // every host runs it and says so, to the server and to its admin
    const hs = await hostsView();
    for (const h of hs) expect(h.loaded, h.name).toContain('lp_cmdline');
    for (const h of HOSTS) {
      const out = await control.must(h, 'cat /proc/cmdline; cat /sys/kernel/livepatch/lp_cmdline/enabled; suture list');
      expect(out, h).toContain('[live patched by suture]');
      expect(out, h).toMatch(/\n1\n/);
    }
    // the agents felt the server go away and came back by themselves
    const logs = await Promise.all(HOSTS.map((h) => control.must(h, 'journalctl -u suture-agent.service --no-pager -o cat')));
    const failed = logs.join('\n').split('\n').find((l) => /check-in failed/.test(l));
    expect(failed).toBeDefined();
    mark(`while the server was away, an agent said: ${failed}`);
    // what the agent did, said once in its journal
    for (const l of logs) expect(l.match(/applied lp_cmdline \(rollout /g) ?? []).toHaveLength(1);
  }, 900_000);

  it('(b) a bundle whose patch logs a WARNING halts at the canary, which rolls it back; the other two never get it', async () => {
    const start = performance.now();
    const r = await createRollout('lp_version_warn', 60);
    const halted = await untilRollout(r.id, 'the rollout to halt', 300_000, (x) => (x.status !== 'running' && x.status !== 'pending' ? x : undefined));
    mark(`rollout lp_version_warn ${halted.status} in ${((performance.now() - start) / 1000).toFixed(1)} s: ${halted.reason}`);
    expect(halted.status, halted.log.map((l) => l.text).join('\n')).toBe('halted');
    expect(halted.targets).toHaveLength(1);
    const canary = halted.targets[0]!;
    expect(canary.failure).toMatch(/WARNING/);
    const at = (re: RegExp) => halted.log.find((l) => re.test(l.text))?.at ?? NaN;
    mark(`the canary failed ${((at(/ failed: /) - at(/applied the bundle/)) / 1000).toFixed(1)} s after it applied lp_version_warn`);
    const rolled = await untilRollout(r.id, 'the canary to roll back', 120_000, (x) => (x.targets[0]!.state === 'rolled-back' ? x : undefined));
    mark(`canary ${nameOf(canary.hostId)} rolled lp_version_warn back in ${((performance.now() - start) / 1000).toFixed(1)} s`);
    expect(rolled.targets).toHaveLength(1);
    const c = nameOf(canary.hostId);
    const onCanary = await control.must(c, 'ls /sys/kernel/livepatch; suture list; dmesg | grep -E "WARNING: .*version_proc_show" | head -n 1');
    expect(onCanary).not.toContain('lp_version_warn\n');
    expect(onCanary).toMatch(/WARNING: CPU: \d+ PID: \d+ at fs\/proc\/version\.c:\d+ version_proc_show\+0x[0-9a-f]+\/0x[0-9a-f]+ \[lp_version_warn\]/);
    for (const h of HOSTS.filter((x) => x !== c)) {
      const out = await control.must(h, 'ls /sys/kernel/livepatch; ls /var/lib/suture/agent/bundles; echo "warn lines: $(dmesg | grep -c lp_version_warn)"');
      expect(out, h).not.toContain('lp_version_warn');
      expect(out, h).toContain('warn lines: 0');
    }
    for (const h of await hostsView()) expect(h.loaded).not.toContain('lp_version_warn');
  }, 900_000);

  it('(d) a host offline during its stage is waited for; back, it applies and the rollout completes', async () => {
    const offline = 'host-3';
    const stopped = await control.must(offline, 's=$(date +%s%N); systemctl stop suture-agent.service; echo "$(( ($(date +%s%N) - s) / 1000000 )) ms"; systemctl is-active suture-agent.service || true');
    const start = performance.now();
    mark(`${offline}'s agent stopped (systemctl stop took ${stopped.split('\n')[0]})`);
    expect(stopped).toMatch(/\ninactive\n$/);
    const r = await createRollout('lp_version_new', 10);
    const stuck = await untilRollout(r.id, `${offline} assigned and every other host of the rollout healthy`, 300_000, (x) => {
      const mine = x.targets.find((t) => t.hostId === hostId.get(offline));
      return mine?.state === 'assigned' && x.targets.filter((t) => t !== mine).every((t) => t.state === 'healthy') ? x : undefined;
    });
    mark(`lp_version_new waits for ${offline} (${stuck.targets.length - 1} other host(s) healthy, stage ${stuck.stage + 1})`);
    await new Promise((res) => setTimeout(res, 10_000));
    const still = await rollout(r.id);
    expect(still.status).toBe('running');
    expect(still.targets.find((t) => t.hostId === hostId.get(offline))!.state).toBe('assigned');
    expect(still.failures).toBe(0);
    await control.must(offline, 'systemctl start suture-agent.service');
    mark(`${offline}'s agent started again after ${((performance.now() - start) / 1000).toFixed(1)} s offline`);
    const done = await finished(r.id);
    mark(`rollout lp_version_new ${done.status} in ${((performance.now() - start) / 1000).toFixed(1)} s`);
    expect(done.status, done.log.map((l) => l.text).join('\n')).toBe('done');
    expect(done.targets.map((t) => t.state)).toEqual(['healthy', 'healthy', 'healthy']);
    for (const h of HOSTS) expect(await control.must(h, 'cat /proc/version'), h).toContain('suture: new function');
  }, 900_000);

  it('a boot has a network only when asked: QEMU gets one restricted NIC and a guestfwd per port, the guest a runtime networkd config', () => {
    expect(netArgv([7443, 9000], '/run/x/tcp-forward.mjs', '/usr/bin/node')).toEqual([
      '-netdev',
      `user,id=n0,restrict=on,ipv6=off,net=10.0.2.0/24,guestfwd=tcp:${GW}:7443-cmd:/usr/bin/node --no-warnings /run/x/tcp-forward.mjs 7443,guestfwd=tcp:${GW}:9000-cmd:/usr/bin/node --no-warnings /run/x/tcp-forward.mjs 9000`,
      '-device',
      'virtio-net-pci,netdev=n0',
    ]);
    expect(() => netArgv([1], '/tmp/a,b/f.mjs')).toThrow(/comma, blank or quote/);
    const without = hostBootScript({ marker: 'M', commands: 1, powerOff: true });
    expect(without).not.toMatch(/networkd|SUTURE_VM_GATEWAY|NET_DOWN/);
    const withNet = hostBootScript({ marker: 'M', commands: 1, powerOff: true, network: true });
    expect(withNet).toContain('/run/systemd/network/10-suture-vm.network');
    expect(withNet).toContain(`export SUTURE_VM_GATEWAY=${GW}`);
    expect(withNet).toMatch(/frame net net_up \|\| NET_DOWN=1\n\[ -n "\$NET_DOWN" \] \|\| frame cmd:0 /);
  });

  it('vm host --net-port refuses a port that is no port, or one given twice, before anything boots', () => {
    for (const [ports, says] of [
      [['0'], /--net-port must be a positive whole number/],
      [['70000'], /--net-port 70000: give a TCP port from 1 to 65535/],
      [['4000', '4000'], /--net-port 4000 is given twice/],
    ] as const) {
      const r = suture(['vm', 'host', '--kernel', REFERENCE_KERNEL, ...ports.flatMap((p) => ['--net-port', p]), '--exec', 'true'], { timeoutMs: 60_000 });
      expect(r.status, r.stderr).toBe(2);
      expect(r.stderr).toMatch(says);
      expect(r.stderr).not.toMatch(/booting/);
    }
  });

  it('the three boots end cleanly: the control loop exits and each host powers off', async () => {
    for (const h of HOSTS) control.end(h);
    const codes = await Promise.all(HOSTS.map((h) => vms.get(h)!.exited));
    for (const [i, h] of HOSTS.entries()) {
      const vm = vms.get(h)!;
      const json = JSON.parse(vm.out) as { outcome: string; reason?: string; network: { address: string; reaches: string[] } | null; boots: { bootMs: number }[] };
      expect(json.outcome, `${h}: ${json.reason}\n${vm.err}`).toBe('ok');
      expect(codes[i]).toBe(0);
      expect(json.network?.reaches).toHaveLength(2);
    }
    mark('three hosts powered off');
  }, 300_000);
});
