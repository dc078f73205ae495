// SPDX-License-Identifier: GPL-2.0-only
/** Files written whole or not at all. */
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fsError } from './errors.js';

/** Write a file atomically (temporary file beside it, then rename); `mkdir`: make its directory first. */
export function writeAtomic(path: string, data: Uint8Array | string, mode = 0o644, opts: { mkdir?: boolean } = {}): void {
  const tmp = join(dirname(path), `.${basename(path)}.tmp-${process.pid}`);
  try {
    if (opts.mkdir) mkdirSync(dirname(path), { recursive: true });
    writeFileSync(tmp, data, { mode });
    renameSync(tmp, path);
  } catch (e) {
    throw fsError(e, 'writing', path);
  }
}
