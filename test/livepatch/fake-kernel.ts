// SPDX-License-Identifier: GPL-2.0-only
/**
 * A pretend kernel for host-layer unit tests: a directory tree shaped like
 * /sys and /proc that HostFs reads through its root prefix, a loader whose
 * insmod creates the livepatch's sysfs directory the way klp_enable_patch
 * does, and a ticker that plays the kernel's part after `enabled` ← 0 (the
 * directory goes away, the module reference drops). The real kernel is the
 * judge in the VM tests; this only lets the logic around it be tested fast.
 */
import { afterEach } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import type { Host } from '../../src/livepatch/core.js';
import type { KmsgRecord } from '../../src/livepatch/kernel-log.js';
import type { LoaderResult, ModuleLoader } from '../../src/livepatch/loader.js';
import { readPatchFile } from '../../src/livepatch/patch-file.js';
import { StateStore, hostLock } from '../../src/livepatch/records.js';
import { HostFs } from '../../src/livepatch/sysfs.js';

const FIXTURES = resolve(import.meta.dirname, '../fixtures/livepatch');

/** Build the fake .ko files (fake_patch, fake_cumulative, fake_other_kernel, fake_plain, garbage). */
export function buildFakePatches(): (name: string) => string {
  const dir = mkdtempSync(join(tmpdir(), 'suture-fakeko-'));
  execFileSync('bash', [join(FIXTURES, 'build.sh'), dir], { stdio: ['ignore', 'ignore', 'inherit'] });
  return (name) => join(dir, `${name}.ko`);
}

export interface FakeKernelOptions {
  release?: string;
  bootId?: string;
  /** The GNU build ID /sys/kernel/notes shows (hex). */
  buildId?: string;
}

/** An ELF notes buffer as /sys/kernel/notes holds it: a GNU build ID note (and a Xen one before it). */
export function notesWithBuildId(hex: string): Buffer {
  const note = (name: string, type: number, desc: Buffer) => {
    const n = Buffer.from(`${name}\0`);
    const pad = (b: Buffer) => Buffer.concat([b, Buffer.alloc((4 - (b.length % 4)) % 4)]);
    const h = Buffer.alloc(12);
    h.writeUInt32LE(n.length, 0);
    h.writeUInt32LE(desc.length, 4);
    h.writeUInt32LE(type, 8);
    return Buffer.concat([h, pad(n), pad(desc)]);
  };
  return Buffer.concat([note('Xen', 6, Buffer.from('linux\0')), note('GNU', 3, Buffer.from(hex, 'hex'))]);
}

export class FakeKernel {
  readonly root: string;
  readonly fs: HostFs;
  readonly log: KmsgRecord[] = [];
  /** Patches whose transition the test holds at 1 until it lets go. */
  readonly held = new Set<string>();
  /** Set the uptime (s) /proc/uptime shows. */
  setUptime(s: number): void {
    this.put('/proc/uptime', `${s.toFixed(2)} 1.00\n`);
  }

  /** Add kernel log lines. */
  logLines(lines: string[], usec = 100_000_000): void {
    for (const text of lines) this.log.push({ seq: this.seq++, usec, text });
  }

  /** Names insmod must refuse, with the kernel's log line. */
  readonly refuse = new Map<string, string>();
  readonly insmods: string[] = [];
  readonly rmmods: string[] = [];
  private timer: NodeJS.Timeout | undefined;
  private seq = 0;

  constructor(opts: FakeKernelOptions = {}) {
    this.root = mkdtempSync(join(tmpdir(), 'suture-fakesys-'));
    this.fs = new HostFs(this.root);
    this.put('/sys/kernel/livepatch/.keep', '');
    rmSync(this.p('/sys/kernel/livepatch/.keep'));
    this.put('/proc/sys/kernel/osrelease', `${opts.release ?? '6.1.0-56-amd64'}\n`);
    this.put('/proc/sys/kernel/version', '#1 SMP PREEMPT_DYNAMIC Debian 6.1.192-2 (2026-11-16)\n');
    this.put('/proc/sys/kernel/ostype', 'Linux\n');
    this.put('/proc/sys/kernel/hostname', 'fakehost\n');
    this.put('/proc/sys/kernel/random/boot_id', `${opts.bootId ?? 'boot-1'}\n`);
    this.put('/proc/sys/kernel/ftrace_enabled', '1\n');
    this.put('/proc/sys/kernel/tainted', '0\n');
    this.put('/proc/uptime', '100.00 90.00\n');
    this.put('/proc/modules', '');
    mkdirSync(this.p('/sys/kernel'), { recursive: true });
    writeFileSync(this.p('/sys/kernel/notes'), notesWithBuildId(opts.buildId ?? 'eb4fbcd037e7253717950bf2b93bd5566f47c56f'));
    this.addTask(1, 'init', 'S', '[<0>] do_epoll_wait+0x1/0x2\n');
  }

  p(path: string): string {
    return join(this.root, path);
  }

  put(path: string, text: string): void {
    mkdirSync(dirname(this.p(path)), { recursive: true });
    writeFileSync(this.p(path), text);
  }

  get(path: string): string | undefined {
    try {
      return readFileSync(this.p(path), 'utf8');
    } catch {
      return undefined;
    }
  }

  reboot(bootId: string): void {
    this.stop();
    rmSync(this.p('/sys/kernel/livepatch'), { recursive: true, force: true });
    mkdirSync(this.p('/sys/kernel/livepatch'));
    rmSync(this.p('/sys/module'), { recursive: true, force: true });
    this.put('/proc/modules', '');
    this.put('/proc/sys/kernel/random/boot_id', `${bootId}\n`);
  }

