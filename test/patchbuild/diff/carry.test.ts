// SPDX-License-Identifier: GPL-2.0-only
/**
 * The notrace carry on objects gcc compiled from test/fixtures/patchbuild/carry.c
 * (build.sh, -pg -mfentry as kbuild): objdump -dr is the oracle for which
 * functions begin with `call __fentry__`.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ElfObject } from '../../../src/elf/mod.js';
import { carryUntraceable } from '../../../src/patchbuild/diff/carry.js';
import { diffObjects, type ObjectDiff } from '../../../src/patchbuild/diff/diff.js';
import { ObjectIndex } from '../../../src/patchbuild/diff/object-index.js';

const FIXTURES = join(import.meta.dirname, '..', '..', 'fixtures', 'patchbuild');
let dir: string;
const build = (name: string, ...defines: string[]) => {
  const o = join(dir, `${name}.o`);
  execFileSync(join(FIXTURES, 'build.sh'), [join(FIXTURES, 'carry.c'), o, ...defines]);
  return o;
};
const parse = (file: string) => {
  const b = readFileSync(file);
  return ElfObject.parse(new Uint8Array(b.buffer, b.byteOffset, b.byteLength), { file });
};

describe('the notrace carry (carry.c)', () => {
  let origFile: string;
  let diff: ObjectDiff;
  let orig: ObjectIndex;
  let patched: ObjectIndex;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'suture-carry-'));
    origFile = build('orig');
    const o = parse(origFile);
    const p = parse(build('patched', '-DCHANGED=1'));
    diff = diffObjects(o, p, { unit: 'carry.c', structSize: () => undefined });
    orig = new ObjectIndex(o, 'orig');
    patched = new ObjectIndex(p, 'patched');
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('objdump agrees: outer() alone begins with call __fentry__', () => {
    const dump = execFileSync('objdump', ['-dr', origFile], { encoding: 'utf8' });
    const fentry = [...dump.matchAll(/^[0-9a-f]+ <(\w+)>:\n(?:.*\n){0,2}?\s+1: R_X86_64_PLT32\s+__fentry__/gm)].map((m) => m[1]);
    expect(fentry).toEqual(['outer']);
  });

  it('the diff sees the two notrace functions change, neither traceable', () => {
    expect(diff.functions.map((f) => [f.name, f.status, f.traceable])).toEqual([
      ['inner', 'changed', false],
      ['lonely', 'changed', false],
    ]);
  });

  it('carries a notrace caller of a notrace function and patches the first traceable caller', () => {
    const c = carryUntraceable(diff, orig, patched);
    expect([...c.carriedOnly].sort()).toEqual(['inner', 'lonely', 'middle']);
    expect(c.functions.map((f) => [f.name, f.traceable, f.reasons.join('; ').replace(/ \(\d+ → \d+ bytes\)/, '')])).toEqual([
      ['inner', false, 'code differs'],
      ['lonely', false, 'code differs'],
      ['middle', false, 'calls inner, which ftrace cannot patch'],
      ['outer', true, 'calls middle, which ftrace cannot patch'],
    ]);
    // What is patched directly (a klp_func each): only traceable functions.
    expect(c.functions.filter((f) => f.status === 'changed' && !c.carriedOnly.has(f.name)).map((f) => f.name)).toEqual(['outer']);
  });

  it('refuses a notrace function nothing calls (notrace-without-callers), and leaves its input as it was', () => {
    const before = JSON.stringify(diff);
    const c = carryUntraceable(diff, orig, patched);
    expect(c.refusals.map((r) => [r.rule, r.symbol])).toEqual([['notrace-without-callers', 'lonely']]);
    expect(c.refusals[0]!.reason).toBe('lonely changed, has no ftrace call site (notrace or built without ftrace), and nothing in carry.c calls it');
    expect(JSON.stringify(diff)).toBe(before);
  });
});
