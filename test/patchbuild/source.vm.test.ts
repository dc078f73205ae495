// SPDX-License-Identifier: GPL-2.0-only
/**
 * `suture build --source`, proven in the real Debian 6.1 kernel. Four fixes
 * from test/fixtures/source are built with the CLI (--json), then one guest
 * boot loads all four and checks each by what userspace sees:
 *
 * - vmlinux-statics.c: /proc/filesystems from a new function that reads
 *   fs/filesystems.c's static variables and calls its static function;
 * - module-binfmt.c: binfmt_misc's status file from a new function that
 *   reads the module's static `enabled` and calls its static scanarg();
 *   loaded after the module, then (second phase) before it;
 * - duplicate-name.c: /proc/timer_list calling print_cpu, a name with two
 *   copies: the output shows which copy ran;
 * - module-export.c: a livepatch of mbcache that uses a symbol mbcache
 *   exports (a klp relocation too; modpost's CRC and depends= dropped).
 *
 * Then every patch is disabled and unloaded, and the original output is back.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ensureKernel, FIXTURES, REFERENCE_KERNEL } from '../helpers/kernel.js';
import { sutureJson } from '../helpers/cli.js';

const K = ['--kernel', REFERENCE_KERNEL];
const LP = '/sys/kernel/livepatch';
const SRC = join(FIXTURES, 'source');
const PATCHES = ['livepatch_vmlinux_statics', 'livepatch_module_binfmt', 'livepatch_duplicate_name', 'livepatch_module_export'] as const;

interface Built {
  status: number | null;
  json: any;
  stderr: string;
}

let out: string;
const built: Record<string, Built> = {};
let vm: { status: number | null; json: any };

/** Shell: wait until a livepatch's transition is over (or its directory is gone). */
const waitTransition = (p: string) => `i=0; while [ "$(cat ${LP}/${p}/transition 2>/dev/null)" = 1 ] && [ $i -lt 500 ]; do sleep 0.02; i=$((i+1)); done`;
/** Shell: disable a livepatch and wait until its sysfs directory is gone. */
const disable = (p: string) => `echo 0 > ${LP}/${p}/enabled; i=0; while [ -d ${LP}/${p} ] && [ $i -lt 1000 ]; do sleep 0.02; i=$((i+1)); done; [ -d ${LP}/${p} ] && echo "${p} still there"`;

