// SPDX-License-Identifier: GPL-2.0-only
/** Text and JSON shapes for the host commands (load, status, ...): the live transition display and the reports. */
import { InvalidArgumentError } from 'commander';
import { formatFrame, shortStack, type Blocker, type PendingScan } from '../livepatch/blockers.js';
import type { HostEvent, LoadResult } from '../livepatch/core.js';
import type { PatchStatus } from '../livepatch/status.js';
import type { SysfsPatch } from '../livepatch/sysfs.js';
import type { WatchResult } from '../livepatch/transition.js';
import type { Reporter, StepHandle } from '../util/progress.js';
import { EXIT } from './exit-codes.js';

/** --timeout in seconds; 0 means wait for ever. */
export function parseTimeout(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError('--timeout must be a number of seconds (0: wait for ever)');
  return n;
}

export function timeoutMs(seconds: number): number {
  return seconds === 0 ? Infinity : seconds * 1000;
}

export function fmtMs(ms: number | undefined): string {
  if (ms === undefined) return '?';
  if (ms < 10) return `${ms.toFixed(1)} ms`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  return `${(ms / 1000).toFixed(1)} s`;
}

export function blockerLines(b: Blocker): string[] {
  const head = `pid ${b.pid}${b.tid !== b.pid ? ` (thread ${b.tid})` : ''} ${b.comm} [${b.state}]${b.kernelThread ? ' kernel thread' : ''}: ${b.reason}`;
  return [head, ...shortStack(b.stack).map((f) => `    ${formatFrame(f)}`)];
}

export function blockersText(scan: PendingScan, indent = '  '): string {
  const lines = [`${indent}${scan.pending} task${scan.pending === 1 ? '' : 's'} still to switch${scan.blockers.length < scan.pending ? ` (showing ${scan.blockers.length})` : ''}:`];
  for (const b of scan.blockers) for (const l of blockerLines(b)) lines.push(`${indent}  ${l}`);
  return lines.join('\n');
}

/**
 * Turns host events into the live display: the step's detail line (elapsed,
 * tasks still to switch) and, when the set of blockers changes, their stacks.
 */
export function liveDisplay(reporter: Reporter, step: StepHandle, onEnded?: (e: Extract<HostEvent, { type: 'ended' }>) => void): (e: HostEvent) => void {
  let shownKey = '';
  return (e) => {
    switch (e.type) {
      case 'ended':
        onEnded?.(e);
        break;
      case 'note':
        reporter.info(`note: ${e.message}`);
        break;
      case 'insmod':
        step.update(`insmod ${e.file}`);
        break;
      case 'transition': {
        const p = e.progress;
        const verb = p.state === 'reversing' || p.state === 'reverse-stalled' ? 'reversing' : p.target === 1 ? 'patching' : 'unpatching';
        // The step line shows the elapsed time itself (live on a terminal); the detail changes only when
        // the count does, so plain-line logs get a line per change, not one every two seconds.
        const pending = p.completing
          ? ': every task has switched; the kernel is completing the transition (each released function waits for an RCU-tasks grace period)'
          : p.scan
            ? `: ${p.scan.pending} of ${p.scan.tasks} tasks still to switch`
            : '';
        step.update(`${e.patch} ${verb}${pending}`);
        const key = p.scan?.blockers.map((b) => `${b.tid}:${b.stack.find((f) => f.patched)?.function ?? ''}`).join(',') ?? '';
        if (p.scan && p.scan.blockers.length && key !== shownKey) {
          shownKey = key;
          reporter.info(blockersText(p.scan));
        }
        break;
      }
      case 'reversing':
        reporter.info(`timed out after ${fmtMs(e.afterMs)}: reversing the transition of ${e.patch}`);
        break;
      case 'waiting':
        step.update(`waiting for ${e.what}`);
        break;
      case 'rmmod':
        step.update(`rmmod ${e.module}`);
        break;
    }
  };
}

export function sysfsJson(p: SysfsPatch | undefined) {
  if (!p) return undefined;
  return {
    name: p.name,
    enabled: p.enabled,
    transition: p.transition,
    objects: p.objects.map((o) => ({ name: o.name, patched: o.patched, functions: o.functions })),
  };
}

export function blockerJson(b: Blocker) {
  return {
    pid: b.pid,
    tid: b.tid,
    comm: b.comm,
    state: b.state,
    kernelThread: b.kernelThread,
    reason: b.reason,
    stack: b.stack.map((f) => ({ function: f.function, offset: f.offset, size: f.size, module: f.module ?? null, patched: f.patched })),
  };
}

export function watchJson(w: WatchResult | undefined) {
  if (!w) return undefined;
  return {
    outcome: w.outcome,
    elapsedMs: round(w.elapsedMs),
    reversedAtMs: w.reversedAtMs === undefined ? undefined : round(w.reversedAtMs),
    maxPendingTasks: w.maxPending,
    // every task seen holding the transition up, with when (a task that switched is still named)
    blockers: w.heldBy.map((b) => ({ ...blockerJson(b), firstSeenMs: round(b.firstSeenMs), lastSeenMs: round(b.lastSeenMs) })),
    states: w.history.map((h) => ({ state: h.state, atMs: round(h.atMs) })),
    // from every task switched to the end: the kernel releasing replaced functions (an RCU-tasks grace period each)
    completingMs: w.completingMs === undefined ? undefined : round(w.completingMs),
  };
}

export function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}

/**
 * The result line of a completed transition, printed the moment the
 * transition ends (scripts and the benchmark wait for it); on a terminal it
 * first clears the live progress line, which redraws below it.
 */
export function printCompleteLine(e: Extract<HostEvent, { type: 'ended' }>): boolean {
  if (e.outcome !== 'complete') return false;
  const line = `${e.patch}: ${e.direction} complete in ${fmtMs(e.elapsedMs)}`;
  process.stdout.write(process.stdout.isTTY && process.stderr.isTTY ? `\r\x1b[2K${line}\n` : `${line}\n`);
  return true;
}

/** Exit code of a transition outcome. */
export function outcomeExit(outcome: WatchResult['outcome'] | 'already-disabled'): number {
  switch (outcome) {
    case 'complete':
    case 'forced':
    case 'already-disabled':
      return EXIT.ok;
    case 'reversed':
      return EXIT.reverted;
    case 'stalled':
    case 'reverse-stalled':
      return EXIT.transitionTimeout;
  }
}

export function loadJson(r: LoadResult, command: string) {
  return {
    command,
    patch: r.patch,
    file: r.file,
    outcome: r.outcome,
    exitCode: outcomeExit(r.outcome),
    notes: r.notes,
    timing: {
      totalMs: round(r.totalMs),
      insmodMs: round(r.insmodMs),
      transitionMs: round(r.transition.elapsedMs),
      kernelTransitionMs: r.kernelTransitionMs,
    },
    transition: watchJson(r.transition),
    replaced: r.replaced,
    removed: r.removed,
    sysfs: sysfsJson(r.sysfs),
  };
}

/** What to tell the operator when a transition is left stalled. */
export function stalledAdvice(patch: string): string {
  return [
    `the transition is left running; the kernel retries every second and fake-signals blocked user tasks every 15 s.`,
    `  see it:     suture status`,
    `  undo it:    suture disable ${patch}   (reverses the transition)`,
    `  last resort: suture force ${patch} --yes   (read what it means first: suture force ${patch})`,
  ].join('\n');
}

export function objectsText(p: Pick<PatchStatus, 'objects'>): string {
  return p.objects.map((o) => `${o.name}${o.patched === false ? ' (not loaded)' : ''}`).join(', ') || '-';
}
