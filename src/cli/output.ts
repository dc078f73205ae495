// SPDX-License-Identifier: GPL-2.0-only
/** Everything the CLI writes: progress, results, JSON, errors. */
import { isSutureError } from '../util/errors.js';
import { lineReporter, silentReporter, ttyReporter, type Reporter } from '../util/progress.js';
import { EXIT, exitCodeFor } from './exit-codes.js';

/** Progress goes to stderr, so stdout carries only results (and guest output). */
export function reporterFor(opts: { json?: boolean; quiet?: boolean }): Reporter {
  if (opts.json || opts.quiet) return silentReporter;
  const err = process.stderr;
  if (err.isTTY && process.env.TERM !== 'dumb' && !process.env.CI) return ttyReporter(err);
  return lineReporter((s) => err.write(s));
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, (_k, v) => (typeof v === 'bigint' ? v.toString() : v), 2)}\n`);
}

export function out(line = ''): void {
  process.stdout.write(`${line}\n`);
}

/** Print an error and return the exit code for it. */
export function reportError(e: unknown, json: boolean): number {
  if (isSutureError(e)) {
    const code = exitCodeFor(e.kind);
    if (json) {
      printJson({ error: { kind: e.kind, message: e.message, hint: e.hint, details: e.details, exitCode: code } });
    } else {
      process.stderr.write(`suture: ${e.message}\n`);
      if (e.details) process.stderr.write(`${e.details.replace(/^/gm, '  | ')}\n`);
      if (e.hint) process.stderr.write(`  hint: ${e.hint}\n`);
    }
    return code;
  }
  const err = e as Error;
  if (json) printJson({ error: { kind: 'internal', message: String(err?.message ?? e), exitCode: EXIT.internal } });
  else process.stderr.write(`suture: internal error: ${err?.stack ?? String(e)}\n  hint: this is a bug in suture; please report it\n`);
  return EXIT.internal;
}

export function fmtBytes(n: number): string {
  if (n >= 1024 ** 3) return `${(n / 1024 ** 3).toFixed(1)} GiB`;
  if (n >= 1024 ** 2) return `${(n / 1024 ** 2).toFixed(0)} MiB`;
  return `${(n / 1024).toFixed(0)} KiB`;
}

/** Render rows as aligned columns. */
export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n');
}
