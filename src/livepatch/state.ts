// SPDX-License-Identifier: GPL-2.0-only
/**
 * suture's own state on a host.
 *
 * Persistent (state directory, default /var/lib/suture, SUTURE_STATE_DIR):
 *   kernels/<release>/installed.json   installed patches for that kernel release, in load order
 *   kernels/<release>/<name>.ko        their module files
 *   boot.json                          the last `suture boot`: boot id, phase (loading|done), patches
 *   crash-guard.json                   present when the guard has tripped: `suture boot` loads nothing
 *
 * Per boot (run directory, default /run/suture, SUTURE_RUN_DIR; gone at reboot like the patches):
 *   loaded/<name>.json                 what suture loaded: file, hash, time, modinfo facts, forced
 *   lock                               pid of the suture command changing livepatch state
 *
 * Every persistent write goes to a temporary file, is fsynced, renamed into
 * place, and the directory is fsynced: a crash right after a write keeps it,
 * which is what the crash-loop guard relies on.
 */
import {
  closeSync,
  constants,
  copyFileSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { SutureError, fsError } from '../util/errors.js';
import type { PatchFile } from './patch-file.js';

export const DEFAULT_STATE_DIR = '/var/lib/suture';
export const DEFAULT_RUN_DIR = '/run/suture';

export function stateDirFromEnv(env: NodeJS.ProcessEnv = process.env): string {
  return env.SUTURE_STATE_DIR || DEFAULT_STATE_DIR;
}

export function runDirFromEnv(env: NodeJS.ProcessEnv = process.env): string {
  return env.SUTURE_RUN_DIR || DEFAULT_RUN_DIR;
}

/** Facts about a patch that suture keeps beside it (the 6.1 sysfs shows none of them). */
export interface PatchFacts {
  name: string;
  sha256: string;
  replace: boolean | undefined;
  effectiveVersion: string | undefined;
  cves: string[];
  description: string | undefined;
}

export function patchFacts(p: PatchFile): PatchFacts {
  return {
    name: p.name,
    sha256: p.sha256,
    replace: p.structure?.replace,
    effectiveVersion: p.effectiveVersion,
    cves: [...p.cves].sort(),
    description: p.description,
  };
}

export interface InstalledPatch extends PatchFacts {
  /** File name inside kernels/<release>/. */
  file: string;
  installedAt: string;
  /** Where it was installed from. */
  source: string;
}

export interface BootRecord {
  bootId: string;
  release: string;
  phase: 'loading' | 'done';
  startedAt: string;
  finishedAt?: string;
  patches: string[];
  failed?: { name: string; error: string }[];
}

export interface CrashGuard {
  trippedAt: string;
  /** The boot in which `suture boot` refused. */
  bootId: string;
  /** The boot that started loading and never finished. */
  previous: BootRecord;
}

export interface LoadRecord extends PatchFacts {
  file: string;
  loadedAt: string;
  bootId: string | undefined;
  forced?: boolean;
  transitionMs?: number;
  kernelTransitionMs?: number;
}

const SAFE = /^[A-Za-z0-9_.+~-]+$/;

function checkSafe(what: string, v: string): void {
  if (!SAFE.test(v) || v === '.' || v === '..') throw new SutureError('invalid-input', `${what} ${JSON.stringify(v)} cannot be used as a file name`);
}

/** An fs failure on suture's state, with the hint that fits it (root, or SUTURE_STATE_DIR / SUTURE_RUN_DIR). */
function stateError(e: unknown, action: string, path: string): SutureError {
  const err = fsError(e, action, path);
  if (err.kind !== 'environment') return err;
  return new SutureError(err.kind, err.message, {
    hint: 'run suture as root; SUTURE_STATE_DIR (default /var/lib/suture) and SUTURE_RUN_DIR (default /run/suture) move its state',
    cause: e,
  });
}

function readJson<T>(path: string): T | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw stateError(e, 'reading suture state', path);
  }
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new SutureError('environment', `${path} is damaged (not JSON)`, {
      hint: `move it aside (mv ${path} ${path}.bad); suture starts from empty state for it`,
    });
  }
}

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

/** Write a file so that after a crash it is either the old or the new content, never a mix. */
export function writeDurable(path: string, data: string | Buffer): void {
  const dir = dirname(path);
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    mkdirSync(dir, { recursive: true });
    const fd = openSync(tmp, 'w', 0o644);
    try {
      writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
    fsyncDir(dir);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw stateError(e, 'writing suture state', path);
  }
}

