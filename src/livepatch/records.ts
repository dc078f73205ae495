// SPDX-License-Identifier: GPL-2.0-only
/**
 * suture's own state on a host.
 *
 * Persistent (state directory, default /var/lib/suture, SUTURE_STATE_DIR):
 *   kernels/<release>/installed.json   installed patches for that kernel release, in load order
 *   kernels/<release>/<name>.ko        their module files (mode 0600, the bytes suture validated)
 *   boot.json                          the last `suture boot`: boot id, how it ended, what it loaded
 *   loading.json                       present while `suture boot` loads patches or watches the guard
 *                                      window after loading (the guard is "armed"); removed when it ends
 *                                      in any way but a crash; removal needs no free space
 *   crash-guard.json                   present when the guard has tripped: the patch it blames is not loaded
 *   stop.json                          present after `suture boot --stop`: boot loads nothing until --resume
 *
 * Per boot (run directory, default /run/suture, SUTURE_RUN_DIR; gone at reboot like the patches):
 *   loaded/<name>.json                 what suture loaded: file, hash, time, modinfo facts, forced
 *   pending.json                       work an interrupted command left for the next one (rmmod of a
 *                                      replaced or reversed patch)
 *   staging/                           0700: the private copy of each module while insmod loads it
 *
 * The lock (HOST_LOCK, /run/suture/lock) is the kernel's, not the state
 * directory's: no environment variable moves it, so two commands with
 * different SUTURE_STATE_DIR still exclude each other.
 *
 * Every state file carries `version` and is checked when read: a file that is
 * not what suture wrote is a `state-damaged` error naming it and what to do.
 * Every persistent write goes to a temporary file, is written in full (a short
 * write is continued, ENOSPC fails before the old file is touched), fsynced,
 * renamed into place, and the directory is fsynced.
 */
