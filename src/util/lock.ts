// SPDX-License-Identifier: GPL-2.0-only
/**
 * The one lock module: a lock file that says who holds it, for suture
 * commands that must not run at the same time (the host commands that change
 * livepatch state; a kernel fetch writing one cache entry).
 *
 * - Created complete and atomically: the owner record is written to a private
 *   temporary file, then `link()`ed to the lock path. link fails with EEXIST
 *   when the lock exists, so a reader never sees an empty or half-written lock.
 * - Owner checks: the record holds the pid, the process's start time
 *   (/proc/<pid>/stat field 22, so a reused pid is not mistaken for the
 *   holder), the boot id, the command and a random token; `release()` removes
 *   the lock only while it still holds this process's token.
 * - A stale lock (its process is gone, or it is from another boot) is taken
 *   over by rename-and-recheck: rename it to a private name, read what was
 *   renamed; if it is not the stale record that was judged (another taker got
 *   there first and holds a new lock), put it back with link() and go on
 *   waiting. Two takers of one stale lock never remove each other's lock.
 * - Reentrant within a process: a command that holds the lock can call code
 *   that takes it again (boot → load).
 * - Released when the process exits, however it exits (an exit hook), and
 *   taken over when it dies without exiting (SIGKILL, a crash).
 *
 * API: `new Lock(path, { what })`; `take(command)` takes it now or throws a
 * `conflict` SutureError naming the holder; `await wait(command, { timeoutMs,
 * onWait })` waits while a live process holds it, up to a bound, then throws
 * the same error; `holder()` says who holds it. Each returns a LockHandle
 * whose `release()` is idempotent.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, linkSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { SutureError, fsError } from './errors.js';

export interface LockOwner {
  pid: number;
  /** The process's start time in clock ticks since boot (/proc/<pid>/stat field 22). */
  start: string | undefined;
  /** The boot id the process ran in (/proc/sys/kernel/random/boot_id). */
  boot: string | undefined;
  command: string;
  since: string;
  token: string;
}

export interface LockOptions {
  /** What the lock serialises, for messages ("livepatch changes on this host"). */
  what: string;
  /** Root prefix for /proc (tests); '' is the real system. */
  procRoot?: string;
  /** How often `wait` looks again (ms). */
  pollMs?: number;
}

export interface LockHandle {
  readonly path: string;
  readonly owner: LockOwner;
  /** Remove the lock if this process still holds it; true when it did. Idempotent. */
  release(): boolean;
  /** The lock file still holds this process's record. */
  held(): boolean;
}

