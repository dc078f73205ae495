// SPDX-License-Identifier: GPL-2.0-only
/**
 * The host commands through the real CLI on this machine (no VM): the parts
 * that need no livepatch-capable kernel: install / uninstall / info of a file,
 * boot with nothing installed, force without --yes, and refusals with their
 * exit codes. The VM tests (host.vm.test.ts, persist.vm.test.ts) do the rest
 * in the real kernel.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { suture } from '../helpers/cli.js';
import { buildFakePatches } from './fake-kernel.js';

let ko: (n: string) => string;
const state = mkdtempSync(join(tmpdir(), 'suture-cli-state-'));
const env = { ...process.env, SUTURE_STATE_DIR: state, SUTURE_RUN_DIR: join(state, 'run'), SUTURE_KEYS_DIR: join(state, 'no-keys.d') };

// The CLI under test is the dist/ that `npm test` builds first (building here timed out under load).
beforeAll(() => {
  ko = buildFakePatches();
}, 120_000);

describe('host commands (CLI, no kernel needed)', () => {
  it('install keeps the file for the release its vermagic names; uninstall removes it', () => {
    const r = suture(['install', '--allow-unsigned', '--json', ko('fake_patch')], { env });
    expect(r.status).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j).toMatchObject({ command: 'install', release: '6.1.0-56-amd64', name: 'fake_patch', order: ['fake_patch'] });
    expect(existsSync(join(state, 'kernels/6.1.0-56-amd64/fake_patch.ko'))).toBe(true);
    const u = suture(['uninstall', 'fake_patch', '--release', '6.1.0-56-amd64'], { env });
    expect(u.status).toBe(0);
    expect(u.stdout).toBe('uninstalled fake_patch for 6.1.0-56-amd64\n');
    const again = suture(['uninstall', 'fake_patch', '--release', '6.1.0-56-amd64'], { env });
    expect(again.status).toBe(10);
    expect(again.stderr).toMatch(/^suture: no patch named fake_patch is installed for 6\.1\.0-56-amd64\n/);
  });

  it('info of a file shows its structure and why it would not load here', () => {
    const r = suture(['info', ko('fake_cumulative')], { env });
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('replace      yes (cumulative: replaces every loaded patch)');
    expect(r.stdout).toContain('  vmlinux: meminfo_proc_show,2 -> new_meminfo_show');
    expect(r.stdout).toContain('CVEs         CVE-0000-0010, CVE-0000-0011, CVE-0000-0012');
    expect(r.stdout).toMatch(/here +would be refused: /);
  });

  it.each([
    [['load', '/nonexistent/fix.ko'], 10, /^suture: reading a patch: \/nonexistent\/fix\.ko does not exist$/m],
    [['load', 'PATCH'], 37, /^suture: .*fake_patch\.ko is a bare module, not a signed bundle: suture loads only bundles signed by a key this host trusts \(.*no-keys\.d\); nothing was loaded\n  hint: .*--allow-unsigned$/m],
    [['install', 'PATCH'], 37, /fake_patch\.ko is a bare module, not a signed bundle/],
    [['load', 'GARBAGE'], 37, /garbage\.ko is not a signed bundle \(nor a kernel module\); nothing was loaded/],
    [['load', '--allow-unsigned', 'GARBAGE'], 11, /is not a kernel module/],
    [['load', '--allow-unsigned', 'PLAIN'], 11, /fake_plain\.ko is not a livepatch module \(its \.modinfo has no livepatch=Y\)/],
    [['install', '--allow-unsigned', 'PLAIN'], 11, /fake_plain\.ko is not a livepatch module/],
    [['replace', '--allow-unsigned', 'PATCH'], 11, /fake_patch\.ko is not a cumulative patch \(its klp_patch has replace = false\)/],
    [['unload', 'nothing_here'], 10, /^suture: no livepatch named nothing_here is loaded/],
    [['load', '--timeout', 'soon', 'PATCH'], 2, /--timeout must be a number of seconds/],
  ])('suture %j exits %i with one line', (args, code, re) => {
    const map: Record<string, string> = { GARBAGE: ko('garbage'), PLAIN: ko('fake_plain'), PATCH: ko('fake_patch') };
    const r = suture(args.map((a) => map[a] ?? a), { env });
    expect(r.status).toBe(code);
    expect(r.stderr).toMatch(re);
    expect(r.stderr).not.toContain('==>');
    expect(r.stdout).toBe('');
  });

  it('--json refusals print one error object with the exit code', () => {
    const r = suture(['load', '--allow-unsigned', '--json', ko('fake_plain')], { env });
    expect(r.status).toBe(11);
    expect(JSON.parse(r.stdout).error).toMatchObject({ kind: 'invalid-input', exitCode: 11 });
  });

  it('force without --yes explains and exits 2', () => {
    const r = suture(['force', 'some_patch'], { env });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('suture force some_patch writes 1 to /sys/kernel/livepatch/some_patch/force');
    expect(r.stderr).toContain('To force it: suture force some_patch --yes');
  });

  it('boot with nothing installed for the running kernel marks the boot done', () => {
    const r = suture(['boot', '--json'], { env });
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ command: 'boot', items: [], exitCode: 0 });
  });

  it('uname without flags prints the effective version (the kernel release when it shows none)', () => {
    const r = suture(['uname', '--json'], { env });
    expect(r.status).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.release).toBe(execFileSync('uname', ['-r'], { encoding: 'utf8' }).trim());
    expect(suture(['uname', '-r'], { env }).stdout.trim()).toBe(j.release);
  });
});
