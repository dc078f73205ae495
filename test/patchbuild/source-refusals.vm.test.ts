// SPDX-License-Identifier: GPL-2.0-only
/**
 * `suture build --source` refusals, against the real 6.1.0-56 symbols and
 * image (no guest boots): each names the file, line or function, the symbol
 * and the reason, exits with its documented code, and writes no module.
 * Refusals about replaced functions and names come before anything is
 * compiled; refusals about what the code refers to come after compiling
 * fix.c alone, before the module is generated or linked.
 */
import { existsSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ensureKernel, FIXTURES, REFERENCE_KERNEL } from '../helpers/kernel.js';
import { suture, sutureJson } from '../helpers/cli.js';

const SRC = join(FIXTURES, 'source');
let dir: string;

function build(fixture: string, extra: string[] = []) {
  const out = join(dir, `${fixture}.ko`);
  const r = suture(['build', '--kernel', REFERENCE_KERNEL, '--source', join(SRC, `${fixture}.c`), '-o', out, ...extra], { timeoutMs: 900_000 });
  return { ...r, wrote: existsSync(out) };
}

/** A fix refused with `status`, before the step titled `notReached`, with no module written. */
function refused(fixture: string, status: number, notReached: 'Compiling' | 'Building module') {
  const r = build(fixture);
  expect(r.status).toBe(status);
  expect(r.stderr).not.toContain(notReached);
  expect(r.wrote).toBe(false);
  return r;
}

describe('suture build --source refusals', () => {
  beforeAll(async () => {
    await ensureKernel();
    dir = mkdtempSync(join(tmpdir(), 'suture-refusals-'));
  });

  it('a function the kernel does not have: exit 10, before compiling', () => {
    const r = refused('refuse-unknown-function', 10, 'Compiling');
    expect(r.stderr).toContain("suture: refuse-unknown-function.c:11: SUTURE_REPLACE: symbol 'suture_no_such_proc_show' is not in vmlinux of the target kernel");
  });

  it('a symbol the new code calls that the kernel does not have: exit 10, naming the function that calls it, no module', () => {
    const r = refused('refuse-unknown-symbol', 10, 'Building module');
    expect(r.stderr).toContain("suture: refuse-unknown-symbol.c: refuse_cmdline_show: symbol 'suture_no_such_function' is not in vmlinux of the target kernel");
  });

  it('an ambiguous symbol without a hint: exit 15, every copy with address and neighbours, and the hint to give', () => {
    const r = refused('refuse-ambiguous', 15, 'Building module');
    expect(r.stderr).toContain("suture: refuse-ambiguous.c: refuse_cmdline_show: 'version_show' is ambiguous: 4 copies in vmlinux");
    expect(r.stderr).toContain('  | #1 ffffffff81039ca0 t version_show  (after init_espfix_ap, boot_params_data_read; before setup_data_data_read, type_show)');
    expect(r.stderr.match(/^ {2}\| #\d ffffffff[0-9a-f]{8} t version_show/gm)).toHaveLength(4);
    expect(r.stderr).toContain('hint: add SUTURE_SYMPOS(vmlinux, version_show, N)');
  });

  it('the same fix builds once SUTURE_SYMPOS names the copy', () => {
    const r = sutureJson(['build', '--kernel', REFERENCE_KERNEL, '--source', join(SRC, 'ambiguous-with-hint.c'), '-o', join(dir, 'hinted', 'hinted.ko')], { timeoutMs: 900_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(r.json.symbols.find((s: any) => s.name === 'version_show')).toMatchObject({
      object: 'vmlinux',
      sympos: 3,
      binding: 'klp',
      how: 'hint',
      why: 'ambiguous-with-hint.c:25: SUTURE_SYMPOS(vmlinux, version_show, 3)',
      klpSymbol: '.klp.sym.vmlinux.version_show,3',
    });
  });

  it('--json carries the refusal as an error object with its kind and exit code', () => {
    const r = sutureJson(['build', '--kernel', REFERENCE_KERNEL, '--source', join(SRC, 'refuse-ambiguous.c'), '-o', join(dir, 'x.ko')], { timeoutMs: 900_000 });
    expect(r.status).toBe(15);
    expect(r.json.error).toMatchObject({ kind: 'ambiguous', exitCode: 15 });
    expect(r.json.error.details.split('\n')).toHaveLength(4);
  });

  it('a notrace function: exit 16, before compiling, with the bytes that show it', () => {
    const r = refused('refuse-notrace', 16, 'Compiling');
    expect(r.stderr).toContain(
      'suture: refuse-notrace.c:14: cannot replace native_sched_clock in vmlinux: native_sched_clock has no __fentry__ call site that ftrace manages (first bytes eb 73 55 48 89; not in __mcount_loc)',
    );
  });

  it('a function of a file built without ftrace (lib/sort.c): exit 16', () => {
    const r = build('refuse-no-fentry');
    expect(r.status).toBe(16);
    expect(r.stderr).toMatch(/refuse-no-fentry\.c:14: cannot replace sort in vmlinux: sort has no __fentry__ call site/);
  });

  it('an __init function: exit 16', () => {
    const r = build('refuse-init');
    expect(r.status).toBe(16);
    expect(r.stderr).toContain('suture: refuse-init.c:9: cannot replace start_kernel in vmlinux: start_kernel is __init code: it is freed after boot');
  });

  it('names over the kernel limits: exit 17, before compiling', () => {
    const mod = build('refuse-long-module');
    expect(mod.status).toBe(17);
    expect(mod.stderr).toContain(`refuse-long-module.c:11: SUTURE_REPLACE_MODULE: object name '${'m'.repeat(56)}' is 56 characters; the kernel's limit is 55`);
    const sym = build('refuse-long-symbol');
    expect(sym.status).toBe(17);
    expect(sym.stderr).toContain("refuse-long-symbol.c:9: SUTURE_REPLACE: symbol name 'ssssssssssssssssssssssssssssssssssssssss...' is 600 characters; the kernel's limit is 511");
    const name = suture(['build', '--kernel', REFERENCE_KERNEL, '--source', join(SRC, 'vmlinux-statics.c'), '--name', 'n'.repeat(56)]);
    expect(name.status).toBe(17);
    expect(name.stderr).toContain(`--name '${'n'.repeat(56)}' is 56 characters; the kernel's limit is 55`);
    for (const r of [mod, sym, name]) expect(r.stderr).not.toContain('Compiling');
    expect(readdirSync(dir).filter((f) => f.endsWith('.ko'))).toEqual([]); // (the hinted build wrote into hinted/)
  });
});
