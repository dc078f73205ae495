// SPDX-License-Identifier: GPL-2.0-only
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { graphFromGrep, includersOf, parseIncludeLine, resolveInclude, skippedDir, treeIncludeGraph } from '../../src/patchbuild/include-graph.js';

describe('parseIncludeLine', () => {
  it('reads angle and quoted includes with the spacing the kernel uses', () => {
    expect(parseIncludeLine('#include <linux/sched.h>')).toEqual({ name: 'linux/sched.h', quoted: false });
    expect(parseIncludeLine('  #  include "internal.h"  /* x */')).toEqual({ name: 'internal.h', quoted: true });
    expect(parseIncludeLine('#include TRACE_INCLUDE(TRACE_INCLUDE_FILE)')).toBeUndefined();
    expect(parseIncludeLine('// #include <linux/x.h> is not at the start')).toBeUndefined();
  });
});

describe('resolveInclude', () => {
  const files = new Set([
    'include/linux/a.h',
    'arch/x86/include/asm/a.h',
    'include/asm-generic/a.h',
    'fs/proc/internal.h',
    'fs/proc/base.c',
    'drivers/net/wireless/foo/inc/regs.h',
    'drivers/net/wireless/foo/main.c',
    'include/uapi/linux/u.h',
  ]);
  const byBase = new Map<string, string[]>();
  for (const f of files) byBase.set(f.split('/').pop()!, [...(byBase.get(f.split('/').pop()!) ?? []), f]);
  const has = (p: string) => files.has(p);

  it('quoted names: the including file’s directory first', () => {
    expect(resolveInclude('fs/proc/base.c', { name: 'internal.h', quoted: true }, has, byBase)).toEqual(['fs/proc/internal.h']);
  });
  it('angle names: kbuild’s search order, arch before include (asm/ resolves to arch/x86)', () => {
    expect(resolveInclude('fs/proc/base.c', { name: 'asm/a.h', quoted: false }, has, byBase)).toEqual(['arch/x86/include/asm/a.h']);
    expect(resolveInclude('fs/proc/base.c', { name: 'linux/u.h', quoted: false }, has, byBase)).toEqual(['include/uapi/linux/u.h']);
  });
  it('a quoted name found nowhere falls back to the same name within the subsystem (Makefile -I paths)', () => {
    expect(resolveInclude('drivers/net/wireless/foo/main.c', { name: 'regs.h', quoted: true }, has, byBase)).toEqual(['drivers/net/wireless/foo/inc/regs.h']);
    expect(resolveInclude('fs/proc/base.c', { name: 'regs.h', quoted: true }, has, byBase)).toEqual([]);
  });
  it('an angle name is never guessed', () => {
    expect(resolveInclude('fs/proc/base.c', { name: 'missing/x.h', quoted: false }, has, byBase)).toEqual([]);
  });
});

describe('includersOf', () => {
  // The shape of the real case: kernel/sched/core.c reaches linux/sched/loadavg.h through kernel/sched/sched.h.
  const files = [
    'include/linux/sched/loadavg.h',
    'kernel/sched/sched.h',
    'kernel/sched/core.c',
    'kernel/sched/fair.c',
    'fs/proc/loadavg.c',
    'fs/proc/version.c',
    'include/linux/kconfig.h',
    'include/linux/compiler_types.h',
    'include/linux/compiler_attributes.h',
  ];
  const grep = [
    'kernel/sched/sched.h:#include <linux/sched/loadavg.h>',
    'kernel/sched/core.c:#include "sched.h"',
    'kernel/sched/fair.c:#include "sched.h"',
    'fs/proc/loadavg.c:#include <linux/sched/loadavg.h>',
    'include/linux/compiler_types.h:#include <linux/compiler_attributes.h>',
    'not a grep line',
  ];
  const g = graphFromGrep(grep, files);

  it('follows headers included by headers', () => {
    expect(includersOf(g, 'include/linux/sched/loadavg.h')).toEqual({
      direct: ['fs/proc/loadavg.c'],
      all: ['fs/proc/loadavg.c', 'kernel/sched/core.c', 'kernel/sched/fair.c'],
      everyUnit: false,
    });
  });
  it('a header behind kbuild’s -include headers reaches every unit', () => {
    const r = includersOf(g, 'include/linux/compiler_attributes.h');
    expect(r.everyUnit).toBe(true);
    expect(r.all).toEqual(['fs/proc/loadavg.c', 'fs/proc/version.c', 'kernel/sched/core.c', 'kernel/sched/fair.c']);
  });
  it('a header nothing includes, or one not in the tree, reaches nothing', () => {
    expect(includersOf(g, 'fs/proc/nothing.h')).toEqual({ direct: [], all: [], everyUnit: false });
  });
  it('an include cycle (guarded headers including each other) terminates', () => {
    const c = graphFromGrep(['a/x.h:#include "y.h"', 'a/y.h:#include "x.h"', 'a/m.c:#include "y.h"'], ['a/x.h', 'a/y.h', 'a/m.c']);
    expect(includersOf(c, 'a/x.h').all).toEqual(['a/m.c']);
  });
});

describe('skippedDir', () => {
  it('keeps x86 and the kernel proper, skips host tools, docs and other architectures', () => {
    expect(skippedDir('tools')).toBe(true);
    expect(skippedDir('Documentation')).toBe(true);
    expect(skippedDir('arch/arm64')).toBe(true);
    expect(skippedDir('arch/x86')).toBe(false);
    expect(skippedDir('fs')).toBe(false);
  });
});

describe('treeIncludeGraph', () => {
  const tree = mkdtempSync(join(tmpdir(), 'suture-incgraph-'));
  afterAll(() => rmSync(tree, { recursive: true, force: true }));
  const put = (p: string, text: string) => {
    mkdirSync(dirname(join(tree, p)), { recursive: true });
    writeFileSync(join(tree, p), text);
  };

  it('greps a tree once, keeps the graph as JSON, and reads it back', async () => {
    put('include/linux/foo.h', '#ifndef FOO\n#define FOO\nstatic inline int foo(void) { return 1; }\n#endif\n');
    put('include/linux/bar.h', '#include <linux/foo.h>\n');
    put('fs/a.c', '#include <linux/bar.h>\nint a(void) { return foo(); }\n');
    put('fs/b.c', '#include <linux/kernel.h>\n');
    put('tools/t.c', '#include <linux/foo.h>\n');
    put('arch/arm64/k.c', '#include <linux/foo.h>\n');
    put('arch/x86/k.c', '#  include <linux/foo.h>\n');
    const cache = join(tree, 'graph.json');
    const g = await treeIncludeGraph(tree, cache);
    expect(existsSync(cache)).toBe(true);
    expect(includersOf(g, 'include/linux/foo.h')).toEqual({ direct: ['arch/x86/k.c'], all: ['arch/x86/k.c', 'fs/a.c'], everyUnit: false });
    // The cached copy is what a second call returns (the tree is not read again).
    writeFileSync(cache, readFileSync(cache, 'utf8').replace('"fs/a.c"', '"fs/z.c"'));
    expect(includersOf(await treeIncludeGraph(tree, cache), 'include/linux/foo.h').all).toContain('fs/z.c');
    // A damaged cache is rebuilt.
    writeFileSync(cache, '{"version":1,"files":[');
    expect(includersOf(await treeIncludeGraph(tree, cache), 'include/linux/foo.h').all).toEqual(['arch/x86/k.c', 'fs/a.c']);
  });
});
