// SPDX-License-Identifier: GPL-2.0-only
/**
 * The fleet agent against a real fleet server (buildApp on SQLite, listening
 * on 127.0.0.1: real HTTP, real signatures, no mock), with the host layer on
 * the pretend kernel of test/livepatch (fake-kernel.ts) and real signed
 * bundles of the gcc-built fake livepatch modules, checked against a trusted
 * keys directory of the test's own: enrol, check in, a rollout assignment
 * verified, loaded, installed and reported, healthy past the soak → done; a
 * WARNING after the load → rollback instructed and done; a bundle signed by
 * an untrusted key refused here and reported as failed; the server away →
 * backoff with jitter, a rollback by itself, then recovery and the results
 * delivered.
 */
import { spawn } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signBundle } from '../../src/bundle/bundle.js';
import { generateKeyFiles, readSecretKey } from '../../src/bundle/keys.js';
import { Agent, backoffDelay, runAgent, type AgentState } from '../../src/fleet/agent.js';
import { gatherFacts, kernelReports } from '../../src/fleet/agent-facts.js';
import { loadPatch } from '../../src/livepatch/core.js';
import { buildApp } from '../../src/fleet/app.js';
import { FleetClient } from '../../src/fleet/client.js';
import { migrate, openDatabase, type Database } from '../../src/fleet/db.js';
import { newIdentity, type Identity } from '../../src/fleet/protocol.js';
import { Fleet } from '../../src/fleet/service.js';
import { readPatchFile } from '../../src/livepatch/patch-file.js';
import { isSutureError } from '../../src/util/errors.js';
import { buildFakePatches, FakeKernel } from '../livepatch/fake-kernel.js';
import { BOUND } from './helpers.js';

const RELEASE = '6.1.0-56-amd64';
let d: Database;
let fleet: Fleet;
let app: FastifyInstance;
let url: string;
let port: number;
let admin: FleetClient;
let keysDir: string;
let ko: (n: string) => string;
let trusted: ReturnType<typeof generateKeyFiles>;
let stranger: ReturnType<typeof generateKeyFiles>;
const kernels: FakeKernel[] = [];

/** A signed bundle of fake_bound (build BOUND); `at` makes each one distinct bytes. */
function bundle(key: ReturnType<typeof generateKeyFiles>, at: string): Buffer {
  return signBundle({ module: readPatchFile(ko('fake_bound')), key: readSecretKey(key.key), builderVersion: '0.1.0', now: new Date(at) }).bytes;
}

async function listen(): Promise<void> {
  app = buildApp(fleet);
  await app.listen({ host: '127.0.0.1', port: port ?? 0 });
  port = (app.server.address() as AddressInfo).port;
  url = `http://127.0.0.1:${port}`;
}

beforeAll(async () => {
  ko = buildFakePatches();
  const dir = mkdtempSync(join(tmpdir(), 'suture-agent-test-'));
  trusted = generateKeyFiles(join(dir, 'builder'));
  stranger = generateKeyFiles(join(dir, 'stranger'));
  keysDir = mkdtempSync(join(tmpdir(), 'suture-agent-keys-'));
  copyFileSync(trusted.pub, join(keysDir, 'builder.pub'));
  d = openDatabase(`sqlite:${join(dir, 'fleet.db')}`);
  await migrate(d);
  fleet = new Fleet(d, { checkinSec: 60 });
  await listen();
  const id: Identity = newIdentity();
  await fleet.addAdmin(id.publicKey, 'admin');
  admin = new FleetClient(url, id);
});
afterAll(async () => {
  for (const k of kernels) k.stop();
  await app?.close();
  await d?.db.destroy();
});

