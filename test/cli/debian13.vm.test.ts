// SPDX-License-Identifier: GPL-2.0-only
/**
 * Debian 13's kernel end to end, in one boot: livepatches built with
 * `suture build --source` (a static function and static data of vmlinux; the
 * statics of binfmt_misc, a module shipped as .ko.xz) and from a patch (a
 * cumulative pair for replace), then the host commands run by suture itself
 * inside the 6.12 guest (`vm run --with-suture`): load, list --json, status,
 * info, replace (6.12's sysfs shows `replace`), unload, install and boot;
 * and list of a patch loaded behind suture's back (replace read from sysfs).
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { sutureJson } from '../helpers/cli.js';
import { ensureKernel, FIXTURES, TRIXIE_KERNEL } from '../helpers/kernel.js';

const K = ['--kernel', TRIXIE_KERNEL];
const CMDLINE_PATCH = join(import.meta.dirname, '..', 'patches', 'debian-6.12.117+deb13', '01-proc-cmdline-string', 'fix.patch');
let out: string;
const builds: Record<string, { status: number | null; json: any; stderr: string }> = {};
let guest: { status: number | null; json: any };
const parts: Record<string, string[]> = {};

const STEPS: [string, string][] = [
  ['before', 'head -1 /proc/filesystems; cat /proc/sys/fs/binfmt_misc/status'],
  ['load', 'suture load --allow-unsigned /modules/lp_statics.ko --json; echo @@; suture load --allow-unsigned /modules/lp_binfmt.ko --json; echo @@; head -1 /proc/filesystems; cat /proc/sys/fs/binfmt_misc/status'],
  ['list', 'suture list --json; echo @@; suture status --json; echo @@; suture info lp_binfmt --json'],
  ['replace', 'suture load --allow-unsigned /modules/lp_cmdline_v1.ko --json; echo @@; cat /proc/cmdline; echo @@; suture replace --allow-unsigned /modules/lp_cmdline_v2.ko --json; echo @@; cat /proc/cmdline; echo @@; ls /sys/kernel/livepatch; echo @@; cat /sys/kernel/livepatch/lp_cmdline_v2/replace'],
  ['unload', 'suture unload lp_cmdline_v2 --json; echo @@; ls /sys/kernel/livepatch; echo @@; head -1 /proc/filesystems; cat /proc/cmdline'],
  ['persist', 'suture install --allow-unsigned /modules/lp_cmdline_v1.ko --json; echo @@; suture boot --json; echo @@; cat /proc/cmdline; echo @@; suture list --json'],
  // Loaded behind suture's back (no record of it): whether it is cumulative comes from 6.12's sysfs alone.
  ['foreign', 'insmod /modules/lp_cmdline_v2.ko; i=0; while [ "$(cat /sys/kernel/livepatch/lp_cmdline_v2/transition)" != 0 ] && [ $i -lt 500 ]; do sleep 0.02; i=$((i+1)); done; suture list --json'],
];

beforeAll(async () => {
  await ensureKernel(TRIXIE_KERNEL);
  out = mkdtempSync(join(tmpdir(), 'suture-debian13-'));
  const build = (name: string, args: string[]) => {
    builds[name] = sutureJson(['build', ...K, ...args, '--name', name, '-o', join(out, `${name}.ko`)], { timeoutMs: 900_000 });
  };
  build('lp_statics', ['--source', join(FIXTURES, 'source', 'vmlinux-statics.c')]);
  build('lp_binfmt', ['--source', join(FIXTURES, 'source', 'module-binfmt-6.12.c')]);
  build('lp_cmdline_v1', [CMDLINE_PATCH]);
  const v2 = join(out, 'cmdline-v2.patch');
  writeFileSync(v2, readFileSync(CMDLINE_PATCH, 'utf8').replace('" suture-fixed"', '" suture-fixed-v2"'));
  build('lp_cmdline_v2', [v2, '--replace']);
  for (const [n, b] of Object.entries(builds)) if (b.status !== 0) throw new Error(`building ${n} failed (${b.status}): ${b.stderr}`);
  const args = ['vm', 'run', ...K, '--with-suture', '--kmod', 'binfmt_misc', '--timeout', '900'];
  for (const n of Object.keys(builds)) args.push('--module', join(out, `${n}.ko`));
  args.push('--exec', 'mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc');
  for (const [, script] of STEPS) args.push('--exec', script);
  guest = sutureJson(args, { timeoutMs: 1_100_000 });
  STEPS.forEach(([name], i) => {
    parts[name] = (guest.json.commands?.[i + 1]?.output ?? '').split(/^@@\n/m);
  });
}, 1_800_000);

const json = (text: string | undefined) => {
  try {
    return JSON.parse(text ?? '');
  } catch {
    throw new Error(`not JSON:\n${text}`);
  }
};

describe('Debian 13 (6.12): build --source and the host commands', () => {
  it('--source resolves statics of vmlinux and of a .ko.xz module through klp relocations', () => {
    const refs = (n: string) => JSON.stringify(builds[n]!.json);
    expect(refs('lp_statics')).toMatch(/file_systems_lock/);
    expect(refs('lp_statics')).toMatch(/__get_fs_type/);
    expect(refs('lp_binfmt')).toMatch(/scanarg/);
    expect(refs('lp_binfmt')).toMatch(/bm_fs_type/);
  });

  it('the guest ran every step', () => {
    expect(guest.json.outcome, JSON.stringify({ reason: guest.json.reason, tail: guest.json.consoleTail }, null, 1)).toBe('ok');
    expect(guest.status).toBe(0);
    expect(guest.json.dmesg.join('\n')).not.toMatch(/Oops|BUG:|WARNING:/);
  });

  it('load: both patches behave, vmlinux and the module', () => {
    expect(parts.before!.join('')).toMatch(/^nodev\tsysfs\nenabled\n$/);
    expect(json(parts.load![0]).patch ?? json(parts.load![0]).name).toBe('lp_statics');
    expect(parts.load![2]).toMatch(/^suture-statics: \d+ filesystems, __get_fs_type\(proc\)=proc\nsuture-module: binfmt_misc, scanarg cut "right" from "left"\n$/);
  });

  it('list, status and info read 6.12\'s livepatch sysfs', () => {
    const list = json(parts.list![0]);
    const names = (Array.isArray(list) ? list : list.patches).map((p: { name: string }) => p.name).sort();
    expect(names).toEqual(['lp_binfmt', 'lp_statics']);
    const info = json(parts.list![2]);
    expect(JSON.stringify(info)).toMatch(/binfmt_misc/);
    expect(JSON.stringify(json(parts.list![1]))).toMatch(/lp_statics/);
  });

  it('replace: the cumulative patch takes over and every other patch is gone', () => {
    expect(parts.replace![1]).toMatch(/ suture-fixed\n$/);
    expect(parts.replace![3]).toMatch(/ suture-fixed-v2\n$/);
    expect(parts.replace![4]!.trim().split(/\s+/)).toEqual(['lp_cmdline_v2']);
    expect(parts.replace![5]!.trim()).toBe('1');
  });

  it('unload, then install + boot load it again', () => {
    expect(parts.unload![1]!.trim()).toBe('');
    expect(parts.unload![2]).toMatch(/^nodev\tsysfs\nconsole=/);
    expect(parts.unload![2]).not.toMatch(/suture-fixed/);
    expect(parts.persist![2]).toMatch(/ suture-fixed\n$/);
    expect(JSON.stringify(json(parts.persist![3]))).toMatch(/lp_cmdline_v1/);
  });

  it('list reads replace from the kernel for a patch suture did not load', () => {
    const list = json(parts.foreign![0]);
    const v2 = (Array.isArray(list) ? list : list.patches).find((p: { name: string }) => p.name === 'lp_cmdline_v2');
    expect(v2).toMatchObject({ loadedBySuture: false, replace: true, enabled: true });
  });
});
