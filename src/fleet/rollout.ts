// SPDX-License-Identifier: GPL-2.0-only
/**
 * The rollout state machine: the one place that decides what a rollout does
 * next. Pure: data in, data out, no clock, no database, no randomness. The
 * server (service.ts) loads a rollout and its targets inside a transaction
 * that holds the rollout's row lock, calls `transition` with one event, and
 * writes back what it returns; so two server processes on one database can
 * never apply two events to the same rollout at once, and never advance a
 * stage twice (the second one sees the first one's result).
 *
 * Written the way the kernel's livepatch transition code is: a small set of
 * states, each event handled in one function, every change logged.
 *
 *   rollout status
 *
 *     pending ──(tick, now ≥ startAt)──> running (stage 0 … stage N-1) ──(last stage settled)──> done
 *        │                                  │   ^
 *        │                          pause   v   │ resume
 *        └──────────── pause ──────────> paused
 *     running|paused ──(failures ≥ maxFailures)──> halted
 *     pending|running|paused|halted ──abort──> aborted
 *     any but rolled-back ──rollback──> rolled-back
 *
 *   target (one host in one rollout)
 *
 *     assigned ──applied──> applied ──healthy check-in past the soak──> healthy
 *     assigned|applied|healthy ──failed / unhealthy in soak / silent──> rollback (failure recorded)
 *     rollback ──host reports the patch gone──> rolled-back
 *     assigned ──halt / abort (not applied yet)──> cancelled
 *
 * What the server tells a host follows from its target: assigned, applied,
 * healthy → "install and load this bundle" (idempotent); rollback → "remove it".
 *
 * Stages are cumulative: "1,10%,50%,100%" means stage 0 has 1 host, stage 1
 * reaches 10% of the hosts that match the bundle's kernel build, and so on.
 * Percentages are of every matching host (silent ones too), so a host that
 * is offline during its stage is waited for, not skipped. A stage is settled
 * when it has reached its count and none of its hosts is still assigned or in
 * its soak; the last stage also when no live candidate is left (a host that
 * never returns does not hold a rollout open for ever). A stage of a fleet
 * with no matching host waits: a rollout never reports "done" to nobody.
 *
 * Hand-out: a stage's size (its cumulative count of hosts) is fixed when it
 * starts and recorded in the rollout (`stageSize`; it grows when more
 * matching hosts appear later, never beyond the hosts there are); its hosts
 * are then assigned at most `batch` per tick, so no one step writes
 * thousands of targets. A stage is settled only once all its targets exist
 * (or, the last stage, no live candidate is left). A tick may come with the
 * counts of the rollout's targets instead of the targets themselves (the
 * server's cheap path while hosts are handed out or a settled stage ends):
 * it then does all a tick does except looking for silent hosts, which needs
 * the targets (the server sends a full tick when a target may be silent).
 *
 * On halt, the affected hosts get rollback: every host that failed, and every
 * host that applied the bundle but has not yet proven healthy (a patch that
 * failed a canary is suspect); hosts not yet applied are cancelled; hosts
 * already healthy past the soak keep it until an admin rolls the rollout back.
 */

export type RolloutStatus = 'pending' | 'running' | 'paused' | 'halted' | 'aborted' | 'rolled-back' | 'done';
export type TargetState = 'assigned' | 'applied' | 'healthy' | 'rollback' | 'rolled-back' | 'cancelled';
export type AdminAction = 'pause' | 'resume' | 'abort' | 'rollback';

export type StageSpec = { kind: 'count'; n: number } | { kind: 'percent'; p: number };

export interface RolloutCore {
  status: RolloutStatus;
  /** -1 before the first stage starts. */
  stage: number;
  /** How many hosts the current stage reaches in all (cumulative), fixed when it started; 0 before. */
  stageSize: number;
  stages: readonly StageSpec[];
  soakMs: number;
  maxFailures: number;
  /** When the rollout may start (publish time + --delay). */
  startAt: number;
  /** Why it halted, was aborted or rolled back. */
  reason: string | null;
}

export interface Target {
  hostId: string;
  stage: number;
  state: TargetState;
  /** Why the host failed; a failure is counted once and stays recorded. */
  failure: string | null;
  assignedAt: number;
  appliedAt: number | null;
  /** The host's last check-in (filled in by the server from the host's row). */
  lastSeen: number;
}