let hostNo = 0;
/** A host: its pretend kernel (running build BOUND), its state, an agent enrolled on `channel`. */
async function newHost(channel: string): Promise<{ k: FakeKernel; agent: Agent }> {
  hostNo++;
  const k = new FakeKernel({ buildId: BOUND, bootId: `0b5c1c8e-3a63-4f5e-9f6d-2d1f4b7e8a9${hostNo}` });
  k.start();
  kernels.push(k);
  const agent = new Agent({ host: k.host(), dir: join(mkdtempSync(join(tmpdir(), 'suture-agent-')), 'agent'), keysDir, loadTimeoutMs: 5000 });
  const { token } = (await admin.request('POST', '/v1/admin/enroll-tokens', { expiresSec: 3600 })) as { token: string };
  await agent.enroll(url, token, `web${hostNo}`, channel);
  // one check-in, so that the server knows the host's kernel build and that it is alive
  expect((await agent.cycle()).assignment).toBeNull();
  return { k, agent };
}

async function rollout(channel: string, bytes: Buffer, soakSec: number): Promise<string> {
  await admin.request('POST', `/v1/admin/bundles?channel=${channel}`, bytes);
  const r = (await admin.request('POST', '/v1/admin/rollouts', { name: 'fake_bound', channel, stages: '1', soakSec, maxFailures: 1, delaySec: 0 })) as { id: string };
  return r.id;
}

const show = async (rid: string) => (await admin.request('GET', `/v1/admin/rollouts/${rid}`)) as { status: string; reason: string | null; targets: { hostId: string; state: string; failure: string | null }[] };
const stateOf = (agent: Agent): AgentState => JSON.parse(readFileSync(agent.statePath, 'utf8')) as AgentState;

