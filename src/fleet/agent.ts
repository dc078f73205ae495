// SPDX-License-Identifier: GPL-2.0-only
/**
 * The fleet agent on a host (`suture agent`): enrols once with a one-time
 * token and a key pair made here (0600 under /var/lib/suture/agent/), then
 * checks in with the host's facts (agent-facts.ts), receives its assignment
 * and carries it out through the host layer, the same code `suture load`,
 * `install`, `unload` and `uninstall` run:
 *
 *   install   download the bundle; it must be the bytes the server named
 *             (sha256 = bundle id), then admitPatch verifies it against this
 *             host's own /etc/suture/keys.d and kernel build (src/bundle);
 *             load it (a cumulative one replaces the others), watch the
 *             transition (reversed on timeout), install it for boot; report
 *             the transition's time and blockers
 *   rollback  unload it (disable, rmmod) and uninstall it
 *
 * Over the soak it reports health: kernel reports since the load and the
 * host's health command. It rolls back on the server's instruction, or by
 * itself when its health fails in the soak and no instruction comes (the
 * server is away, or says nothing). Results are kept in agent.json until a
 * check-in carries them, so an agent offline keeps working from its last
 * state and tells the server later. A failed attempt backs off with jitter.
 *
 * It never blocks `suture boot`: it takes the host lock only inside a load,
 * install or unload, as the CLI does, and a lock held by another command
 * (boot) is a "try again next cycle", not a failure.
 *
 * Host side: Node 18.19+ (Debian 12's nodejs); fetch, node:crypto, zod.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { admitPatch } from '../bundle/host.js';
import { installPatch, uninstallPatch } from '../livepatch/boot.js';
import { disablePatch, loadPrepared, prepareLoad, type Host } from '../livepatch/core.js';
import { uptimeUsec } from '../livepatch/kernel-log.js';
import { stateDirFromEnv, writeDurable } from '../livepatch/records.js';
import { isSutureError, SutureError } from '../util/errors.js';
import { Lock } from '../util/lock.js';
import { gatherFacts, blockersFact, type HealthCommand, type LastTransition } from './agent-facts.js';
import { FleetClient, readIdentityFile, writeIdentityFile } from './client.js';
import { CheckinReply, EnrollReply, newIdentity, type CheckinRequest, type Identity } from './protocol.js';

export const AGENT_STATE_VERSION = 1;

type Result = CheckinRequest['results'][number];

/** agent.json: who this host is to the server, and what it did. */
export interface AgentState {
  version: number;
  server: string;
  hostId: string;
  keyId: string;
  name: string;
  channel: string;
  enrolledAt: number;
  /** The patch the agent loaded for a rollout and watches (until rolled back, or replaced by another). */
  applied: { rolloutId: string; bundleId: string; name: string; sha256: string; bootId: string; sinceUsec: number; at: number; soakSec: number } | null;
  /** Rollouts whose install failed here: not tried again (the failure is reported instead). */
  failed: Record<string, string>;
  /** Results not yet carried by a successful check-in. */
  results: Result[];
  lastTransition: LastTransition | null;
  lastCheckin: number | null;
}

export function agentDirFromEnv(env: NodeJS.ProcessEnv = process.env): string {
  return env.SUTURE_AGENT_DIR || join(stateDirFromEnv(env), 'agent');
}

export interface AgentOptions {
  host: Host;
  /** Default /var/lib/suture/agent (SUTURE_AGENT_DIR, or SUTURE_STATE_DIR/agent). */
  dir?: string;
  /** Trusted keys (default /etc/suture/keys.d, or SUTURE_KEYS_DIR). */
  keysDir?: string;
  health?: HealthCommand;
  /** The transition of a load: reversed after this long (ms). */
  loadTimeoutMs?: number;
  /** Per request. */
  requestTimeoutMs?: number;
  /** An https server's certificate must chain to this CA file (PEM); default: $SUTURE_FLEET_CA, else the system store. */
  caFile?: string;
  signal?: AbortSignal;
  log?: (line: string) => void;
  now?: () => number;
}