export type RolloutEvent =
  /**
   * Time passes: start, detect silent hosts, advance settled stages. `candidates`: matching, free,
   * live hosts not yet in this rollout, in the order to take them; `waiting`: how many matching
   * free hosts are not in it yet, silent ones included (default: the candidates).
   */
  | {
      type: 'tick';
      now: number;
      candidates: readonly string[];
      silentMs: number;
      waiting?: number;
      /** At most this many hosts are assigned by this tick (default: no bound). */
      batch?: number;
      /**
       * The counts of the rollout's targets, given instead of the targets (pass none): a tick that
       * looks for no silent host (the server's cheap path; it sends a tick with the targets when one may be).
       */
      counts?: TargetCounts;
    }
  | { type: 'host-applied'; hostId: string; now: number }
  | { type: 'host-failed'; hostId: string; now: number; reason: string }
  /** A check-in with the host's health while it runs the bundle. */
  | { type: 'host-report'; hostId: string; now: number; healthy: boolean; reasons: readonly string[] }
  | { type: 'host-rolled-back'; hostId: string; now: number }
  | { type: 'admin'; action: AdminAction; now: number; by: string };

/** How many targets a rollout has: in all, not settled yet (assigned or in the soak), healthy. */
export interface TargetCounts {
  have: number;
  open: number;
  healthy: number;
}

export interface Step {
  rollout: RolloutCore;
  /** Targets added or changed (the whole new value of each). */
  changed: Target[];
  /** What happened, one line each, for the rollout's log. */
  log: string[];
}

/** An event the rollout's present state does not allow (an admin action only: host events never throw). */
export class RolloutRefusal extends Error {
  constructor(
    readonly status: RolloutStatus,
    readonly action: AdminAction,
  ) {
    super(`cannot ${action} a rollout that is ${status}`);
    this.name = 'RolloutRefusal';
  }
}

export const ACTIVE: readonly RolloutStatus[] = ['pending', 'running', 'paused'];
const FINISHED: readonly RolloutStatus[] = ['done', 'aborted', 'rolled-back'];

/** Parse "1,10%,50%,100%": whole counts or percentages, cumulative, non-decreasing, at most 20. */
export function parseStages(text: string): StageSpec[] {
  const parts = text.split(',').map((s) => s.trim());
  if (parts.length === 0 || parts.length > 20) throw new Error(`--stages ${text}: give 1 to 20 stages, e.g. 1,10%,50%,100%`);
  const out = parts.map((p): StageSpec => {
    let m = /^(\d{1,6})$/.exec(p);
    if (m) {
      const n = Number(m[1]);
      if (n < 1) throw new Error(`--stages ${text}: stage "${p}" has no host`);
      return { kind: 'count', n };
    }
    m = /^(\d{1,3}(?:\.\d{1,2})?)%$/.exec(p);
    if (m) {
      const pc = Number(m[1]);
      if (pc <= 0 || pc > 100) throw new Error(`--stages ${text}: stage "${p}" is not a percentage from 0 (excluded) to 100`);
      return { kind: 'percent', p: pc };
    }
    throw new Error(`--stages ${text}: stage "${p}" is neither a count of hosts (5) nor a percentage (10%)`);
  });
  return out;
}

export function formatStages(s: readonly StageSpec[]): string {
  return s.map((x) => (x.kind === 'count' ? String(x.n) : `${x.p}%`)).join(',');
}

/** How many hosts stage k reaches in all (cumulative), of a population of matching hosts. */
export function stageTarget(spec: StageSpec, population: number): number {
  if (population <= 0) return 0;
  const n = spec.kind === 'count' ? spec.n : Math.ceil((spec.p * population) / 100 - 1e-9);
  return Math.max(1, Math.min(population, n));
}

/** Whether a target keeps its host busy (no other rollout may take it). */
export function holdsHost(status: RolloutStatus, t: Target): boolean {
  if (t.state === 'rollback') return true; // until the host reports the patch gone
  if (t.state === 'cancelled' || t.state === 'rolled-back') return false;
  return ACTIVE.includes(status);
}

/** What the server tells the host of a target. */
export function instructionFor(t: Target): 'install' | 'rollback' | null {
  if (t.state === 'assigned' || t.state === 'applied' || t.state === 'healthy') return 'install';
  if (t.state === 'rollback') return 'rollback';
  return null;
}

export function failures(targets: readonly Target[]): number {
  return targets.filter((t) => t.failure !== null).length;
}

class Run {
  readonly changed = new Map<string, Target>();
  readonly log: string[] = [];
  readonly targets: Map<string, Target>;
  rollout: RolloutCore;

  constructor(
    r: RolloutCore,
    targets: readonly Target[],
    /** Targets not given, by their counts (a tick with counts). */
    readonly base: TargetCounts = { have: 0, open: 0, healthy: 0 },
  ) {
    this.rollout = { ...r };
    this.targets = new Map(targets.map((t) => [t.hostId, t]));
  }

  have(): number {
    return this.base.have + this.targets.size;
  }

