// SPDX-License-Identifier: GPL-2.0-only
/**
 * The fleet's reports, computed from rows the server loaded and sums its
 * database made (service.ts): pure functions, no database, no clock of their own.
 *
 * - A host's state: the first that holds of
 *     silent        no check-in for the silent time (3 missed check-ins)
 *     unhealthy     its last check-in said so (kernel log since the load, health command)
 *     failed        its latest rollout recorded a failure for it (with the reason)
 *     stalled       a livepatch transition still running at its last check-in for
 *                   STALLED_SEC or more, with tasks holding it up
 *     applied       a patch is loaded
 *     no-patch      no bundle is published for its kernel build: it needs a reboot into a
 *                   kernel that has one
 *     not-applied   bundles exist for its kernel, none is loaded
 *     unreported    enrolled, never checked in
 * - A rollout's report: progress by target state, the hosts a pin kept out, failures with
 *   their reasons, the transition times of its hosts (percentiles and a histogram), the
 *   tasks that held transitions up across the fleet (grouped by command and stack), and a
 *   progress series (assigned / applied / healthy / failed over time).
 * - Per CVE: the bundles that carry it, the hosts covered (a bundle carrying it loaded, for
 *   their own kernel build) and the hosts not covered, each with why.
 */
import type { HostFacts } from './protocol.js';

export const STALLED_SEC = 30;
/** A transition whose report time is this close to the check-in's was still running when the host checked in. */
const RUNNING_SKEW_MS = 30_000;

export type HostState = 'silent' | 'unhealthy' | 'failed' | 'stalled' | 'applied' | 'no-patch' | 'not-applied' | 'unreported';

export interface HostRow {
  id: string;
  name: string;
  build_id: string | null;
  last_seen: number | null;
  reported_at: number | null;
  health_ok: number | null;
  facts: HostFacts | null;
}

export interface HostContext {
  now: number;
  silentMs: number;
  /** Kernel build IDs some published bundle is for. */
  builds: ReadonlySet<string>;
  /** The host's latest recorded failure (any rollout). */
  failure?: { rolloutId: string; reason: string; at: number | null };
}

/** Whether the host's last transition was still running, held up, when it checked in. */
export function stalledTransition(h: HostRow): NonNullable<HostFacts['lastTransition']> | null {
  const t = h.facts?.lastTransition;
  if (!t || !h.facts || h.reported_at === null) return null;
  const running = Math.abs(h.reported_at - t.at) <= RUNNING_SKEW_MS && h.facts.loaded.some((p) => p.name === t.patch);
  return running && t.seconds >= STALLED_SEC && t.blockers.length > 0 ? t : null;
}

export function hostState(h: HostRow, c: HostContext): { state: HostState; reason: string } {
  if (h.last_seen === null || !h.facts) return { state: 'unreported', reason: 'enrolled, no check-in yet' };
  const f = h.facts;
  if (c.now - h.last_seen > c.silentMs) return { state: 'silent', reason: `no check-in for ${Math.round((c.now - h.last_seen) / 1000)} s` };
  if (h.health_ok === 0) return { state: 'unhealthy', reason: f.health.reasons.join('; ') || 'the host reported itself unhealthy' };
  if (c.failure) return { state: 'failed', reason: `rollout ${c.failure.rolloutId}: ${c.failure.reason}` };
  const st = stalledTransition(h);
  if (st) return { state: 'stalled', reason: `transition of ${st.patch} running for ${Math.round(st.seconds)} s, held up by ${st.blockers.map((b) => `${b.comm}[${b.pid}]`).join(', ')}` };
  if (f.loaded.length) return { state: 'applied', reason: `loaded: ${f.loaded.map((p) => p.name).join(', ')}${f.effectiveVersion ? `; effective version ${f.effectiveVersion}` : ''}` };
  if (!h.build_id || !c.builds.has(h.build_id)) return { state: 'no-patch', reason: `no bundle is published for its kernel (${f.release}, build ${f.buildId}): it needs a reboot into a kernel that has one` };
  return { state: 'not-applied', reason: 'bundles exist for its kernel; none is loaded' };
}

// ---------- distributions ----------

export interface Distribution {
  count: number;
  p50: number | null;
  p90: number | null;
  max: number | null;
  /** Upper bounds in seconds (the last is +Infinity, written null) and how many fall in each. */
  buckets: { le: number | null; count: number }[];
}

/** The histogram's upper bounds in seconds (a last bucket takes the rest). */
export const BOUNDS = [0.01, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 300];

/** The index of the p-th percentile (nearest rank) in n sorted values. */
export function percentileIndex(n: number, p: number): number {
  return Math.min(n - 1, Math.max(0, Math.ceil((p / 100) * n) - 1));
}

/**
 * A distribution from what a database sums up: how many values, the largest, the values at the 50th and
 * 90th percentile ranks (percentileIndex), and how many are at or below each of BOUNDS.
 */
export function distributionOf(s: { count: number; max: number | null; p50: number | null; p90: number | null; atOrBelow: readonly number[] }): Distribution {
  const buckets = [...BOUNDS, null].map((le, i) => ({ le, count: (i < BOUNDS.length ? s.atOrBelow[i]! : s.count) - (i > 0 ? s.atOrBelow[i - 1]! : 0) }));
  return { count: s.count, p50: s.count ? s.p50 : null, p90: s.count ? s.p90 : null, max: s.count ? s.max : null, buckets };
}

