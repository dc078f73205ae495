// SPDX-License-Identifier: GPL-2.0-only
/**
 * Boot a kernel in a throwaway QEMU guest, run steps in it and bring back
 * everything that happened: each step's output and status, dmesg, the
 * livepatch log, transition times, and crashes or hangs with the console tail.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { SutureError } from '../util/errors.js';
import { run } from '../util/exec.js';
import { findCrash, kernelTransitionMs, livepatchLines, stripTimestamp, type ConsoleCrash } from './console.js';
import { writeCpio, type CpioEntry } from './cpio.js';
import { guestInit, type GuestStep } from './guest-script.js';
import { ChannelParser } from './protocol.js';
import { findQemu, findStaticBusybox, markKvmBad, pickAccel, qemuArgv, type Accel, type AccelChoice } from './qemu.js';
import { sutureBundle, type BundleSource } from './suture-bundle.js';

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

const CONSOLE_KEEP = 400;

/** If KVM prints nothing for this long, it is the hanging kind: fall back to TCG. */
const KVM_FIRST_OUTPUT_MS = 20_000;

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

/**
 * Follows a file that QEMU appends to. QEMU's file chardev never blocks the
 * guest's UART, which a socket chardev does (bulk output is about twice as
 * fast through a file under TCG), so guest output goes to files that are
 * polled here.
 */
class FileFollower {
  private fd: number;
  private pos = 0;
  private readonly buf = Buffer.alloc(1 << 20);
  constructor(path: string, private readonly onData: (b: Buffer) => void) {
    writeFileSync(path, '');
    this.fd = openSync(path, 'r');
  }
  poll(): void {
    for (;;) {
      const n = readSync(this.fd, this.buf, 0, this.buf.length, this.pos);
      if (n <= 0) return;
      this.pos += n;
      this.onData(Buffer.from(this.buf.subarray(0, n)));
    }
  }
  close(): void {
    this.poll();
    closeSync(this.fd);
  }
}