  open(): number {
    return this.base.open + this.all().filter((t) => !this.settled(t)).length;
  }

  healthy(): number {
    return this.base.healthy + this.all().filter((t) => t.state === 'healthy').length;
  }

  set(t: Target, patch: Partial<Target>, line?: string): Target {
    const n = { ...t, ...patch };
    this.targets.set(n.hostId, n);
    this.changed.set(n.hostId, n);
    if (line) this.log.push(line);
    return n;
  }

  status(s: RolloutStatus, line: string, reason: string | null = this.rollout.reason): void {
    this.rollout = { ...this.rollout, status: s, reason };
    this.log.push(line);
  }

  all(): Target[] {
    return [...this.targets.values()];
  }

  /** A host failed: count it, tell it to roll back, halt at max-failures. */
  fail(t: Target, reason: string): void {
    if (t.failure !== null || t.state === 'rolled-back' || t.state === 'cancelled') return;
    this.set(t, { state: 'rollback', failure: reason }, `host ${t.hostId} failed: ${reason}; it rolls back`);
    const n = failures(this.all());
    const r = this.rollout;
    if ((r.status === 'running' || r.status === 'paused') && n >= r.maxFailures) this.halt(`${n} host${n === 1 ? '' : 's'} failed (max ${r.maxFailures}); last: ${t.hostId}: ${reason}`);
  }

  halt(reason: string): void {
    this.status('halted', `halted: ${reason}`, reason);
    for (const t of this.all()) {
      if (t.state === 'assigned') this.set(t, { state: 'cancelled' }, `host ${t.hostId}: cancelled (not applied yet)`);
      else if (t.state === 'applied') this.set(t, { state: 'rollback' }, `host ${t.hostId}: rolls back (applied, not yet healthy past the soak)`);
    }
  }

  settled(t: Target): boolean {
    return t.state !== 'assigned' && t.state !== 'applied';
  }

  /**
   * How many hosts stage k wants in all now: its size as the hosts not yet in the rollout now make it, and
   * not less than the size it started with, as far as there are hosts for it.
   */
  want(k: number, waiting: number): number {
    const pop = this.have() + waiting;
    return Math.max(stageTarget(this.rollout.stages[k]!, pop), Math.min(this.rollout.stageSize, pop));
  }

  /** Start stage k: fix its size, assign its first batch of hosts. */
  startStage(k: number, now: number, candidates: string[], waiting: number, batch: number): void {
    const r = this.rollout;
    const have = this.have();
    const size = stageTarget(r.stages[k]!, have + waiting);
    this.rollout = { ...r, stage: k, stageSize: size };
    const take = candidates.splice(0, Math.min(batch, Math.max(0, size - have)));
    this.log.push(`stage ${k + 1}/${r.stages.length} (${formatStages([r.stages[k]!])}) started: ${take.length} host${take.length === 1 ? '' : 's'} assigned, ${have + take.length} of ${size} in all`);
    this.add(take, k, now);
  }

  /** Assign live candidates to stage k, up to its count (grown if more hosts match now), at most `batch`. */
  assign(k: number, now: number, candidates: string[], waiting: number, batch: number): void {
    const have = this.have();
    const want = this.want(k, waiting);
    if (want > this.rollout.stageSize) this.rollout = { ...this.rollout, stageSize: want };
    if (have >= want) return;
    const take = candidates.splice(0, Math.min(batch, want - have));
    if (take.length === 0) return;
    this.log.push(`stage ${k + 1}/${this.rollout.stages.length}: ${take.length} more host${take.length === 1 ? '' : 's'} assigned, ${have + take.length} of ${want} in all`);
    this.add(take, k, now);
  }

  private add(hostIds: readonly string[], k: number, now: number): void {
    for (const h of hostIds) this.set({ hostId: h, stage: k, state: 'assigned', failure: null, assignedAt: now, appliedAt: null, lastSeen: now }, {});
  }

  /** Whether stage k has all its hosts (the last stage: or no live candidate is left) and all of them settled. */
  stageDone(k: number, candidates: readonly string[], waiting: number): boolean {
    if (this.have() === 0 || this.open() > 0) return false;
    return this.have() >= this.want(k, waiting) || (k === this.rollout.stages.length - 1 && candidates.length === 0);
  }
}

