// SPDX-License-Identifier: GPL-2.0-only
/**
 * Typed errors. Every error that can reach a user is a SutureError: it names
 * the exact entity that is wrong and says what to do. The CLI maps `kind` to
 * an exit code in one place (src/cli/exit-codes.ts).
 */

export type ErrorKind =
  | 'usage' // bad command-line arguments
  | 'not-found' // a kernel, file or symbol that does not exist
  | 'invalid-input' // a file exists but is not what it must be (not ELF, not a module, ...)
  | 'environment' // a tool is missing, a directory is not writable, no disk space
  | 'archive' // the package archive does not have it, or a download failed
  | 'build' // a compiler or make step failed
  | 'guest-crash' // the guest kernel panicked or oopsed
  | 'guest-timeout' // the guest hung or ran past its timeout
  | 'guest-refused' // the guest kernel refused a module
  | 'ambiguous' // a kernel symbol name has several copies and nothing says which one is meant
  | 'unpatchable' // a function ftrace cannot patch (notrace, no __fentry__ call, __init, not a function)
  | 'limit' // a name over a kernel limit (module name, object name, KSYM_NAME_LEN)
  | 'unsupported-change' // the patch changes something a livepatch cannot carry (data, layout, __init, ...)
  | 'no-change' // the patch compiles to the same code: nothing to patch
  | 'wrong-kernel' // a livepatch built for another kernel than the running one
  | 'conflict' // the host's state forbids it now: already loaded, a transition running, another suture busy
  | 'kernel-refused' // the running kernel refused a module load or a livepatch sysfs write
  | 'transition-timeout' // a livepatch transition did not complete in time (left as it is)
  | 'crash-loop' // `suture boot` refuses: the previous boot loaded patches and never finished
  | 'state-damaged' // one of suture's own state files cannot be read back (named, with what to do)
  | 'untrusted' // a patch without a valid signature by a trusted key, a revoked key or module, a tampered bundle
  | 'interrupted' // a signal stopped the command; the message says what state it left
  | 'internal'; // a bug in suture

export class SutureError extends Error {
  readonly kind: ErrorKind;
  /** One line telling the user what to do about it. */
  readonly hint: string | undefined;
  /** Extra lines (e.g. the tail of a log) shown under the message. */
  readonly details: string | undefined;

  constructor(kind: ErrorKind, message: string, opts: { hint?: string; details?: string; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'SutureError';
    this.kind = kind;
    this.hint = opts.hint;
    this.details = opts.details;
  }
}

export function isSutureError(e: unknown): e is SutureError {
  return e instanceof SutureError;
}

/** Turn an errno-style error from node:fs into a SutureError that names the path. */
export function fsError(e: unknown, action: string, path: string): SutureError {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  switch (code) {
    case 'ENOENT':
      return new SutureError('not-found', `${action}: ${path} does not exist`, { cause: e });
    case 'EACCES':
    case 'EPERM':
    case 'EROFS':
      return new SutureError('environment', `${action}: ${path} is not writable (${code})`, {
        hint: 'set SUTURE_HOME to a directory you can write to',
        cause: e,
      });
    case 'ENOSPC':
    case 'EDQUOT':
      return new SutureError('environment', `${action}: no space left on the device holding ${path}`, {
        hint: 'free some space or set SUTURE_HOME to a larger filesystem',
        cause: e,
      });
    default:
      return new SutureError('environment', `${action}: ${path}: ${(e as Error)?.message ?? String(e)}`, { cause: e });
  }
}