async function runOnce(spec: VmSpec, accel: Accel): Promise<VmResult | KvmFailure> {
  const t0 = performance.now();
  const qemu = findQemu();
  const busybox = findStaticBusybox();
  const work = mkdtempSync(join(tmpdir(), 'suture-vm-'));
  const marker = `@@suture:${randomBytes(8).toString('hex')}@@`;
  const labels = new Map<string, string>();
  const steps: GuestStep[] = [];
  const entries: CpioEntry[] = [];
  const baseDirs = ['bin', 'sbin', 'usr', 'usr/bin', 'usr/sbin', 'proc', 'sys', 'dev', 'tmp', 'root', 'modules', 'files', 'kmods', 'cmds', 'etc', 'run'];
  for (const d of baseDirs) {
    entries.push({ type: 'dir', path: d });
  }
  entries.push({ type: 'file', path: 'bin/busybox', data: readFileSync(busybox), mode: 0o755 });
  const kmods = spec.kmods ?? [];
  kmods.forEach((k, i) => {
    const guestPath = `/kmods/${i}-${basename(k.path)}`;
    entries.push({ type: 'file', path: guestPath, data: readFileSync(k.path) });
    steps.push({ id: `kmod:${i}`, kind: 'kmod', path: guestPath });
    labels.set(`kmod:${i}`, `insmod ${k.name}`);
  });
  if (spec.disk) {
    steps.push({ id: 'mount:0', kind: 'mount', path: '/dev/vda', mountpoint: spec.disk.mountpoint });
    labels.set('mount:0', `mount ${spec.disk.file} on ${spec.disk.mountpoint}`);
  }
  if (spec.withSuture) {
    const bundle = await sutureBundle(spec.withSuture, baseDirs);
    entries.push(...bundle.entries);
  }
  const placed = new Set<string>();
  for (const m of [...(spec.modules ?? []), ...(spec.loads ?? [])]) {
    const name = basename(m);
    if (placed.has(name)) continue;
    placed.add(name);
    entries.push({ type: 'file', path: `modules/${name}`, data: readFileSync(m) });
  }
  for (const f of spec.files ?? []) {
    entries.push({ type: 'file', path: `files/${basename(f)}`, data: readFileSync(f), mode: statSync(f).mode & 0o111 ? 0o755 : 0o644 });
  }
  (spec.loads ?? []).forEach((m, i) => {
    steps.push({ id: `load:${i}`, kind: 'load', path: `/modules/${basename(m)}` });
    labels.set(`load:${i}`, `load ${basename(m)}`);
  });
  (spec.commands ?? []).forEach((c, i) => {
    const p = `/cmds/${i}.sh`;
    entries.push({ type: 'file', path: p, data: Buffer.from(c.script), mode: 0o755 });
    steps.push({ id: `cmd:${i}`, kind: 'cmd', path: p });
    labels.set(`cmd:${i}`, c.label);
  });
  const init = guestInit({ marker, steps, transitionTimeoutSec: spec.transitionTimeoutSec ?? 60, collectDmesg: true });
  entries.push({ type: 'file', path: 'init', data: Buffer.from(init), mode: 0o755 });
  const initrd = join(work, 'initramfs.cpio');
  writeFileSync(initrd, writeCpio(entries));

  const consoleFile = join(work, 'console.log');
  const chanFile = join(work, 'channel.out');
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
    initrd,
    cmdline,
    accel,
    memoryMb: spec.memoryMb ?? 1024, // enough with --with-suture too (the initramfs is about 105 MB)
    cpus: spec.cpus ?? 1,
    consoleFile,
    channelFile: chanFile,
    extra: spec.disk ? ['-drive', `file=${spec.disk.file},format=raw,if=virtio`] : [],
  });

  const consoleLines: string[] = [];
  let consolePending = '';
  let sawAnything = false;
  const emit = spec.onEvent ?? (() => {});
  emit({ type: 'booting', accel });

  const outputs = new Map<string, Buffer[]>();
  const ends = new Map<string, { status: number; durationMs: number }>();
  let bootMs: number | null = null;
  let done = false;
  let running: string | undefined;
  const parser = new ChannelParser(marker);

  const abort = new AbortController();
  let timedOut = false;
  let kvmSilent = false;
  const timeoutMs = spec.timeoutMs ?? 120_000;
  const timer = setTimeout(() => {
    timedOut = true;
    abort.abort();
  }, timeoutMs);
  const silentTimer =
    accel === 'kvm'
      ? setTimeout(() => {
          if (!sawAnything) {
            kvmSilent = true;
            abort.abort();
          }
        }, KVM_FIRST_OUTPUT_MS)
      : undefined;

  const con = new FileFollower(consoleFile, (b: Buffer) => {
      sawAnything = true;
      consolePending += b.toString('utf8');
      let i: number;
      while ((i = consolePending.indexOf('\n')) >= 0) {
        const line = consolePending.slice(0, i).replace(/\r$/, '');
        consolePending = consolePending.slice(i + 1);
        consoleLines.push(line);
        if (consoleLines.length > CONSOLE_KEEP * 4) consoleLines.splice(0, consoleLines.length - CONSOLE_KEEP * 2);
        emit({ type: 'console', line });
      }
  });
  const chan = new FileFollower(chanFile, (b: Buffer) => {
      sawAnything = true;
      for (const ev of parser.push(b)) {
        switch (ev.type) {
          case 'ready':
            bootMs = performance.now() - t0;
            emit({ type: 'ready', bootMs });
            break;
          case 'begin':
            running = ev.id;
            outputs.set(ev.id, []);
            emit({ type: 'step-start', id: ev.id, label: labels.get(ev.id) ?? ev.id });
            break;
          case 'output':
            outputs.get(ev.id)?.push(ev.data);
            emit({ type: 'output', id: ev.id, data: ev.data });
            break;
          case 'end': {
            const durationMs = (ev.endCs - ev.startCs) * 10;
            ends.set(ev.id, { status: ev.status, durationMs });
            running = undefined;
            emit({ type: 'step-end', id: ev.id, status: ev.status, durationMs });
            break;
          }
          case 'done':
            done = true;
            break;
        }
      }
  });
  const poller = setInterval(() => {
    con.poll();
    chan.poll();
  }, 20);

  let q;
  try {
    q = await run(argv, { signal: abort.signal, maxCapture: 64 * 1024 });
  } finally {
    clearTimeout(timer);
    if (silentTimer) clearTimeout(silentTimer);
    clearInterval(poller);
    con.close();
    chan.close();
  }
  rmSync(work, { recursive: true, force: true });
  if (kvmSilent) return { kvmFailure: `a KVM guest printed nothing within ${KVM_FIRST_OUTPUT_MS / 1000} s` };
  if (accel === 'kvm' && !sawAnything && !timedOut) {
    // QEMU itself stopped (an assertion in its KVM code on some hosts) before the guest said anything.
    const last = q.stderr.trim().split('\n').pop();
    return { kvmFailure: `QEMU under KVM stopped before the guest printed anything (exit ${q.code ?? 'by signal'}${last ? `: ${last}` : ''})` };
  }
  if (consolePending) consoleLines.push(consolePending);

  const result = (id: string): StepResult => {
    const raw = Buffer.concat(outputs.get(id) ?? []);
    const end = ends.get(id);
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
  const kmodResults = kmods.map((_, i) => result(`kmod:${i}`));
  const loadResults: LoadResult[] = (spec.loads ?? []).map((file, i) => {
    const r = result(`load:${i}`);
    const patch = /^patch (\S+)$/m.exec(r.output)?.[1];
    return { ...r, file, patch, kernelTransitionMs: patch ? kernelTransitionMs(dmesg, patch) : undefined };
  });
  const commandResults = (spec.commands ?? []).map((_, i) => result(`cmd:${i}`));
  const diskResult = spec.disk ? result('mount:0') : undefined;
  const crash = findCrash(consoleLines);
  const base = {
    accel,
    bootMs,
    totalMs: performance.now() - t0,
    kmods: kmodResults,
    loads: loadResults,
    commands: commandResults,
    dmesg,
    livepatchLog: livepatchLines(dmesg).map(stripTimestamp),
    consoleTail: consoleLines.slice(-40),
    disk: diskResult,
  };
  const runningLabel = running ? (labels.get(running) ?? running) : undefined;
  if (crash) {
    return { ...base, outcome: 'crash', crash, reason: `guest kernel ${crash.kind}: ${crash.line}`, runningStep: runningLabel };
  }
  if (timedOut) {
    return {
      ...base,
      outcome: 'timeout',
      reason: `guest did not finish within ${Math.round(timeoutMs / 1000)} s${runningLabel ? ` (running: ${runningLabel})` : bootMs === null ? ' (it never reached userspace)' : ''}`,
      runningStep: runningLabel,
    };
  }
  if (bootMs === null) {
    return {
      ...base,
      outcome: 'boot-failure',
      reason: `the guest stopped before its init started (qemu exit ${q.code}${q.stderr.trim() ? `: ${q.stderr.trim().split('\n').pop()}` : ''})`,
    };
  }
  if (!done) {
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

/** The kernel's reason for refusing a module: its dmesg line if there is one, else insmod's words. */
function refusalReason(output: string, dmesg: string[]): string {
  const kernelSays = dmesg
    .map(stripTimestamp)
    .filter((l) => /version magic|disagrees about version|Unknown symbol|module verification failed|not marked as a livepatch|livepatch: |Invalid module|key was rejected|module is from an unknown/i.test(l))
    .filter((l) => !/tainting kernel|loading out-of-tree/.test(l));
  const insmod = output.trim().split('\n').filter(Boolean).pop() ?? '';
  return kernelSays.length ? `${kernelSays.join('; ')} (${insmod})` : insmod || 'no reason given';
}
