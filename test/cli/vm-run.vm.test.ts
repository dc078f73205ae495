// SPDX-License-Identifier: GPL-2.0-only
/**
 * `suture vm run` and the first proof: a hand-written livepatch of
 * cmdline_proc_show, built with kbuild against the fetched headers, loaded into
 * the real Debian 6.1 kernel under QEMU. The guest's own output is the judge.
 */
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ensureKernel, REFERENCE_KERNEL } from '../helpers/kernel.js';
import { buildFixtureModule } from '../helpers/modules.js';
import { suture, sutureJson } from '../helpers/cli.js';
import { runVm } from '../../src/vm/run.js';

const K = ['--kernel', REFERENCE_KERNEL];
const LP = '/sys/kernel/livepatch/livepatch_cmdline';
const MARKER = 'suture-fixture: cmdline_proc_show is live patched';
let ko: string;

describe('suture vm run', () => {
  beforeAll(async () => {
    const meta = await ensureKernel();
    ko = await buildFixtureModule(meta, 'livepatch-cmdline');
  });

  it('vm run --exec "uname -r" prints the kernel release on stdout and exits 0', () => {
    const r = suture(['vm', 'run', ...K, '--exec', 'uname -r']);
    expect(r.stderr).toContain('guest up in');
    expect(r.stdout).toBe('6.1.0-56-amd64\n');
    expect(r.status).toBe(0);
  });

  it('vm run --load: the livepatch replaces /proc/cmdline, sysfs agrees, disable restores it, rmmod succeeds', () => {
    const { status, json } = sutureJson([
      'vm', 'run', ...K,
      '--load', ko,
      '--exec', 'cat /proc/cmdline',
      '--exec', `echo enabled=$(cat ${LP}/enabled) transition=$(cat ${LP}/transition) patched=$(cat ${LP}/vmlinux/patched); ls ${LP}/vmlinux`,
      '--exec', `echo 0 > ${LP}/enabled; i=0; while [ -d ${LP} ] && [ $i -lt 1000 ]; do sleep 0.01; i=$((i+1)); done; [ -d ${LP} ] && echo still-there; cat /proc/cmdline`,
      '--exec', 'rmmod livepatch_cmdline && echo rmmod-ok; grep -c livepatch_cmdline /proc/modules',
      '--exec', 'cat /proc/sys/kernel/tainted',
    ]);
    expect(json.outcome, JSON.stringify(json, null, 1)).toBe('command-failed'); // grep -c finds 0 lines: status 1
    expect(status).toBe(1);
    const [cmdline, sysfs, disabled, rmmod, tainted] = json.commands;
    expect(json.loads[0].status).toBe(0);
    expect(json.loads[0].patch).toBe('livepatch_cmdline');
    expect(json.loads[0].output).toContain('enabled 1');
    expect(json.loads[0].kernelTransitionMs).toBeGreaterThan(0);
    expect(cmdline.output).toBe(`${MARKER}\n`);
    // <obj>/ holds one directory per function (name,sympos; sympos 0 shows as 1) and the patched file.
    expect(sysfs.output).toBe('enabled=1 transition=0 patched=1\ncmdline_proc_show,1\npatched\n');
    expect(disabled.output).not.toContain('still-there');
    expect(disabled.output).toMatch(/^console=ttyS0/);
    expect(disabled.output).not.toContain(MARKER);
    expect(rmmod.output).toBe('rmmod-ok\n0\n');
    // TAINT_LIVEPATCH (bit 15) stays set after unload, as the kernel documents.
    expect(Number(tainted.output) & (1 << 15)).toBeTruthy();
    expect(json.livepatchLog.join('\n')).toMatch(/'livepatch_cmdline': patching complete/);
    expect(json.livepatchLog.join('\n')).toMatch(/'livepatch_cmdline': unpatching complete/);
  });

  it('vm run --load of a module with a wrong vermagic is refused with the kernel\'s reason', () => {
    const bad = join(mkdtempSync(join(tmpdir(), 'suture-vermagic-')), 'livepatch-cmdline.ko');
    const bytes = readFileSync(ko);
    const at = bytes.indexOf('SMP preempt mod_unload');
    expect(at).toBeGreaterThan(0);
    bytes.write('SMP preemxt mod_unload', at, 'latin1');
    writeFileSync(bad, bytes);
    const r = suture(['vm', 'run', ...K, '--load', bad, '--exec', 'echo never']);
    expect(r.status).toBe(22);
    expect(r.stdout).not.toContain('never');
    expect(r.stderr).toMatch(/load livepatch-cmdline\.ko failed: .*version magic '6\.1\.0-56-amd64 SMP preemxt mod_unload modversions ' should be '6\.1\.0-56-amd64 SMP preempt mod_unload modversions '/);
  });

  it('vm run reports a guest kernel panic as a panic, with the console', () => {
    const { status, json } = sutureJson(['vm', 'run', ...K, '--exec', 'echo c > /proc/sysrq-trigger', '--exec', 'echo after']);
    expect(status).toBe(20);
    expect(json.outcome).toBe('crash');
    expect(json.crash.kind).toBe('panic');
    expect(json.crash.line).toContain('Kernel panic - not syncing: sysrq triggered crash');
    expect(json.runningStep).toBe('echo c > /proc/sysrq-trigger');
    expect(json.consoleTail.join('\n')).toContain('sysrq triggered crash');
    expect(json.commands[1].status).toBeNull();
  });

  it('vm run reports a guest that hangs as a timeout naming the running command', () => {
    const { status, json } = sutureJson(['vm', 'run', ...K, '--timeout', '25', '--exec', 'sleep 600']);
    expect(status).toBe(21);
    expect(json.outcome).toBe('timeout');
    expect(json.reason).toContain('running: sleep 600');
  });

  it('vm run --kmod loads the kernel\'s own module with its dependencies, in order', () => {
    const { status, json } = sutureJson(['vm', 'run', ...K, '--kmod', 'ext4', '--exec', "cut -d' ' -f1 /proc/modules | sort"]);
    expect(status, JSON.stringify(json.kmods)).toBe(0);
    // modules.softdep: ext4 and jbd2 want crypto-crc32c first (its generic implementation), then the hard dependencies.
    expect(json.kmods.map((k: { label: string }) => k.label)).toEqual(['insmod crc32c_generic', 'insmod crc16', 'insmod mbcache', 'insmod jbd2', 'insmod ext4']);
    expect(json.commands[0].output.split('\n')).toEqual(expect.arrayContaining(['crc16', 'crc32c_generic', 'ext4', 'jbd2', 'mbcache']));
  });

  it('vm run --script runs a script file and --module places a file without loading it', () => {
    const script = join(mkdtempSync(join(tmpdir(), 'suture-script-')), 'check.sh');
    writeFileSync(script, 'set -e\nls /modules\ngrep -c livepatch_cmdline /proc/modules || true\n');
    const { status, json } = sutureJson(['vm', 'run', ...K, '--module', ko, '--exec', 'echo first', '--script', script]);
    expect(status).toBe(0);
    expect(json.commands.map((c: { output: string }) => c.output)).toEqual(['first\n', 'livepatch-cmdline.ko\n0\n']);
  });

  it('vm run --load of an ordinary module (not a livepatch) is refused before booting (exit 11)', async () => {
    const meta = await ensureKernel();
    const binfmt = join(meta.paths.modules, 'kernel/fs/binfmt_misc.ko');
    const r = suture(['vm', 'run', ...K, '--load', binfmt]);
    expect(r.status).toBe(11);
    expect(r.stderr).toContain('binfmt_misc.ko is not a livepatch module (its .modinfo has no livepatch=Y)');
    expect(r.stderr).not.toContain('booting');
  });

  it('vm run --kmod of a module the kernel does not have is refused before booting (exit 10)', () => {
    const r = suture(['vm', 'run', ...K, '--kmod', 'ext5']);
    expect(r.status).toBe(10);
    expect(r.stderr).toContain('the kernel has no module named ext5');
    expect(r.stderr).toMatch(/hint: did you mean: .*ext4/);
  });

  it('a guest stopped on purpose before it printed anything (a proof\'s boot without the patch) does not mark KVM as hanging', async () => {
    // With a usable /dev/kvm, auto picks KVM and QEMU is killed before the guest prints a byte: that is the
    // caller's doing, not KVM's, so the state dir gets no kvm-hangs mark (later runs keep KVM) and nothing throws.
    const meta = await ensureKernel();
    const stateDir = mkdtempSync(join(tmpdir(), 'suture-vmstate-'));
    const stop = new AbortController();
    stop.abort();
    const r = await runVm({ kernelImage: meta.paths.vmlinuz, kmods: [], loads: [], commands: [{ label: 'never', script: 'true' }], stateDir, signal: stop.signal });
    expect(r.outcome).not.toBe('ok');
    expect(existsSync(join(stateDir, 'kvm-hangs'))).toBe(false);
  });

  it('vm run without qemu installed says how to install it', () => {
    const r = suture(['vm', 'run', ...K, '--exec', 'true'], { env: { ...process.env, PATH: '/nonexistent' } });
    expect(r.status).toBe(12);
    expect(r.stderr).toContain('qemu-system-x86_64 is not installed');
    expect(r.stderr).toContain('apt-get install qemu-system-x86');
  });
});
