// SPDX-License-Identifier: GPL-2.0-only
/**
 * Kernel symbols and sympos on the real debian:6.1.0-56-amd64 workspace:
 * the kallsyms captured at fetch, the headers' Module.symvers, binfmt_misc's
 * symtab and the shipped image. No guest boots (it is in the vm project
 * because it reads the fetched kernel).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import {
  candidatesOf,
  checkPatchable,
  codeReferences,
  resolveSymbol,
  vmlinuxFtraceSite,
  workspaceSymbolSources,
  type SymbolSources,
} from '../../src/kernel/symbols/mod.js';
import type { SutureError } from '../../src/util/errors.js';
import { ensureKernel } from '../helpers/kernel.js';

let src: SymbolSources;
const both = ['vmlinux', 'binfmt_misc'];
const ref = (name: string, anchors: string[] = [], objects = both) =>
  resolveSymbol(src, { name, objects, role: 'referenced', anchors: anchors.flatMap((a) => candidatesOf(src, a, objects)), usedBy: 'test' });

describe('symbols of debian:6.1.0-56-amd64', () => {
  beforeAll(async () => {
    const meta = await ensureKernel();
    src = await workspaceSymbolSources(meta, ['binfmt_misc']);
  });

  it('reads the whole capture, the exports and the image (linux_banner agrees)', () => {
    expect(src.vmlinux.size).toBeGreaterThan(94_000);
    expect(src.exports.size).toBeGreaterThan(24_000);
    expect(src.exports.vmlinux('seq_printf')).toMatchObject({ exportType: 'EXPORT_SYMBOL' });
    expect(src.exports.vmlinux('klp_enable_patch')).toMatchObject({ exportType: 'EXPORT_SYMBOL_GPL' });
    expect(src.image!.mcount.size).toBeGreaterThan(40_000);
    expect(src.image!.image.cString(src.vmlinux.first('linux_banner')!.address)).toMatch(/^Linux version 6\.1\.0-56-amd64 /);
  });

  it('sympos follows kallsyms order within vmlinux: 0 when unique, else the address rank', () => {
    expect(src.vmlinux.sympos(src.vmlinux.first('cmdline_proc_show')!)).toBe(0);
    const copies = src.vmlinux.named('m_show');
    expect(copies).toHaveLength(2);
    expect(copies[0]!.address < copies[1]!.address).toBe(true);
    expect(copies.map((e) => src.vmlinux.sympos(e))).toEqual([1, 2]);
    expect(src.vmlinux.named('version_show')).toHaveLength(4);
  });

  it('a duplicated static is resolved by its translation unit', () => {
    // kernel/module/procfs.c: modules_open sits right after its m_start/m_next/m_stop/m_show.
    for (const n of ['m_show', 'm_start', 'm_next', 'm_stop']) {
      const r = ref(n, ['modules_open']);
      expect(r, n).toMatchObject({ object: 'vmlinux', sympos: 1, how: 'adjacent' });
      expect(src.vmlinux.neighbours(r.candidate!.entry!, 6).after.map((e) => e.name)).toContain('modules_open');
    }
    // kernel/time/timer_list.c: timer_list_show's own code calls the second print_cpu.
    expect(ref('print_cpu', ['timer_list_show'])).toMatchObject({ sympos: 2, how: 'referenced' });
    expect(ref('print_cpu', ['sysrq_timer_list_show'])).toMatchObject({ sympos: 2, how: 'referenced' });
  });

  it('without anything of the same file, a duplicated name is refused with every copy', () => {
    try {
      ref('s_show');
      expect.unreachable();
    } catch (e) {
      const err = e as SutureError;
      expect(err.kind).toBe('ambiguous');
      expect(err.details!.split('\n')).toHaveLength(4);
      expect(err.details).toContain('t s_show  (after s_stop, get_symbol_pos; before bpf_iter_ksym_seq_stop');
    }
  });

  it('code references read from the image match what the source says', () => {
    const show = src.vmlinux.first('filesystems_proc_show')!;
    const targets = ['file_systems', 'file_systems_lock', 'seq_printf', 'cmdline_proc_show'].map((n) => src.vmlinux.first(n)!);
    expect([...codeReferences(src.image!.image, src.vmlinux, show, targets)].map((e) => e.name).sort()).toEqual([
      'file_systems',
      'file_systems_lock',
      'seq_printf',
    ]);
  });

  it('ftrace call sites: traceable, notrace, built without ftrace, __init', () => {
    const site = (n: string) => vmlinuxFtraceSite(src.image!.image, src.vmlinux, src.image!.mcount, src.vmlinux.first(n)!);
    expect(site('cmdline_proc_show')).toMatchObject({ fentryCall: true, mcountLoc: true });
    expect(site('native_sched_clock')).toMatchObject({ fentryCall: false, mcountLoc: false });
    expect(site('sort')).toMatchObject({ fentryCall: false, mcountLoc: false });
    const patchable = (n: string, objs = ['vmlinux']) => checkPatchable(src, candidatesOf(src, n, objs)[0]!);
    expect(patchable('start_kernel')).toMatchObject({ ok: false, reason: 'start_kernel is __init code: it is freed after boot' });
    expect(patchable('file_systems')).toMatchObject({ ok: false, reason: "file_systems is not a function (kallsyms type 'b')" });
    expect(patchable('bm_status_read', ['binfmt_misc'])).toMatchObject({ ok: true });
    expect(patchable('init_misc_binfmt', ['binfmt_misc'])).toMatchObject({ ok: false });
  });

  it('binfmt_misc: its statics are found in its symtab, sympos 0, and told apart from vmlinux', () => {
    expect(ref('enabled', ['bm_status_read'])).toMatchObject({ object: 'binfmt_misc', sympos: 0, how: 'unique' });
    expect(ref('scanarg')).toMatchObject({ object: 'binfmt_misc', sympos: 0 });
    const mod = src.modules.get('binfmt_misc')!;
    const refs = [...mod.referencesFrom(mod.named('bm_status_read')[0]!)].map((s) => s.name);
    expect(refs).toContain('enabled');
    expect(mod.sympos(mod.named('scanarg')[0]!)).toEqual({ loading: 0, live: 0 });
  });
});