export interface CycleReport {
  checkins: number;
  assignment: CheckinReply['assignment'];
  nextCheckinSec: number;
  /** What the agent did in this cycle, one line each. */
  did: string[];
  healthy: boolean;
}

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

function checkState(v: unknown, path: string): AgentState {
  const o = v as Partial<AgentState> | null;
  const bad = (why: string) =>
    new SutureError('state-damaged', `agent state ${path} is not what suture wrote (${why})`, { hint: `move it aside (mv ${path} ${path}.bad) and enrol again: suture agent --server URL --token T` });
  if (!o || typeof o !== 'object') throw bad('not an object');
  if (o.version !== AGENT_STATE_VERSION) throw bad(`version ${String(o.version)}`);
  for (const k of ['server', 'hostId', 'keyId', 'name', 'channel'] as const) if (typeof o[k] !== 'string') throw bad(`no ${k}`);
  if (!Array.isArray(o.results) || typeof o.failed !== 'object' || o.failed === null) throw bad('no results');
  return o as AgentState;
}

export class Agent {
  readonly host: Host;
  readonly dir: string;
  readonly log: (line: string) => void;
  readonly now: () => number;
  private state: AgentState | undefined;
  private id: Identity | undefined;

  constructor(readonly o: AgentOptions) {
    this.host = o.host;
    this.dir = o.dir ?? agentDirFromEnv();
    this.log = o.log ?? (() => {});
    this.now = o.now ?? Date.now;
  }

  get statePath(): string {
    return join(this.dir, 'agent.json');
  }

  get keyPath(): string {
    return join(this.dir, 'host.key');
  }

  enrolled(): boolean {
    return existsSync(this.statePath);
  }

  readState(): AgentState {
    if (this.state) return this.state;
    let text: string;
    try {
      text = readFileSync(this.statePath, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new SutureError('not-found', `this host is not enrolled in a fleet (no ${this.statePath})`, { hint: 'enrol it once: suture agent --server URL --token T (a token from suture fleet enroll-token)' });
      }
      throw new SutureError('environment', `reading agent state ${this.statePath}: ${(e as Error).message}`, { hint: 'run the agent as root' });
    }
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch {
      v = null;
    }
    this.state = checkState(v, this.statePath);
    return this.state;
  }

  private save(): void {
    writeDurable(this.statePath, `${JSON.stringify(this.state, null, 2)}\n`, 0o600);
  }

  private identity(): Identity {
    this.id ??= readIdentityFile(this.keyPath);
    return this.id;
  }

  private client(): FleetClient {
    return new FleetClient(this.readState().server, this.identity(), { timeoutMs: this.o.requestTimeoutMs ?? 30_000, caFile: this.o.caFile });
  }

  /**
   * Enrol once: a key pair made here (kept 0600; reused when an earlier
   * enrolment did not reach the server), the one-time token, the server's
   * host id. A host enrolled already keeps its identity.
   */
  async enroll(server: string, token: string, name = hostname(), channel = 'stable'): Promise<AgentState> {
    if (this.enrolled()) {
      const s = this.readState();
      throw new SutureError('conflict', `this host is enrolled already, as ${s.hostId} with ${s.server} (${this.statePath})`, {
        hint: 'run suture agent without --token; to enrol it again, move the agent directory aside first',
      });
    }
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    if (!existsSync(this.keyPath)) writeIdentityFile(this.keyPath, newIdentity());
    const id = this.identity();
    const c = new FleetClient(server, id, { timeoutMs: this.o.requestTimeoutMs ?? 30_000, caFile: this.o.caFile });
    const r = EnrollReply.parse(await c.request('POST', '/v1/enroll', { token, publicKey: id.publicKey, name: name.slice(0, 64).replace(/[^A-Za-z0-9_.-]/g, '-') || 'host', channel }));
    this.state = { version: AGENT_STATE_VERSION, server, hostId: r.hostId, keyId: r.keyId, name, channel: r.channel, enrolledAt: this.now(), applied: null, failed: {}, results: [], lastTransition: null, lastCheckin: null };
    this.save();
    this.log(`enrolled as ${r.hostId} with ${server} (channel ${r.channel})`);
    return this.state;
  }

