// SPDX-License-Identifier: GPL-2.0-only
/**
 * A patch made for a nearby kernel, on Debian 13's 6.12: 6.1's uname fix
 * (test/patches/debian-6.1.0-56/08-newuname-syscall-body) applies 19 lines
 * lower in 6.12's kernel/sys.c. Built at the lines GNU patch applied it, only
 * the syscall's entries change (getrusage, below it, was wrongly reported
 * changed when the stated lines were used), and the module works in the
 * guest. 6.1's namei fix applies to 6.12 only with fuzz, into another
 * function: refused.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { suture, sutureJson } from '../helpers/cli.js';
import { ensureKernel, TRIXIE_KERNEL } from '../helpers/kernel.js';

const CORPUS_61 = join(import.meta.dirname, '..', 'patches', 'debian-6.1.0-56');
const K = ['--kernel', TRIXIE_KERNEL];
let out: string;

beforeAll(async () => {
  await ensureKernel(TRIXIE_KERNEL);
  out = mkdtempSync(join(tmpdir(), 'suture-offset-'));
});

describe("6.1's uname fix on 6.12 (applies 19 lines lower)", () => {
  it('changes exactly the syscall entries, and the module works in the guest', () => {
    const ko = join(out, 'lp_offset.ko');
    const b = sutureJson(['build', ...K, join(CORPUS_61, '08-newuname-syscall-body', 'fix.patch'), '-o', ko, '--name', 'lp_offset'], { timeoutMs: 900_000 });
    expect(b.status, b.stderr).toBe(0);
    const fns = (b.json.functions as { name: string; status: string; carriedOnly?: boolean }[]).map((f) => `${f.status}${f.carriedOnly ? ' (carried)' : ''}: ${f.name}`).sort();
    expect(fns).toEqual(['changed (carried): __do_sys_newuname', 'changed: __ia32_sys_newuname', 'changed: __x64_sys_newuname']);
    const vm = sutureJson(['vm', 'run', ...K, '--timeout', '600', '--load', ko, '--exec', 'uname -v'], { timeoutMs: 900_000 });
    expect(vm.status, JSON.stringify(vm.json)).toBe(0);
    expect(vm.json.commands[0].output.trim()).toBe('#1 suture-fixed-uname');
  });

  it("6.1's namei fix applies only with fuzz: refused before compiling, naming the hunk", () => {
    const r = suture(['analyze', ...K, join(CORPUS_61, '13-namei-notrace-inline', 'fix.patch')]);
    expect(r.status, r.stderr).toBe(11);
    expect(r.stderr).toMatch(/applies to this kernel's source only with fuzz \(fs\/namei\.c hunk #1\)/);
    expect(r.stderr).toMatch(/fs\/namei\.c: hunk #1 \(@@ -\d+ @@\) matched with 2 context lines at each end ignored, 77 lines lower than it says/);
    expect(r.stderr).not.toContain('Compiling');
  });
});
