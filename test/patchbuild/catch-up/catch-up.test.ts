// SPDX-License-Identifier: GPL-2.0-only
/**
 * Catch-up's pure stages: Debian's changelog read as fixes, files grouped
 * into fixes (never half of one), fixes matched to the changelog, the
 * series' mail headers, and the HTML report's escaping.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { entriesBetween, otherArchOnly, parseChangelog } from '../../../src/patchbuild/catch-up/changelog.js';
import { seriesHeader } from '../../../src/patchbuild/catch-up/fixes.js';
import { definedNames, groupFixes, outsideBuild } from '../../../src/patchbuild/catch-up/group.js';
import { matchChangelog } from '../../../src/patchbuild/catch-up/match.js';
import { renderCatchUpHtml } from '../../../src/patchbuild/catch-up/report.js';
import { excludedFixes, type FixReport } from '../../../src/patchbuild/catch-up/judge.js';
import { suspectFixes } from '../../../src/patchbuild/catch-up/suspects.js';
import type { Fix } from '../../../src/patchbuild/catch-up/fixes.js';
import type { CatchUpResult } from '../../../src/patchbuild/catch-up/catch-up.js';
import { parseSourcePatch, type FilePatch } from '../../../src/patchbuild/patch/parse.js';
import { FIXTURES } from '../../helpers/kernel.js';

const CHANGELOG = readFileSync(join(FIXTURES, 'catch-up', 'changelog.Debian.excerpt'), 'utf8');

describe("Debian's changelog", () => {
  const entries = parseChangelog(CHANGELOG);
  it('every entry with its version, its CVEs out of the title, its stable ChangeLog', () => {
    expect(entries[0]).toEqual({ version: '6.1.192-2', title: 'ext4: fix NULL folio dereference in mballoc', cves: [], arches: [] });
    const apparmor = entries.find((e) => e.title.startsWith('apparmor:'))!;
    // A title continued on the next line, its CVE in parentheses there.
    expect(apparmor).toEqual({ version: '6.1.192-1', title: 'apparmor: fix out-of-bounds write when null terminating a label vec', cves: ['CVE-2026-89761'], arches: [], stable: 'ChangeLog-6.1.191' });
    expect(entries.find((e) => e.title.startsWith('smb: client: fix OOB'))!.title).toBe('smb: client: fix OOB read/write from unvalidated DataOffset in coalesce_t2()');
    // The URL of a later stable ChangeLog is not part of the entry before it.
    expect(entries.some((e) => e.title.includes('https://'))).toBe(false);
    const safeRet = entries.filter((e) => e.title === 'bugs: Make Safe-RET robust against interrupt injection');
    expect(safeRet.map((e) => [e.stable, e.cves])).toEqual([
      ['ChangeLog-6.1.181', []],
      ['ChangeLog-6.1.182', ['CVE-2026-68480']],
    ]);
  });
  it('arch tags: an [arm64] entry is another architecture, an [x86] one is not', () => {
    const arm = entries.find((e) => e.title === 'allow pte_offset_map() to fail')!;
    expect(arm.arches).toEqual(['arm64']);
    expect(otherArchOnly(arm)).toBe(true);
    const x86 = entries.find((e) => e.title.startsWith('x86/CPU/AMD: Clear virtualized VMLOAD/VMSAVE'))!;
    expect(x86).toMatchObject({ arches: ['x86'], cves: ['CVE-2024-53114'] });
    expect(otherArchOnly(x86)).toBe(false);
  });
  it('the entries of an update: after the running version, up to the newer one', () => {
    expect(entriesBetween(entries, '6.1.192-1', '6.1.192-2').map((e) => e.title)).toEqual(['ext4: fix NULL folio dereference in mballoc']);
    const update = entriesBetween(entries, '6.1.187-1', '6.1.192-1');
    expect(new Set(update.map((e) => e.version))).toEqual(new Set(['6.1.192-1', '6.1.190-1']));
    expect(entriesBetween(entries, '6.1.192-2', '6.1.192-2')).toEqual([]);
  });
});

const patch = (text: string) => parseSourcePatch(text, 'test', 1);
const modify = (path: string, lines: string[], at = 10) =>
  patch(`--- a/${path}\n+++ b/${path}\n@@ -${at},${lines.filter((l) => l[0] !== '+').length} +${at},${lines.filter((l) => l[0] !== '-').length} @@\n${lines.join('\n')}\n`)[0]!;

describe('grouping files into fixes', () => {
  const includers = (map: Record<string, string[]>, every: string[] = []) => ({
    includers: (h: string) => ({ units: map[h] ?? [], every: every.includes(h) }),
    wideHeader: 3,
  });
  const none = () => undefined;

  it('a header joins the changed .c files it reaches; a wide one is judged alone', () => {
    const files: FilePatch[] = [
      modify('fs/a.c', [' int x;', '-int a(void) { return 1; }', '+int a(void) { return 2; }']),
      modify('fs/b.c', [' int y;', '-int b(void) { return 1; }', '+int b(void) { return 2; }']),
      modify('include/linux/a.h', [' #define A 1', '-#define AA 2', '+#define AA 3']),
      modify('include/linux/wide.h', [' #define W 1', '-#define WW 2', '+#define WW 3']),
      modify('fs/c.c', [' int z;', '-int c(void) { return 1; }', '+int c(void) { return 2; }']),
    ];
    const fixes = groupFixes(files, includers({ 'include/linux/a.h': ['fs/a.c', 'fs/x.c'], 'include/linux/wide.h': ['fs/a.c', 'fs/b.c', 'fs/c.c', 'fs/d.c'] }), none);
    expect(fixes.map((f) => f.files.map((x) => x.path))).toEqual([['fs/a.c', 'include/linux/a.h'], ['fs/b.c'], ['include/linux/wide.h'], ['fs/c.c']]);
    expect(fixes[0]!.basis).toEqual(['include/linux/a.h reaches fs/a.c']);
    expect(fixes[2]!.basis[0]).toMatch(/include\/linux\/wide\.h is included by 4 source files: judged alone/);
    expect(fixes.map((f) => f.id)).toEqual(['F001', 'F002', 'F003', 'F004']);
  });

  it('a new helper joins its callers in other files; a name new to two files joins nothing', () => {
    const files: FilePatch[] = [
      modify('fs/helper.c', [' int x;', '+int nfsd_check_reply_size(int n)', '+{', '+\treturn n < 4096;', '+}', '+EXPORT_SYMBOL(nfsd_check_reply_size);']),
      modify('fs/user.c', [' \tint r;', '+\tif (!nfsd_check_reply_size(len))', '+\t\treturn -EINVAL;']),
      modify('drivers/a.c', [' int x;', '+static int probe_one(void)', '+{ return 0; }', '+int a(void) { return probe_one(); }']),
      modify('drivers/b.c', [' int x;', '+static int probe_one(void)', '+{ return 1; }', '+int b(void) { return probe_one(); }']),
    ];
    const fixes = groupFixes(files, includers({}), (p) => (p === 'fs/user.c' ? 'int f(int len) { int r; return 0; }' : ''));
    expect(fixes.map((f) => f.files.map((x) => x.path))).toEqual([['fs/helper.c', 'fs/user.c'], ['drivers/a.c'], ['drivers/b.c']]);
    expect(fixes[0]!.basis).toEqual(['fs/user.c uses nfsd_check_reply_size, which fs/helper.c brings']);
  });

  it('a removed helper joins the files that stop calling it', () => {
    const files = [
      modify('mm/old.c', [' int x;', '-void mm_drop_stale(void)', '-{', '-}']),
      modify('mm/user.c', [' \tint r;', '-\tmm_drop_stale();']),
    ];
    expect(groupFixes(files, includers({}), none).map((f) => f.files.length)).toEqual([2]);
  });

  it('files no build compiles go by directory', () => {
    expect(outsideBuild('arch/arm64/mm/fault.c')).toBe('arch/arm64');
    expect(outsideBuild('arch/x86/kvm/x86.c')).toBeUndefined();
    expect(outsideBuild('Documentation/admin-guide/sysctl/vm.rst')).toBe('Documentation/admin-guide');
    expect(outsideBuild('tools/testing/selftests/x.c')).toBe('tools/testing');
    expect(outsideBuild('Makefile')).toBeUndefined();
    const files = [modify('arch/arm64/mm/fault.c', [' int x;', '+int y;']), modify('arch/arm64/kernel/entry.S', [' nop', '+nop']), modify('arch/powerpc/mm/a.c', [' int x;', '+int y;'])];
    const fixes = groupFixes(files, includers({}), none);
    expect(fixes.map((f) => f.files.map((x) => x.path))).toEqual([['arch/arm64/mm/fault.c', 'arch/arm64/kernel/entry.S'], ['arch/powerpc/mm/a.c']]);
  });

  it('what a line defines: functions, macros, exports; not a macro invoked at file scope', () => {
    expect([...definedNames(['static int foo_bar(struct x *p)', '#define FOO_MAX 3', 'EXPORT_SYMBOL_GPL(foo_bar);', 'static DEFINE_MUTEX(foo_lock);', '\tif (x)'])].sort()).toEqual(['FOO_MAX', 'foo_bar']);
  });
});

describe('matching fixes to the changelog', () => {
  const entries = parseChangelog(CHANGELOG);
  it('by subsystem prefix and the words of the title', () => {
    const fixes = [
      { id: 'F001', files: [modify('fs/ext4/mballoc.c', [' int x;', '-\tif (IS_ERR(folio))', '+\tif (!folio)'])] },
      { id: 'F002', files: [modify('fs/smb/client/cifssmb.c', [' int x;', '-\tcoalesce_t2(a);', '+\tif (coalesce_t2(a)) return;'])] },
      { id: 'F003', files: [modify('drivers/hid/hid-sony.c', [' int x;', '-\tdel_timer(&ghl_poke_timer);', '+\tdel_timer_sync(&ghl_poke_timer);'])] },
    ];
    const m = matchChangelog(fixes, entries);
    expect(m.byFix.get('F001')!.map((e) => e.title)).toEqual(['ext4: fix NULL folio dereference in mballoc']);
    expect(m.byFix.get('F002')!.map((e) => e.title)).toEqual(['smb: client: fix OOB read/write from unvalidated DataOffset in coalesce_t2()']);
    expect(m.byFix.get('F003')!.map((e) => e.cves)).toEqual([['CVE-2026-89625']]);
    const arm = m.unmatched.find((u) => u.entry.title === 'allow pte_offset_map() to fail')!;
    expect(arm.why).toBe('for arm64 only');
  });
  it('a tie leaves the entry unmatched, and says so', () => {
    const fixes = [
      { id: 'F001', files: [modify('fs/nfsd/nfs4proc.c', [' int x;', '+int y;'])] },
      { id: 'F002', files: [modify('fs/nfsd/nfs4state.c', [' int x;', '+int y;'])] },
    ];
    const m = matchChangelog(fixes, entries.filter((e) => e.title.startsWith('nfsd: fix nfsd_file leak')));
    expect(m.byFix.size).toBe(0);
    expect(m.unmatched[0]!.why).toMatch(/the names match 2 fixes equally \(F001, F002\)/);
  });
});

describe('series files', () => {
  it('the subject without [PATCH n/m], folded lines joined, every CVE above the diff', () => {
    const text = 'From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001\nFrom: A <a@b>\nSubject: [PATCH 03/18] nfsd: fix nfsd_file leak on inter-server\n COPY setup failure\n\nCVE: CVE-2026-89680\n---\ndiff --git a/fs/nfsd/a.c b/fs/nfsd/a.c\n+ CVE-2099-00001 in code\n';
    expect(seriesHeader(text)).toEqual({ title: 'nfsd: fix nfsd_file leak on inter-server COPY setup failure', cves: ['CVE-2026-89680'] });
    expect(seriesHeader('Subject: [PATCH 02/24] [powerpc*] pseries/iommu: switch to Default DMA window during kdump\n\n---\n').title).toBe('pseries/iommu: switch to Default DMA window during kdump');
  });
});

describe('the HTML report', () => {
  it('escapes every text that comes from a tree or a changelog', () => {
    const r: CatchUpResult = {
      kernel: 'debian:6.1.0-56-amd64',
      what: 'series <x>',
      fixes: [{ id: 'F001', label: 'fs/<a>.c', title: '<script>alert(1)</script>', cves: ['CVE-1'], basis: ['b & c'], files: ['fs/<a>.c'], changelog: [], verdict: 'refused', why: 'x < y', refusals: [{ rule: 'changed-data', file: 'fs/<a>.c', symbol: 's"q', reason: "r'", instead: 'i' }], units: [], notBuilt: [], functions: [] }],
      unmatched: [],
      cvesNotCarried: [{ cve: 'CVE-1', title: '<b>', why: 'F001: refused' }],
      cvesCarried: [],
      cvesNeedNoPatch: [],
      unitsCompiled: 0,
      unitsSettled: 0,
      settled: [],
      timings: { compile: 1200 },
      warnings: [],
    };
    const html = renderCatchUpHtml(r, undefined, { totalMs: 5, generatedAt: 'now' });
    expect(html).not.toContain('<script>');
    expect(html).not.toContain('fs/<a>.c');
    expect(html).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    expect(html).toContain('s&quot;q');
    expect(html).toContain('series &lt;x&gt;');
  });
});

describe('leaving fixes out', () => {
  const fix = (id: string, cves: string[], fns: string[], verdict = 'included') =>
    ({ id, label: `${id}.c`, title: `title of ${id}`, cves, basis: [], files: [`${id}.c`], changelog: [], verdict, why: '', refusals: [], units: [], notBuilt: [], functions: fns.map((name) => ({ object: 'vmlinux', unit: 'kernel/workqueue.c', name, status: 'changed', reasons: [] })) }) as unknown as FixReport;
  const formed = (id: string, cves: string[]) => ({ id, label: id, title: undefined, cves, basis: [], files: [{ path: `${id}.c` }], changelog: [] }) as unknown as Fix;

  it('--exclude by fix id or CVE; a name that matches no fix is refused, not ignored', () => {
    const fixes = [formed('F001', ['CVE-2026-1']), formed('F002', ['CVE-2026-1', 'CVE-2026-2']), formed('F003', [])];
    expect([...excludedFixes(fixes, ['F003'], 'the update').entries()]).toEqual([['F003', { rule: 'excluded', file: 'F003.c', symbol: 'F003', reason: 'left out on request (--exclude F003)', instead: 'drop --exclude F003 to carry it' }]]);
    expect([...excludedFixes(fixes, ['CVE-2026-1', 'F002'], 'the update').keys()]).toEqual(['F001', 'F002']);
    expect(() => excludedFixes(fixes, ['F004'], 'the update')).toThrow('--exclude F004: no fix of the update is called that');
    expect(() => excludedFixes(fixes, ['CVE-2026-3'], 'the update')).toThrow('--exclude CVE-2026-3: no fix of the update is for that CVE');
  });

  it("a failed proof's log names the fixes whose carried code warned (the whole-update proof's own lines)", () => {
    const log = [
      '[  170.298512] RIP: 0010:__flush_workqueue+0x3de/0x430 [livepatch_cu53]',
      '[  170.301229] RIP: 0033:0x47e0e7',
      '[  170.301997] WARNING: CPU: 0 PID: 1323 at kernel/workqueue.c:3066 __flush_work+0x7f/0x90 [livepatch_cu53]',
      '[  170.305000] WARNING: CPU: 0 PID: 1323 at fs/ext4/super.c:100 ext4_fill_super+0x7f/0x90 [ext4]',
    ];
    const fixes = [fix('F1453', [], ['__flush_work', '__flush_workqueue', '__queue_work']), fix('F0001', [], ['ext4_fill_super']), fix('F0002', [], ['__flush_work'], 'refused')];
    expect(suspectFixes(fixes, 'livepatch_cu53', log)).toEqual([
      { fix: 'F1453', title: 'title of F1453', functions: ['__flush_work', '__flush_workqueue'], lines: [log[2], log[0]] },
    ]);
    expect(suspectFixes(fixes, 'livepatch_other', log)).toEqual([]);
  });
});