  /** Soak still running for the applied patch? */
  private inSoak(s: AgentState): boolean {
    return !!s.applied && this.now() < s.applied.at + s.applied.soakSec * 1000;
  }

  private async checkin(): Promise<{ reply: CheckinReply; healthy: boolean; reasons: string[] }> {
    const s = this.readState();
    const watching = s.applied ? { name: s.applied.name, sinceUsec: s.applied.sinceUsec, bootId: s.applied.bootId } : undefined;
    const { facts } = await gatherFacts(this.host, { watching, lastTransition: s.lastTransition, health: this.o.health });
    const results = s.results.slice(-16);
    const reply = CheckinReply.parse(await this.client().request('POST', '/v1/checkin', { facts, results }));
    // Carried: forget them (new ones may have been added meanwhile: none, this is one flow).
    s.results = s.results.filter((r) => !results.includes(r));
    s.lastCheckin = this.now();
    this.save();
    return { reply, healthy: facts.health.ok, reasons: facts.health.reasons };
  }

  private addResult(r: Result): void {
    const s = this.readState();
    s.results = [...s.results.filter((x) => !(x.rolloutId === r.rolloutId && x.action === r.action)), r].slice(-16);
    this.save();
  }

  /**
   * One cycle: check in; carry out the assignment; check in again with what
   * it did. When the server cannot be reached, the agent still watches the
   * patch it applied and rolls it back by itself if its health fails in the
   * soak; the result waits in agent.json. Throws the server's error (the
   * caller backs off).
   */
  async cycle(): Promise<CycleReport> {
    // One cycle at a time on a host (the service and a `--once` from cron), each from the state on disk.
    this.state = undefined;
    this.readState();
    const lock = new Lock(join(this.dir, 'agent.lock'), { what: 'the fleet agent on this host' }).take('suture agent');
    try {
      return await this.cycleLocked();
    } finally {
      lock.release();
    }
  }

  private async cycleLocked(): Promise<CycleReport> {
    const s = this.readState();
    const did: string[] = [];
    let first: Awaited<ReturnType<Agent['checkin']>>;
    try {
      first = await this.checkin();
    } catch (e) {
      if (isSutureError(e) && e.kind === 'environment' && s.applied && this.inSoak(s)) await this.selfCheck(did);
      throw e;
    }
    let { reply } = first;
    let checkins = 1;
    const a = reply.assignment;
    if (!first.healthy && s.applied && this.inSoak(s) && !(a?.action === 'rollback' && a.rolloutId === s.applied.rolloutId)) {
      // Unhealthy in the soak and no instruction: roll back by itself.
      await this.rollback(s.applied.rolloutId, s.applied.name, did, `unhealthy in the soak: ${first.reasons.join('; ')}`);
    } else if (a?.action === 'install') await this.install(a, did);
    else if (a?.action === 'rollback') await this.rollback(a.rolloutId, a.name, did);
    if (this.readState().results.length) {
      reply = (await this.checkin()).reply;
      checkins++;
    }
    return { checkins, assignment: reply.assignment, nextCheckinSec: reply.nextCheckinSec, did, healthy: first.healthy };
  }

  /** Offline: the applied patch's health, and a rollback by itself when it fails. */
  private async selfCheck(did: string[]): Promise<void> {
    const s = this.readState();
    if (!s.applied) return;
    try {
      const { facts } = await gatherFacts(this.host, { watching: { name: s.applied.name, sinceUsec: s.applied.sinceUsec, bootId: s.applied.bootId }, lastTransition: s.lastTransition, health: this.o.health });
      if (!facts.health.ok) await this.rollback(s.applied.rolloutId, s.applied.name, did, `unhealthy in the soak while the server was away: ${facts.health.reasons.join('; ')}`);
    } catch (e) {
      this.log(`offline health check failed: ${(e as Error).message}`);
    }
  }