import {
  closeSync,
  existsSync,
  fsyncSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { SutureError, fsError } from '../util/errors.js';
import { Lock } from '../util/lock.js';
import type { PatchFile } from './patch-file.js';

export const DEFAULT_STATE_DIR = '/var/lib/suture';
export const DEFAULT_RUN_DIR = '/run/suture';
/** The lock of livepatch changes on this host (under the HostFs root in tests). */
export const HOST_LOCK = '/run/suture/lock';
export const STATE_VERSION = 1;

export function stateDirFromEnv(env: NodeJS.ProcessEnv = process.env): string {
  return env.SUTURE_STATE_DIR || DEFAULT_STATE_DIR;
}

export function runDirFromEnv(env: NodeJS.ProcessEnv = process.env): string {
  return env.SUTURE_RUN_DIR || DEFAULT_RUN_DIR;
}

/** The lock every suture command that changes livepatch state takes. */
export function hostLock(root = ''): Lock {
  return new Lock(root ? join(root, HOST_LOCK) : HOST_LOCK, { what: 'livepatch changes on this host' });
}

/** Facts about a patch that suture keeps beside it (the 6.1 sysfs shows none of them). */
export interface PatchFacts {
  name: string;
  sha256: string;
  replace: boolean | undefined;
  effectiveVersion: string | undefined;
  cves: string[];
  description: string | undefined;
  /** The GNU build ID of the kernel build it was made for (modinfo suture_build_id). */
  buildId?: string | undefined;
}

export function patchFacts(p: PatchFile): PatchFacts {
  return {
    name: p.name,
    sha256: p.sha256,
    replace: p.structure?.replace,
    effectiveVersion: p.effectiveVersion,
    cves: [...p.cves].sort(),
    description: p.description,
    buildId: p.buildId,
  };
}

export interface InstalledPatch extends PatchFacts {
  /** File name inside kernels/<release>/. */
  file: string;
  installedAt: string;
  /** Where it was installed from. */
  source: string;
  /** Installed from a signed bundle: the key that signed it and the bundle's sha256 (src/bundle); every boot checks the key again. */
  signer?: { keyId: string; bundleSha256: string } | undefined;
}

/** How a `suture boot` ended (anything but a crash). */
export type BootEnd = 'complete' | 'failed' | 'interrupted' | 'error' | 'guard' | 'stopped';

export interface BootItemRecord {
  name: string;
  outcome: string;
  error?: string;
}

export interface BootRecord {
  version?: number;
  bootId: string;
  release: string;
  /** Legacy records (before `end`): 'loading' | 'done'. */
  phase?: 'loading' | 'done';
  startedAt: string;
  finishedAt?: string;
  /** How it ended; absent while it runs. */
  end?: BootEnd;
  /** The signal or error that ended it, for `interrupted` and `error`. */
  reason?: string;
  patches: string[];
  items?: BootItemRecord[];
  failed?: { name: string; error: string }[];
  /** Things the boot could not do but went on without (e.g. arming the guard on a full disk). */
  warnings?: string[];
}

/** loading.json: the guard is armed while this exists. */
export interface ArmedGuard {
  version?: number;
  bootId: string;
  release: string;
  startedAt: string;
  patches: string[];
  /** The patch being loaded now (blamed if the machine dies). */
  current?: string;
  /** Patches loaded so far in this boot. */
  loaded: string[];
  /** After every patch is loaded: the guard window, in seconds of uptime (the kernel's clock). */
  window?: { fromUptime: number; untilUptime: number; seconds: number };
  /** Bisecting: the suspects this boot loads (the others are held back). */
  trial?: string[];
}

export interface CrashGuard {
  version?: number;
  trippedAt: string;
  /** The boot in which `suture boot` found the armed guard of another boot. */
  bootId: string;
  /** The armed guard the dead boot left (legacy: its boot record). */
  previous: ArmedGuard | BootRecord;
  /** The patches blamed (comma-separated): suture boot does not load them until the guard is cleared. */
  blame?: string;
  /**
   * Bisecting over boots: the machine died inside the guard window with these
   * loaded and nothing named one; each boot loads half of them and holds the
   * rest back, until one is left.
   */
  suspects?: string[];
  /** While loading, or inside the guard window after loading, or an oops naming a patch. */
  when?: 'loading' | 'window' | 'oops';
  /** The kernel's words, when it logged an oops that names a patch. */
  evidence?: string;
}

export interface StopSwitch {
  version?: number;
  stoppedAt: string;
  reason?: string;
}

export interface LoadRecord extends PatchFacts {
  version?: number;
  file: string;
  loadedAt: string;
  bootId: string | undefined;
  forced?: boolean;
  transitionMs?: number;
  kernelTransitionMs?: number;
}

/** Work an interrupted command left for the next command (taken under the lock). */
export interface PendingOp {
  op: 'rmmod';
  module: string;
  /** Why, for the note the next command prints. */
  reason: string;
  since: string;
}

const SAFE = /^[A-Za-z0-9_.+~-]+$/;

function checkSafe(what: string, v: string): void {
  if (!SAFE.test(v) || v === '.' || v === '..') throw new SutureError('invalid-input', `${what} ${JSON.stringify(v)} cannot be used as a file name`);
}

/** An fs failure on suture's state, with the hint that fits its cause. */
export function stateError(e: unknown, action: string, path: string): SutureError {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  const err = fsError(e, action, path);
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new SutureError('environment', `${action}: no space left on the device holding ${path}`, {
      hint: `free some space there (df ${dirname(path)}); SUTURE_STATE_DIR (default /var/lib/suture) and SUTURE_RUN_DIR (default /run/suture) move suture's state`,
      cause: e,
    });
  }
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') {
    return new SutureError(err.kind, err.message, {
      hint:
        code === 'EROFS'
          ? `the file system holding ${path} is read-only`
          : 'run suture as root; SUTURE_STATE_DIR (default /var/lib/suture) and SUTURE_RUN_DIR (default /run/suture) move its state',
      cause: e,
    });
  }
  return err;
}

/** The file-system calls state writes go through (unit tests inject short writes and ENOSPC here). */
export const stateIo = { openSync, writeSync, fsyncSync, closeSync, renameSync };

