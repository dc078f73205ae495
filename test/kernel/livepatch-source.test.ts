// SPDX-License-Identifier: GPL-2.0-only
/** Whether a kernel tree's atomic replace takes sympos 0 and 1 alike, read from its kernel/livepatch/core.c. */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { replaceTakesSympos0And1Alike } from '../../src/kernel/livepatch-source.js';

const dir = mkdtempSync(join(tmpdir(), 'suture-klp-source-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function tree(name: string, core: string | undefined): string {
  const t = join(dir, name);
  mkdirSync(join(t, 'kernel/livepatch'), { recursive: true });
  if (core !== undefined) writeFileSync(join(t, 'kernel/livepatch/core.c'), core);
  return t;
}

it('reads klp_find_func: 0 and 1 alike only where the kernel says so both ways', () => {
  const newer = `\t\tif ((strcmp(old_func->old_name, func->old_name) == 0) &&
\t\t    ((old_func->old_sympos == func->old_sympos) ||
\t\t     (old_func->old_sympos == 0 && func->old_sympos == 1) ||
\t\t     (old_func->old_sympos == 1 && func->old_sympos == 0))) {`;
  const older = `\t\tif ((strcmp(old_func->old_name, func->old_name) == 0) &&
\t\t    (old_func->old_sympos == func->old_sympos)) {`;
  expect(replaceTakesSympos0And1Alike(tree('newer', newer))).toBe(true);
  expect(replaceTakesSympos0And1Alike(tree('older', older))).toBe(false);
  expect(replaceTakesSympos0And1Alike(tree('none', undefined))).toBe(false);
});
