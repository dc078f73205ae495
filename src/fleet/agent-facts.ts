// SPDX-License-Identifier: GPL-2.0-only
/**
 * What the agent tells the fleet server about its host, read through the host
 * layer (src/livepatch: status.ts, kernel-log.ts), never re-implemented: the
 * release, the kernel build ID (/sys/kernel/notes), the boot id and uptime,
 * loaded and installed patches with their module sha256, the effective
 * version, the last transition with its time and blockers, and health.
 *
 * Health over a soak: kernel reports (BUG, Oops, WARNING, hung tasks) logged
 * since the agent loaded a patch (same boot only), and the host's own health
 * command (its exit status), when one is configured.
 *
 * Host side: runs on Debian 12's nodejs (18.19+); imports no server code.
 */
import { spawn } from 'node:child_process';
import type { Blocker } from '../livepatch/blockers.js';
import type { Host } from '../livepatch/core.js';
import type { KmsgRecord } from '../livepatch/kernel-log.js';
import { hostStatus, type HostStatus } from '../livepatch/status.js';
import { SutureError } from '../util/errors.js';
import type { HostFacts } from './protocol.js';

/** A kernel report line: what the soak watches for (the first line of each report). */
export const KERNEL_REPORT = /\b(BUG:|Oops|WARNING:|kernel BUG at|general protection fault|Kernel panic)|blocked for more than \d+ seconds/;

/** The last transition the agent ran (or one in progress), as the protocol carries it. */
export type LastTransition = NonNullable<HostFacts['lastTransition']>;

export function blockersFact(blockers: readonly Blocker[]): LastTransition['blockers'] {
  return blockers.slice(0, 64).map((b) => ({
    pid: b.pid,
    comm: b.comm.slice(0, 64),
    stack: b.stack.slice(0, 64).map((f) => `${f.function}+0x${f.offset.toString(16)}/0x${f.size.toString(16)}${f.module ? ` [${f.module}]` : ''}${f.patched ? ' <- patched function' : ''}`.slice(0, 256)),
  }));
}

/** Kernel report lines logged at or after `sinceUsec` (kmsg time: µs since boot). */
export function kernelReports(records: readonly KmsgRecord[], sinceUsec: number): string[] {
  return records.filter((r) => r.usec >= sinceUsec && KERNEL_REPORT.test(r.text)).map((r) => r.text);
}

export interface HealthCommand {
  /** Run by /bin/sh -c; exit status 0 is healthy. */
  command: string;
  timeoutMs: number;
}

/** Run the host's own health command: undefined when it passed, else why not (one line). */
export function runHealthCommand(h: HealthCommand): Promise<string | undefined> {
  return new Promise((resolve) => {
    let tail = '';
    const child = spawn('/bin/sh', ['-c', h.command], { stdio: ['ignore', 'pipe', 'pipe'] });
    const keep = (b: Buffer) => {
      tail = (tail + b.toString('utf8')).slice(-400);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    const timer = setTimeout(() => child.kill('SIGKILL'), h.timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      resolve(`health command ${JSON.stringify(h.command)} could not run: ${e.message}`);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) return resolve(undefined);
      const last = tail.trim().split('\n').at(-1) ?? '';
      resolve(`health command ${JSON.stringify(h.command)} ${signal ? `was killed (${signal}${signal === 'SIGKILL' ? `, after ${h.timeoutMs / 1000} s` : ''})` : `exited ${code}`}${last ? `: ${last}` : ''}`.slice(0, 512));
    });
  });
}

export interface FactsInput {
  /** The patch the agent loaded and watches, with the kernel-log position of its load. */
  watching: { name: string; sinceUsec: number; bootId: string } | undefined;
  lastTransition: LastTransition | null;
  health: HealthCommand | undefined;
}

export interface GatheredFacts {
  facts: HostFacts;
  status: HostStatus;
}

/** The host's facts now. Throws a SutureError naming what the host layer cannot read. */
export async function gatherFacts(host: Host, i: FactsInput): Promise<GatheredFacts> {
  const s = hostStatus(host);
  const k = s.kernel;
  if (!k.release) throw new SutureError('environment', 'the running kernel release cannot be read (/proc/sys/kernel/osrelease)', { hint: 'mount /proc' });
  if (!k.buildId) {
    throw new SutureError('environment', "the running kernel's GNU build ID cannot be read (/sys/kernel/notes): the fleet matches bundles to hosts by it", {
      hint: 'mount sysfs (/sys) and run the agent as root',
    });
  }
  if (!k.bootId) throw new SutureError('environment', 'the boot id cannot be read (/proc/sys/kernel/random/boot_id)', { hint: 'mount /proc' });
  const reasons: string[] = [];
  // The health command first: what it makes the kernel log (a WARNING in the patched code it
  // exercises) is in this check-in, not the next one (a real Debian host showed it a check-in late).
  const unhealthy = i.health ? await runHealthCommand(i.health) : undefined;
  if (i.watching && i.watching.bootId === k.bootId) {
    for (const line of kernelReports(host.kmsg(), i.watching.sinceUsec)) reasons.push(`kernel log since ${i.watching.name} was loaded: ${line}`.slice(0, 512));
  }
  if (unhealthy) reasons.push(unhealthy);
  // A transition still running: how long so far (since suture loaded it, when it did) and what holds it up now.
  const busy = s.transition ? s.patches.find((p) => p.name === s.transition!.patch) : undefined;
  const since = busy?.loadedAt ? Date.parse(busy.loadedAt) : NaN;
  const last: LastTransition | null = s.transition
    ? { patch: s.transition.patch, seconds: Number.isFinite(since) ? Math.max(0, (Date.now() - since) / 1000) : 0, at: Date.now(), blockers: blockersFact(s.transition.blockers) }
    : i.lastTransition;
  const facts: HostFacts = {
    release: k.release,
    buildId: k.buildId,
    bootId: k.bootId,
    uptimeSec: s.boot.uptime ?? 0,
    effectiveVersion: k.effective.effective ?? null,
    loaded: s.patches.filter((p) => p.enabled).slice(0, 64).map((p) => ({ name: p.name, sha256: p.sha256 ?? null })),
    installed: s.installed.slice(0, 64).map((p) => ({ name: p.name, sha256: p.sha256 ?? null })),
    lastTransition: last,
    health: { ok: reasons.length === 0, reasons: reasons.slice(0, 32) },
  };
  return { facts, status: s };
}