function fsyncDir(dir: string): void {
  try {
    const fd = openSync(dir, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // some file systems cannot fsync a directory; the rename is still atomic
  }
}

/**
 * Write a file so that after a crash it is either the old or the new content,
 * never a mix, and never a truncated new one: every byte is written (a short
 * write is continued) and synced before the rename.
 */
export function writeDurable(path: string, data: string | Buffer, mode = 0o644): void {
  const dir = dirname(path);
  const tmp = join(dir, `.${path.slice(dir.length + 1)}.tmp-${process.pid}`);
  const bytes = typeof data === 'string' ? Buffer.from(data) : data;
  try {
    mkdirSync(dir, { recursive: true });
    rmSync(tmp, { force: true });
    const fd = stateIo.openSync(tmp, 'wx', mode);
    try {
      for (let off = 0; off < bytes.length; ) {
        const n = stateIo.writeSync(fd, bytes, off, bytes.length - off);
        if (!(n > 0)) throw Object.assign(new Error(`wrote ${n} of ${bytes.length - off} bytes`), { code: 'EIO' });
        off += n;
      }
      stateIo.fsyncSync(fd);
    } finally {
      stateIo.closeSync(fd);
    }
    stateIo.renameSync(tmp, path);
    fsyncDir(dir);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw stateError(e, 'writing suture state', path);
  }
}

/** Remove a file durably. Needs no free space: it is how the guard is disarmed even on a full disk. */
export function removeDurable(path: string): void {
  try {
    rmSync(path, { force: true });
    fsyncDir(dirname(path));
  } catch (e) {
    throw stateError(e, 'removing suture state', path);
  }
}

function damaged(path: string, what: string, hint: string): SutureError {
  return new SutureError('state-damaged', `${path} is damaged (${what}): it is not a file suture wrote`, { hint });
}

const isStr = (v: unknown): v is string => typeof v === 'string';
const isStrs = (v: unknown): v is string[] => Array.isArray(v) && v.every(isStr);
const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Read a state file and check its shape; undefined when it does not exist. */
function readState<T>(path: string, check: (v: Record<string, unknown>) => string | undefined, hint: string): T | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw stateError(e, 'reading suture state', path);
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw damaged(path, text.length ? 'not JSON' : 'empty', hint);
  }
  if (!isObj(v)) throw damaged(path, 'not a JSON object', hint);
  if (v.version !== undefined && v.version !== STATE_VERSION) {
    throw damaged(path, `version ${JSON.stringify(v.version)}; this suture reads version ${STATE_VERSION}`, hint);
  }
  const wrong = check(v);
  if (wrong) throw damaged(path, wrong, hint);
  return v as T;
}

function checkFacts(p: unknown, i: number): string | undefined {
  if (!isObj(p)) return `patch ${i} is not an object`;
  if (!isStr(p.name) || !SAFE.test(p.name)) return `patch ${i} has no usable name`;
  if (!isStr(p.file) || !SAFE.test(p.file)) return `patch ${p.name} has no usable file name`;
  if (!isStr(p.sha256) || !/^[0-9a-f]{64}$/.test(p.sha256)) return `patch ${p.name} has no sha256`;
  if (p.cves !== undefined && !isStrs(p.cves)) return `patch ${p.name}: cves is not a list of strings`;
  return undefined;
}

const checkInstalled = (v: Record<string, unknown>) => {
  if (!Array.isArray(v.patches)) return 'no list of patches';
  for (let i = 0; i < v.patches.length; i++) {
    const w = checkFacts(v.patches[i], i);
    if (w) return w;
  }
  return undefined;
};

const checkBoot = (v: Record<string, unknown>) =>
  !isStr(v.bootId) ? 'no boot id' : !isStrs(v.patches) ? 'no list of patches' : !isStr(v.startedAt) ? 'no start time' : undefined;

const checkArmed = checkBoot;

const checkGuard = (v: Record<string, unknown>) =>
  !isStr(v.trippedAt) ? 'no trip time' : !isObj(v.previous) ? 'no record of the boot that died' : v.blame !== undefined && !isStr(v.blame) ? 'blame is not a name' : undefined;

const checkLoad = (v: Record<string, unknown>) => (!isStr(v.name) ? 'no patch name' : !isStr(v.sha256) ? 'no sha256' : undefined);

const checkPending = (v: Record<string, unknown>) =>
  !Array.isArray(v.ops) || !v.ops.every((o) => isObj(o) && o.op === 'rmmod' && isStr(o.module) && SAFE.test(o.module)) ? 'no list of operations' : undefined;

const json = (v: object) => `${JSON.stringify({ version: STATE_VERSION, ...v }, null, 2)}\n`;

export class StateStore {
  constructor(
    readonly stateDir: string,
    readonly runDir: string,
  ) {}

  // ---- installed patches ----

  releaseDir(release: string): string {
    checkSafe('kernel release', release);
    return join(this.stateDir, 'kernels', release);
  }

  manifestPath(release: string): string {
    return join(this.releaseDir(release), 'installed.json');
  }

  installed(release: string): InstalledPatch[] {
    const path = this.manifestPath(release);
    return (
      readState<{ patches: InstalledPatch[] }>(
        path,
        checkInstalled,
        `move it aside (mv ${path} ${path}.bad), then install the patches for ${release} again (suture install PATCH.ko)`,
      )?.patches ?? []
    );
  }

