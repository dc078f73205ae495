// SPDX-License-Identifier: GPL-2.0-only
/**
 * Orig and patched compiles in overlays over the real prepared 6.1 tree: both
 * objects come out, the patch is in one of them only, and the prepared tree is
 * exactly as it was.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { compileBoth } from '../../src/patchbuild/compile.js';
import { applyPatch, checkPatchApplies, makeBuildTrees, removeBuildTrees } from '../../src/patchbuild/overlay.js';
import type { KernelMetadata } from '../../src/kernel/workspace.js';
import { SutureError } from '../../src/util/errors.js';
import { sutureHome } from '../../src/util/paths.js';
import { ensureKernel } from '../helpers/kernel.js';

let meta: KernelMetadata;
const sha = (f: string) => createHash('sha256').update(readFileSync(f)).digest('hex');

const PATCH = `--- a/fs/proc/cmdline.c
+++ b/fs/proc/cmdline.c
@@ -7,6 +7,7 @@
 static int cmdline_proc_show(struct seq_file *m, void *v)
 {
 	seq_puts(m, saved_command_line);
+	seq_puts(m, " suture-was-here");
 	seq_putc(m, '\\n');
 	return 0;
 }
`;

beforeAll(async () => {
  meta = await ensureKernel();
});

describe('build trees', () => {
  it('compileBoth() builds orig and patched objects in overlays and leaves the prepared tree untouched', async () => {
    const src = join(meta.paths.source, 'fs/proc/cmdline.c');
    const before = sha(src);
    const dir = mkdtempSync(join(tmpdir(), 'suture-tree-'));
    writeFileSync(join(dir, 'p.patch'), PATCH);
    await checkPatchApplies(meta.paths.source, join(dir, 'p.patch'), 'p.patch', ['fs/proc/cmdline.c']);
    const t = makeBuildTrees(sutureHome(), meta, `test-${process.pid}`);
    try {
      await applyPatch(t, PATCH, 'p.patch');
      const r = await compileBoth(meta, sutureHome(), t, ['fs/proc/cmdline.o']);
      const orig = r.orig.get('fs/proc/cmdline.o')!;
      const patched = r.patched.get('fs/proc/cmdline.o')!;
      const strings = (f: string) => execFileSync('strings', ['-a', f], { encoding: 'utf8' });
      expect(strings(patched)).toContain('suture-was-here');
      expect(strings(orig)).not.toContain('suture-was-here');
      // kbuild's flags plus ours: one section per function, objtool's ORC data present.
      const sections = execFileSync('readelf', ['-SW', patched], { encoding: 'utf8' });
      expect(sections).toContain('.text.cmdline_proc_show');
      expect(sections).toContain('.orc_unwind');
      expect(sections).toContain('__mcount_loc');
    } finally {
      removeBuildTrees(t);
    }
    expect(sha(src)).toBe(before);
    expect(existsSync(join(meta.paths.source, 'fs/proc/cmdline.o'))).toBe(false);
  });

  it('checkPatchApplies() names the file and hunk that do not apply', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'suture-tree-'));
    writeFileSync(join(dir, 'bad.patch'), PATCH.replace('seq_putc(m', 'seq_putc(mm'));
    const err = await checkPatchApplies(meta.paths.source, join(dir, 'bad.patch'), 'bad.patch', ['fs/proc/cmdline.c']).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SutureError);
    expect((err as SutureError).message).toBe('bad.patch does not apply to the kernel source (1 hunk failed)');
    expect((err as SutureError).details).toMatch(/fs\/proc\/cmdline\.c: Hunk #1 FAILED at 7/);
  });

  it('checkPatchApplies() takes a second change to a file on top of the first (as a series has them), the tree untouched', async () => {
    const src = join(meta.paths.source, 'fs/proc/cmdline.c');
    const before = sha(src);
    const dir = mkdtempSync(join(tmpdir(), 'suture-tree-'));
    const second = `--- a/fs/proc/cmdline.c\n+++ b/fs/proc/cmdline.c\n@@ -8,6 +8,7 @@\n {\n \tseq_puts(m, saved_command_line);\n \tseq_puts(m, " suture-was-here");\n+\tseq_puts(m, " twice");\n \tseq_putc(m, '\\n');\n \treturn 0;\n }\n`;
    writeFileSync(join(dir, 'two.patch'), PATCH + second);
    const out = await checkPatchApplies(meta.paths.source, join(dir, 'two.patch'), 'two.patch', ['fs/proc/cmdline.c']);
    expect(out.match(/^patching file fs\/proc\/cmdline\.c$/gm)).toHaveLength(2);
    expect(out).not.toMatch(/FAILED|fuzz/);
    expect(sha(src)).toBe(before);
    // Alone, the second does not apply to the kernel's own file.
    writeFileSync(join(dir, 'second.patch'), second);
    await expect(checkPatchApplies(meta.paths.source, join(dir, 'second.patch'), 'second.patch', ['fs/proc/cmdline.c'])).rejects.toThrow('second.patch does not apply');
  });
});
