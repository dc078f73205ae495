// SPDX-License-Identifier: GPL-2.0-only
/**
 * Settling a unit from its preprocessed text (src/patchbuild/preprocessed.ts),
 * judged by gcc: every variant of the committed header (a patch of it) is preprocessed and
 * compiled both ways with the host's gcc; a unit settled must compile to the
 * same code and data, and the variants the unit uses must not be settled.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ElfObject } from '../../src/elf/mod.js';
import { preprocessedTokens, settleByPreprocessed, topLevelChunks } from '../../src/patchbuild/preprocessed.js';
import { FIXTURES } from '../helpers/kernel.js';

const DIR = join(FIXTURES, 'preprocessed');
const work = mkdtempSync(join(tmpdir(), 'suture-preprocessed-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** unit.c with shared.h as committed or changed by a variant's patch: its preprocessed text and its object's code and data, by section. */
function build(name: string, variant?: string): { text: string; sections: Map<string, string> } {
  const d = join(work, name);
  execFileSync('mkdir', ['-p', d]);
  for (const f of ['unit.c', 'wrap.h', 'shared.h']) copyFileSync(join(DIR, f), join(d, f));
  if (variant) execFileSync('patch', ['-s', '-p1', '-i', join(DIR, 'variants', `${variant}.patch`)], { cwd: d });
  const flags = ['-O2', '-ffunction-sections', '-fdata-sections', '-fno-asynchronous-unwind-tables'];
  const text = execFileSync('gcc', [...flags, '-E', 'unit.c'], { cwd: d, encoding: 'utf8' });
  execFileSync('gcc', [...flags, '-c', '-o', 'unit.o', 'unit.c'], { cwd: d });
  const o = ElfObject.parse(new Uint8Array(readFileSync(join(d, 'unit.o'))));
  const sections = new Map<string, string>();
  for (const s of o.sections) {
    if (!/^\.(text|data|rodata|bss)/.test(s.name) && !s.name.startsWith('.rela')) continue;
    const data = (s as { data?: Uint8Array }).data;
    sections.set(s.name, data ? Buffer.from(data).toString('hex') : `size ${s.type}`);
  }
  return { text, sections };
}

const orig = build('orig');

/** Which variants the unit cannot tell apart from the original (the rest it uses, or the rule cannot read). */
const SETTLED = ['comment-only', 'unused-inline', 'unused-prototype', 'unused-struct', 'new-unused-inline'];
const COMPILED = ['used-inline', 'used-prototype', 'used-struct', 'through-macro', 'asm-named', 'kept-alive', 'enum', 'reordered'];
/** Of those, the ones whose object really differs (the rule is not merely cautious there). */
const DIFFERS = ['used-inline', 'used-prototype', 'used-struct', 'through-macro', 'kept-alive'];

describe('settleByPreprocessed, judged by gcc on committed C fixtures', () => {
  const variants = readdirSync(join(DIR, 'variants')).map((f) => f.replace(/\.patch$/, '')).sort();

  it('has a verdict written down for every variant', () => {
    expect([...SETTLED, ...COMPILED].sort()).toEqual(variants);
  });

  for (const v of variants) {
    it(`${v}: ${SETTLED.includes(v) ? 'settled, and gcc compiles it to the same code' : 'compiled'}`, () => {
      const p = build(v, v);
      const s = settleByPreprocessed(orig.text, p.text);
      expect(s.same, s.why).toBe(SETTLED.includes(v));
      const same = [...new Set([...orig.sections.keys(), ...p.sections.keys()])].every((k) => orig.sections.get(k) === p.sections.get(k));
      if (s.same) expect(same, `${v} was settled but its object differs`).toBe(true);
      if (DIFFERS.includes(v)) expect(same, `${v}: the object should differ`).toBe(false);
    });
  }

  it('says why a unit is compiled', () => {
    const p = build('used-inline-why', 'used-inline');
    expect(settleByPreprocessed(orig.text, p.text).why).toBe('it uses used_inline, which changed');
    const m = build('struct-why', 'used-struct');
    expect(settleByPreprocessed(orig.text, m.text).why).toBe('it uses used_s, which changed');
  });
});

describe('the token and chunk reading', () => {
  it('drops line markers and keeps strings whole', () => {
    expect(preprocessedTokens('# 1 "a.h"\nint f(void) { return g("a b;c"); }\n#line 4\n')).toEqual(['int', 'f', '(', 'void', ')', '{', 'return', 'g', '(', '"a b;c"', ')', ';', '}']);
  });

  it('ends a function definition at its brace and anything else at the semicolon', () => {
    const chunks = topLevelChunks('# 1 "x.h"\nstruct s { int a; }\n\n\n  v; static int\nf(int x) { return x; } int y = { 1 }; char *z = "two ; spaces"; int g(void);');
    expect(chunks).toEqual(['struct s { int a; }\n  v;', 'static int\nf(int x) { return x; }', 'int y = { 1 };', 'char *z = "two ; spaces";', 'int g(void);']);
  });

  it('does not settle a struct with declarators, a typedef, or an extern definition', () => {
    expect(settleByPreprocessed('struct s { int a; } v;', 'struct s { long a; } v;').same).toBe(false);
    expect(settleByPreprocessed('typedef int t(int);', 'typedef long t(int);').same).toBe(false);
    expect(settleByPreprocessed('int f(int x) { return x; }', 'int f(int x) { return x + 1; }').same).toBe(false);
    expect(settleByPreprocessed('static int f(int x) { return x; }', 'static int f(int x) { return x + 1; }').same).toBe(true);
  });
});
