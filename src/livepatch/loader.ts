// SPDX-License-Identifier: GPL-2.0-only
/**
 * Putting modules into the kernel and taking them out: insmod and rmmod
 * (kmod's on a host, busybox's in the test guest), run through the one
 * process runner. The kernel's reason for a refusal is in its log, which the
 * caller reads (kernel-log.ts).
 */
import { run, which } from '../util/exec.js';
import { SutureError } from '../util/errors.js';

export interface LoaderResult {
  ok: boolean;
  /** What the tool printed (its last line), for the error message. */
  message: string;
  durationMs: number;
}

export interface ModuleLoader {
  insmod(path: string): Promise<LoaderResult>;
  rmmod(name: string): Promise<LoaderResult>;
}

/**
 * Where insmod and rmmod are looked for: fixed system directories only, never
 * $PATH (suture runs as root: a writable directory early in PATH would choose
 * the program that loads modules). kmod installs them in /usr/sbin (or /sbin
 * before the /usr merge); busybox in /sbin or /bin.
 */
export const TOOL_DIRS = ['/usr/sbin', '/sbin', '/usr/bin', '/bin'] as const;

export function findTool(name: 'insmod' | 'rmmod', dirs: readonly string[] = TOOL_DIRS): string {
  const p = which(name, dirs.join(':'));
  if (!p) throw new SutureError('environment', `${name} is not installed (not found in ${dirs.join(', ')})`, { hint: 'install it: apt-get install kmod' });
  return p;
}

async function tool(argv: string[]): Promise<LoaderResult> {
  const r = await run(argv, { timeoutMs: 120_000 });
  const text = `${r.stderr}\n${r.stdout}`.trim().split('\n').filter(Boolean).pop() ?? '';
  return { ok: r.code === 0, message: text, durationMs: r.durationMs };
}

export const kmodLoader: ModuleLoader = {
  insmod: (path) => tool([findTool('insmod'), path]),
  rmmod: (name) => tool([findTool('rmmod'), name]),
};