export function distribution(values: readonly number[]): Distribution {
  const v = [...values].sort((a, b) => a - b);
  const at = (p: number) => (v.length ? v[percentileIndex(v.length, p)]! : null);
  return distributionOf({ count: v.length, max: v.at(-1) ?? null, p50: at(50), p90: at(90), atOrBelow: BOUNDS.map((b) => v.filter((x) => x <= b).length) });
}

// ---------- rollouts ----------

export type Blocker = NonNullable<HostFacts['lastTransition']>['blockers'][number];

export interface Blockers {
  comm: string;
  stack: string[];
  hosts: string[];
}

/** At most this many points in a rollout's progress series (closer times are summed into one). */
export const SERIES_POINTS = 200;

/**
 * What the database sums up of a rollout's targets (service.ts, in SQL), so that a report of 10,000 hosts
 * is not built from 10,000 rows.
 */
export interface TargetSummary {
  byState: Record<string, number>;
  failures: { hostId: string; name: string; reason: string; at: number | null }[];
  transitions: Distribution;
  /** The hosts that reported tasks holding their transition up (the others reported none). */
  blocked: { name: string; blockers: Blocker[] }[];
  /** How many targets were assigned, applied, found healthy, failed at each time (or in each span, its last time), in time order. */
  changes: { at: number; assigned: number; applied: number; healthy: number; failed: number }[];
}

export interface RolloutReport {
  byState: Record<string, number>;
  /** Hosts of the bundle's build and channel that a pin to another patch kept out. */
  pinned: { hostId: string; name: string; patch: string }[];
  failures: { hostId: string; name: string; reason: string; at: number | null }[];
  transitions: Distribution;
  blockers: Blockers[];
  /** Cumulative counts after each change (at most SERIES_POINTS: closer changes summed), in time order. */
  series: { at: number; assigned: number; applied: number; healthy: number; failed: number }[];
}

export function rolloutReport(s: TargetSummary, pinned: RolloutReport['pinned']): RolloutReport {
  const groups = new Map<string, Blockers>();
  for (const t of s.blocked) {
    for (const b of t.blockers) {
      const key = JSON.stringify([b.comm, b.stack]);
      const g = groups.get(key) ?? { comm: b.comm, stack: b.stack, hosts: [] };
      if (!g.hosts.includes(t.name)) g.hosts.push(t.name);
      groups.set(key, g);
    }
  }
  for (const g of groups.values()) g.hosts.sort();
  const blockers = [...groups.values()].sort((a, b) => b.hosts.length - a.hosts.length || a.comm.localeCompare(b.comm));
  const series: RolloutReport['series'] = [];
  const c = { assigned: 0, applied: 0, healthy: 0, failed: 0 };
  for (const p of [...s.changes].sort((a, b) => a.at - b.at)) {
    c.assigned += p.assigned;
    c.applied += p.applied;
    c.healthy += p.healthy;
    c.failed += p.failed;
    series.push({ at: p.at, ...c });
  }
  return { byState: s.byState, pinned, failures: s.failures, transitions: s.transitions, blockers, series };
}

// ---------- CVEs ----------

export interface BundleRow {
  id: string;
  name: string;
  build_id: string;
  release: string;
  cves: string[];
  moduleSha256: string;
}

export interface CveEntry {
  id: string;
  bundles: { id: string; name: string; release: string; buildId: string }[];
  covered: { hostId: string; name: string; patch: string }[];
  notCovered: { hostId: string; name: string; reason: string }[];
}

/** Per CVE of any published bundle: which hosts are covered (a bundle carrying it loaded, for their build) and which are not, and why. */
export function cveReport(bundles: readonly BundleRow[], hosts: readonly HostRow[]): CveEntry[] {
  const ids = [...new Set(bundles.flatMap((b) => b.cves))].sort();
  return ids.map((id) => {
    const carrying = bundles.filter((b) => b.cves.includes(id));
    const e: CveEntry = { id, bundles: carrying.map((b) => ({ id: b.id, name: b.name, release: b.release, buildId: b.build_id })), covered: [], notCovered: [] };
    for (const h of hosts) {
      const mine = carrying.filter((b) => b.build_id === h.build_id);
      const loaded = h.facts ? mine.find((b) => h.facts!.loaded.some((p) => p.name === b.name && (p.sha256 === null || p.sha256 === b.moduleSha256))) : undefined;
      if (loaded) e.covered.push({ hostId: h.id, name: h.name, patch: loaded.name });
      else if (!h.facts) e.notCovered.push({ hostId: h.id, name: h.name, reason: 'never checked in' });
      else if (!mine.length) e.notCovered.push({ hostId: h.id, name: h.name, reason: `no bundle carrying ${id} is published for its kernel (${h.facts.release}, build ${h.facts.buildId}): it needs a reboot into a kernel that has one` });
      else e.notCovered.push({ hostId: h.id, name: h.name, reason: `${mine.map((b) => b.name).join(' or ')} (for its kernel) is not loaded` });
    }
    return e;
  });
}
