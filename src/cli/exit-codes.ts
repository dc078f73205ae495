// SPDX-License-Identifier: GPL-2.0-only
/**
 * Exit codes: the one place that maps error kinds to process exit statuses.
 * Documented in README.md ("Exit codes"); keep the two in step.
 */
import type { ErrorKind } from '../util/errors.js';

export const EXIT = {
  ok: 0,
  /** A check failed (e.g. a guest command in `vm run` without its own status). */
  failure: 1,
  usage: 2,
  notFound: 10,
  invalidInput: 11,
  environment: 12,
  archive: 13,
  build: 14,
  /** `build`: a kernel symbol the fix names has several copies; add a hint (SUTURE_SYMPOS). */
  ambiguous: 15,
  /** `build`: a function the fix replaces cannot be patched by ftrace. */
  unpatchable: 16,
  /** `build`: a name over a kernel limit. */
  limit: 17,
  /** `build`: the patch changes something a livepatch cannot carry (each reason is printed). */
  unsupportedChange: 18,
  /** `build`/`analyze`: the patch compiles to the same code; nothing to patch. */
  noChange: 19,
  guestCrash: 20,
  guestTimeout: 21,
  guestRefused: 22,
  /** The livepatch was built for another kernel (vermagic / release). */
  wrongKernel: 30,
  /** Already loaded, another transition in progress, not in transition (force), another suture busy. */
  conflict: 31,
  /** The running kernel refused: insmod/rmmod failed, or a livepatch sysfs write failed. */
  kernelRefused: 32,
  /** The transition did not complete within --timeout; it is left running. */
  transitionTimeout: 33,
  /** The transition timed out and was reversed (--revert-on-timeout): the system is back where it was. */
  reverted: 34,
  /** `suture boot` refused: the previous boot started loading patches and never finished. */
  crashLoop: 35,
  /** One of suture's state files is damaged (not what suture wrote); the message names it and what to do. */
  stateDamaged: 36,
  /** Not loaded: unsigned (without --allow-unsigned), signed by an untrusted or revoked key, revoked, or changed after signing; a revocation list older than the one accepted. */
  untrusted: 37,
  internal: 70,
  interrupted: 130,
} as const;

export function exitCodeFor(kind: ErrorKind): number {
  switch (kind) {
    case 'usage':
      return EXIT.usage;
    case 'not-found':
      return EXIT.notFound;
    case 'invalid-input':
      return EXIT.invalidInput;
    case 'environment':
      return EXIT.environment;
    case 'archive':
      return EXIT.archive;
    case 'build':
      return EXIT.build;
    case 'guest-crash':
      return EXIT.guestCrash;
    case 'guest-timeout':
      return EXIT.guestTimeout;
    case 'guest-refused':
      return EXIT.guestRefused;
    case 'wrong-kernel':
      return EXIT.wrongKernel;
    case 'conflict':
      return EXIT.conflict;
    case 'kernel-refused':
      return EXIT.kernelRefused;
    case 'transition-timeout':
      return EXIT.transitionTimeout;
    case 'crash-loop':
      return EXIT.crashLoop;
    case 'state-damaged':
      return EXIT.stateDamaged;
    case 'untrusted':
      return EXIT.untrusted;
    case 'interrupted':
      return EXIT.interrupted;
    case 'ambiguous':
      return EXIT.ambiguous;
    case 'unpatchable':
      return EXIT.unpatchable;
    case 'unsupported-change':
      return EXIT.unsupportedChange;
    case 'no-change':
      return EXIT.noChange;
    case 'limit':
      return EXIT.limit;
    case 'internal':
      return EXIT.internal;
  }
}