function removeDurable(path: string): void {
  try {
    rmSync(path, { force: true });
    fsyncDir(dirname(path));
  } catch (e) {
    throw stateError(e, 'removing suture state', path);
  }
}

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

  private manifestPath(release: string): string {
    return join(this.releaseDir(release), 'installed.json');
  }

  installed(release: string): InstalledPatch[] {
    return readJson<{ patches: InstalledPatch[] }>(this.manifestPath(release))?.patches ?? [];
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
   * Install a patch for a release: keep its file and add it at the end of the
   * load order. Installing a name again updates it in place. A cumulative
   * (replace) patch supersedes every patch installed before it: loading it
   * replaces them all, so they are removed.
   */
  install(release: string, patch: PatchFile): { entry: InstalledPatch; updated: boolean; superseded: InstalledPatch[] } {
    checkSafe('patch name', patch.name);
    const dir = this.releaseDir(release);
    const list = this.installed(release);
    const file = `${patch.name}.ko`;
    const entry: InstalledPatch = { ...patchFacts(patch), file, installedAt: new Date().toISOString(), source: patch.path };
    const tmp = join(dir, `.${file}.tmp-${process.pid}`);
    try {
      mkdirSync(dir, { recursive: true });
      copyFileSync(patch.path, tmp);
      const fd = openSync(tmp, 'r');
      try {
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, join(dir, file));
      fsyncDir(dir);
    } catch (e) {
      rmSync(tmp, { force: true });
      throw stateError(e, 'installing a patch', join(dir, file));
    }
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
    writeDurable(this.manifestPath(release), `${JSON.stringify({ release, patches: next }, null, 2)}\n`);
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
    writeDurable(this.manifestPath(release), `${JSON.stringify({ release, patches: next }, null, 2)}\n`);
    removeDurable(join(this.releaseDir(release), found.file));
    return found;
  }

  // ---- boot marks and the crash-loop guard ----

  bootRecord(): BootRecord | undefined {
    return readJson<BootRecord>(join(this.stateDir, 'boot.json'));
  }

  writeBootRecord(r: BootRecord): void {
    writeDurable(join(this.stateDir, 'boot.json'), `${JSON.stringify(r, null, 2)}\n`);
  }

  guard(): CrashGuard | undefined {
    return readJson<CrashGuard>(join(this.stateDir, 'crash-guard.json'));
  }

  tripGuard(g: CrashGuard): void {
    writeDurable(join(this.stateDir, 'crash-guard.json'), `${JSON.stringify(g, null, 2)}\n`);
  }

  clearGuard(): CrashGuard | undefined {
    const g = this.guard();
    removeDurable(join(this.stateDir, 'crash-guard.json'));
    const b = this.bootRecord();
    if (b && b.phase === 'loading') this.writeBootRecord({ ...b, phase: 'done', finishedAt: new Date().toISOString(), failed: [{ name: '*', error: 'never finished; guard cleared by the operator' }] });
    return g;
  }

  // ---- per-boot records ----

  private loadRecordPath(name: string): string {
    checkSafe('patch name', name);
    return join(this.runDir, 'loaded', `${name}.json`);
  }

  loadRecord(name: string): LoadRecord | undefined {
    return readJson<LoadRecord>(this.loadRecordPath(name));
  }

  writeLoadRecord(r: LoadRecord): void {
    writeDurable(this.loadRecordPath(r.name), `${JSON.stringify(r, null, 2)}\n`);
  }

  removeLoadRecord(name: string): void {
    rmSync(this.loadRecordPath(name), { force: true });
  }

  /**
   * Take the lock that serialises suture commands changing livepatch state.
   * A lock left by a process that no longer exists is taken over.
   */
  lock(command: string, procRoot = ''): () => void {
    const path = join(this.runDir, 'lock');
    try {
      mkdirSync(this.runDir, { recursive: true });
    } catch (e) {
      throw stateError(e, 'creating the run directory', this.runDir);
    }
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o644);
        writeSync(fd, `${process.pid} ${command}\n`);
        closeSync(fd);
        return () => rmSync(path, { force: true });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw stateError(e, 'taking the suture lock', path);
        const holder = (() => {
          try {
            return readFileSync(path, 'utf8').trim();
          } catch {
            return '';
          }
        })();
        const pid = Number(holder.split(' ')[0]);
        if (pid > 0 && pid !== process.pid && existsSync(join(procRoot || '/', 'proc', String(pid)))) {
          throw new SutureError('conflict', `another suture command is changing livepatches: ${holder.split(' ').slice(1).join(' ') || '?'} (pid ${pid})`, {
            hint: `wait for it to finish; if pid ${pid} is not suture, remove ${path}`,
          });
        }
        rmSync(path, { force: true });
      }
    }
    throw new SutureError('conflict', `could not take the suture lock ${path}`);
  }
}