  private async install(a: NonNullable<CheckinReply['assignment']>, did: string[]): Promise<void> {
    const s = this.readState();
    if (s.failed[a.rolloutId]) {
      // Failed here before: say so again (the result may have been lost), do not retry.
      if (!s.results.some((r) => r.rolloutId === a.rolloutId)) this.addResult({ rolloutId: a.rolloutId, action: 'install', outcome: 'failed', reason: s.failed[a.rolloutId]! });
      return;
    }
    const loaded = this.host.fs.readPatch(a.name);
    if (s.applied?.rolloutId === a.rolloutId && loaded?.enabled) return; // done already; the facts say it
    try {
      // The server names the bundle; it does not get to send the agent elsewhere.
      if (a.path !== `/v1/bundles/${a.bundleId}`) {
        throw new SutureError('untrusted', `the server's assignment for rollout ${a.rolloutId} points at ${JSON.stringify(a.path.slice(0, 200))}, not at bundle ${a.bundleId} on the server: nothing was fetched`, { hint: 'check the fleet server' });
      }
      const bytes = (await this.client().request('GET', a.path)) as Buffer;
      if (!Buffer.isBuffer(bytes) || sha256(bytes) !== a.bundleId) {
        throw new SutureError('untrusted', `the bundle the server sent for rollout ${a.rolloutId} is not bundle ${a.bundleId} (its sha256 differs): nothing was loaded`, { hint: 'check the fleet server and the network between' });
      }
      const dir = join(this.dir, 'bundles');
      const file = join(dir, `${a.name}-${a.bundleId.slice(0, 16)}.suture`);
      writeDurable(file, bytes, 0o600);
      // The host's own trust: its keys, its revocation list, its kernel build (as suture load/install).
      const admitted = admitPatch(file, { fs: this.host.fs, keysDir: this.o.keysDir });
      const p = admitted.patch;
      const sinceUsec = uptimeUsec(this.host.fs.read('/proc/uptime')) ?? 0;
      const prep = prepareLoad(this.host, p, { replace: p.structure?.replace === true });
      const r = await loadPrepared(this.host, prep, { timeoutMs: this.o.loadTimeoutMs ?? 60_000, revertOnTimeout: true, signal: this.o.signal });
      const seconds = Math.round(r.transition.elapsedMs) / 1000;
      s.lastTransition = { patch: p.name, seconds, at: this.now(), blockers: blockersFact(r.transition.heldBy.length ? r.transition.heldBy : (r.transition.blockers?.blockers ?? [])) };
      if (r.outcome !== 'complete') {
        const what =
          r.outcome === 'reversed'
            ? 'it was reversed and its module removed: the kernel runs what it ran before'
            : r.outcome === 'forced'
              ? 'it was forced by someone (suture force)'
              : 'its reversal is still running (suture status shows what holds it up)';
        throw new SutureError('transition-timeout', `the patching transition of ${p.name} did not complete within ${(this.o.loadTimeoutMs ?? 60_000) / 1000} s: ${what}`, {});
      }
      await installPatch(this.host, p, undefined, admitted.signer);
      s.applied = { rolloutId: a.rolloutId, bundleId: a.bundleId, name: p.name, sha256: p.sha256, bootId: this.host.fs.bootId() ?? '', sinceUsec, at: this.now(), soakSec: a.soakSec };
      this.save();
      this.addResult({ rolloutId: a.rolloutId, action: 'install', outcome: 'applied', reason: null });
      did.push(`applied ${p.name} (rollout ${a.rolloutId}): transition ${seconds} s`);
      this.log(did.at(-1)!);
    } catch (e) {
      if (!isSutureError(e)) throw e;
      // Passing states (another suture command holds the lock, a transition running, the server away): next cycle.
      if (e.kind === 'conflict' || e.kind === 'environment' || e.kind === 'interrupted') {
        this.log(`install of ${a.name} (rollout ${a.rolloutId}) postponed: ${e.message}`);
        if (e.kind === 'environment') throw e;
        return;
      }
      const reason = `${e.message}${e.hint ? ` (${e.hint})` : ''}`.slice(0, 1024);
      s.failed[a.rolloutId] = reason;
      this.save();
      this.addResult({ rolloutId: a.rolloutId, action: 'install', outcome: 'failed', reason });
      did.push(`refused ${a.name} (rollout ${a.rolloutId}): ${e.message}`);
      this.log(did.at(-1)!);
    }
  }

