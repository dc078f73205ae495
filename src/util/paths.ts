// SPDX-License-Identifier: GPL-2.0-only
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

/** Root of everything suture caches: downloads, prepared kernel trees, build roots. */
export function sutureHome(env: NodeJS.ProcessEnv = process.env): string {
  if (env.SUTURE_HOME) return resolve(env.SUTURE_HOME);
  const cache = env.XDG_CACHE_HOME ? resolve(env.XDG_CACHE_HOME) : join(homedir(), '.cache');
  return join(cache, 'suture');
}
