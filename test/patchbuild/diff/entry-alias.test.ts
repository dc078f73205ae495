// SPDX-License-Identifier: GPL-2.0-only
/**
 * A carried module entry point keeps its module_init()/module_exit() aliases
 * (init_module, cleanup_module) only as local symbols: the livepatch module
 * defines its own, and two globals of one name do not link (found on
 * uvesafb_init in the whole 6.1.0-53 -> 56 catch-up). readelf is the oracle.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { extract } from '../../../src/patchbuild/diff/extract.js';

const FIXTURES = join(import.meta.dirname, '..', '..', 'fixtures', 'patchbuild');
const dir = mkdtempSync(join(tmpdir(), 'suture-entry-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

it('keeps init_module and cleanup_module local when the entry points are carried', () => {
  const input = join(dir, 'entry.o');
  execFileSync(join(FIXTURES, 'build.sh'), [join(FIXTURES, 'entry.c'), input]);
  const symbols = (file: string) =>
    execFileSync('readelf', ['-sW', file], { encoding: 'utf8' })
      .split('\n')
      .map((l) => l.trim().split(/\s+/))
      .filter((w) => w.length >= 8 && /^\d+:$/.test(w[0]!))
      .map((w) => ({ bind: w[4], ndx: w[6], name: w[7] }));
  expect(symbols(input).find((s) => s.name === 'init_module')?.bind).toBe('GLOBAL');
  const out = join(dir, 'extracted.o');
  const x = extract(new Uint8Array(readFileSync(input)), 'entry.o', {
    functions: ['fixture_init', 'fixture_exit'],
    data: [],
    exportAs: new Map([['fixture_init', 'fixture_init'], ['fixture_exit', 'fixture_exit']]),
    externalName: ({ name }) => name,
    structSize: () => undefined,
  });
  writeFileSync(out, x.bytes);
  const after = symbols(out);
  for (const n of ['init_module', 'cleanup_module']) expect(after.find((s) => s.name === n), n).toMatchObject({ bind: 'LOCAL' });
  for (const n of ['fixture_init', 'fixture_exit']) expect(after.find((s) => s.name === n), n).toMatchObject({ bind: 'GLOBAL' });
  expect(after.find((s) => s.name === 'helper')).toMatchObject({ ndx: 'UND' });
});