export interface LockHolder {
  /** Undefined when the file cannot be parsed. */
  owner: LockOwner | undefined;
  alive: boolean;
  text: string;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Field 22 of /proc/<pid>/stat (start time), read after the last ')' (comm may hold anything). */
export function processStartTime(pid: number, procRoot = ''): string | undefined {
  try {
    const stat = readFileSync(join(procRoot || '/', 'proc', String(pid), 'stat'), 'utf8');
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // rest[0] is field 3 (state); field 22 is rest[19]
    return rest[19];
  } catch {
    return undefined;
  }
}

function currentBootId(procRoot = ''): string | undefined {
  try {
    return readFileSync(join(procRoot || '/', 'proc/sys/kernel/random/boot_id'), 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

function parseOwner(text: string): LockOwner | undefined {
  try {
    const o = JSON.parse(text) as Partial<LockOwner>;
    if (typeof o.pid !== 'number' || !Number.isInteger(o.pid) || o.pid <= 0 || typeof o.token !== 'string') return undefined;
    return {
      pid: o.pid,
      start: typeof o.start === 'string' ? o.start : undefined,
      boot: typeof o.boot === 'string' ? o.boot : undefined,
      command: typeof o.command === 'string' ? o.command : '?',
      since: typeof o.since === 'string' ? o.since : '?',
      token: o.token,
    };
  } catch {
    // the format before this module: "<pid> <command>\n"
    const m = /^(\d+) (.*)\n?$/.exec(text);
    if (!m) return undefined;
    return { pid: Number(m[1]), start: undefined, boot: undefined, command: m[2]!, since: '?', token: `legacy:${text}` };
  }
}

/** Every lock this process holds, released when it exits. */
const heldByProcess = new Set<LockHandle>();
/** This process's hold on each lock path (any Lock object for that path shares it: reentrant). */
const mineByPath = new Map<string, { handle: LockHandle; depth: number }>();
let exitHook = false;

export class Lock {
  readonly path: string;
  readonly what: string;
  private readonly procRoot: string;
  private readonly pollMs: number;

  constructor(path: string, opts: LockOptions) {
    this.path = path;
    this.what = opts.what;
    this.procRoot = opts.procRoot ?? '';
    this.pollMs = opts.pollMs ?? 100;
  }

  /** Is the process of a record still the one that wrote it? */
  private alive(o: LockOwner): boolean {
    if (o.pid === process.pid) return mineByPath.get(this.path)?.handle.owner.token === o.token;
    const boot = currentBootId(this.procRoot);
    if (o.boot && boot && o.boot !== boot) return false;
    const start = processStartTime(o.pid, this.procRoot);
    if (start === undefined) return false;
    return o.start === undefined || o.start === start;
  }

  /** Who holds the lock now, if anyone. */
  holder(): LockHolder | undefined {
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw fsError(e, `reading the lock for ${this.what}`, this.path);
    }
    const owner = parseOwner(text);
    if (!owner) {
      // Not a record this module writes (it writes complete files): a foreign or damaged file.
      // Give a writer of the old format a moment; after that it is stale.
      let young = false;
      try {
        young = Date.now() - statSync(this.path).mtimeMs < 5_000;
      } catch {
        young = false;
      }
      return { owner: undefined, alive: young, text };
    }
    return { owner, alive: this.alive(owner), text };
  }

  private conflict(h: LockHolder, waitedMs?: number): SutureError {
    const who = h.owner ? `${h.owner.command} (pid ${h.owner.pid}, since ${h.owner.since})` : 'a process that is writing the lock';
    return new SutureError('conflict', `another suture command holds the lock for ${this.what}${waitedMs ? ` (waited ${Math.round(waitedMs / 1000)} s)` : ''}: ${who}`, {
      hint: h.owner
        ? `wait for it to finish and run this again; if pid ${h.owner.pid} is not suture, remove ${this.path}`
        : `run this again in a few seconds; if it persists, remove ${this.path}`,
    });
  }

  /** One attempt: the handle, or the live holder. */
  private attempt(command: string): LockHandle | LockHolder {
    const mine = mineByPath.get(this.path);
    if (mine) {
      mine.depth++;
      return this.nested(mine.handle);
    }
    const dir = dirname(this.path);
    try {
      mkdirSync(dir, { recursive: true, mode: 0o755 });
    } catch (e) {
      throw fsError(e, `creating the directory of the lock for ${this.what}`, dir);
    }
    this.sweep();
    const owner: LockOwner = {
      pid: process.pid,
      start: processStartTime(process.pid, this.procRoot),
      boot: currentBootId(this.procRoot),
      command,
      since: new Date().toISOString(),
      token: randomBytes(12).toString('hex'),
    };
    const tmp = `${this.path}.${process.pid}.${owner.token}.tmp`;
    try {
      const fd = openSync(tmp, 'wx', 0o644);
      try {
        const data = Buffer.from(`${JSON.stringify(owner)}\n`);
        for (let off = 0; off < data.length; ) off += writeSync(fd, data, off, data.length - off);
      } finally {
        closeSync(fd);
      }
    } catch (e) {
      try {
        unlinkSync(tmp);
      } catch {
        // not created
      }
      throw fsError(e, `writing the lock for ${this.what}`, tmp);
    }
    try {
      for (let round = 0; round < 50; round++) {
        try {
          linkSync(tmp, this.path);
          return this.own(owner);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw fsError(e, `taking the lock for ${this.what}`, this.path);
        }
        const h = this.holder();
        if (!h) continue; // released meanwhile
        if (h.alive) return h;
        this.takeOver(h.text);
      }
      throw new SutureError('conflict', `could not take the lock ${this.path} for ${this.what}: it kept changing hands`, { hint: 'run this again' });
    } finally {
      try {
        unlinkSync(tmp);
      } catch {
        // gone
      }
    }
  }

  /** Remove a stale lock whose content was `stale`, without ever removing another process's new lock. */
  private takeOver(stale: string): void {
    const grave = `${this.path}.${process.pid}.${randomBytes(6).toString('hex')}.stale`;
    try {
      renameSync(this.path, grave);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return; // another taker moved it
      throw fsError(e, `taking over the stale lock for ${this.what}`, this.path);
    }
    let moved = '';
    try {
      moved = readFileSync(grave, 'utf8');
    } catch {
      moved = '';
    }
    if (moved !== stale) {
      // Someone took the lock between our read and our rename: give it back.
      try {
        linkSync(grave, this.path);
      } catch {
        // A third process took the lock meanwhile; the one we moved finds it is no longer held (held() = false).
      }
    }
    try {
      unlinkSync(grave);
    } catch {
      // gone
    }
  }

  /** Remove temporary and renamed-away files left by processes that died between two steps. */
  private sweep(): void {
    const dir = dirname(this.path);
    const base = basename(this.path);
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      return;
    }
    for (const n of names) {
      const m = new RegExp(`^${base.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\.(\\d+)\\.[0-9a-f]+\\.(tmp|stale)$`).exec(n);
      if (!m) continue;
      const pid = Number(m[1]);
      if (pid === process.pid || processStartTime(pid, this.procRoot) !== undefined) continue;
      try {
        unlinkSync(join(dir, n));
      } catch {
        // another sweeper
      }
    }
  }

  private own(owner: LockOwner): LockHandle {
    const path = this.path;
    let released = false;
    const handle: LockHandle = {
      path,
      owner,
      held: () => {
        try {
          return parseOwner(readFileSync(path, 'utf8'))?.token === owner.token;
        } catch {
          return false;
        }
      },
      release: () => {
        if (released) return false;
        const mine = mineByPath.get(path);
        if (mine && mine.handle === handle && mine.depth > 1) {
          mine.depth--;
          return false;
        }
        released = true;
        if (mine?.handle === handle) mineByPath.delete(path);
        heldByProcess.delete(handle);
        if (!handle.held()) return false;
        try {
          unlinkSync(path);
          return true;
        } catch {
          return false;
        }
      },
    };
    mineByPath.set(path, { handle, depth: 1 });
    heldByProcess.add(handle);
    if (!exitHook) {
      exitHook = true;
      process.on('exit', () => {
        for (const h of [...heldByProcess]) h.release();
      });
    }
    return handle;
  }

  /** A handle for a nested take: its release only counts down. */
  private nested(outer: LockHandle): LockHandle {
    let released = false;
    return {
      path: outer.path,
      owner: outer.owner,
      held: () => outer.held(),
      release: () => {
        if (released) return false;
        released = true;
        return outer.release();
      },
    };
  }

  /** Take the lock now, or throw a `conflict` error naming the holder and what to do. */
  take(command: string): LockHandle {
    const r = this.attempt(command);
    if ('release' in r) return r;
    throw this.conflict(r);
  }

  /**
   * Take the lock, waiting while a live process holds it, at most `timeoutMs`
   * (then the `conflict` error). `onWait` is called once, with the holder,
   * when waiting starts (say what is waited for).
   */
  async wait(command: string, opts: { timeoutMs: number; onWait?: (holder: LockHolder) => void; signal?: AbortSignal }): Promise<LockHandle> {
    const start = performance.now();
    let told = false;
    for (;;) {
      const r = this.attempt(command);
      if ('release' in r) return r;
      const waited = performance.now() - start;
      if (waited >= opts.timeoutMs || opts.signal?.aborted) throw this.conflict(r, waited);
      if (!told) {
        told = true;
        opts.onWait?.(r);
      }
      await sleep(Math.min(this.pollMs, Math.max(1, opts.timeoutMs - waited)));
    }
  }
}
