// SPDX-License-Identifier: GPL-2.0-only
/**
 * The only file-system access to the kernel's livepatch interfaces:
 *
 *   /sys/kernel/livepatch/<patch>/{enabled,transition,force}
 *   /sys/kernel/livepatch/<patch>/<object>/patched
 *   /sys/kernel/livepatch/<patch>/<object>/<function>,<sympos>/
 *   /proc/<pid>/task/<tid>/{patch_state,comm,stack,stat}
 *   /sys/module/<module>/{refcnt,taint}, /proc/modules
 *   /proc/sys/kernel/{osrelease,ftrace_enabled,tainted,random/boot_id}, /proc/version
 *   /sys/kernel/security/lockdown
 *
 * Every path is taken under a root prefix, so unit tests can point the host
 * layer at a directory tree they build ('' is the real system). Reads that
 * find nothing return undefined; writes that the kernel refuses throw a
 * SutureError naming the file and the kernel's errno.
 */
import { closeSync, existsSync, openSync, readFileSync, readdirSync, writeSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { gnuBuildIdFromNotes } from '../kernel/build-id.js';
import { SutureError } from '../util/errors.js';

/** One `<function>,<sympos>` directory under an object. */
export interface SysfsFunction {
  name: string;
  /** As the directory names it: old_sympos, shown as 1 when it is 0. */
  sympos: number;
}

export interface SysfsObject {
  /** `vmlinux` or a module name. */
  name: string;
  /** `<obj>/patched` (6.1+): the object is loaded and its functions are redirected. Undefined before 6.1. */
  patched: boolean | undefined;
  functions: SysfsFunction[];
}

export interface SysfsPatch {
  name: string;
  enabled: boolean;
  transition: boolean;
  /** The kernel's own word on klp_patch.replace (6.12 has `replace`; 6.1 does not, and it is undefined there). */
  replace?: boolean;
  objects: SysfsObject[];
}

/** A task (thread) as /proc lists it. */
export interface TaskRef {
  pid: number;
  tid: number;
}

/** /proc/<pid>/task/<tid>/patch_state: -1 no transition, 0 unpatched, 1 patched. */
export type PatchState = -1 | 0 | 1;

export class HostFs {
  /** @param root prefix for every path ('' for the real system). */
  constructor(readonly root = '') {}

  path(p: string): string {
    return this.root ? join(this.root, p) : p;
  }

  /** The text of a file, trimmed of its final newline; undefined if it does not exist or cannot be read. */
  read(p: string): string | undefined {
    try {
      return readFileSync(this.path(p), 'utf8').replace(/\n$/, '');
    } catch {
      return undefined;
    }
  }

  private list(p: string): string[] {
    try {
      return readdirSync(this.path(p));
    } catch {
      return [];
    }
  }

  private listDirs(p: string): string[] {
    try {
      return readdirSync(this.path(p), { withFileTypes: true })
        .filter((d) => d.isDirectory())
        .map((d) => d.name)
        .sort();
    } catch {
      return [];
    }
  }

  private readBool(p: string): boolean | undefined {
    const v = this.read(p);
    return v === undefined ? undefined : v.trim() === '1';
  }

  // ---- /sys/kernel/livepatch ----

  static readonly LIVEPATCH = '/sys/kernel/livepatch';

  /** /sys/kernel/livepatch exists: the kernel has CONFIG_LIVEPATCH and sysfs is mounted. */
  livepatchAvailable(): boolean {
    return existsSync(this.path(HostFs.LIVEPATCH));
  }

  livepatchDir(): string {
    return this.path(HostFs.LIVEPATCH);
  }

  /** Names of the patches the kernel has (enabled, or in a transition). */
  patchNames(): string[] {
    return this.list(HostFs.LIVEPATCH).sort();
  }

  /**
   * The transition flag of one patch, read as fast as possible (the watch loop
   * calls this every millisecond at first). Undefined when the patch directory
   * is gone (a disabled patch's directory is removed once it is unpatched).
   */
  transition(patch: string): boolean | undefined {
    return this.readBool(`${HostFs.LIVEPATCH}/${patch}/transition`);
  }

  enabled(patch: string): boolean | undefined {
    return this.readBool(`${HostFs.LIVEPATCH}/${patch}/enabled`);
  }

  readPatch(name: string): SysfsPatch | undefined {
    const dir = `${HostFs.LIVEPATCH}/${name}`;
    const enabled = this.readBool(`${dir}/enabled`);
    const transition = this.readBool(`${dir}/transition`);
    if (enabled === undefined || transition === undefined) return undefined;
    const objects: SysfsObject[] = [];
    // Attributes are files (enabled, transition, force, ...); objects and functions are directories.
    for (const obj of this.listDirs(dir)) {
      const functions: SysfsFunction[] = [];
      for (const e of this.listDirs(`${dir}/${obj}`)) {
        const m = /^(.+),(\d+)$/.exec(e);
        if (m) functions.push({ name: m[1]!, sympos: Number(m[2]) });
      }
      objects.push({ name: obj, patched: this.readBool(`${dir}/${obj}/patched`), functions });
    }
    return { name, enabled, transition, replace: this.readBool(`${dir}/replace`), objects };
  }

  readAllPatches(): SysfsPatch[] {
    return this.patchNames()
      .map((n) => this.readPatch(n))
      .filter((p): p is SysfsPatch => p !== undefined);
  }

  /** Write `enabled`: 0 starts an unpatch transition, or reverses this patch's transition in progress. */
  writeEnabled(patch: string, value: 0 | 1): void {
    this.write(`${HostFs.LIVEPATCH}/${patch}/enabled`, `${value}\n`, enabledMeaning(patch, value));
  }

  /**
   * The same write off the main thread (libuv's pool): when every task can switch at once, the kernel
   * completes the whole transition inside this write, and unpatching a big patch takes minutes there
   * (each function's ftrace handler waits for RCU-tasks grace periods); suture keeps watching meanwhile.
   */
  async writeEnabledAsync(patch: string, value: 0 | 1): Promise<void> {
    const full = this.path(`${HostFs.LIVEPATCH}/${patch}/enabled`);
    const text = `${value}\n`;
    let fh;
    try {
      fh = await open(full, 'w');
    } catch (e) {
      throw openError(full, e);
    }
    try {
      await fh.write(text);
    } catch (e) {
      throw writeError(full, text, enabledMeaning(patch, value), e);
    } finally {
      await fh.close();
    }
  }

  /** Write 1 to `force`: every task is marked switched at once. */
  writeForce(patch: string): void {
    this.write(`${HostFs.LIVEPATCH}/${patch}/force`, '1\n', {
      EINVAL: `${patch} is not in transition (force only completes a transition in progress)`,
    });
  }

  private write(p: string, text: string, meaning: Record<string, string>): void {
    const full = this.path(p);
    let fd: number;
    try {
      fd = openSync(full, 'w');
    } catch (e) {
      throw openError(full, e);
    }
    try {
      writeSync(fd, text);
    } catch (e) {
      throw writeError(full, text, meaning, e);
    } finally {
      closeSync(fd);
    }
  }

  // ---- modules ----

  /** Loaded modules, from /proc/modules (name, size, refcount, state). */
  loadedModules(): { name: string; refcount: number; state: string }[] {
    const text = this.read('/proc/modules');
    if (text === undefined) return [];
    return text
      .split('\n')
      .filter(Boolean)
      .map((l) => {
        const f = l.split(' ');
        return { name: f[0]!, refcount: Number(f[2]), state: f[4] ?? 'Live' };
      });
  }

  moduleLoaded(name: string): boolean {
    return this.loadedModules().some((m) => m.name === name);
  }

  /** /sys/module/<m>/refcnt, or undefined when the module is not loaded. */
  moduleRefcnt(name: string): number | undefined {
    const v = this.read(`/sys/module/${name}/refcnt`);
    return v === undefined ? undefined : Number(v);
  }

  /** /sys/module/<m>/taint: the module's own taint letters (K: livepatch, O: out of tree, E: unsigned). */
  moduleTaint(name: string): string | undefined {
    return this.read(`/sys/module/${name}/taint`);
  }

  /** Loaded modules that are livepatches (they carry taint K), with or without a livepatch directory. */
  livepatchModules(): string[] {
    return this.loadedModules()
      .map((m) => m.name)
      .filter((n) => (this.moduleTaint(n) ?? '').includes('K'))
      .sort();
  }

  // ---- tasks ----

  /** Every thread of every process. */
  tasks(): TaskRef[] {
    const out: TaskRef[] = [];
    for (const p of this.list('/proc')) {
      if (!/^\d+$/.test(p)) continue;
      const pid = Number(p);
      const tids = this.list(`/proc/${p}/task`);
      if (!tids.length) out.push({ pid, tid: pid });
      for (const t of tids) if (/^\d+$/.test(t)) out.push({ pid, tid: Number(t) });
    }
    return out;
  }

  private taskFile(t: TaskRef, f: string): string {
    return `/proc/${t.pid}/task/${t.tid}/${f}`;
  }

  patchState(t: TaskRef): PatchState | undefined {
    const v = this.read(this.taskFile(t, 'patch_state'));
    if (v === undefined) return undefined;
    const n = Number(v.trim());
    return n === 0 || n === 1 ? n : -1;
  }

  comm(t: TaskRef): string | undefined {
    return this.read(this.taskFile(t, 'comm'));
  }

  /** The kernel stack, one frame a line: `[<0>] func+0x12/0x40 [module]`. */
  stack(t: TaskRef): string | undefined {
    return this.read(this.taskFile(t, 'stack'));
  }

  /** The scheduler state letter from stat (R running, S sleeping, D uninterruptible, I idle, ...). */
  schedState(t: TaskRef): string | undefined {
    const v = this.read(this.taskFile(t, 'stat'));
    if (v === undefined) return undefined;
    // pid (comm) S ...: comm may hold spaces and parentheses; the state follows the last ')'.
    const i = v.lastIndexOf(')');
    return i < 0 ? undefined : v.slice(i + 2, i + 3);
  }

  /** Kernel threads have no command line (an empty cmdline). */
  isKernelThread(t: TaskRef): boolean {
    const v = this.read(`/proc/${t.pid}/cmdline`);
    return v === '';
  }

  // ---- the kernel ----

  osRelease(): string | undefined {
    return this.read('/proc/sys/kernel/osrelease')?.trim();
  }

  procVersion(): string | undefined {
    return this.read('/proc/version')?.trim();
  }

  hostname(): string | undefined {
    return this.read('/proc/sys/kernel/hostname')?.trim();
  }

  /** The running kernel's GNU build ID, from /sys/kernel/notes (binary ELF notes); undefined when unreadable. */
  kernelBuildId(): string | undefined {
    try {
      return gnuBuildIdFromNotes(readFileSync(this.path('/sys/kernel/notes')));
    } catch {
      return undefined;
    }
  }

  /** Seconds since boot (/proc/uptime), the clock the guard window is measured on. */
  uptime(): number | undefined {
    const m = /^(\d+(?:\.\d+)?)/.exec(this.read('/proc/uptime') ?? '');
    return m ? Number(m[1]) : undefined;
  }

  bootId(): string | undefined {
    return this.read('/proc/sys/kernel/random/boot_id')?.trim();
  }

  /** kernel.ftrace_enabled; undefined when the kernel has no function tracer. */
  ftraceEnabled(): boolean | undefined {
    return this.readBool('/proc/sys/kernel/ftrace_enabled');
  }

  /** kernel.tainted as a number. */
  tainted(): number | undefined {
    const v = this.read('/proc/sys/kernel/tainted');
    return v === undefined ? undefined : Number(v);
  }

  /** The active lockdown mode (`none`, `integrity`, `confidentiality`), if the LSM is there. */
  lockdown(): string | undefined {
    const v = this.read('/sys/kernel/security/lockdown');
    return v ? /\[(\w+)\]/.exec(v)?.[1] : undefined;
  }

  /** The vermagic of one of the running kernel's own modules under /lib/modules/<release>, if any is there. */
  referenceModule(release: string): string | undefined {
    const base = `/lib/modules/${release}/kernel`;
    // A few small modules that every Debian kernel ships, then a bounded search.
    for (const p of ['fs/binfmt_misc.ko', 'lib/crc16.ko', 'fs/mbcache.ko', 'drivers/block/loop.ko']) {
      if (existsSync(this.path(`${base}/${p}`))) return this.path(`${base}/${p}`);
    }
    const queue = [base];
    for (let seen = 0; queue.length && seen < 200; seen++) {
      const dir = queue.shift()!;
      for (const e of this.list(dir).sort()) {
        if (e.endsWith('.ko')) return this.path(`${dir}/${e}`);
        if (!e.includes('.')) queue.push(`${dir}/${e}`);
      }
    }
    return undefined;
  }
}

/** What the kernel's refusals of a write to `enabled` mean. */
function enabledMeaning(patch: string, value: 0 | 1): Record<string, string> {
  return {
    EINVAL: value === 1 ? `the kernel cannot enable ${patch} again (a disabled livepatch stays disabled; reload its module)` : `${patch} is already disabled`,
    EBUSY: `another livepatch is in transition; ${patch} can be disabled once it completes`,
  };
}

function openError(full: string, e: unknown): SutureError {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return new SutureError('not-found', `${full} does not exist (the livepatch is gone)`, { cause: e });
  if (code === 'EACCES' || code === 'EPERM') return new SutureError('environment', `cannot write ${full} (${code})`, { hint: 'run suture as root', cause: e });
  return new SutureError('kernel-refused', `cannot open ${full}: ${(e as Error).message}`, { cause: e });
}

function writeError(full: string, text: string, meaning: Record<string, string>, e: unknown): SutureError {
  const code = (e as NodeJS.ErrnoException).code ?? 'error';
  return new SutureError('kernel-refused', `the kernel refused writing ${JSON.stringify(text.trim())} to ${full} (${code})${meaning[code] ? `: ${meaning[code]}` : ''}`, { cause: e });
}
