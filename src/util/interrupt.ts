// SPDX-License-Identifier: GPL-2.0-only
/**
 * A command interrupted by a signal (SIGTERM at shutdown, ^C). The CLI's
 * signal handler calls `interrupt()`; commands that can stop cleanly (the host
 * commands) watch `interruptSignal` and end their own way, telling the truth
 * about what state they leave; `onInterruptExit` hooks run (synchronously)
 * when the process has to exit at once: a second signal, or a command that
 * does not stop in time.
 */
const controller = new AbortController();
let received: NodeJS.Signals | undefined;
const hooks = new Set<() => void>();

/** Aborted when the process receives SIGINT, SIGTERM or SIGHUP. */
export const interruptSignal: AbortSignal = controller.signal;

/** The signal received, if any. */
export function interruptedBy(): NodeJS.Signals | undefined {
  return received;
}

export function interrupt(sig: NodeJS.Signals): void {
  received ??= sig;
  if (!controller.signal.aborted) controller.abort(sig);
}

/** Run `fn` if the process exits on a signal before the returned function is called. */
export function onInterruptExit(fn: () => void): () => void {
  hooks.add(fn);
  return () => hooks.delete(fn);
}

/** Run every exit hook once (each one's failure is its own). */
export function runInterruptHooks(): void {
  for (const h of [...hooks]) {
    hooks.delete(h);
    try {
      h();
    } catch {
      // the process is exiting; the hook did what it could
    }
  }
}