  /** Unload and uninstall (either may be done already). `selfReason`: the agent's own decision, reported as a failure. */
  private async rollback(rolloutId: string, name: string, did: string[], selfReason?: string): Promise<void> {
    const s = this.readState();
    const h = this.host;
    if (h.fs.readPatch(name) || h.fs.moduleLoaded(name)) {
      const r = await disablePatch(h, name, { timeoutMs: this.o.loadTimeoutMs ?? 60_000, revertOnTimeout: false, unload: true, signal: this.o.signal });
      if (r.outcome !== 'complete' && r.outcome !== 'already-disabled') {
        throw new SutureError('transition-timeout', `rolling back ${name}: its unpatching transition did not complete (${r.outcome}); the agent tries again next cycle`, { hint: `suture status shows what holds it up` });
      }
    }
    const release = h.fs.osRelease();
    if (release && h.store.installed(release).some((p) => p.name === name)) await uninstallPatch(h, name, release);
    if (s.applied?.name === name) s.applied = null;
    this.save();
    if (selfReason) this.addResult({ rolloutId, action: 'install', outcome: 'failed', reason: `${selfReason}; the agent rolled it back by itself`.slice(0, 1024) });
    this.addResult({ rolloutId, action: 'rollback', outcome: 'rolled-back', reason: selfReason?.slice(0, 1024) ?? null });
    did.push(`rolled back ${name} (rollout ${rolloutId})${selfReason ? ` by itself: ${selfReason}` : ' as instructed'}`);
    this.log(did.at(-1)!);
  }
}

export interface BackoffOptions {
  /** First retry after about this long (ms), doubling per failure up to maxMs. */
  baseMs: number;
  maxMs: number;
  random?: () => number;
}

/** Delay before retry number `failures` (1, 2, …): exponential, capped, with jitter in [50%, 100%]. */
export function backoffDelay(failures: number, o: BackoffOptions): number {
  const cap = Math.min(o.maxMs, o.baseMs * 2 ** Math.min(failures - 1, 30));
  return Math.round(cap * (0.5 + 0.5 * (o.random ?? Math.random)()));
}

/** The normal interval, with ±20% jitter so that a fleet does not check in in step. */
export function checkinDelay(nextCheckinSec: number, random: () => number = Math.random): number {
  return Math.round(nextCheckinSec * 1000 * (0.8 + 0.4 * random()));
}

export interface RunOptions extends Partial<BackoffOptions> {
  /** Stop after this many cycles (tests; undefined: until the signal). */
  maxCycles?: number;
  /** Check in at least this often (s), even when the server says to wait longer (--interval). */
  intervalSec?: number;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  onCycle?: (r: { ok: boolean; report?: CycleReport; error?: SutureError; delayMs: number }) => void;
}

const abortableSleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });

/** Run cycles until the signal (or maxCycles): the check-in interval with jitter, or backoff after a failure. */
export async function runAgent(agent: Agent, o: RunOptions = {}): Promise<void> {
  const random = o.random ?? Math.random;
  const b: BackoffOptions = { baseMs: o.baseMs ?? 5_000, maxMs: o.maxMs ?? 300_000, random };
  const sleep = o.sleep ?? abortableSleep;
  const signal = agent.o.signal;
  let failures = 0;
  for (let n = 0; o.maxCycles === undefined || n < o.maxCycles; n++) {
    if (signal?.aborted) return;
    let delayMs: number;
    try {
      const report = await agent.cycle();
      failures = 0;
      delayMs = checkinDelay(Math.min(report.nextCheckinSec, o.intervalSec ?? Infinity), random);
      o.onCycle?.({ ok: true, report, delayMs });
    } catch (e) {
      if (!isSutureError(e) || e.kind === 'state-damaged') throw e;
      failures++;
      delayMs = backoffDelay(failures, b);
      agent.log(`check-in failed (${failures} in a row), next try in ${Math.round(delayMs / 1000)} s: ${e.message}`);
      o.onCycle?.({ ok: false, error: e, delayMs });
    }
    if (o.maxCycles !== undefined && n + 1 >= o.maxCycles) return;
    await sleep(delayMs, signal);
  }
}