  addTask(pid: number, comm: string, state: string, stack: string, patchState = -1, tid = pid): void {
    const d = `/proc/${pid}/task/${tid}`;
    this.put(`${d}/comm`, `${comm}\n`);
    this.put(`${d}/stat`, `${tid} (${comm}) ${state} 1 1 1\n`);
    this.put(`${d}/stack`, stack);
    this.put(`${d}/patch_state`, `${patchState}\n`);
    this.put(`/proc/${pid}/cmdline`, comm.startsWith('k') ? '' : `${comm}\0`);
  }

  setPatchState(pid: number, v: number, tid = pid): void {
    this.put(`/proc/${pid}/task/${tid}/patch_state`, `${v}\n`);
  }

  private logLine(text: string): void {
    this.log.push({ seq: this.seq++, usec: 100_000_000 + this.seq, text });
  }

  private modulesWith(name: string | undefined, add: boolean): void {
    const lines = (this.get('/proc/modules') ?? '').split('\n').filter((l) => l && !l.startsWith(`${name} `));
    if (add && name) lines.push(`${name} 16384 1 - Live 0x0000000000000000 (OEK)`);
    this.put('/proc/modules', lines.length ? `${lines.join('\n')}\n` : '');
  }

  readonly loader: ModuleLoader = {
    insmod: async (path: string): Promise<LoaderResult> => {
      this.insmods.push(path);
      const p = readPatchFile(path);
      const why = this.refuse.get(p.name);
      if (why) {
        this.logLine(why);
        return { ok: false, message: `insmod: ERROR: could not insert module ${path}: Invalid module format`, durationMs: 1 };
      }
      const dir = `/sys/kernel/livepatch/${p.name}`;
      this.put(`${dir}/enabled`, '1\n');
      this.put(`${dir}/transition`, this.held.has(p.name) ? '1\n' : '0\n');
      this.put(`${dir}/force`, '');
      for (const o of p.structure?.objects ?? []) {
        this.put(`${dir}/${o.name}/patched`, o.name === 'vmlinux' ? '1\n' : '0\n');
        for (const f of o.functions) mkdirSync(this.p(`${dir}/${o.name}/${f.name},${f.sympos || 1}`), { recursive: true });
      }
      this.put(`/sys/module/${p.name}/refcnt`, '1\n');
      this.put(`/sys/module/${p.name}/taint`, 'OEK\n');
      this.modulesWith(p.name, true);
      this.logLine(`livepatch: enabling patch '${p.name}'`);
      this.logLine(`livepatch: '${p.name}': starting patching transition`);
      if (p.structure?.replace) {
        for (const other of this.fs.patchNames()) if (other !== p.name) this.free(other);
      }
      if (!this.held.has(p.name)) this.logLine(`livepatch: '${p.name}': patching complete`);
      return { ok: true, message: '', durationMs: 1 };
    },
    rmmod: async (name: string): Promise<LoaderResult> => {
      this.rmmods.push(name);
      if (existsSync(this.p(`/sys/kernel/livepatch/${name}`))) return { ok: false, message: `rmmod: ERROR: Module ${name} is in use`, durationMs: 1 };
      rmSync(this.p(`/sys/module/${name}`), { recursive: true, force: true });
      this.modulesWith(name, false);
      return { ok: true, message: '', durationMs: 1 };
    },
  };

  /** The kernel freeing a disabled or replaced patch: directory gone, reference dropped. */
  free(name: string): void {
    rmSync(this.p(`/sys/kernel/livepatch/${name}`), { recursive: true, force: true });
    this.put(`/sys/module/${name}/refcnt`, '0\n');
  }

  /** Let a held transition finish. */
  release(name: string): void {
    this.held.delete(name);
    const enabled = this.get(`/sys/kernel/livepatch/${name}/enabled`)?.trim() === '1';
    this.put(`/sys/kernel/livepatch/${name}/transition`, '0\n');
    this.logLine(`livepatch: '${name}': ${enabled ? 'patching' : 'unpatching'} complete`);
    if (!enabled) this.free(name);
  }

  /** Play the kernel after writes to `enabled` and `force`: every few ms. */
  start(): void {
    this.timer = setInterval(() => this.tick(), 2);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private tick(): void {
    for (const name of this.fs.patchNames()) {
      const dir = `/sys/kernel/livepatch/${name}`;
      const force = this.get(`${dir}/force`)?.trim();
      if (force === '1') {
        this.put(`${dir}/force`, '');
        this.release(name);
        continue;
      }
      const enabled = this.get(`${dir}/enabled`)?.trim();
      if (enabled === '0' && this.held.has(name) && this.get(`${dir}/transition`)?.trim() === '0') {
        // an unpatching transition starts, and is held
        this.logLine(`livepatch: '${name}': starting unpatching transition`);
        this.put(`${dir}/transition`, '1\n');
      }
      if (enabled === '0' && !this.held.has(name) && existsSync(this.p(dir))) {
        this.logLine(`livepatch: '${name}': starting unpatching transition`);
        this.release(name);
      }
    }
  }

  host(stateDir = mkdtempSync(join(tmpdir(), 'suture-state-'))): Host {
    return {
      fs: this.fs,
      loader: this.loader,
      store: new StateStore(stateDir, join(stateDir, 'run')),
      kmsg: () => this.log,
      isRoot: true,
      lock: hostLock(this.root),
    };
  }
}

/**
 * For a test file: a function that starts a fresh fake kernel, each one
 * stopped after its test.
 */
export function fakeKernels(): () => FakeKernel {
  let current: FakeKernel | undefined;
  afterEach(() => current?.stop());
  return () => {
    current = new FakeKernel();
    current.start();
    return current;
  };
}
