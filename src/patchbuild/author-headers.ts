// SPDX-License-Identifier: GPL-2.0-only
/**
 * The headers a fix's author may include, shipped in include/ of this
 * installation: suture.h (SUTURE_* lines, for `suture build --source`) and
 * kpatch's kpatch-macros.h and kpatch-syscall.h (for patches written for kpatch).
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SutureError } from '../util/errors.js';

const here = dirname(fileURLToPath(import.meta.url));

const AUTHOR_HEADERS = ['suture.h', 'kpatch-macros.h', 'kpatch-syscall.h'] as const;

function header(name: string): string {
  // include/ sits two levels up from src/patchbuild, dist/patchbuild and dist/bundle alike.
  const p = join(here, '..', '..', 'include', name);
  if (!existsSync(p)) throw new SutureError('internal', `${p} is missing from this suture installation`);
  return p;
}

/** include/suture.h of this installation. */
export function sutureHeader(): string {
  return header('suture.h');
}

/** Every header a patch may include, by name and path. */
export function authorHeaders(): { name: string; path: string }[] {
  return AUTHOR_HEADERS.map((name) => ({ name, path: header(name) }));
}