function tick(run: Run, e: Extract<RolloutEvent, { type: 'tick' }>): void {
  const candidates = e.candidates.filter((h) => !run.targets.has(h));
  // hosts taken below leave `waiting` and the tick's batch too
  let batch = e.batch ?? Infinity;
  let waiting = Math.max(e.waiting ?? candidates.length, candidates.length);
  const taking = (f: () => void) => {
    const before = candidates.length;
    f();
    waiting -= before - candidates.length;
    batch -= before - candidates.length;
  };
  const start = (k: number) => taking(() => run.startStage(k, e.now, candidates, waiting, batch));
  if (run.rollout.status === 'pending' && e.now >= run.rollout.startAt) {
    if (candidates.length === 0) return; // nobody matches yet: wait, still pending
    run.status('running', 'started');
    start(0);
  }
  const r = run.rollout;
  if (r.status !== 'running' && r.status !== 'paused') return;
  // Silent hosts: assigned or in the soak, no check-in for silentMs (of the targets given: none with counts).
  for (const t of run.all()) {
    if ((t.state === 'assigned' || t.state === 'applied') && e.now - t.lastSeen > e.silentMs) {
      run.fail(t, `silent: no check-in for ${Math.round((e.now - t.lastSeen) / 1000)} s`);
    }
  }
  // Advance through every settled stage (bounded by the number of stages).
  for (let guard = 0; guard <= r.stages.length && run.rollout.status === 'running'; guard++) {
    const k = run.rollout.stage;
    if (k < 0) {
      if (candidates.length === 0) return;
      start(0);
      continue;
    }
    // hosts that came back (or enrolled) since the stage started fill it up
    taking(() => run.assign(k, e.now, candidates, waiting, batch));
    if (!run.stageDone(k, candidates, waiting)) return;
    if (k === r.stages.length - 1) {
      run.status('done', `done: ${run.healthy()} hosts healthy`);
      return;
    }
    start(k + 1);
  }
}

function admin(run: Run, e: Extract<RolloutEvent, { type: 'admin' }>): void {
  const s = run.rollout.status;
  switch (e.action) {
    case 'pause':
      if (s !== 'running' && s !== 'pending') throw new RolloutRefusal(s, e.action);
      run.status('paused', `paused by ${e.by}`);
      return;
    case 'resume':
      if (s !== 'paused') throw new RolloutRefusal(s, e.action);
      run.status(run.rollout.stage < 0 ? 'pending' : 'running', `resumed by ${e.by}`);
      return;
    case 'abort':
      if (FINISHED.includes(s)) throw new RolloutRefusal(s, e.action);
      run.status('aborted', `aborted by ${e.by}`, `aborted by ${e.by}`);
      for (const t of run.all()) if (t.state === 'assigned') run.set(t, { state: 'cancelled' }, `host ${t.hostId}: cancelled (not applied yet)`);
      return;
    case 'rollback':
      if (s === 'rolled-back') throw new RolloutRefusal(s, e.action);
      run.status('rolled-back', `rolled back by ${e.by}`, `rolled back by ${e.by}`);
      for (const t of run.all()) if (t.state === 'assigned' || t.state === 'applied' || t.state === 'healthy') run.set(t, { state: 'rollback' }, `host ${t.hostId}: rolls back`);
      return;
  }
}

function hostEvent(run: Run, e: Exclude<RolloutEvent, { type: 'tick' | 'admin' }>): void {
  const t = run.targets.get(e.hostId);
  if (!t) return; // not a host of this rollout: the server never sends such an event; ignore it
  switch (e.type) {
    case 'host-applied':
      if (t.state === 'assigned') run.set(t, { state: 'applied', appliedAt: e.now, lastSeen: e.now }, `host ${t.hostId} applied the bundle; soak starts`);
      return;
    case 'host-failed':
      if (t.state === 'assigned' || t.state === 'applied' || t.state === 'healthy') run.fail(t, e.reason);
      return;
    case 'host-report':
      if (t.state !== 'applied') return;
      if (!e.healthy) return run.fail(t, `unhealthy in the soak: ${e.reasons.join('; ') || 'no reason given'}`);
      if (e.now - (t.appliedAt ?? e.now) >= run.rollout.soakMs) run.set(t, { state: 'healthy', lastSeen: e.now }, `host ${t.hostId} healthy past the soak`);
      return;
    case 'host-rolled-back':
      if (t.state === 'rollback') run.set(t, { state: 'rolled-back' }, `host ${t.hostId} rolled back`);
      return;
  }
}

/**
 * Apply one event to a rollout and its targets. Returns the new rollout, the
 * targets it changed, and the log lines. Throws RolloutRefusal only for an
 * admin action the rollout's status does not allow.
 */
export function transition(rollout: RolloutCore, targets: readonly Target[], e: RolloutEvent): Step {
  const run = new Run(rollout, targets, e.type === 'tick' ? e.counts : undefined);
  if (e.type === 'tick') tick(run, e);
  else if (e.type === 'admin') admin(run, e);
  else hostEvent(run, e);
  return { rollout: run.rollout, changed: [...run.changed.values()], log: run.log };
}
