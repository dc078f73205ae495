// SPDX-License-Identifier: GPL-2.0-only
import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatPatch, parseSourcePatch } from '../../../src/patchbuild/patch/parse.js';
import { stabilizeLines } from '../../../src/patchbuild/patch/line-directives.js';

/** A C file whose functions report __LINE__, the way WARN_ON records it. */
function source(n: number): string {
  const lines = ['#define WHERE(x) int x(void) { return __LINE__; }'];
  for (let i = 0; i < n; i++) lines.push(`WHERE(f${i})`);
  return `${lines.join('\n')}\n`;
}

/** __LINE__ of each function, as gcc's preprocessor computes it. */
function linesOf(dir: string, file: string): Record<string, number> {
  const out = execFileSync('gcc', ['-E', '-P', join(dir, file)], { encoding: 'utf8' });
  const r: Record<string, number> = {};
  for (const m of out.matchAll(/int (\w+)\(void\) \{ return (\d+); \}/g)) r[m[1]!] = Number(m[2]);
  return r;
}

function tree(): string {
  const d = mkdtempSync(join(tmpdir(), 'suture-lines-'));
  mkdirSync(join(d, 'a'));
  writeFileSync(join(d, 'a/x.c'), source(40));
  return d;
}

function diffOf(dir: string, edit: (lines: string[]) => string[]): string {
  const orig = readFileSync(join(dir, 'a/x.c'), 'utf8');
  const b = join(dir, 'b');
  mkdirSync(join(b, 'a'), { recursive: true });
  writeFileSync(join(b, 'a/x.c'), `${edit(orig.trimEnd().split('\n')).join('\n')}\n`);
  try {
    execFileSync('diff', ['-u', '--label', 'a/a/x.c', '--label', 'b/a/x.c', join(dir, 'a/x.c'), join(b, 'a/x.c')], { encoding: 'utf8' });
    return '';
  } catch (e) {
    return (e as { stdout: string }).stdout; // diff exits 1 when files differ
  }
}

describe('stabilizeLines', () => {
  it('stabilizeLines() keeps __LINE__ of everything after each hunk as in the original (gcc -E as oracle)', () => {
    const d = tree();
    const before = linesOf(d, 'a/x.c');
    // Two hunks: insert two lines after f3, remove one line (f20), insert one after f30.
    const text = diffOf(d, (l) => {
      const out = [...l];
      out.splice(31 + 1, 0, 'int added_late(void) { return 0; }');
      out.splice(21, 1);
      out.splice(4 + 1, 0, 'int added1(void) { return 1; }', 'int added2(void) { return 2; }');
      return out;
    });
    const files = stabilizeLines(parseSourcePatch(text, 'x.patch'));
    expect(files[0]!.hunks.every((h) => h.lines.some((l) => l.startsWith('+#line ')))).toBe(true);
    writeFileSync(join(d, 'fixed.patch'), formatPatch(files));
    execFileSync('patch', ['-p1', '--batch', '--fuzz=0', '-i', join(d, 'fixed.patch')], { cwd: d });
    const after = linesOf(d, 'a/x.c');
    const moved = Object.keys(before).filter((f) => f in after && after[f] !== before[f]);
    // Only functions inside a hunk region, before its directive, may have moved.
    expect(moved.every((f) => ['f4', 'f5', 'f6', 'f7', 'f20', 'f21', 'f30', 'f31'].includes(f)), moved.join(',')).toBe(true);
    expect(after.f39).toBe(before.f39);
    expect(after.f10).toBe(before.f10);
    expect(after.f25).toBe(before.f25);
    expect(after.f20).toBeUndefined();
  });

  it('stabilizeLines() leaves a hunk that keeps the line count alone', () => {
    const d = tree();
    const text = diffOf(d, (l) => l.map((x) => (x === 'WHERE(f9)' ? 'WHERE(g9)' : x)));
    const files = parseSourcePatch(text, 'x.patch');
    expect(stabilizeLines(files)).toEqual(files);
  });

  it('stabilizeLines() never puts a directive after a line continuation', () => {
    const d = mkdtempSync(join(tmpdir(), 'suture-lines-'));
    mkdirSync(join(d, 'a'));
    writeFileSync(join(d, 'a/x.c'), '#define M(a) \\\n\tdo { \\\n\t\t(void)(a); \\\n\t} while (0)\nint z;\n');
    const text = diffOf(d, (l) => [l[0]!, l[1]!, '\t\t(void)0; \\', l[2]!, l[3]!, l[4]!]);
    const [f] = stabilizeLines(parseSourcePatch(text, 'x.patch'));
    const lines = f!.hunks[0]!.lines;
    const i = lines.findIndex((l) => l.startsWith('+#line'));
    expect(i).toBeGreaterThan(0);
    expect(lines[i - 1]!.trimEnd().endsWith('\\')).toBe(false);
  });
});

describe('parseSourcePatch', () => {
  it('parseSourcePatch() strips a/ b/, classifies files and refuses paths outside the tree', () => {
    const text = '--- a/fs/proc/cmdline.c\n+++ b/fs/proc/cmdline.c\n@@ -1 +1 @@\n-a\n+b\n--- /dev/null\n+++ b/arch/x86/entry/new.S\n@@ -0,0 +1 @@\n+nop\n';
    const f = parseSourcePatch(text, 'p.patch');
    expect(f.map((x) => [x.path, x.kind, x.change])).toEqual([
      ['fs/proc/cmdline.c', 'c', 'modify'],
      ['arch/x86/entry/new.S', 'asm', 'create'],
    ]);
    expect(() => parseSourcePatch('--- a/../etc/passwd\n+++ b/../etc/passwd\n@@ -1 +1 @@\n-a\n+b\n', 'evil.patch')).toThrow(/outside the kernel tree/);
    expect(() => parseSourcePatch('hello\n', 'empty.patch')).toThrow(/changes no file/);
  });
});
