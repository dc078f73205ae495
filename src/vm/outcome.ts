// SPDX-License-Identifier: GPL-2.0-only
/**
 * What a guest session means: each step's result, and one outcome (ok, a
 * command failed, a module refused, a crash, a hang, a boot failure) with the
 * reason in one line. And the one place that maps an outcome to an error
 * kind, for every command that boots a guest (`vm run`, `kernel fetch`'s
 * symbol capture, ...).
 */
import type { ErrorKind } from '../util/errors.js';
import { SutureError } from '../util/errors.js';
import { findCrash, kernelTransitionMs, livepatchLines, stripTimestamp } from './console.js';
import type { Accel } from './qemu.js';
import type { LoadResult, StepResult, VmOutcome, VmResult, VmSpec } from './run.js';
import type { Session } from './session.js';

/** The error kind of an outcome that is not ok. A failing command is the caller's to judge: `vm run` exits with its status. */
export function outcomeErrorKind(outcome: Exclude<VmOutcome, 'ok'>): ErrorKind {
  switch (outcome) {
    case 'crash':
    case 'boot-failure':
      return 'guest-crash';
    case 'timeout':
      return 'guest-timeout';
    case 'refused':
      return 'guest-refused';
    case 'command-failed':
      return 'internal';
  }
}

/** The error for a run that is not ok (undefined for ok), naming what was run. */
export function vmError(r: VmResult, what: string): SutureError | undefined {
  if (r.outcome === 'ok') return undefined;
  return new SutureError(outcomeErrorKind(r.outcome), `${what}: ${r.reason}`, { details: r.consoleTail.slice(-20).join('\n') });
}

/** The kernel's reason for refusing a module: its dmesg line if there is one, else insmod's words. */
function refusalReason(output: string, dmesg: string[]): string {
  const kernelSays = dmesg
    .map(stripTimestamp)
    .filter((l) => /version magic|disagrees about version|Unknown symbol|module verification failed|not marked as a livepatch|livepatch: |Invalid module|key was rejected|module is from an unknown/i.test(l))
    .filter((l) => !/tainting kernel|loading out-of-tree/.test(l));
  const insmod = output.trim().split('\n').filter(Boolean).pop() ?? '';
  return kernelSays.length ? `${kernelSays.join('; ')} (${insmod})` : insmod || 'no reason given';
}

export function classify(spec: VmSpec, s: Session, labels: ReadonlyMap<string, string>, accel: Accel, totalMs: number): VmResult {
  const result = (id: string): StepResult => {
    const raw = Buffer.concat([...(s.outputs.get(id) ?? [])]);
    const end = s.ends.get(id);
    return {
      id,
      label: labels.get(id) ?? id,
      status: end ? end.status : null,
      output: raw.toString('utf8'),
      raw,
      durationMs: end ? end.durationMs : null,
    };
  };
  const dmesg = result('dmesg').output.split('\n').filter(Boolean);
  const kmodResults = (spec.kmods ?? []).map((_, i) => result(`kmod:${i}`));
  const loadResults: LoadResult[] = (spec.loads ?? []).map((file, i) => {
    const r = result(`load:${i}`);
    const patch = /^patch (\S+)$/m.exec(r.output)?.[1];
    return { ...r, file, patch, kernelTransitionMs: patch ? kernelTransitionMs(dmesg, patch) : undefined };
  });
  const commandResults = (spec.commands ?? []).map((_, i) => result(`cmd:${i}`));
  const diskResult = spec.disk ? result('mount:0') : undefined;
  const crash = findCrash([...s.consoleLines]);
  const base = {
    accel,
    bootMs: s.bootMs,
    totalMs,
    kmods: kmodResults,
    loads: loadResults,
    commands: commandResults,
    dmesg,
    livepatchLog: livepatchLines(dmesg).map(stripTimestamp),
    consoleTail: s.consoleLines.slice(-40),
    disk: diskResult,
  };
  const runningLabel = s.running ? (labels.get(s.running) ?? s.running) : undefined;
  if (crash) {
    return { ...base, outcome: 'crash', crash, reason: `guest kernel ${crash.kind}: ${crash.line}`, runningStep: runningLabel };
  }
  if (s.timedOut) {
    return {
      ...base,
      outcome: 'timeout',
      reason: `guest did not finish within ${Math.round((spec.timeoutMs ?? DEFAULT_TIMEOUT_MS) / 1000)} s${runningLabel ? ` (running: ${runningLabel})` : s.bootMs === null ? ' (it never reached userspace)' : ''}`,
      runningStep: runningLabel,
    };
  }
  if (s.bootMs === null) {
    return {
      ...base,
      outcome: 'boot-failure',
      reason: `the guest stopped before its init started (qemu exit ${s.qemu.code}${s.qemu.stderr.trim() ? `: ${s.qemu.stderr.trim().split('\n').pop()}` : ''})`,
    };
  }
  if (!s.done) {
    return { ...base, outcome: 'boot-failure', reason: 'the guest stopped before it finished its steps', runningStep: runningLabel };
  }
  const badKmod = kmodResults.find((k) => k.status !== 0);
  if (!badKmod && diskResult && diskResult.status !== 0) {
    return { ...base, outcome: 'boot-failure', reason: `mounting the disk failed: ${diskResult.output.trim().split('\n').pop() || `status ${diskResult.status}`}` };
  }
  const badLoad = loadResults.find((l) => l.status !== 0);
  const refused = badKmod ?? badLoad;
  if (refused) {
    const why = refusalReason(refused.output, dmesg);
    return { ...base, outcome: 'refused', reason: `${refused.label} failed: ${why}` };
  }
  const failed = commandResults.find((c) => c.status !== 0);
  if (failed) {
    return {
      ...base,
      outcome: 'command-failed',
      reason: `command failed with status ${failed.status}: ${failed.label}`,
      firstFailedStatus: failed.status ?? 1,
    };
  }
  return { ...base, outcome: 'ok' };
}

/** A guest's time limit when the spec sets none. */
export const DEFAULT_TIMEOUT_MS = 120_000;
