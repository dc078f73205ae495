// SPDX-License-Identifier: GPL-2.0-only
/**
 * install + boot across real reboots of the guest, with suture's state on a
 * disk image that outlives each boot (vm run --disk, mounted on
 * /var/lib/suture), and the crash-loop guard across a boot that crashes
 * while `suture boot` is still loading.
 */
import { copyFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { sutureJson } from '../helpers/cli.js';
import { ensureKernel, REFERENCE_KERNEL } from '../helpers/kernel.js';
import { buildFixtureModule } from '../helpers/modules.js';

const M = '/modules';
const LP = '/sys/kernel/livepatch';
const CMDLINE_MARKER = 'suture-fixture: cmdline_proc_show is live patched\n';

let dir: string;
let disk: string;
const mods: Record<string, string> = {};

function boot(steps: string[], timeoutSec = 900): { status: number | null; json: any; parts: string[][] } {
  const args = ['vm', 'run', '--kernel', REFERENCE_KERNEL, '--with-suture', '--timeout', String(timeoutSec), '--disk', disk, '--disk-mount', '/var/lib/suture'];
  for (const m of Object.values(mods)) args.push('--module', m);
  for (const s of steps) args.push('--exec', s);
  const { status, json } = sutureJson(args, { timeoutMs: (timeoutSec + 120) * 1000 });
  if (json.error) throw new Error(`vm run failed: ${JSON.stringify(json.error)}`);
  const parts = steps.map((_, i) => String(json.commands?.[i]?.output ?? '').split(/^@@\n/m));
  return { status, json, parts };
}

const j = (t: string | undefined) => JSON.parse(t ?? '');

beforeAll(async () => {
  const meta = await ensureKernel();
  dir = mkdtempSync(join(tmpdir(), 'suture-persist-vm-'));
  disk = join(dir, 'state.img');
  for (const n of ['livepatch-cmdline', 'suture-stall-target', 'livepatch-stall']) {
    mods[n] = join(dir, `${n}.ko`);
    copyFileSync(await buildFixtureModule(meta, n), mods[n]!);
  }
}, 1_800_000);

describe('install and boot across real reboots, and the crash-loop guard', () => {
  const ids: string[] = [];

  it('boot 1: install two patches, suture boot loads them and marks the boot finished', () => {
    const r = boot([
      `suture install --json ${M}/livepatch-cmdline.ko; echo @@; suture install --json ${M}/livepatch-stall.ko`,
      'suture boot --json; echo @@; cat /proc/cmdline; echo @@; cat /proc/sys/kernel/random/boot_id; echo @@; cat /var/lib/suture/boot.json',
    ]);
    expect(r.json.outcome, r.json.reason).toBe('ok');
    expect(r.json.disk.status).toBe(0);
    const [i1, i2] = r.parts[0]!.map(j);
    expect(i1).toMatchObject({ release: '6.1.0-56-amd64', name: 'livepatch_cmdline', path: '/var/lib/suture/kernels/6.1.0-56-amd64/livepatch_cmdline.ko', order: ['livepatch_cmdline'] });
    expect(i2.order).toEqual(['livepatch_cmdline', 'livepatch_stall']);
    const [b, cmdline, bootId, record] = r.parts[1]!;
    expect(j(b)).toMatchObject({ exitCode: 0, items: [{ name: 'livepatch_cmdline', outcome: 'loaded' }, { name: 'livepatch_stall', outcome: 'loaded' }] });
    expect(cmdline).toBe(CMDLINE_MARKER);
    ids.push(bootId!.trim());
    expect(j(record)).toMatchObject({ bootId: ids[0], phase: 'done', patches: ['livepatch_cmdline', 'livepatch_stall'], failed: [] });
  });

  it('boot 2: a fresh kernel has none loaded; suture boot loads what boot 1 installed', () => {
    const r = boot([
      'suture status --json; echo @@; cat /proc/cmdline',
      'suture boot --json; echo @@; cat /proc/cmdline; echo @@; cat /proc/sys/kernel/random/boot_id; echo @@; cat /var/lib/suture/boot.json; echo @@; suture list --json',
    ]);
    expect(r.json.outcome, r.json.reason).toBe('ok');
    const [status, before] = r.parts[0]!;
    const s = j(status);
    expect(s.patches).toEqual([]);
    expect(s.installed.map((i: { name: string; loaded: boolean }) => [i.name, i.loaded])).toEqual([
      ['livepatch_cmdline', false],
      ['livepatch_stall', false],
    ]);
    expect(s.attention).toContain('livepatch_cmdline is installed for 6.1.0-56-amd64 but not loaded');
    expect(before).toMatch(/^console=ttyS0/);
    const [b, cmdline, bootId, record, list] = r.parts[1]!;
    expect(j(b).items.map((i: { outcome: string }) => i.outcome)).toEqual(['loaded', 'loaded']);
    expect(cmdline).toBe(CMDLINE_MARKER);
    ids.push(bootId!.trim());
    expect(ids[1]).not.toBe(ids[0]);
    expect(j(record)).toMatchObject({ bootId: ids[1], phase: 'done' });
    expect(j(list).patches.map((p: { name: string; installed: boolean }) => [p.name, p.installed])).toEqual([
      ['livepatch_cmdline', true],
      ['livepatch_stall', true],
    ]);
  });

  it('boot 3: the machine crashes while suture boot is still loading (a transition held up)', () => {
    const r = boot([
      // a reader sleeps in the function livepatch_stall replaces, so suture boot waits on its transition
      `insmod ${M}/suture-stall-target.ko && echo hold > /proc/suture_stall && { cat /proc/suture_stall >/tmp/reader.out 2>&1 </dev/null & }; ` +
        `sleep 1; suture boot --timeout 0 >/tmp/boot.out 2>&1 </dev/null & ` +
        `i=0; while [ "$(cat ${LP}/livepatch_stall/transition 2>/dev/null)" != 1 ] && [ $i -lt 6000 ]; do sleep 0.01; i=$((i+1)); done; ` +
        `cat /var/lib/suture/boot.json; echo @@; cat /proc/sys/kernel/random/boot_id; echo @@; cat /proc/cmdline`,
      'echo c > /proc/sysrq-trigger',
      'echo never reached',
    ]);
    expect(r.status).toBe(20);
    expect(r.json.outcome).toBe('crash');
    const [record, bootId, cmdline] = r.parts[0]!;
    ids.push(bootId!.trim());
    expect(j(record)).toMatchObject({ bootId: ids[2], phase: 'loading', patches: ['livepatch_cmdline', 'livepatch_stall'] });
    expect(cmdline).toBe(CMDLINE_MARKER);
  });

  it('boot 4: the guard trips: suture boot loads nothing, says why and how to clear it (exit 35), until cleared', () => {
    const r = boot([
      'suture boot >/tmp/b.out 2>/tmp/b.err; echo "rc=$?"; echo @@; cat /tmp/b.err; echo @@; ls ' + LP + ' | wc -l; echo @@; cat /proc/cmdline',
      'suture boot >/dev/null 2>&1; echo "rc=$?"; echo @@; suture status --json',
      'suture boot --clear-guard; echo @@; suture boot --json; s=$?; echo @@; echo "rc=$s"; echo @@; cat /proc/cmdline; echo @@; cat /var/lib/suture/boot.json',
    ]);
    expect(r.json.outcome, r.json.reason).toMatch(/^(ok|command-failed)$/);
    const [rc, err, count, cmdline] = r.parts[0]!;
    expect(rc).toBe('rc=35\n');
    expect(err).toMatch(
      new RegExp(`^suture: crash-loop guard: the boot of \\S+ \\(boot id ${ids[2]}\\) started loading livepatch_cmdline, livepatch_stall and never finished, so suture boot loads nothing\\n  hint: .*suture boot --clear-guard\\n$`),
    );
    expect(count).toBe('0\n');
    expect(cmdline).toMatch(/^console=ttyS0/);
    const [rc2, status] = r.parts[1]!;
    expect(rc2).toBe('rc=35\n');
    const s = j(status);
    expect(s.boot.guard).toMatchObject({ previous: { bootId: ids[2], phase: 'loading' } });
    expect(s.attention).toContain('the crash-loop guard has tripped: suture boot loads nothing until it is cleared (suture boot --clear-guard)');
    const [cleared, b, rc3, cmdline3, record] = r.parts[2]!;
    expect(cleared).toMatch(/^crash-loop guard cleared \(it tripped at \S+\)/);
    expect(j(b).items.map((i: { outcome: string }) => i.outcome)).toEqual(['loaded', 'loaded']);
    expect(rc3).toBe('rc=0\n');
    expect(cmdline3).toBe(CMDLINE_MARKER);
    expect(j(record)).toMatchObject({ phase: 'done', patches: ['livepatch_cmdline', 'livepatch_stall'] });
  });
});