  /** Releases that have a manifest. */
  releases(): string[] {
    try {
      return readdirSync(join(this.stateDir, 'kernels')).filter((r) => existsSync(this.manifestPath(r))).sort();
    } catch {
      return [];
    }
  }

  installedFile(release: string, p: InstalledPatch): string {
    return join(this.releaseDir(release), p.file);
  }

  /**
   * Install a patch for a release: write the bytes that were validated (mode
   * 0600, never a copy of the path, which could have changed since) and add it
   * at the end of the load order. Installing a name again updates it in
   * place. A cumulative (replace) patch supersedes every patch installed
   * before it: loading it replaces them all, so they are removed.
   */
  install(release: string, patch: PatchFile, bytes: Buffer, signer?: InstalledPatch['signer']): { entry: InstalledPatch; updated: boolean; superseded: InstalledPatch[] } {
    checkSafe('patch name', patch.name);
    const dir = this.releaseDir(release);
    const list = this.installed(release);
    const file = `${patch.name}.ko`;
    const entry: InstalledPatch = { ...patchFacts(patch), file, installedAt: new Date().toISOString(), source: patch.path, ...(signer ? { signer } : {}) };
    writeDurable(join(dir, file), bytes, 0o600);
    const at = list.findIndex((p) => p.name === patch.name);
    let superseded: InstalledPatch[] = [];
    let next: InstalledPatch[];
    if (entry.replace) {
      superseded = list.filter((p) => p.name !== patch.name);
      next = [entry];
    } else if (at >= 0) {
      next = list.map((p, i) => (i === at ? entry : p));
    } else {
      next = [...list, entry];
    }
    writeDurable(this.manifestPath(release), json({ release, patches: next }));
    for (const s of superseded) removeDurable(join(dir, s.file));
    return { entry, updated: at >= 0, superseded };
  }

  uninstall(release: string, name: string): InstalledPatch {
    const list = this.installed(release);
    const found = list.find((p) => p.name === name);
    if (!found) {
      throw new SutureError('not-found', `no patch named ${name} is installed for ${release}`, {
        hint: list.length ? `installed: ${list.map((p) => p.name).join(', ')}` : 'nothing is installed for this kernel; see suture status',
      });
    }
    const next = list.filter((p) => p.name !== name);
    writeDurable(this.manifestPath(release), json({ release, patches: next }));
    removeDurable(join(this.releaseDir(release), found.file));
    return found;
  }

  // ---- boot records, the armed guard, the tripped guard, the stop switch ----

  get bootPath(): string {
    return join(this.stateDir, 'boot.json');
  }

  get armedPath(): string {
    return join(this.stateDir, 'loading.json');
  }

  get guardPath(): string {
    return join(this.stateDir, 'crash-guard.json');
  }

  get stopPath(): string {
    return join(this.stateDir, 'stop.json');
  }

  bootRecord(): BootRecord | undefined {
    return readState<BootRecord>(this.bootPath, checkBoot, `move it aside (mv ${this.bootPath} ${this.bootPath}.bad); it only records the last boot`);
  }

  writeBootRecord(r: BootRecord): void {
    writeDurable(this.bootPath, json(r));
  }

  /** Move a damaged file out of the way (kept for a look); true when it was moved. */
  setAside(path: string): string | undefined {
    const to = `${path}.damaged-${new Date().toISOString().replace(/[:.]/g, '-')}`;
    try {
      renameSync(path, to);
      fsyncDir(dirname(path));
      return to;
    } catch {
      try {
        removeDurable(path);
      } catch {
        // nothing more to do
      }
      return undefined;
    }
  }

  armed(): ArmedGuard | undefined {
    return readState<ArmedGuard>(this.armedPath, checkArmed, 'suture boot treats it as a boot that died while loading; suture boot --clear-guard removes it');
  }

  arm(g: ArmedGuard): void {
    writeDurable(this.armedPath, json(g));
  }

  disarm(): void {
    removeDurable(this.armedPath);
  }

  guard(): CrashGuard | undefined {
    return readState<CrashGuard>(this.guardPath, checkGuard, 'suture boot --clear-guard removes it');
  }

  tripGuard(g: CrashGuard): void {
    writeDurable(this.guardPath, json(g));
  }

  /**
   * Clear a tripped guard, whatever state its file is in (it may be
   * unreadable), and the armed mark of a boot that died. Always works: it
   * only removes files.
   */
  clearGuard(): { guard: CrashGuard | undefined; damaged: boolean; armed: boolean } {
    let g: CrashGuard | undefined;
    let bad = false;
    try {
      g = this.guard();
    } catch {
      bad = existsSync(this.guardPath);
    }
    const armed = existsSync(this.armedPath);
    removeDurable(this.guardPath);
    removeDurable(this.armedPath);
    return { guard: g, damaged: bad, armed };
  }

