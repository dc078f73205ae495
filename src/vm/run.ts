// SPDX-License-Identifier: GPL-2.0-only
/**
 * Boot a kernel in a throwaway QEMU guest, run steps in it and bring back
 * everything that happened: each step's output and status, dmesg, the
 * livepatch log, transition times, and crashes or hangs with the console tail.
 * A run is three stages: the initramfs (initramfs.ts), the session that
 * drives QEMU and follows the guest (session.ts), and what it means
 * (outcome.ts, also the one map from an outcome to an error).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SutureError } from '../util/errors.js';
import type { ConsoleCrash } from './console.js';
import { writeInitramfs } from './initramfs.js';
import { classify, DEFAULT_TIMEOUT_MS } from './outcome.js';
import { findQemu, markKvmBad, pickAccel, qemuArgv, type Accel, type AccelChoice } from './qemu.js';
import { KVM_FIRST_OUTPUT_MS, runSession } from './session.js';
import type { BundleSource } from './suture-bundle.js';

export interface VmCommand {
  /** What the user asked for, for reports: the command line or the script path. */
  label: string;
  /** Shell text to run with /bin/sh in the guest. */
  script: string;
}

export interface VmSpec {
  kernelImage: string;
  /** Kernel modules to load first, in order (dependencies already resolved). */
  kmods?: { name: string; path: string }[];
  /** Files placed in the guest at /modules/<basename>, not loaded. */
  modules?: string[];
  /** Any other files, placed at /files/<basename> (mode 0755 when executable on the host, else 0644). */
  files?: string[];
  /** Livepatch modules placed in /modules and loaded, each waited for until its transition completes. */
  loads?: string[];
  commands?: VmCommand[];
  /** Extra kernel command-line words. */
  cmdline?: string[];
  kaslr?: boolean;
  timeoutMs?: number;
  transitionTimeoutSec?: number;
  memoryMb?: number;
  cpus?: number;
  accel?: AccelChoice;
  /** Where suture keeps VM state (the KVM-hangs mark). */
  stateDir: string;
  /** Carry suture itself (node and the app) into the guest, as `suture` on its PATH. */
  withSuture?: BundleSource;
  /**
   * A raw disk image attached as a virtio disk (/dev/vda) and mounted (ext4)
   * before the livepatches and commands run; it keeps what the guest writes
   * there across runs. The virtio and ext4 modules must be in `kmods`.
   */
  disk?: { file: string; mountpoint: string };
  /** Streaming events for live display. */
  onEvent?: (e: VmEvent) => void;
  /** Stops the guest when aborted (a run whose result nobody needs any more): what it returns then means nothing. */
  signal?: AbortSignal;
}

export type VmEvent =
  | { type: 'booting'; accel: Accel }
  | { type: 'ready'; bootMs: number }
  | { type: 'step-start'; id: string; label: string }
  | { type: 'output'; id: string; data: Buffer }
  | { type: 'step-end'; id: string; status: number; durationMs: number }
  | { type: 'console'; line: string };

export interface StepResult {
  id: string;
  label: string;
  status: number | null;
  output: string;
  /** Raw output bytes (for binary results such as a compressed file). */
  raw: Buffer;
  durationMs: number | null;
}

export interface LoadResult extends StepResult {
  file: string;
  /** The livepatch's name in /sys/kernel/livepatch. */
  patch: string | undefined;
  /** Transition time as the kernel logged it (starting → complete), ms. */
  kernelTransitionMs: number | undefined;
}

export type VmOutcome = 'ok' | 'command-failed' | 'refused' | 'crash' | 'timeout' | 'boot-failure';

export interface VmResult {
  outcome: VmOutcome;
  /** One line describing a non-ok outcome. */
  reason?: string;
  accel: Accel;
  bootMs: number | null;
  totalMs: number;
  kmods: StepResult[];
  loads: LoadResult[];
  commands: StepResult[];
  /** The first failing command's status, if one failed. */
  firstFailedStatus?: number;
  dmesg: string[];
  livepatchLog: string[];
  crash?: ConsoleCrash;
  consoleTail: string[];
  /** The step that was running when the guest crashed or hung. */
  runningStep?: string;
  /** Mounting the disk, when there is one. */
  disk?: StepResult;
}

/** KVM that opens but does not run a guest: it hangs silently, or QEMU dies before the guest prints a byte. */
interface KvmFailure {
  kvmFailure: string;
}

export async function runVm(spec: VmSpec): Promise<VmResult> {
  const accel = pickAccel(spec.accel ?? 'auto', spec.stateDir);
  const r = await runOnce(spec, accel);
  if (!('kvmFailure' in r)) return r;
  markKvmBad(spec.stateDir, r.kvmFailure);
  if ((spec.accel ?? 'auto') === 'auto') {
    const again = await runOnce(spec, 'tcg');
    if (!('kvmFailure' in again)) return again;
  }
  throw new SutureError('guest-timeout', `KVM does not run guests on this host: ${r.kvmFailure}`, {
    hint: 'use --accel tcg',
  });
}

/** One run: the initramfs (initramfs.ts), the session (session.ts), what it means (outcome.ts). */
async function runOnce(spec: VmSpec, accel: Accel): Promise<VmResult | KvmFailure> {
  const t0 = performance.now();
  const qemu = findQemu();
  const work = mkdtempSync(join(tmpdir(), 'suture-vm-'));
  try {
    const marker = `@@suture:${randomBytes(8).toString('hex')}@@`;
    const initramfs = await writeInitramfs(spec, marker, work);
    const consoleFile = join(work, 'console.log');
    const channelFile = join(work, 'channel.out');
    const cmdline = [
      'console=ttyS0,115200',
      'panic=-1',
      'oops=panic',
      'loglevel=4',
      'rdinit=/init',
      ...(spec.kaslr === false ? ['nokaslr'] : []),
      ...(spec.cmdline ?? []),
    ].join(' ');
    const argv = qemuArgv(qemu, {
      kernel: spec.kernelImage,
      initrd: initramfs.file,
      cmdline,
      accel,
      memoryMb: spec.memoryMb ?? 1024, // enough with --with-suture too (the initramfs is about 105 MB)
      cpus: spec.cpus ?? 1,
      consoleFile,
      channelFile,
      extra: spec.disk ? ['-drive', `file=${spec.disk.file},format=raw,if=virtio`] : [],
    });
    const s = await runSession({
      argv,
      accel,
      consoleFile,
      channelFile,
      marker,
      labels: initramfs.labels,
      timeoutMs: spec.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      t0,
      emit: spec.onEvent ?? (() => {}),
      signal: spec.signal,
    });
    // A guest stopped on purpose (spec.signal) says nothing about KVM, even killed before it printed a byte: never marked bad.
    const stopped = spec.signal?.aborted === true;
    if (s.kvmSilent && !stopped) return { kvmFailure: `a KVM guest printed nothing within ${KVM_FIRST_OUTPUT_MS / 1000} s` };
    if (accel === 'kvm' && !s.sawAnything && !s.timedOut && !stopped) {
      // QEMU itself stopped (an assertion in its KVM code on some hosts) before the guest said anything.
      const last = s.qemu.stderr.trim().split('\n').pop();
      return { kvmFailure: `QEMU under KVM stopped before the guest printed anything (exit ${s.qemu.code ?? 'by signal'}${last ? `: ${last}` : ''})` };
    }
    return classify(spec, s, initramfs.labels, accel, performance.now() - t0);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
