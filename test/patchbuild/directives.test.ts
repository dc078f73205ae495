// SPDX-License-Identifier: GPL-2.0-only
/**
 * The SUTURE_* lines (scanned from text and read back from the records the
 * header leaves in a compiled object) and the generated klp module source.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkDirectives, directiveKey, parseRecords, scanDirectives, stripComments } from '../../src/patchbuild/directives.js';
import { checkModuleName, kbuildFile, klpModuleSource } from '../../src/patchbuild/generate.js';
import { DataSection, ElfObject } from '../../src/elf/mod.js';
import type { SutureError } from '../../src/util/errors.js';

const HEADER_DIR = join(import.meta.dirname, '..', '..', 'include');

const FIX = `#include <suture.h>
/* SUTURE_REPLACE(commented_out, nothing) */
// SUTURE_REPLACE(also_commented, nothing);
#define MY_REPLACE(a, b) SUTURE_REPLACE(a, b)
static int new_show(void) { return 0; }
static int new_read(void) { return 0; }
SUTURE_REPLACE(cmdline_proc_show, new_show);
SUTURE_REPLACE_MODULE(binfmt-misc,
		      bm_status_read, new_read);
SUTURE_SYMPOS(vmlinux, m_show, 2);
SUTURE_SYMBOL_NEAR(binfmt_misc, enabled, bm_status_read);
SUTURE_REPLACE("print_cpu.isra.0", new_show);
`;

describe('SUTURE_* lines', () => {
  it('are read from the text with file:line, skipping comments and #define lines', () => {
    const ds = scanDirectives(FIX, 'fix.c');
    expect(ds).toEqual([
      { kind: 'replace', object: 'vmlinux', oldName: 'cmdline_proc_show', newFunction: 'new_show', where: 'fix.c:7' },
      { kind: 'replace', object: 'binfmt_misc', oldName: 'bm_status_read', newFunction: 'new_read', where: 'fix.c:8' },
      { kind: 'sympos', object: 'vmlinux', name: 'm_show', pos: 2, where: 'fix.c:10' },
      { kind: 'near', object: 'binfmt_misc', name: 'enabled', neighbour: 'bm_status_read', where: 'fix.c:11' },
      { kind: 'replace', object: 'vmlinux', oldName: 'print_cpu.isra.0', newFunction: 'new_show', where: 'fix.c:12' },
    ]);
    expect(() => checkDirectives(ds, 'fix.c')).not.toThrow();
  });

  it('keeps line numbers when it blanks comments', () => {
    const t = 'a /* x\ny */ b // z\nc "/* not a comment */"\n';
    expect(stripComments(t).split('\n').length).toBe(t.split('\n').length);
    expect(stripComments(t)).toContain('"/* not a comment */"');
  });

  it('refuses wrong arity, bad positions, duplicates and a fix that replaces nothing', () => {
    expect(() => scanDirectives('SUTURE_REPLACE(a);', 'f.c')).toThrow('f.c:1: SUTURE_REPLACE takes (old_name, new_function), got (a)');
    expect(() => scanDirectives('SUTURE_SYMPOS(vmlinux, x, -1);', 'f.c')).toThrow(/position '-1' is not a whole number/);
    expect(() => scanDirectives('SUTURE_REPLACE(a, b', 'f.c')).toThrow(/is not closed/);
    const twice = scanDirectives('SUTURE_REPLACE(a, b);\nSUTURE_REPLACE(a, c);', 'f.c');
    expect(() => checkDirectives(twice, 'f.c')).toThrow("f.c:2: vmlinux's a is already replaced at f.c:1");
    expect(() => checkDirectives(scanDirectives('SUTURE_SYMPOS(vmlinux, a, 1);', 'f.c'), 'f.c')).toThrow(/replaces no function/);
  });

  it('refuses object names over 55 characters as a limit', () => {
    try {
      scanDirectives(`SUTURE_REPLACE_MODULE(${'x'.repeat(56)}, a, b);`, 'f.c');
      expect.unreachable();
    } catch (e) {
      expect((e as SutureError).kind).toBe('limit');
    }
  });

  it('suture.h leaves records that read back as the same directives (gcc, kernel-like macros)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'suture-directives-'));
    try {
      // The few kernel macros suture.h uses, so the header compiles without a kernel tree.
      mkdirp(join(dir, 'linux'));
      writeFileSync(
        join(dir, 'linux', 'compiler.h'),
        [
          '#define __used __attribute__((__used__))',
          '#define __section(s) __attribute__((__section__(s)))',
          '#define __aligned(x) __attribute__((__aligned__(x)))',
          '#define ___PASTE(a, b) a##b',
          '#define __PASTE(a, b) ___PASTE(a, b)',
          '#define __UNIQUE_ID(prefix) __PASTE(__PASTE(__UNIQUE_ID_, prefix), __COUNTER__)',
        ].join('\n'),
      );
      writeFileSync(join(dir, 'fix.c'), FIX.replace('SUTURE_REPLACE("print_cpu.isra.0", new_show);\n', ''));
      const o = join(dir, 'fix.o');
      execFileSync('gcc', ['-c', '-O2', '-I', HEADER_DIR, '-I', dir, '-o', o, join(dir, 'fix.c')]);
      const b = readFileSync(o);
      const obj = ElfObject.parse(new Uint8Array(b.buffer, b.byteOffset, b.byteLength), { file: o });
      const recs = parseRecords((obj.section('.discard.suture') as DataSection).data, 'fix.c');
      const text = scanDirectives(FIX, 'fix.c').slice(0, 4);
      // The compiler may emit them in any order: compare as sets, as the build does.
      expect(recs.map(directiveKey).sort()).toEqual(text.map(directiveKey).sort());
      expect(obj.section('.discard.suture.new')).toBeDefined();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('callbacks: SUTURE_*_CALLBACK lines and their compiled records agree; one of each kind per object', () => {
    const fix = readFileSync(join(import.meta.dirname, '..', 'fixtures', 'source', 'callbacks.c'), 'utf8');
    const ds = scanDirectives(fix, 'callbacks.c');
    expect(ds.filter((d) => d.kind === 'callback').map(directiveKey)).toEqual([
      'callback pre_patch vmlinux log_pre',
      'callback post_unpatch vmlinux log_post_unpatch',
      'callback pre_patch binfmt_misc log_pre',
      'callback post_unpatch binfmt_misc log_post_unpatch',
    ]);
    checkDirectives(ds, 'callbacks.c');
    const twice = scanDirectives('SUTURE_PRE_PATCH_CALLBACK(vmlinux, a);\nSUTURE_PRE_PATCH_CALLBACK(vmlinux, b);\n', 'x.c');
    expect(() => checkDirectives(twice, 'x.c')).toThrow('x.c:2: vmlinux already has a pre_patch callback at x.c:1');
    const dir = mkdtempSync(join(tmpdir(), 'suture-directives-'));
    try {
      mkdirp(join(dir, 'linux'));
      writeFileSync(
        join(dir, 'linux', 'compiler.h'),
        ['#define __used __attribute__((__used__))', '#define __section(s) __attribute__((__section__(s)))', '#define __aligned(x) __attribute__((__aligned__(x)))', '#define ___PASTE(a, b) a##b', '#define __PASTE(a, b) ___PASTE(a, b)', '#define __UNIQUE_ID(prefix) __PASTE(__PASTE(__UNIQUE_ID_, prefix), __COUNTER__)'].join('\n'),
      );
      writeFileSync(join(dir, 'fix.c'), '#include <suture.h>\nstatic int a(struct klp_object *o) { return 0; }\nstatic void b(struct klp_object *o) { }\nSUTURE_PRE_PATCH_CALLBACK(nfsd, a);\nSUTURE_POST_UNPATCH_CALLBACK(vmlinux, b);\n');
      const o = join(dir, 'fix.o');
      execFileSync('gcc', ['-c', '-O2', '-I', HEADER_DIR, '-I', dir, '-o', o, join(dir, 'fix.c')]);
      const b = readFileSync(o);
      const obj = ElfObject.parse(new Uint8Array(b.buffer, b.byteOffset, b.byteLength), { file: o });
      expect(parseRecords((obj.section('.discard.suture') as DataSection).data, 'fix.c').map(directiveKey).sort()).toEqual(['callback post_unpatch vmlinux b', 'callback pre_patch nfsd a']);
      // The pointer the patch build reads (author-records.ts) sits in the kind's own section.
      expect(obj.section('.discard.suture.callback.pre_patch')).toBeDefined();
      expect(obj.section('.discard.suture.callback.post_unpatch')).toBeDefined();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

function mkdirp(d: string): void {
  execFileSync('mkdir', ['-p', d]);
}

describe('generated klp module', () => {
  const spec = {
    name: 'livepatch_fix',
    prelude: '#include "user/fix.c"',
    objects: [
      { object: 'vmlinux', funcs: [{ oldName: 'cmdline_proc_show', newFunction: 'new_show', sympos: 0 }] },
      { object: 'binfmt_misc', funcs: [{ oldName: 'bm_status_read', newFunction: 'new_read', sympos: 0 }, { oldName: 'scanarg', newFunction: 'new_scan', sympos: 2 }] },
    ],
  };

  it('has one klp_object per target object, NULL for vmlinux, module_init and livepatch modinfo', () => {
    const c = klpModuleSource(spec);
    expect(c).toContain('#include "user/fix.c"');
    // A replaced function keeps the resolver's sympos (0: unique): a replacing patch finds it by (name, sympos),
    // and kernels before klp_find_func took 0 and 1 alike tell them apart (klp/position.ts).
    expect(c).toContain('\t{ .old_name = "cmdline_proc_show", .new_func = new_show, .old_sympos = 0 },');
    expect(c).toContain('\t{ .old_name = "bm_status_read", .new_func = new_read, .old_sympos = 0 },');
    // Where the kernel's replace takes 0 and 1 alike, a unique function is named 1 (its kallsyms walk stops there).
    const one = klpModuleSource({ ...spec, functionsAtPosition1: true });
    expect(one).toContain('\t{ .old_name = "cmdline_proc_show", .new_func = new_show, .old_sympos = 1 },');
    expect(one).toContain('\t{ .old_name = "scanarg", .new_func = new_scan, .old_sympos = 2 },');
    expect(c).toContain('\t{ .old_name = "scanarg", .new_func = new_scan, .old_sympos = 2 },');
    expect(c).toContain('\t{ .name = NULL, .funcs = __suture_funcs_0 },\n\t{ .name = "binfmt_misc", .funcs = __suture_funcs_1 },\n\t{ }');
    expect(c).toContain('\treturn klp_enable_patch(&__suture_patch);');
    expect(c).toContain('MODULE_INFO(livepatch, "Y");');
    expect(c).not.toContain('.replace = true');
    expect(klpModuleSource({ ...spec, replace: true })).toContain('.replace = true');
    expect(klpModuleSource({ ...spec, declareNewFunctions: true })).toContain('extern void new_read(void);');
  });

  it('Kbuild lists the module and its flags', () => {
    expect(kbuildFile('livepatch_fix', { ccflags: ['-I$(src)/include'] })).toBe(
      '# SPDX-License-Identifier: GPL-2.0-only\n# Generated by suture.\nobj-m += livepatch_fix.o\nccflags-y += -I$(src)/include\n',
    );
    expect(kbuildFile('lp', { objects: ['klp', 'patched'] })).toContain('lp-y := klp.o patched.o');
  });

  it('module names: characters and the 55-character limit', () => {
    expect(() => checkModuleName('a'.repeat(55))).not.toThrow();
    expect(() => checkModuleName('a'.repeat(56))).toThrow(/is 56 characters; the kernel's limit is 55/);
    expect(() => checkModuleName('bad name')).toThrow(/may hold only letters/);
  });
});
