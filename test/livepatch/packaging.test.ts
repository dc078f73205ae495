// SPDX-License-Identifier: GPL-2.0-only
/** packaging/suture.service: what it runs and when, and that systemd accepts it. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const UNIT = join(import.meta.dirname, '..', '..', 'packaging', 'suture.service');

function sections(text: string): Record<string, Record<string, string[]>> {
  const out: Record<string, Record<string, string[]>> = {};
  let cur = '';
  for (const line of text.split('\n')) {
    const s = /^\[(\w+)\]$/.exec(line.trim());
    if (s) {
      cur = s[1]!;
      out[cur] = {};
      continue;
    }
    const kv = /^(\w+)=(.*)$/.exec(line.trim());
    if (kv && cur) (out[cur]![kv[1]!] ??= []).push(kv[2]!);
  }
  return out;
}

describe('suture.service', () => {
  const text = readFileSync(UNIT, 'utf8');
  const u = sections(text);

  it('runs suture boot once, early (before sysinit.target, after local file systems), and stays active', () => {
    expect(u.Service!.ExecStart).toEqual(['/usr/bin/suture boot']);
    expect(u.Service!.Type).toEqual(['oneshot']);
    expect(u.Service!.RemainAfterExit).toEqual(['yes']);
    expect(u.Unit!.DefaultDependencies).toEqual(['no']);
    expect(u.Unit!.After![0]).toContain('local-fs.target');
    expect(u.Unit!.Before![0]).toContain('sysinit.target');
    expect(u.Unit!.RequiresMountsFor).toEqual(['/var/lib/suture']);
    expect(u.Install!.WantedBy).toEqual(['sysinit.target']);
  });

  it('a clean shutdown closes the guard window (ExecStop), so only a crash trips the guard', () => {
    expect(u.Service!.ExecStop).toEqual(['/usr/bin/suture boot --shutdown']);
  });

  it('suture-guard.service watches the guard window after suture.service', () => {
    const g = sections(readFileSync(join(UNIT, '..', 'suture-guard.service'), 'utf8'));
    expect(g.Service!.ExecStart).toEqual(['/usr/bin/suture boot --watch']);
    expect(g.Unit!.After).toEqual(['suture.service']);
    expect(g.Unit!.Requisite).toEqual(['suture.service']);
  });

  it('is skipped on a kernel without livepatch, and with suture.boot=0 on the command line', () => {
    expect(u.Unit!.ConditionPathIsDirectory).toEqual(['/sys/kernel/livepatch']);
    expect(u.Unit!.ConditionKernelCommandLine).toEqual(['!suture.boot=0']);
  });

  // systemd-analyze comes with the systemd package, which scripts/setup.sh does not install: without it this check is skipped, and says so.
  const analyze = spawnSync('systemd-analyze', ['--version']).status === 0;
  if (!analyze) console.warn('packaging.test.ts: systemd-analyze is not installed (apt-get install systemd): skipping its verify of suture.service');
  it.skipIf(!analyze)('systemd-analyze verify accepts it (ExecStart pointed at a binary that exists here; --man=no: Documentation=man:suture(8) is not installed here)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'suture-unit-'));
    writeFileSync(join(dir, 'suture.service'), text.replaceAll('/usr/bin/suture boot', '/bin/true boot'));
    const r = spawnSync('systemd-analyze', ['verify', '--man=no', join(dir, 'suture.service')], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });
});
