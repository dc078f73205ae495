// SPDX-License-Identifier: GPL-2.0-only
/**
 * Hunks at the lines GNU patch applied them: test/fixtures/patchbuild/lines.c
 * has five lines its patch's author did not have, so lines-offset.patch
 * applies five lines lower than it says. With the stated lines, the `#line`
 * directive renumbers below() and its __bug_table entry changes (the 6.12
 * getrusage symptom), and touched() looks untouched by the patch; with the
 * located lines only touched() changes. Objects compiled by gcc (build.sh),
 * GNU patch itself as the oracle for where hunks go.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ElfObject } from '../../../src/elf/mod.js';
import { diffObjects } from '../../../src/patchbuild/diff/diff.js';
import { functionLines, touchedBy } from '../../../src/patchbuild/patch/function-lines.js';
import { stabilizeLines } from '../../../src/patchbuild/patch/line-directives.js';
import { locateHunks, readPlacements } from '../../../src/patchbuild/patch/located.js';
import { formatPatch, parseSourcePatch, type FilePatch } from '../../../src/patchbuild/patch/parse.js';
import { SutureError } from '../../../src/util/errors.js';

const FIXTURES = join(import.meta.dirname, '..', '..', 'fixtures', 'patchbuild');
const PATCH = ['-p1', '--batch', '--forward', '--no-backup-if-mismatch', '--reject-file=-'];

let dir: string;
const tree = (name: string) => {
  const d = join(dir, name);
  execFileSync('mkdir', ['-p', d]);
  copyFileSync(join(FIXTURES, 'lines.c'), join(d, 'lines.c'));
  return d;
};
const dryRun = (patchFile: string) => execFileSync('patch', [...PATCH, '--dry-run', '-i', patchFile], { cwd: tree('dry'), encoding: 'utf8' });
const read = (name: string): FilePatch[] => parseSourcePatch(readFileSync(join(FIXTURES, name), 'utf8'), name, 1);

/** Apply (stabilised) hunks to a fresh copy of lines.c and compile it. */
function compiled(side: string, files?: readonly FilePatch[]): ElfObject {
  const d = tree(side);
  if (files) {
    writeFileSync(join(d, 'x.patch'), formatPatch(stabilizeLines(files)));
    execFileSync('patch', [...PATCH, '-i', 'x.patch'], { cwd: d });
  }
  execFileSync(join(FIXTURES, 'build.sh'), [join(d, 'lines.c'), join(d, 'lines.o')]);
  const b = readFileSync(join(d, 'lines.o'));
  return ElfObject.parse(new Uint8Array(b.buffer, b.byteOffset, b.byteLength), { file: `${side}/lines.o` });
}
const changed = (orig: ElfObject, patched: ElfObject) =>
  diffObjects(orig, patched, { unit: 'lines.c', structSize: (s) => (s === 'bug_entry' ? 8 : undefined) }).functions.map((f) => `${f.name}: ${f.reasons.join('; ')}`);

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'suture-located-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('GNU patch output', () => {
  it('reads offsets and fuzz per file section, in order', () => {
    const out = [
      'checking file fs/proc/array.c',
      'Hunk #1 succeeded at 395 (offset -2 lines).',
      'checking file kernel/exit.c',
      'Hunk #1 succeeded at 880 (offset 69 lines).',
      'Hunk #2 succeeded at 955 with fuzz 2 (offset 67 lines).',
      'checking file kernel/fork.c',
      "checking file 'a b.c'",
      'Hunk #3 succeeded at 12 with fuzz 1.',
      'Hunk #1 succeeded at 9 (offset 1 line).',
    ].join('\n');
    expect(readPlacements(out).map((s) => [s.file, s.hunks.map((h) => [h.hunk, h.offset, h.fuzz])])).toEqual([
      ['fs/proc/array.c', [[1, -2, 0]]],
      ['kernel/exit.c', [[1, 69, 0], [2, 67, 2]]],
      ['kernel/fork.c', []],
      ['a b.c', [[3, 0, 1], [1, 1, 0]]],
    ]);
  });
});

describe('a patch that applies five lines lower', () => {
  let files: FilePatch[];
  let located: FilePatch[];
  let orig: ElfObject;
  beforeAll(() => {
    files = read('lines-offset.patch');
    const out = dryRun(join(FIXTURES, 'lines-offset.patch'));
    expect(out).toContain('Hunk #1 succeeded at 33 (offset 5 lines).');
    located = locateHunks(files, out, 'lines-offset.patch');
    orig = compiled('orig');
  });

  it('moves the hunk to where GNU patch applied it', () => {
    expect(files[0]!.hunks[0]).toMatchObject({ oldStart: 28, newStart: 28 });
    expect(located[0]!.hunks[0]).toMatchObject({ oldStart: 33, newStart: 33, lines: files[0]!.hunks[0]!.lines });
    // Applied at the located lines, GNU patch needs no offset: it is where the hunk belongs.
    expect(execFileSync('patch', [...PATCH, '--dry-run'], { cwd: tree('again'), input: formatPatch(located), encoding: 'utf8' })).not.toMatch(/offset|fuzz/);
  });

  it('keeps __LINE__ of the functions below: only touched() changes', () => {
    expect(changed(orig, compiled('located', located))).toEqual([expect.stringMatching(/^touched: code differs/)]);
    // The stated lines renumber below(): its __bug_table entry differs although its code does not.
    expect(changed(orig, compiled('stated', files))).toEqual(['below: its special-section entries differ (e.g. a WARN flag or a jump label)', expect.stringMatching(/^touched: code differs/)]);
  });

  it('says the patch touches touched(), not the lines above it', () => {
    const range = functionLines(readFileSync(join(FIXTURES, 'lines.c'), 'utf8'), 'touched')!;
    expect(range).toEqual({ first: 33, last: 37 });
    expect(touchedBy(located[0]!, range)).toBe(true);
    expect(touchedBy(files[0]!, range)).toBe(false);
  });
});

describe('a patch that applies only with fuzz', () => {
  it('is refused, naming the file, the hunk and the fuzz', () => {
    const out = dryRun(join(FIXTURES, 'lines-fuzz.patch'));
    expect(out).toMatch(/Hunk #1 succeeded at 33 with fuzz 1 \(offset 5 lines\)/);
    let err: unknown;
    try {
      locateHunks(read('lines-fuzz.patch'), out, 'lines-fuzz.patch');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SutureError);
    const e = err as SutureError;
    expect(e.kind).toBe('invalid-input');
    expect(e.message).toBe("lines-fuzz.patch applies to this kernel's source only with fuzz (lines.c hunk #1)");
    expect(e.details).toContain('lines.c: hunk #1 (@@ -28 @@) matched with 1 context line at each end ignored, 5 lines lower than it says');
    expect(e.hint).toMatch(/another function/);
  });

  it('refuses output that does not match the patch read', () => {
    expect(() => locateHunks(read('lines-offset.patch'), 'checking file other.c\n', 'x.patch')).toThrow(/reported 1 file sections for x.patch/);
  });
});
