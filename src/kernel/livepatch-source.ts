// SPDX-License-Identifier: GPL-2.0-only
/** What a kernel's own livepatch core does, read from its prepared source tree. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const known = new Map<string, boolean>();

/**
 * Whether the kernel's atomic replace takes a function's position 0 and 1
 * alike (klp_find_func, kernel/livepatch/core.c: "also consider old_sympos of
 * 0 and 1 are identical"; Debian's 6.1.187 and 6.12 have it). Only then may a
 * patch name a unique replaced function as position 1 and still replace, and
 * be replaced by, patches that name it 0.
 */
export function replaceTakesSympos0And1Alike(sourceTree: string): boolean {
  let v = known.get(sourceTree);
  if (v === undefined) {
    let text = '';
    try {
      text = readFileSync(join(sourceTree, 'kernel/livepatch/core.c'), 'utf8');
    } catch {
      // no livepatch core in the tree: the conservative answer
    }
    v = /old_sympos\s*==\s*0\s*&&\s*func->old_sympos\s*==\s*1/.test(text) && /old_sympos\s*==\s*1\s*&&\s*func->old_sympos\s*==\s*0/.test(text);
    known.set(sourceTree, v);
  }
  return v;
}
