// SPDX-License-Identifier: GPL-2.0-only
/** Finding QEMU, choosing an accelerator, and building its argv. */
import { closeSync, existsSync, mkdirSync, openSync, constants as fsc, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SutureError } from '../util/errors.js';
import { which, installHint } from '../util/exec.js';

export type Accel = 'kvm' | 'tcg';
export type AccelChoice = Accel | 'auto';

export const QEMU_BINARY = 'qemu-system-x86_64';

export function findQemu(env: NodeJS.ProcessEnv = process.env): string {
  const name = env.SUTURE_QEMU ?? QEMU_BINARY;
  const p = which(name, env.PATH ?? '');
  if (!p) {
    throw new SutureError('environment', `${name} is not installed (not found on PATH)`, { hint: installHint(QEMU_BINARY) });
  }
  return p;
}

/** /dev/kvm exists and this user may open it read-write. */
export function kvmUsable(dev = '/dev/kvm'): boolean {
  try {
    closeSync(openSync(dev, fsc.O_RDWR));
    return true;
  } catch {
    return false;
  }
}

/**
 * KVM that opens is not always KVM that works: on some hosts a KVM guest hangs
 * before printing anything, on others QEMU aborts in its KVM code (an MSR
 * assertion) before the guest starts. The runner records that here, and `auto` uses TCG
 * from then on.
 */
export function kvmKnownBad(stateDir: string): boolean {
  return existsSync(join(stateDir, 'kvm-hangs'));
}

export function markKvmBad(stateDir: string, why: string): void {
  mkdirSync(stateDir, { recursive: true });
  writeFileSync(join(stateDir, 'kvm-hangs'), `${new Date().toISOString()} ${why}\n`);
}

export function pickAccel(choice: AccelChoice, stateDir: string): Accel {
  if (choice !== 'auto') {
    if (choice === 'kvm' && !kvmUsable()) {
      throw new SutureError('environment', 'KVM was requested but /dev/kvm cannot be opened read-write', {
        hint: 'use --accel tcg (software emulation), or load the kvm module and grant access to /dev/kvm',
      });
    }
    return choice;
  }
  return kvmUsable() && !kvmKnownBad(stateDir) ? 'kvm' : 'tcg';
}

export interface QemuArgs {
  kernel: string;
  initrd: string;
  cmdline: string;
  accel: Accel;
  memoryMb: number;
  cpus: number;
  /** The kernel console (ttyS0) goes to this file. */
  consoleFile: string;
  /** The guest channel (ttyS1) goes to this file. */
  channelFile: string;
  extra?: string[];
}

/** QEMU argv: no display, no monitor, console and channel into files, exit instead of reboot. */
export function qemuArgv(binary: string, a: QemuArgs): string[] {
  return [
    binary,
    '-accel', a.accel,
    '-cpu', a.accel === 'kvm' ? 'host' : 'max',
    '-m', String(a.memoryMb),
    '-smp', String(a.cpus),
    '-kernel', a.kernel,
    '-initrd', a.initrd,
    '-append', a.cmdline,
    '-nodefaults',
    '-display', 'none',
    '-monitor', 'none',
    '-no-reboot',
    '-chardev', `file,id=con0,path=${a.consoleFile}`,
    '-serial', 'chardev:con0',
    '-chardev', `file,id=chan0,path=${a.channelFile}`,
    '-serial', 'chardev:chan0',
    ...(a.extra ?? []),
  ];
}

/** A static busybox for the initramfs (the dynamic one would need its libraries). */
export function findStaticBusybox(env: NodeJS.ProcessEnv = process.env): string {
  const candidates = [env.SUTURE_BUSYBOX, '/bin/busybox', '/usr/bin/busybox', which('busybox', env.PATH ?? '')];
  for (const c of candidates) {
    if (c && existsSync(c) && isStaticElf(readFileSync(c))) return c;
  }
  throw new SutureError('environment', 'no statically linked busybox found (looked at /bin/busybox and PATH)', {
    hint: 'install it: apt-get install busybox-static',
  });
}

/** An ELF executable without a PT_INTERP program header. */
export function isStaticElf(b: Buffer): boolean {
  if (b.length < 64 || b.readUInt32BE(0) !== 0x7f454c46 || b[4] !== 2) return false;
  const phoff = Number(b.readBigUInt64LE(32));
  const phentsize = b.readUInt16LE(54);
  const phnum = b.readUInt16LE(56);
  for (let i = 0; i < phnum; i++) {
    const off = phoff + i * phentsize;
    if (off + 4 > b.length) return false;
    if (b.readUInt32LE(off) === 3) return false; // PT_INTERP
  }
  return true;
}