describe('suture agent against a real server', () => {
  it('enrols once (a key made here, 0600), checks in with its facts, then applies a rollout: verified, loaded, installed, healthy past the soak → done', async () => {
    const { k, agent } = await newHost('stable');
    expect(statSync(agent.keyPath).mode & 0o777).toBe(0o600);
    expect(statSync(agent.statePath).mode & 0o777).toBe(0o600);
    const s = stateOf(agent);
    expect(s.hostId).toMatch(/^h-[0-9a-f]{32}$/);
    await expect(agent.enroll(url, 'st_x', 'again')).rejects.toThrow(/enrolled already, as h-/);
    const idle = await agent.cycle();
    expect(k.insmods).toEqual([]);
    expect(idle).toMatchObject({ checkins: 1, assignment: null, nextCheckinSec: 60, healthy: true, did: [] });
    const hosts = ((await admin.request('GET', '/v1/admin/hosts')) as { hosts: { id: string; buildId: string; release: string; healthOk: boolean }[] }).hosts;
    expect(hosts.find((h) => h.id === s.hostId)).toMatchObject({ buildId: BOUND, release: RELEASE, healthOk: true });

    const rid = await rollout('stable', bundle(trusted, '2026-05-01T12:00:00Z'), 1);
    const t0 = performance.now();
    const r = await agent.cycle();
    const applyMs = performance.now() - t0;
    expect(r.did).toEqual([expect.stringMatching(new RegExp(`^applied fake_bound \\(rollout ${rid}\\): transition [0-9.]+ s$`))]);
    expect(r.checkins).toBe(2);
    expect(k.fs.readPatch('fake_bound')).toMatchObject({ enabled: true, transition: false });
    const inst = agent.host.store.installed(RELEASE);
    expect(inst.map((p) => p.name)).toEqual(['fake_bound']);
    expect(inst[0]!.signer?.keyId).toBe(trusted.sk.pub.id);
    expect(stateOf(agent)).toMatchObject({ applied: { rolloutId: rid, name: 'fake_bound', soakSec: 1 }, results: [], lastTransition: { patch: 'fake_bound' } });
    expect((await show(rid)).targets).toEqual([expect.objectContaining({ hostId: s.hostId, state: 'applied' })]);
    // the soak (1 s) passes with a clean kernel log: healthy, the stage settles, done
    await new Promise((res) => setTimeout(res, 1100));
    const after = await agent.cycle();
    expect(after).toMatchObject({ healthy: true, did: [] });
    const done = await show(rid);
    expect(done.status).toBe('done');
    expect(done.targets[0]!.state).toBe('healthy');
    // the server's record of the host: the patch loaded, with its module's sha256
    const h = ((await admin.request('GET', '/v1/admin/hosts')) as { hosts: { id: string; loaded: string[] }[] }).hosts.find((x) => x.id === s.hostId)!;
    expect(h.loaded).toEqual(['fake_bound']);
    console.log(`agent: apply cycle (download, verify, load, install, 2 check-ins) ${applyMs.toFixed(0)} ms`);
  });

  it('a WARNING in the kernel log after the load: unhealthy in the soak → the server halts the rollout and instructs a rollback; the agent unloads and uninstalls', async () => {
    const { k, agent } = await newHost('canary');
    const rid = await rollout('canary', bundle(trusted, '2026-05-02T12:00:00Z'), 600);
    expect((await agent.cycle()).did[0]).toMatch(/^applied fake_bound/);
    expect(k.fs.readPatch('fake_bound')?.enabled).toBe(true);
    // a report before the load does not count; one after it does
    k.logLines(['WARNING: CPU: 1 PID: 7 at mm/old.c:1 old_fn+0x1/0x2'], 50_000_000);
    expect((await agent.cycle()).healthy).toBe(true);
    k.logLines(['WARNING: CPU: 0 PID: 42 at fs/proc/cmdline.c:12 cmdline_proc_show+0x1/0x2 [fake_bound]'], 100_000_900);
    const r = await agent.cycle();
    expect(r.healthy).toBe(false);
    expect(r.did).toEqual([`rolled back fake_bound (rollout ${rid}) as instructed`]);
    expect(k.fs.readPatch('fake_bound')).toBeUndefined();
    expect(k.rmmods).toEqual(['fake_bound']);
    expect(agent.host.store.installed(RELEASE)).toEqual([]);
    const s = await show(rid);
    expect(s.status).toBe('halted');
    expect(s.reason).toMatch(/WARNING: CPU: 0 PID: 42/);
    expect(s.targets[0]).toMatchObject({ state: 'rolled-back', failure: expect.stringMatching(/unhealthy in the soak: kernel log since fake_bound was loaded: WARNING/) });
    expect(stateOf(agent)).toMatchObject({ applied: null, results: [] });
    expect((await agent.cycle()).assignment).toBeNull();
  });

  it('a bundle signed by a key this host does not trust: refused here (nothing loaded) and reported as failed; not tried again', async () => {
    const { k, agent } = await newHost('untrusted');
    const rid = await rollout('untrusted', bundle(stranger, '2026-05-03T12:00:00Z'), 600);
    const r = await agent.cycle();
    expect(r.did).toHaveLength(1);
    expect(r.did[0]!.startsWith(`refused fake_bound (rollout ${rid}): ${agent.dir}/bundles/fake_bound-`)).toBe(true);
    expect(r.did[0]).toMatch(new RegExp(`is signed by key ${stranger.sk.pub.id}, which is not trusted on this host \\(not in ${keysDir}\\); nothing was loaded$`));
    expect(k.insmods).toEqual([]);
    expect(agent.host.store.installed(RELEASE)).toEqual([]);
    const s = await show(rid);
    expect(s.status).toBe('halted');
    expect(s.targets[0]!.failure).toMatch(new RegExp(`signed by key ${stranger.sk.pub.id}, which is not trusted on this host`));
    // the server says roll back: nothing to remove, said so; then the host is free
    const again = await agent.cycle();
    expect(k.insmods).toEqual([]);
    expect(again.did.join('\n')).not.toMatch(/applied/);
    expect((await show(rid)).targets[0]!.state).toBe('rolled-back');
  });

  it('the server away: backoff with jitter (bounded), a rollback by itself on a WARNING in the soak, then recovery: the results reach the server', async () => {
    const { k, agent } = await newHost('offline');
    const rid = await rollout('offline', bundle(trusted, '2026-05-04T12:00:00Z'), 600);
    expect((await agent.cycle()).did[0]).toMatch(/^applied fake_bound/);
    await app.close();
    k.logLines(['BUG: kernel NULL pointer dereference, address: 0000000000000008'], 100_000_900);
    const cycles: { ok: boolean; delayMs: number; kind?: string }[] = [];
    const t0 = performance.now();
    let i = 0;
    const rnd = [0, 1, 0.5, 0.25];
    await runAgent(agent, { maxCycles: 4, baseMs: 40, maxMs: 100, random: () => rnd[i++ % rnd.length]!, onCycle: (c) => cycles.push({ ok: c.ok, delayMs: c.delayMs, kind: c.error?.kind }) });
    const ms = performance.now() - t0;
    expect(cycles.map((c) => c.ok)).toEqual([false, false, false, false]);
    expect(cycles.every((c) => c.kind === 'environment')).toBe(true);
    // 40·[0.5,1], 80·[0.5,1], then capped at 100·[0.5,1]
    expect(cycles.map((c) => c.delayMs)).toEqual([20, 80, 75, 63]);
    expect(ms).toBeLessThan(5000);
    // offline: it rolled the patch back by itself, and keeps the results for the server
    expect(k.fs.readPatch('fake_bound')).toBeUndefined();
    expect(agent.host.store.installed(RELEASE)).toEqual([]);
    const st = stateOf(agent);
    expect(st.applied).toBeNull();
    expect(st.results.map((r) => `${r.action}:${r.outcome}`)).toEqual(['install:failed', 'rollback:rolled-back']);
    expect(st.results[0]!.reason).toMatch(/while the server was away: kernel log since fake_bound was loaded: BUG: kernel NULL pointer/);
    // the server is back on the same port
    await listen();
    const back: boolean[] = [];
    await runAgent(agent, { maxCycles: 1, onCycle: (c) => back.push(c.ok) });
    expect(back).toEqual([true]);
    expect(stateOf(agent).results).toEqual([]);
    const s = await show(rid);
    expect(s.status).toBe('halted');
    expect(s.targets[0]).toMatchObject({ state: 'rolled-back', failure: expect.stringMatching(/rolled it back by itself/) });
    console.log(`agent: 4 failed cycles with backoff ${ms.toFixed(0)} ms`);
  });

  it('a transition that does not complete within --load-timeout: reversed, the module removed, reported as failed with the task that held it', async () => {
    const { k, agent } = await newHost('slow');
    const rid = await rollout('slow', bundle(trusted, '2026-05-05T12:00:00Z'), 600);
    k.held.add('fake_bound');
    k.addTask(88, 'cat', 'D', '[<0>] cmdline_proc_show+0x5/0x90\n[<0>] seq_read_iter+0x1/0x2\n', 0);
    const slow = new Agent({ host: agent.host, dir: agent.dir, keysDir, loadTimeoutMs: 300 });
    // the pretend kernel completes the reversal once suture writes enabled = 0
    const poll = setInterval(() => {
      if (k.get('/sys/kernel/livepatch/fake_bound/enabled') === '0\n') {
        clearInterval(poll);
        k.release('fake_bound');
      }
    }, 5);
    const r = await slow.cycle();
    clearInterval(poll);
    expect(r.did).toEqual([expect.stringMatching(new RegExp(`^refused fake_bound \\(rollout ${rid}\\): the patching transition of fake_bound did not complete within 0\\.3 s: it was reversed and its module removed: the kernel runs what it ran before$`))]);
    expect(k.fs.readPatch('fake_bound')).toBeUndefined();
    expect(k.rmmods).toEqual(['fake_bound']);
    expect(agent.host.store.installed(RELEASE)).toEqual([]);
    expect(stateOf(agent).lastTransition).toMatchObject({ patch: 'fake_bound', blockers: [{ pid: 88, comm: 'cat', stack: ['cmdline_proc_show+0x5/0x90 <- patched function', 'seq_read_iter+0x1/0x2'] }] });
    const s = await show(rid);
    expect(s.status).toBe('halted');
    expect(s.targets[0]!.failure).toMatch(/did not complete within 0\.3 s/);
  });

  it('facts of a transition still running: the patch, how long so far, the tasks holding it up with their stacks', async () => {
    const k = new FakeKernel({ buildId: BOUND, bootId: '0b5c1c8e-3a63-4f5e-9f6d-2d1f4b7e8a99' });
    kernels.push(k);
    k.start();
    k.held.add('fake_patch');
    k.addTask(77, 'cat', 'D', '[<0>] meminfo_proc_show+0x5/0x90\n[<0>] seq_read_iter+0x1/0x2\n', 0);
    const host = k.host();
    expect((await loadPatch(host, ko('fake_patch'), { timeoutMs: 300, revertOnTimeout: false })).outcome).toBe('stalled');
    const { facts } = await gatherFacts(host, { watching: undefined, lastTransition: null, health: undefined });
    expect(facts.lastTransition).toMatchObject({ patch: 'fake_patch', blockers: [{ pid: 77, comm: 'cat', stack: ['meminfo_proc_show+0x5/0x90 <- patched function', 'seq_read_iter+0x1/0x2'] }] });
    expect(facts.lastTransition!.seconds).toBeGreaterThanOrEqual(0.2);
    expect(facts.loaded).toEqual([{ name: 'fake_patch', sha256: readPatchFile(ko('fake_patch')).sha256 }]);
    expect(facts).toMatchObject({ release: RELEASE, buildId: BOUND, bootId: '0b5c1c8e-3a63-4f5e-9f6d-2d1f4b7e8a99', uptimeSec: 100, installed: [], health: { ok: true, reasons: [] } });
  });

  it('backoff: exponential, capped, jitter in [50%, 100%]; kernel reports matched', () => {
    expect([1, 2, 3, 4, 10].map((n) => backoffDelay(n, { baseMs: 1000, maxMs: 5000, random: () => 1 }))).toEqual([1000, 2000, 4000, 5000, 5000]);
    expect(backoffDelay(3, { baseMs: 1000, maxMs: 5000, random: () => 0 })).toBe(2000);
    const recs = ['WARNING: CPU: 0 PID: 1 at x', 'INFO: task kworker/0:1:12 blocked for more than 120 seconds.', 'Oops: 0000 [#1] SMP', 'livepatch: enabling patch', 'BUG: soft lockup'].map((text, i) => ({ seq: i, usec: 10 + i, text }));
    expect(kernelReports(recs, 11)).toEqual(['INFO: task kworker/0:1:12 blocked for more than 120 seconds.', 'Oops: 0000 [#1] SMP', 'BUG: soft lockup']);
  });

  it('errors name the entity and what to do: not enrolled; a damaged state file; another agent cycle running', async () => {
    const k = new FakeKernel({ buildId: BOUND });
    const a = new Agent({ host: k.host(), dir: join(mkdtempSync(join(tmpdir(), 'suture-agent-')), 'agent') });
    const e = await a.cycle().catch((x: unknown) => x);
    expect(isSutureError(e) && e.kind).toBe('not-found');
    expect((e as Error).message).toMatch(/not enrolled in a fleet \(no .*agent\.json\)/);
    const { agent } = await newHost('locks');
    // another process (a `suture agent --once` from cron) in its cycle: this one refuses, naming it
    const other = spawn(process.execPath, ['--import', 'tsx', '-e', `(async()=>{const {Lock}=await import(${JSON.stringify(join(import.meta.dirname, '../../src/util/lock.ts'))}); const h=new Lock(${JSON.stringify(join(agent.dir, 'agent.lock'))},{what:'the fleet agent on this host'}).take('suture agent --once'); console.log('held'); process.stdin.on('data',()=>{h.release();process.exit(0)})})()`], { stdio: ['pipe', 'pipe', 'inherit'] });
    await new Promise<void>((res) => other.stdout!.once('data', () => res()));
    const c = await agent.cycle().catch((x: unknown) => x);
    other.stdin!.write('x');
    await new Promise((res) => other.once('exit', res));
    expect(isSutureError(c) && c.kind).toBe('conflict');
    expect((c as Error).message).toMatch(new RegExp(`the fleet agent on this host.*suture agent --once \\(pid ${other.pid}\\)|suture agent --once.*${other.pid}`));
    expect((await agent.cycle()).checkins).toBe(1);
    writeFileSync(agent.statePath, '{"version": 9}');
    const dmg = await agent.cycle().catch((x: unknown) => x);
    expect(isSutureError(dmg) && dmg.kind).toBe('state-damaged');
    expect((dmg as Error).message).toBe(`agent state ${agent.statePath} is not what suture wrote (version 9)`);
  });
});
