// SPDX-License-Identifier: GPL-2.0-only
/**
 * The one place that runs processes. Always an argv array, never a shell
 * string; every run is recorded (command, duration, exit code) so that a
 * failing step can show exactly what ran.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { SutureError } from './errors.js';

export interface RunOptions {
  cwd?: string;
  /** Environment; defaults to process.env. `extraEnv` is merged on top. */
  env?: NodeJS.ProcessEnv;
  extraEnv?: Record<string, string>;
  /** Bytes written to the child's stdin; stdin is closed (not inherited) otherwise. */
  input?: string | Buffer;
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Called with each complete line of stdout/stderr as it arrives. */
  onLine?: (line: string, stream: 'stdout' | 'stderr') => void;
  /** Keep at most this many bytes of each stream (the tail). Default 8 MiB. */
  maxCapture?: number;
}

export interface RunResult {
  argv: readonly string[];
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  durationMs: number;
  timedOut: boolean;
}

export interface RunRecord {
  argv: readonly string[];
  cwd: string | undefined;
  code: number | null;
  durationMs: number;
}

const history: RunRecord[] = [];
const live = new Set<ChildProcess>();

/**
 * Stop every child still running (on Ctrl-C or SIGTERM): a fetch or build that
 * is interrupted must not leave a tar or make writing into the cache behind it.
 */
export function killChildren(signal: NodeJS.Signals = 'SIGTERM'): void {
  for (const c of live) c.kill(signal);
}
/** What ran in this process, oldest first (for --verbose and error reports). */
export function runHistory(): readonly RunRecord[] {
  return history;
}

class Tail {
  private chunks: Buffer[] = [];
  private size = 0;
  constructor(private readonly max: number) {}
  push(b: Buffer): void {
    this.chunks.push(b);
    this.size += b.length;
    while (this.size > this.max && this.chunks.length > 1) {
      this.size -= this.chunks.shift()!.length;
    }
  }
  toString(): string {
    const all = Buffer.concat(this.chunks);
    return all.subarray(Math.max(0, all.length - this.max)).toString('utf8');
  }
}

function lineSplitter(cb: (line: string) => void): { push(b: Buffer): void; end(): void } {
  let pending = '';
  return {
    push(b) {
      pending += b.toString('utf8');
      let i: number;
      while ((i = pending.indexOf('\n')) >= 0) {
        cb(pending.slice(0, i).replace(/\r$/, ''));
        pending = pending.slice(i + 1);
      }
    },
    end() {
      if (pending) cb(pending);
      pending = '';
    },
  };
}

/** Run a program to completion. Never throws for a non-zero exit: check `code`. */
export function run(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  if (argv.length === 0) throw new SutureError('internal', 'run() called with an empty argv');
  const started = performance.now();
  const env = { ...(opts.env ?? process.env), ...(opts.extraEnv ?? {}) };
  const max = opts.maxCapture ?? 8 * 1024 * 1024;
  return new Promise((resolve, reject) => {
    let child: ChildProcess;
    try {
      child = spawn(argv[0]!, argv.slice(1), {
        cwd: opts.cwd,
        env,
        stdio: ['pipe', 'pipe', 'pipe'],
        detached: false,
      });
    } catch (e) {
      reject(e);
      return;
    }
    live.add(child);
    const out = new Tail(max);
    const err = new Tail(max);
    const outLines = opts.onLine ? lineSplitter((l) => opts.onLine!(l, 'stdout')) : undefined;
    const errLines = opts.onLine ? lineSplitter((l) => opts.onLine!(l, 'stderr')) : undefined;
    child.stdout!.on('data', (b: Buffer) => {
      out.push(b);
      outLines?.push(b);
    });
    child.stderr!.on('data', (b: Buffer) => {
      err.push(b);
      errLines?.push(b);
    });
    let timedOut = false;
    const timer =
      opts.timeoutMs !== undefined
        ? setTimeout(() => {
            timedOut = true;
            child.kill('SIGKILL');
          }, opts.timeoutMs)
        : undefined;
    const onAbort = () => child.kill('SIGTERM');
    // a signal aborted before the start (the caller gave up meanwhile) fires no event: killed at once
    if (opts.signal?.aborted) onAbort();
    else opts.signal?.addEventListener('abort', onAbort, { once: true });
    child.on('error', (e: NodeJS.ErrnoException) => {
      live.delete(child);
      if (timer) clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      if (e.code === 'ENOENT') {
        reject(
          new SutureError('environment', `${argv[0]} is not installed (not found on PATH)`, {
            hint: installHint(argv[0]!),
            cause: e,
          }),
        );
      } else reject(e);
    });
    child.on('close', (code, signal) => {
      live.delete(child);
      if (timer) clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      outLines?.end();
      errLines?.end();
      const durationMs = performance.now() - started;
      history.push({ argv, cwd: opts.cwd, code, durationMs });
      resolve({ argv, code, signal, stdout: out.toString(), stderr: err.toString(), durationMs, timedOut });
    });
    if (opts.input !== undefined) child.stdin!.end(opts.input);
    else child.stdin!.end();
  });
}

/** Run and demand exit status 0; otherwise a SutureError naming the command and the tail of its output. */
export async function runChecked(
  argv: readonly string[],
  opts: RunOptions & { what?: string; kind?: 'build' | 'environment' | 'archive' } = {},
): Promise<RunResult> {
  const r = await run(argv, opts);
  if (r.code !== 0) {
    const tail = (r.stderr.trim() || r.stdout.trim()).split('\n').slice(-15).join('\n');
    throw new SutureError(
      opts.kind ?? 'build',
      `${opts.what ?? argv[0]} failed (${r.timedOut ? 'timed out' : r.signal ? `signal ${r.signal}` : `exit ${r.code}`}): ${formatArgv(argv)}`,
      { details: tail },
    );
  }
  return r;
}

export function formatArgv(argv: readonly string[]): string {
  return argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}

/** Find a program on PATH (like `command -v`), or undefined. */
export function which(name: string, path = process.env.PATH ?? ''): string | undefined {
  if (name.includes('/')) return isExecutable(name) ? name : undefined;
  for (const dir of path.split(delimiter)) {
    if (!dir) continue;
    const p = join(dir, name);
    if (isExecutable(p)) return p;
  }
  return undefined;
}

function isExecutable(p: string): boolean {
  try {
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The Debian package that provides a tool we run. */
const DEBIAN_PACKAGE: Record<string, string> = {
  'qemu-system-x86_64': 'qemu-system-x86',
  'qemu-img': 'qemu-utils',
  busybox: 'busybox-static',
  debootstrap: 'debootstrap',
  'apt-get': 'apt',
  'dpkg-deb': 'dpkg',
  make: 'make',
  gcc: 'gcc',
  'gcc-12': 'gcc-12',
  flex: 'flex',
  bison: 'bison',
  bc: 'bc',
  cpio: 'cpio',
  xz: 'xz-utils',
  zstd: 'zstd',
  depmod: 'kmod',
  tar: 'tar',
  chroot: 'coreutils',
  readelf: 'binutils',
  objdump: 'binutils',
};

export function installHint(tool: string): string {
  const pkg = DEBIAN_PACKAGE[tool.split('/').pop()!];
  return pkg
    ? `install it: apt-get install ${pkg} (or run scripts/setup.sh, which installs everything suture needs)`
    : `install ${tool} and make sure it is on PATH`;
}

/** Demand that a tool exists before a long step starts. */
export function requireTool(name: string): string {
  const p = which(name);
  if (!p) throw new SutureError('environment', `${name} is not installed (not found on PATH)`, { hint: installHint(name) });
  return p;
}
