// SPDX-License-Identifier: GPL-2.0-only
/**
 * Every refusal of rules.ts fires on its example and stays silent on a near
 * miss: the diff engine on objects gcc compiled from
 * test/fixtures/patchbuild/rules.c (build.sh, one -D per example), pahole for
 * struct layouts, and the file rules on patches as parse.ts reads them.
 * notrace-without-callers is in carry.test.ts; module-static-key needs a
 * module's key resolved through kallsyms and is proven by corpus entry
 * 30-refuse-module-static-key.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ElfObject } from '../../../src/elf/mod.js';
import { diffObjects, type ObjectDiff } from '../../../src/patchbuild/diff/diff.js';
import { changedLayouts, parsePahole } from '../../../src/patchbuild/diff/layouts.js';
import { changedStructLayout, moduleKeyRefusal, type RuleId } from '../../../src/patchbuild/diff/rules.js';
import { parseSourcePatch } from '../../../src/patchbuild/patch/parse.js';
import { refuseFiles } from '../../../src/patchbuild/units.js';
import { CompiledUnit } from '../../../src/patchbuild/compile.js';
import { layoutRefusals } from '../../../src/patchbuild/verdicts.js';
import { SutureError } from '../../../src/util/errors.js';

const FIXTURES = join(import.meta.dirname, '..', '..', 'fixtures', 'patchbuild');
let dir: string;
let n = 0;
const build = (...defines: string[]) => {
  const o = join(dir, `rules-${n++}.o`);
  execFileSync(join(FIXTURES, 'build.sh'), [join(FIXTURES, 'rules.c'), o, ...defines]);
  return o;
};
const parse = (file: string) => {
  const b = readFileSync(file);
  return ElfObject.parse(new Uint8Array(b.buffer, b.byteOffset, b.byteLength), { file });
};
let base: string;
const diffWith = (...defines: string[]): ObjectDiff => diffObjects(parse(base), parse(build(...defines)), { unit: 'rules.c', structSize: () => undefined });
const rules = (d: ObjectDiff): [RuleId, string][] => d.refusals.map((r) => [r.rule, r.symbol]);

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'suture-rules-'));
  base = build();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('the diff engine\'s rules on rules.c', () => {
  it('nothing changed: no verdict, no refusal', () => {
    const d = diffWith();
    expect(d.functions).toEqual([]);
    expect(d.refusals).toEqual([]);
  });

  it('changed-init-or-exit: an __init function changed; an ordinary one is just patched', () => {
    const d = diffWith('-DINIT_CHANGED');
    expect(rules(d)).toEqual([['changed-init-or-exit', 'setup_thing']]);
    expect(d.refusals[0]!.reason).toBe('setup_thing is __init code (.init.text) and it changed');
    const near = diffWith('-DPLAIN_CHANGED');
    expect(near.refusals).toEqual([]);
    expect(near.functions.map((f) => f.name)).toEqual(['plain']);
  });

  it('data-size-changed: a global struct grew', () => {
    const d = diffWith('-DSTRUCT_GROWS');
    expect(rules(d)).toEqual([['data-size-changed', 'current_settings']]);
    expect(d.refusals[0]!.reason).toBe('the size of current_settings changed (4 → 8 bytes): its type or layout changed');
  });

  it('changed-data: a writable initial value; a const table changed is carried as a new copy with its readers', () => {
    const d = diffWith('-DLIMIT=20');
    expect(rules(d)).toEqual([['changed-data', 'limit']]);
    const near = diffWith('-DTABLE_VALUE=7');
    expect(near.refusals).toEqual([]);
    expect(near.changedConstants).toEqual(['table']);
    expect(near.functions.map((f) => [f.name, f.reasons])).toEqual([['read_table', ['reads changed constant table']]]);
  });

  it('unsupported-section: a .modinfo string changed', () => {
    const d = diffWith('-DMODINFO="b"');
    expect(rules(d)).toEqual([['unsupported-section', '.modinfo']]);
    expect(d.refusals[0]!.reason).toBe('section .modinfo changed: initcalls, module parameters and modinfo');
  });

  it('changed-struct-layout: pahole sees struct settings grow; equal layouts say nothing', () => {
    const layout = (file: string) => parsePahole(execFileSync('pahole', ['--anon_include', file], { encoding: 'utf8' }));
    const changed = changedLayouts(layout(base), layout(build('-DSTRUCT_GROWS')));
    expect(changed).toEqual([{ type: 'struct settings', before: '4 bytes', after: '8 bytes' }]);
    expect(changedStructLayout('rules.c', changed[0]!.type, changed[0]!.before, changed[0]!.after).rule).toBe('changed-struct-layout');
    expect(changedLayouts(layout(base), layout(build('-DLIMIT=20')))).toEqual([]);
  });

  it("changed-struct-layout with a layout cache: pahole's reading kept by the object's content, read again only when the bytes change", async () => {
    const cache = join(dir, 'layouts');
    const grown = build('-DSTRUCT_GROWS');
    const unit = new CompiledUnit({ unit: 'rules.c', object: 'rules.o', home: { kind: 'vmlinux', object: 'rules.o' } as never }, { orig: base, patched: grown });
    const first = await layoutRefusals([unit], undefined, cache);
    expect(first.map((r) => [r.rule, r.symbol])).toEqual([['changed-struct-layout', 'struct settings']]);
    const files = () => readdirSync(cache, { recursive: true }).filter((f) => String(f).endsWith('.json')).map((f) => join(cache, String(f)));
    expect(files()).toHaveLength(2);
    // The second run reads the cache: a cached reading edited by hand shows through (nothing else could).
    for (const f of files()) writeFileSync(f, JSON.stringify([['struct settings', 'size: 4']]));
    expect(await layoutRefusals([unit], undefined, cache)).toEqual([]);
    // The same bytes copied to another path (each catch-up copies its objects into a new build directory): still the cache.
    const copies = { orig: join(dir, 'copy-orig.o'), patched: join(dir, 'copy-patched.o') };
    copyFileSync(base, copies.orig);
    copyFileSync(grown, copies.patched);
    const copied = new CompiledUnit({ unit: 'rules.c', object: 'rules.o', home: { kind: 'vmlinux', object: 'rules.o' } as never }, copies);
    expect(await layoutRefusals([copied], undefined, cache)).toEqual([]);
    // Other bytes (the patched side built again, differently) are read by pahole.
    const other = build('-DSTRUCT_GROWS', '-DLIMIT=20');
    const changed = new CompiledUnit({ unit: 'rules.c', object: 'rules.o', home: { kind: 'vmlinux', object: 'rules.o' } as never }, { orig: base, patched: other });
    expect((await layoutRefusals([changed], undefined, cache)).map((r) => r.symbol)).toEqual(['struct settings']);
    expect(files()).toHaveLength(3);
  });

  it("kthread-main-loop: a changed kernel thread's loop is refused; a function it calls is not", () => {
    const obj = (...defines: string[]) => {
      const o = join(dir, `kthread-${n++}.o`);
      execFileSync(join(FIXTURES, 'build.sh'), [join(FIXTURES, 'kthread.c'), o, ...defines]);
      return parse(o);
    };
    const base = obj();
    const loop = diffObjects(base, obj('-DLOOP_CHANGES'), { unit: 'kthread.c', structSize: () => undefined });
    expect(rules(loop)).toEqual([['kthread-main-loop', 'worker']]);
    expect(loop.refusals[0]!.reason).toContain('start_worker starts it with kthread_create_on_node');
    const helper = diffObjects(base, obj('-DHELPER_CHANGES'), { unit: 'kthread.c', structSize: () => undefined });
    expect(helper.refusals).toEqual([]);
    expect(helper.functions.map((f) => f.name)).toEqual(['step']);
  });

  it('module-static-key: a jump label on a module\'s key, a static call, a tracepoint: what to write instead', () => {
    expect(moduleKeyRefusal('__jump_table', 'ovs_key', 'openvswitch', 'net/openvswitch/x.c', 'f')).toMatchObject({ rule: 'module-static-key', instead: expect.stringContaining('static_key_enabled(&ovs_key)') });
    expect(moduleKeyRefusal('.static_call_sites', 'sc', 'm', 'u.c', 'f').instead).toContain('KPATCH_STATIC_CALL');
    expect(moduleKeyRefusal('__jump_table', '__tracepoint_x', 'm', 'u.c', 'f').instead).toContain('tracepoint of m');
  });
});

describe('files a livepatch cannot be built from', () => {
  const patch = (text: string) => parseSourcePatch(text, 'x.patch', 1);
  const refused = (text: string): string => {
    try {
      refuseFiles(patch(text));
    } catch (e) {
      expect(e).toBeInstanceOf(SutureError);
      return (e as SutureError).details ?? '';
    }
    return '';
  };
  const hunk = '@@ -1 +1 @@\n-a\n+b\n';

  it('assembly, build files, and a .c file created or deleted: each with its rule', () => {
    expect(refused(`--- a/arch/x86/entry/entry_64.S\n+++ b/arch/x86/entry/entry_64.S\n${hunk}`)).toContain('rule: assembly-file');
    expect(refused(`--- a/fs/Makefile\n+++ b/fs/Makefile\n${hunk}`)).toContain('rule: build-file');
    expect(refused(`--- /dev/null\n+++ b/fs/new.c\n@@ -0,0 +1 @@\n+int x;\n`)).toContain('rule: file-created-deleted-renamed');
    expect(refused(`--- a/fs/old.c\n+++ /dev/null\n@@ -1 +0,0 @@\n-int x;\n`)).toContain('rule: file-created-deleted-renamed');
  });

  it('near misses: a .c change and a header created are fine', () => {
    expect(refused(`--- a/fs/proc/cmdline.c\n+++ b/fs/proc/cmdline.c\n${hunk}`)).toBe('');
    expect(refused(`--- /dev/null\n+++ b/include/linux/new.h\n@@ -0,0 +1 @@\n+int x;\n`)).toBe('');
  });
});
