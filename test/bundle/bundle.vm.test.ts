// SPDX-License-Identifier: GPL-2.0-only
/**
 * Signed bundles in the real Debian 6.1 kernel, with suture in the guest as
 * root (one boot; busybox has no install(1), so cp and chmod): no keys directory, an untrusted key, a changed byte,
 * another kernel build and a bare .ko are each refused with nothing loaded;
 * the good bundle loads (the patch is live), installs (its signer recorded)
 * and loads at `suture boot`; a signed revocation list then stops load,
 * install and boot. The builder side runs here, with the CLI a user runs.
 */
import { chmodSync, copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { elfGnuBuildId } from '../../src/kernel/build-id.js';
import { extractVmlinux } from '../../src/kernel/symbols/image.js';
import { suture, sutureJson } from '../helpers/cli.js';
import { ensureKernel, REFERENCE_KERNEL } from '../helpers/kernel.js';
import { buildFixtureModule } from '../helpers/modules.js';

const F = '/files';
const LP = '/sys/kernel/livepatch';
const MARKER = 'suture-fixture: cmdline_proc_show is live patched';
let dir: string;
let buildId: string;
const files: Record<string, string> = {};

const run = (args: string[]) => {
  const r = suture(args);
  if (r.status !== 0) throw new Error(`suture ${args.join(' ')}: ${r.status}\n${r.stderr}`);
  return r.stdout;
};

/** rc, stderr, stdout of a command, then what is loaded, separated by @@. */
const capture = (cmd: string, tag: string) => `${cmd} >/tmp/${tag}.out 2>/tmp/${tag}.err; echo "rc=$?"; echo @@; cat /tmp/${tag}.err; echo @@; cat /tmp/${tag}.out; echo @@; ls ${LP}`;

beforeAll(async () => {
  const meta = await ensureKernel();
  dir = mkdtempSync(join(tmpdir(), 'suture-bundle-vm-'));
  const ko = join(dir, 'livepatch_cmdline.ko');
  copyFileSync(await buildFixtureModule(meta, 'livepatch-cmdline'), ko);
  await extractVmlinux(meta.paths.vmlinuz, join(dir, 'vmlinux'));
  buildId = elfGnuBuildId(readFileSync(join(dir, 'vmlinux')))!;
  expect(buildId).toMatch(/^[0-9a-f]{40}$/);
  run(['key', 'generate', join(dir, 'builder')]);
  run(['key', 'generate', join(dir, 'stranger')]);
  files.good = join(dir, 'good.suture');
  run(['bundle', 'sign', ko, '--key', join(dir, 'builder.key'), '--build-id', buildId, '-o', files.good]);
  files.untrusted = join(dir, 'untrusted.suture');
  run(['bundle', 'sign', ko, '--key', join(dir, 'stranger.key'), '--build-id', buildId, '-o', files.untrusted]);
  files.otherbuild = join(dir, 'otherbuild.suture');
  run(['bundle', 'sign', ko, '--key', join(dir, 'builder.key'), '--build-id', '0'.repeat(40), '-o', files.otherbuild]);
  const t = readFileSync(files.good);
  t[t.length - 3000] ^= 0x40; // a byte inside the module
  files.tampered = join(dir, 'tampered.suture');
  writeFileSync(files.tampered, t);
  files.bare = ko;
  files.pub = join(dir, 'builder.pub');
  files.revoked = join(dir, 'revoked.json');
  run(['key', 'revoke', '--key', join(dir, 'builder.key'), '--revoke-module', files.good, '--reason', 'test: withdrawn', '-o', files.revoked]);
  files.revokedSig = `${files.revoked}.minisig`;
  for (const f of Object.values(files)) chmodSync(f, 0o644);
}, 1_800_000);

describe('signed bundles in the real kernel', () => {
  it('refusals leave nothing loaded; the good bundle loads, installs and loads at boot; a revocation stops all three', () => {
    const steps = [
      capture(`suture load ${F}/good.suture`, 'nokeys'),
      `mkdir -p /etc/suture/keys.d && chmod 755 /etc/suture /etc/suture/keys.d && cp ${F}/builder.pub /etc/suture/keys.d/ && chmod 644 /etc/suture/keys.d/builder.pub && echo trusted`,
      capture(`suture load ${F}/untrusted.suture`, 'untrusted'),
      capture(`suture load ${F}/tampered.suture`, 'tampered'),
      capture(`suture load ${F}/otherbuild.suture`, 'otherbuild'),
      capture(`suture load ${F}/livepatch_cmdline.ko`, 'bare'),
      capture(`suture install ${F}/untrusted.suture`, 'installuntrusted'),
      `${capture(`suture load --json ${F}/good.suture`, 'good')}; echo @@; cat /proc/cmdline; suture unload livepatch_cmdline >/dev/null; echo @@; ls ${LP}`,
      `${capture(`suture install --json ${F}/good.suture`, 'install')}; echo @@; ${capture('suture boot --json --guard-window 0', 'boot')}; echo @@; cat /proc/cmdline; suture unload livepatch_cmdline >/dev/null`,
      `cp ${F}/revoked.json ${F}/revoked.json.minisig /etc/suture/ && chmod 644 /etc/suture/revoked.json* && ${capture('suture boot --guard-window 0', 'revokedboot')}; echo @@; ${capture(`suture load ${F}/good.suture`, 'revokedload')}; echo @@; ${capture(`suture install ${F}/good.suture`, 'revokedinstall')}`,
    ];
    const args = ['vm', 'run', '--kernel', REFERENCE_KERNEL, '--with-suture', '--timeout', '900'];
    for (const f of Object.values(files)) args.push('--file', f);
    for (const s of steps) args.push('--exec', s);
    const t0 = performance.now();
    const { json } = sutureJson(args, { timeoutMs: 1_100_000 });
    console.log(`bundle VM boot: ${Math.round(performance.now() - t0)} ms`);
    if (json.error) throw new Error(`vm run failed: ${JSON.stringify(json.error)}`);
    const out = (i: number) => (json.commands?.[i]?.output ?? '').split(/^@@\n/m) as string[];

    const [nokeysRc, nokeysErr, , nokeysLoaded] = out(0);
    expect(nokeysRc).toBe('rc=37\n');
    expect(nokeysErr).toMatch(/^suture: no trusted keys: \/etc\/suture\/keys\.d does not exist/);
    expect(nokeysLoaded).toBe('');
    expect(json.commands[1].output).toBe('trusted\n');

    const refused = (i: number, rc: number, re: RegExp) => {
      const [r, err, , loaded] = out(i);
      expect(r, err).toBe(`rc=${rc}\n`);
      expect(err).toMatch(re);
      expect(err.trim().split('\n').length).toBeLessThanOrEqual(2);
      expect(loaded).toBe('');
    };
    refused(2, 37, /untrusted\.suture is signed by key [0-9A-F]{16}, which is not trusted on this host \(not in \/etc\/suture\/keys\.d\); nothing was loaded/);
    refused(3, 37, /tampered\.suture: livepatch_cmdline\.ko does not match its sha256 in SHA256SUMS: the bundle was changed after it was signed/);
    refused(4, 30, new RegExp(`otherbuild\\.suture is for the kernel build with GNU build ID 0{40}, but the running 6\\.1\\.0-56-amd64 is build ${buildId}`));
    refused(5, 37, /livepatch_cmdline\.ko is a bare module, not a signed bundle/);
    refused(6, 37, /untrusted\.suture is signed by key/);

    const g = out(7);
    expect(g[0], g[1]).toBe('rc=0\n');
    expect(JSON.parse(g[2]!)).toMatchObject({ command: 'load', patch: 'livepatch_cmdline', outcome: 'complete' });
    expect(g[3]).toBe('livepatch_cmdline\n');
    expect(g[4]).toContain(MARKER);
    expect(g[5]).toBe('');

    const b = out(8);
    expect(b[0], b[1]).toBe('rc=0\n');
    expect(JSON.parse(b[2]!)).toMatchObject({ command: 'install', name: 'livepatch_cmdline', signer: { keyId: expect.stringMatching(/^[0-9A-F]{16}$/) } });
    expect(b[4], b[5]).toBe('rc=0\n');
    expect(JSON.parse(b[6]!)).toMatchObject({ command: 'boot', items: [{ name: 'livepatch_cmdline', outcome: 'loaded' }] });
    expect(b[7]).toBe('livepatch_cmdline\n');
    expect(b[8]).toContain(MARKER);

    const r = out(9);
    expect(r[0], r[1]).toBe('rc=37\n');
    expect(r[1]).toMatch(/suture: livepatch_cmdline: installed patch livepatch_cmdline: its module \(sha256 [0-9a-f]{16}…\) is revoked by \/etc\/suture\/revoked\.json \(test: withdrawn\)/);
    expect(r[3]).toBe('');
    expect(r[4]).toBe('rc=37\n');
    expect(r[5]).toMatch(/good\.suture: its module .* is revoked by \/etc\/suture\/revoked\.json/);
    expect(r[7]).toBe('');
    expect(r[8]).toBe('rc=37\n');
    expect(r[9]).toMatch(/is revoked by/);
  });
});
