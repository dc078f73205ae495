// SPDX-License-Identifier: GPL-2.0-only
/**
 * Which units a patch compiles, on the real 6.1.0-56 tree (no guest boots):
 * a changed header reaches the .c files that include it directly or through
 * other headers; one that reaches too many is refused before anything is
 * compiled, with the count and what to do.
 */
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { includersOf, treeIncludeGraph } from '../../src/patchbuild/include-graph.js';
import type { KernelMetadata } from '../../src/kernel/workspace.js';
import { suture } from '../helpers/cli.js';
import { ensureKernel, REFERENCE_KERNEL } from '../helpers/kernel.js';

const CORPUS = join(import.meta.dirname, '..', 'patches', 'debian-6.1.0-56');
let meta: KernelMetadata;
let dir: string;

beforeAll(async () => {
  meta = await ensureKernel();
  dir = mkdtempSync(join(tmpdir(), 'suture-units-'));
});

describe('the include graph of the real tree', () => {
  it('kernel/sched/fair.c reaches linux/sched/loadavg.h through kernel/sched/sched.h; fs/proc/loadavg.c includes it directly', async () => {
    const g = await treeIncludeGraph(meta.paths.source, join(meta.paths.root, 'include-graph.json'));
    expect(existsSync(join(meta.paths.root, 'include-graph.json'))).toBe(true);
    const r = includersOf(g, 'include/linux/sched/loadavg.h');
    expect(r.direct).toContain('fs/proc/loadavg.c');
    expect(r.direct).not.toContain('kernel/sched/fair.c');
    expect(r.all).toEqual(expect.arrayContaining(['fs/proc/loadavg.c', 'kernel/sched/core.c', 'kernel/sched/fair.c', 'kernel/sys.c']));
    expect(r.all.every((u) => u.endsWith('.c') && !u.startsWith('arch/arm'))).toBe(true);
    expect(r.everyUnit).toBe(false);
    // kconfig.h comes with every unit (kbuild's -include)
    expect(includersOf(g, 'include/linux/kconfig.h').everyUnit).toBe(true);
  });
});

describe('a changed header', () => {
  it('reaching thousands of units: exit 17 before compiling, with the count and the way out', () => {
    const patch = join(dir, 'sched-h.patch');
    writeFileSync(
      patch,
      `--- a/include/linux/sched.h
+++ b/include/linux/sched.h
@@ -1910,7 +1910,7 @@
  */
 static inline int task_nice(const struct task_struct *p)
 {
-	return PRIO_TO_NICE((p)->static_prio);
+	return PRIO_TO_NICE((p)->static_prio) + 0;
 }
 
 extern int can_nice(const struct task_struct *p, const int nice);
`,
    );
    const r = suture(['analyze', '--kernel', REFERENCE_KERNEL, patch]);
    expect(r.status, r.stderr).toBe(17);
    expect(r.stderr).toMatch(/^suture: include\/linux\/sched\.h is included by \d{4,} source files \(\d+ directly\); suture compiles at most 64 units for one patch$/m);
    expect(r.stderr).toContain('hint: put the fix in the .c files that need it, or raise the limit with --max-units N');
    expect(r.stderr).not.toContain('Compiling');
  });

  it('counts only the units this configuration builds, and --max-units sets the limit', () => {
    const r = suture(['analyze', '--kernel', REFERENCE_KERNEL, '--max-units', '2', join(CORPUS, '12-xacct-header-inline', 'fix.patch')]);
    expect(r.status, r.stderr).toBe(17);
    // fs/read_write.c, fs/remap_range.c (vmlinux), fs/btrfs/ioctl.c (btrfs), fs/smb/server/vfs.c (ksmbd)
    expect(r.stderr).toContain(
      'suture: the patch reaches 4 units built in this kernel (through include/linux/sched/xacct.h); suture compiles at most 2 units for one patch',
    );
    expect(r.stderr).not.toContain('Compiling');
    const bad = suture(['analyze', '--kernel', REFERENCE_KERNEL, '--max-units', 'many', join(CORPUS, '12-xacct-header-inline', 'fix.patch')]);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain('--max-units must be a whole number of units, at least 1');
  });
});
