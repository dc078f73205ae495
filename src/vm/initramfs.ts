// SPDX-License-Identifier: GPL-2.0-only
/**
 * The guest's initramfs for one run: busybox, the kernel modules to load
 * first, the livepatches, files and commands of the spec, suture itself when
 * asked, and the init script (guest-script.ts) that runs them as numbered
 * steps and reports each over the channel.
 */
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { writeCpio, type CpioEntry } from './cpio.js';
import { guestInit, type GuestStep } from './guest-script.js';
import { findStaticBusybox } from './qemu.js';
import type { VmSpec } from './run.js';
import { sutureBundle } from './suture-bundle.js';

export interface Initramfs {
  /** The cpio archive written. */
  readonly file: string;
  /** Each step's id (kmod:0, load:1, cmd:2, mount:0) → what it does, for reports. */
  readonly labels: ReadonlyMap<string, string>;
}

/** Write the initramfs of `spec` into `dir`; `marker` frames the guest's channel records. */
export async function writeInitramfs(spec: VmSpec, marker: string, dir: string): Promise<Initramfs> {
  const labels = new Map<string, string>();
  const steps: GuestStep[] = [];
  const entries: CpioEntry[] = [];
  const baseDirs = ['bin', 'sbin', 'usr', 'usr/bin', 'usr/sbin', 'proc', 'sys', 'dev', 'tmp', 'root', 'modules', 'files', 'kmods', 'cmds', 'etc', 'run'];
  for (const d of baseDirs) {
    entries.push({ type: 'dir', path: d });
  }
  entries.push({ type: 'file', path: 'bin/busybox', data: readFileSync(findStaticBusybox()), mode: 0o755 });
  (spec.kmods ?? []).forEach((k, i) => {
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
  const file = join(dir, 'initramfs.cpio');
  writeFileSync(file, writeCpio(entries));
  return { file, labels };
}