  stopSwitch(): StopSwitch | undefined {
    try {
      return readState<StopSwitch>(this.stopPath, () => undefined, '');
    } catch {
      // a damaged stop switch still says stop
      return { stoppedAt: '?', reason: `${this.stopPath} is damaged` };
    }
  }

  stop(reason: string | undefined): void {
    writeDurable(this.stopPath, json({ stoppedAt: new Date().toISOString(), reason }));
  }

  resume(): boolean {
    const was = existsSync(this.stopPath);
    removeDurable(this.stopPath);
    return was;
  }

  // ---- per-boot records ----

  private loadRecordPath(name: string): string {
    checkSafe('patch name', name);
    return join(this.runDir, 'loaded', `${name}.json`);
  }

  loadRecord(name: string): LoadRecord | undefined {
    const path = this.loadRecordPath(name);
    return readState<LoadRecord>(path, checkLoad, `remove it (rm ${path}); it only records how the patch was loaded`);
  }

  writeLoadRecord(r: LoadRecord): void {
    writeDurable(this.loadRecordPath(r.name), json(r));
  }

  removeLoadRecord(name: string): void {
    rmSync(this.loadRecordPath(name), { force: true });
  }

  /** Names that have a load record. */
  loadRecordNames(): string[] {
    try {
      return readdirSync(join(this.runDir, 'loaded'))
        .filter((f) => f.endsWith('.json') && SAFE.test(f))
        .map((f) => f.slice(0, -5))
        .sort();
    } catch {
      return [];
    }
  }

  private get pendingPath(): string {
    return join(this.runDir, 'pending.json');
  }

  pending(): PendingOp[] {
    const path = this.pendingPath;
    try {
      return readState<{ ops: PendingOp[] }>(path, checkPending, '')?.ops ?? [];
    } catch {
      // damaged: the work it held is redone by hand (suture status shows leftover modules)
      this.setAside(path);
      return [];
    }
  }

  setPending(ops: PendingOp[]): void {
    if (ops.length) writeDurable(this.pendingPath, json({ ops }));
    else removeDurable(this.pendingPath);
  }

  addPending(op: PendingOp): void {
    this.setPending([...this.pending().filter((o) => !(o.op === op.op && o.module === op.module)), op]);
  }

  // ---- staging: the private copy insmod loads ----

  /**
   * Write validated bytes to a private file for insmod: a fresh 0700
   * directory (mkdtemp) under the run directory, the file created with O_EXCL,
   * mode 0600. The run directory must be root's and writable by nobody else,
   * or another user could swap the directory. Returns the path and a cleanup.
   */
  stage(name: string, bytes: Buffer): { path: string; remove: () => void } {
    checkSafe('patch name', name);
    const base = join(this.runDir, 'staging');
    try {
      mkdirSync(base, { recursive: true, mode: 0o700 });
    } catch (e) {
      throw stateError(e, 'creating the staging directory', base);
    }
    for (const d of [this.runDir, base]) {
      const st = lstatSync(d);
      const uid = process.getuid?.() ?? 0;
      if (!st.isDirectory() || st.uid !== uid || (st.mode & 0o022) !== 0) {
        throw new SutureError('environment', `${d} is ${st.isSymbolicLink() ? 'a symbolic link' : st.uid !== uid ? `owned by uid ${st.uid}` : 'writable by other users'}: suture will not stage a module there`, {
          hint: `make it a directory owned by ${uid === 0 ? 'root' : `uid ${uid}`} with mode 0700 or 0755 (or set SUTURE_RUN_DIR to one)`,
        });
      }
    }
    let dir: string;
    try {
      dir = mkdtempSync(join(base, `${name}-`));
    } catch (e) {
      throw stateError(e, 'creating a staging directory', base);
    }
    const path = join(dir, `${name}.ko`);
    const remove = () => rmSync(dir, { recursive: true, force: true });
    try {
      const fd = openSync(path, 'wx', 0o600);
      try {
        for (let off = 0; off < bytes.length; ) off += writeSync(fd, bytes, off, bytes.length - off);
      } finally {
        closeSync(fd);
      }
    } catch (e) {
      remove();
      throw stateError(e, 'staging the module', path);
    }
    return { path, remove };
  }
}