describe('suture build --source, in the guest', () => {
  beforeAll(async () => {
    await ensureKernel();
    out = mkdtempSync(join(tmpdir(), 'suture-source-'));
    for (const f of ['vmlinux-statics', 'module-binfmt', 'duplicate-name', 'module-export']) {
      built[f] = sutureJson(['build', ...K, '--source', join(SRC, `${f}.c`), '-o', join(out, `livepatch_${f.replace(/-/g, '_')}.ko`)], { timeoutMs: 900_000 });
    }
    for (const [f, b] of Object.entries(built)) {
      if (b.status !== 0) throw new Error(`building ${f} failed (${b.status}): ${JSON.stringify(b.json)}\n${b.stderr}`);
    }
    const ko = (p: string) => join(out, `${p}.ko`);
    const status = '/proc/sys/fs/binfmt_misc/status';
    vm = sutureJson(
      [
        'vm', 'run', ...K, '--timeout', '600',
        '--kmod', 'binfmt_misc',
        '--kmod', 'mbcache',
        ...PATCHES.flatMap((p) => ['--load', ko(p)]),
        // 0-2: each patch's effect
        '--exec', 'cat /proc/filesystems',
        '--exec', `mount -t binfmt_misc none /proc/sys/fs/binfmt_misc && cat ${status} && echo 0 > ${status} && cat ${status} && echo 1 > ${status}`,
        '--exec', 'cat /proc/timer_list',
        // 3: sysfs
        '--exec', PATCHES.map((p) => `for o in ${LP}/${p}/*/; do echo "$o $(cat $o/patched) $(cd $o && ls -d *,*)"; done`).join('; '),
        // 4: disable and unload every patch
        '--exec', `${PATCHES.map(disable).join('; ')}; rmmod ${PATCHES.join(' ')} && echo rmmod-ok; grep -c livepatch_ /proc/modules || true`,
        // 5: the originals again
        '--exec', `cat /proc/filesystems; cat ${status}; head -1 /proc/timer_list`,
        // 6: late patching: the livepatch first, then binfmt_misc
        '--exec',
        [
          `umount /proc/sys/fs/binfmt_misc && rmmod binfmt_misc && echo module-gone`,
          `insmod /modules/livepatch_module_binfmt.ko && ${waitTransition('livepatch_module_binfmt')}`,
          `echo "patched-before-load=$(cat ${LP}/livepatch_module_binfmt/binfmt_misc/patched)"`,
          `insmod /kmods/0-binfmt_misc.ko && mount -t binfmt_misc none /proc/sys/fs/binfmt_misc && cat ${status}`,
          `echo "patched-after-load=$(cat ${LP}/livepatch_module_binfmt/binfmt_misc/patched)"`,
          `${disable('livepatch_module_binfmt')}; rmmod livepatch_module_binfmt && echo rmmod-ok; cat ${status}`,
        ].join(' && '),
      ],
      { timeoutMs: 900_000 },
    );
  });

  it('builds each fix and reports the functions replaced and the symbols resolved (--json)', () => {
    const statics = built['vmlinux-statics']!.json;
    expect(statics.module).toMatchObject({ name: 'livepatch_vmlinux_statics' });
    expect(statics.replaced).toEqual([
      expect.objectContaining({ object: 'vmlinux', name: 'filesystems_proc_show', sympos: 0, newFunction: 'suture_filesystems_proc_show' }),
    ]);
    const sym = (j: any, n: string) => j.symbols.find((s: any) => s.name === n);
    expect(sym(statics, 'file_systems')).toMatchObject({ object: 'vmlinux', sympos: 0, binding: 'klp', klpSymbol: '.klp.sym.vmlinux.file_systems,1' });
    expect(sym(statics, 'file_systems_lock')).toMatchObject({ object: 'vmlinux', binding: 'klp' });
    expect(sym(statics, '__get_fs_type')).toMatchObject({ object: 'vmlinux', binding: 'klp', usedBy: ['suture_filesystems_proc_show'] });
    expect(sym(statics, 'put_filesystem')).toMatchObject({ object: 'vmlinux', binding: 'klp' });
    expect(sym(statics, 'seq_printf')).toMatchObject({ object: 'vmlinux', binding: 'exported', crc: expect.any(Number) });
    expect(statics.klp.sections).toEqual([{ name: '.klp.rela.vmlinux..text', object: 'vmlinux', entries: expect.any(Number) }]);

    const mod = built['module-binfmt']!.json;
    expect(mod.replaced).toEqual([expect.objectContaining({ object: 'binfmt_misc', name: 'bm_status_read', sympos: 0 })]);
    expect(sym(mod, 'enabled')).toMatchObject({ object: 'binfmt_misc', sympos: 0, binding: 'klp', klpSymbol: '.klp.sym.binfmt_misc.enabled,1' });
    expect(sym(mod, 'scanarg')).toMatchObject({ object: 'binfmt_misc', sympos: 0, binding: 'klp' });
    // A .klp.rela.<module> section never names a vmlinux klp symbol: the fix's vmlinux symbols are all exports;
    // the one vmlinux klp section is the generated relocation clearing's (text_poke under text_mutex, generate.ts).
    expect(mod.klp.sections.map((s: any) => s.name).sort()).toEqual(['.klp.rela.binfmt_misc..text', '.klp.rela.vmlinux..text']);
    expect(mod.symbols.filter((s: any) => s.object === 'vmlinux').every((s: any) => s.binding === 'exported')).toBe(true);

    const dup = built['duplicate-name']!.json;
    expect(sym(dup, 'print_cpu')).toMatchObject({
      object: 'vmlinux',
      sympos: 2,
      binding: 'klp',
      how: 'referenced',
      why: 'the original code of timer_list_show (vmlinux) refers to this copy',
      klpSymbol: '.klp.sym.vmlinux.print_cpu,2',
    });
  });

  it('a module\'s own export is a klp relocation of that module; modpost\'s CRC and depends= are dropped', () => {
    const j = built['module-export']!.json;
    expect(j.symbols.find((s: any) => s.name === 'mb_cache_entry_touch')).toMatchObject({
      object: 'mbcache',
      sympos: 0,
      binding: 'klp',
      klpSymbol: '.klp.sym.mbcache.mb_cache_entry_touch,1',
    });
    expect(j.klp).toMatchObject({ versionsDropped: ['mb_cache_entry_touch'], dependsDropped: ['mbcache'] });
  });

  it('loads all four in the guest; each transition completes', () => {
    expect(vm.json.outcome, JSON.stringify(vm.json, null, 1).slice(0, 4000)).toBe('ok');
    expect(vm.status).toBe(0);
    expect(vm.json.kmods.map((k: any) => k.label)).toEqual(['insmod binfmt_misc', 'insmod mbcache']);
    expect(vm.json.loads.map((l: any) => [l.patch, l.status])).toEqual(PATCHES.map((p) => [p, 0]));
    for (const p of PATCHES) expect(vm.json.livepatchLog.join('\n')).toContain(`'${p}': patching complete`);
  });

  it('vmlinux: the new /proc/filesystems reads static file_systems and calls static __get_fs_type', () => {
    const lines = vm.json.commands[0].output.trimEnd().split('\n');
    const m = /^suture-statics: (\d+) filesystems, __get_fs_type\(proc\)=proc$/.exec(lines[0]);
    expect(m, lines[0]).not.toBeNull();
    // The count it read from file_systems is the length of the list the original prints after unpatching.
    const original = vm.json.commands[5].output.split('\n').filter((l: string) => /^(nodev)?\t/.test(l));
    expect(Number(m![1])).toBe(original.length);
    expect(lines.slice(1)).toEqual(original);
  });

  it('module: the new bm_status_read reads binfmt_misc\'s static enabled and calls its static scanarg', () => {
    expect(vm.json.commands[1].output).toBe(
      'suture-module: enabled, scanarg cut "right" from "left"\nsuture-module: disabled, scanarg cut "right" from "left"\n',
    );
  });

  it('duplicated name: print_cpu resolved to the copy of kernel/time/timer_list.c (copy 2), as the output shows', () => {
    const t = vm.json.commands[2].output;
    expect(t).toMatch(/^suture-duplicate: timer_list_show is live patched\nsuture-duplicate: print_cpu\(0\):\ncpu: 0\n clock 0:\n/);
    expect(t).not.toContain('cpu#0'); // what kernel/sched/debug.c's print_cpu (copy 1) prints
  });

  it('sysfs shows each object patched with its function', () => {
    expect(vm.json.commands[3].output.trim().split('\n')).toEqual([
      `${LP}/livepatch_vmlinux_statics/vmlinux/ 1 filesystems_proc_show,1`,
      `${LP}/livepatch_module_binfmt/binfmt_misc/ 1 bm_status_read,1`,
      `${LP}/livepatch_duplicate_name/vmlinux/ 1 timer_list_show,1`,
      `${LP}/livepatch_module_export/mbcache/ 1 mb_cache_count,1`,
    ]);
  });

  it('each disables and unloads cleanly, and the original functions are back', () => {
    expect(vm.json.commands[4].output).toBe('rmmod-ok\n0\n');
    const after = vm.json.commands[5].output;
    expect(after).not.toContain('suture-');
    expect(after).toMatch(/\nenabled\nTimer List Version: v0\.9\n$/);
    for (const p of PATCHES) expect(vm.json.livepatchLog.join('\n')).toContain(`'${p}': unpatching complete`);
  });

  it('module loaded after the livepatch: the kernel applies it to the loading module', () => {
    const late = vm.json.commands[6].output;
    expect(late).toBe(
      [
        'module-gone',
        'patched-before-load=0',
        'suture-module: enabled, scanarg cut "right" from "left"',
        'patched-after-load=1',
        'rmmod-ok',
        'enabled',
        '',
      ].join('\n'),
    );
    expect(vm.json.livepatchLog.join('\n')).toMatch(/applying patch 'livepatch_module_binfmt' to loading module 'binfmt_misc'/);
  });
});
