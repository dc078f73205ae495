// SPDX-License-Identifier: GPL-2.0-only
/**
 * Signed bundles in the real Debian 6.1 kernel, with suture in the guest as
 * root (one boot; busybox has no install(1), so cp and chmod): no keys directory, an untrusted key, a changed byte,
 * another kernel build and a bare .ko are each refused with nothing loaded;
 * the good bundle loads (the patch is live), installs (its signer recorded)
 * and loads at `suture boot`; a signed revocation list then stops load,
 * install and boot. The builder side runs here, with the CLI a user runs.
 *
 * Kernel module signatures, in the same boot: the example patch is built
 * twice by `suture build --sign` (so --json names the bundle), once also with
 * --module-sign-key/--module-sign-cert (a throwaway key made by openssl here);
 * modinfo shows that module's signer and the kernel config's hash. At the end
 * of the boot the guest turns on module.sig_enforce (the kernel parameter of
 * that name is /sys/module/module/parameters/sig_enforce, enable-only: writing
 * it is what booting with module.sig_enforce=1 does, without a second boot
 * under TCG); then the unsigned patch is refused with suture's message, and
 * the signed one is refused too, because its key is in none of the kernel's
 * keyrings: that is the kernel's expected answer, since MOK cannot be enrolled
 * in this guest (no UEFI, no shim). A host with the key enrolled loads it.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { elfGnuBuildId } from '../../src/kernel/build-id.js';
import { extractVmlinux } from '../../src/kernel/symbols/image.js';
import { ROOT, suture, sutureJson } from '../helpers/cli.js';
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
  // a throwaway MOK-style key pair, and the example patch built unsigned and kernel-signed, each into a bundle
  const mok = spawnSync('openssl', ['req', '-new', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'mok.pem'), '-outform', 'DER', '-out', join(dir, 'mok.der'), '-subj', '/CN=suture test MOK/', '-days', '36500'], { encoding: 'utf8' });
  if (mok.status !== 0) throw new Error(`openssl req (install the Debian package openssl): ${mok.stderr}`);
  chmodSync(join(dir, 'mok.pem'), 0o600);
  const example = join(ROOT, 'examples', 'proc-cmdline.patch');
  const plain = sutureJson(['build', example, '--kernel', REFERENCE_KERNEL, '--sign', join(dir, 'builder.key'), '-o', join(dir, 'plain.ko')], { timeoutMs: 900_000 });
  if (plain.status !== 0) throw new Error(`suture build (unsigned module): ${plain.status}\n${plain.stderr}`);
  built.plain = plain.json;
  const signed = sutureJson(
    ['build', example, '--kernel', REFERENCE_KERNEL, '--module-sign-key', join(dir, 'mok.pem'), '--module-sign-cert', join(dir, 'mok.der'), '--sign', join(dir, 'builder.key'), '-o', join(dir, 'msigned.ko')],
    { timeoutMs: 900_000 },
  );
  if (signed.status !== 0) throw new Error(`suture build --module-sign-key: ${signed.status}\n${signed.stderr}`);
  built.signed = signed.json;
  files.plain = join(dir, 'plain.suture');
  files.msigned = join(dir, 'msigned.suture');
  for (const f of Object.values(files)) chmodSync(f, 0o644);
}, 1_800_000);

const built: Record<string, any> = {};

describe('kernel module signatures on the builder', () => {
  it('build --module-sign-key/--module-sign-cert: modinfo shows the signer and the kernel config\'s hash; the bundle made after it covers the signed module; --json names the bundle', () => {
    const m = spawnSync('/usr/sbin/modinfo', [join(dir, 'msigned.ko')], { encoding: 'utf8' });
    expect(m.status, m.stderr).toBe(0);
    expect(m.stdout).toMatch(/^sig_id:\s+PKCS#7$/m);
    expect(m.stdout).toMatch(/^signer:\s+suture test MOK$/m);
    expect(m.stdout).toMatch(/^sig_hashalgo:\s+sha256$/m); // CONFIG_MODULE_SIG_HASH="sha256" of 6.1.0-56
    expect(m.stdout).toMatch(/^sig_key:\s+[0-9A-F:]+$/m);
    const u = spawnSync('/usr/sbin/modinfo', ['-F', 'signer', join(dir, 'plain.ko')], { encoding: 'utf8' });
    expect(u.stdout).toBe('');
    const sha = (f: string) => createHash('sha256').update(readFileSync(f)).digest('hex');
    const s = built.signed;
    expect(s.moduleSignature).toMatchObject({ hash: 'sha256', signer: 'suture test MOK', signatureBytes: expect.any(Number) });
    expect(s.moduleSignature.signFile).toMatch(/scripts\/sign-file$/);
    expect(s.bundle).toMatchObject({ path: files.msigned, sha256: sha(files.msigned!), keyId: expect.stringMatching(/^[0-9A-F]{16}$/), moduleSha256: sha(join(dir, 'msigned.ko')) });
    expect(built.plain.bundle).toMatchObject({ path: files.plain, sha256: sha(files.plain!) });
    expect(built.plain.moduleSignature).toBeUndefined();
    // the kernel signature is appended after the module: the same module bytes underneath
    const plainKo = readFileSync(join(dir, 'plain.ko'));
    const signedKo = readFileSync(join(dir, 'msigned.ko'));
    expect(signedKo.length).toBeGreaterThan(plainKo.length);
    expect(signedKo.subarray(signedKo.length - 28).toString()).toBe('~Module signature appended~\n');
    const info = sutureJson(['bundle', 'info', files.msigned!]);
    expect(info.json.moduleSignature).toMatchObject({ idType: 2, sigLen: s.moduleSignature.signatureBytes });
    expect(sutureJson(['bundle', 'info', files.plain!]).json.moduleSignature).toBeNull();
  });
});

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
      // last: module.sig_enforce on (enable-only), then nothing unsigned, and nothing signed by a key outside the kernel's keyrings, loads
      `cat /sys/module/module/parameters/sig_enforce; echo 1 > /sys/module/module/parameters/sig_enforce; cat /sys/module/module/parameters/sig_enforce; echo @@; ${capture(`suture load ${F}/plain.suture`, 'enforceplain')}; echo @@; ${capture(`suture load ${F}/msigned.suture`, 'enforcemok')}; echo @@; dmesg | grep -E 'Loading of .* is rejected'`,
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

    const e = out(10);
    expect(e[0]).toBe('N\nY\n');
    // unsigned: EKEYREJECTED, "Loading of unsigned module is rejected"; exit 32 (the kernel refused), nothing loaded
    expect(e[1], e[2]).toBe('rc=32\n');
    expect(e[2]).toMatch(/^suture: the kernel refused .*plain\.suture(:\S+)?: this kernel enforces module signatures \(module\.sig_enforce=1 or Secure Boot lockdown\) and the module is not signed; nothing was loaded\n {2}\| Loading of unsigned module is rejected\n {2}\| insmod: can't insert .*: Key was rejected by service\n/m);
    expect(e[2]).toMatch(/hint: sign the patch on the builder: suture build \.\.\. --module-sign-key KEY\.pem --module-sign-cert CERT\.der, with a key enrolled in MOK/);
    expect(e[4]).toBe('');
    // signed by the test key: refused as well, the key being in none of the kernel's keyrings (no MOK enrolment in this guest)
    expect(e[5], e[6]).toBe('rc=32\n');
    expect(e[6]).toMatch(/msigned\.suture(:\S+)?: this kernel enforces module signatures .* and the module is signed, but by a key that is not in the kernel's keyrings/);
    expect(e[8]).toBe('');
    expect(e[9]).toMatch(/Loading of unsigned module is rejected\n.*Loading of module with unavailable key is rejected/);
  });
});

describe('a kernel booted with module.sig_enforce=1', () => {
  it('refuses the unsigned patch with suture\'s message, nothing loaded (the boot parameter itself, in a second short boot)', () => {
    const steps = [
      `mkdir -p /etc/suture/keys.d && chmod 755 /etc/suture /etc/suture/keys.d && cp ${F}/builder.pub /etc/suture/keys.d/ && chmod 644 /etc/suture/keys.d/builder.pub; cat /sys/module/module/parameters/sig_enforce; grep -o 'module.sig_enforce=1' /proc/cmdline`,
      capture(`suture load ${F}/plain.suture`, 'bootenforce'),
    ];
    const args = ['vm', 'run', '--kernel', REFERENCE_KERNEL, '--with-suture', '--timeout', '300', '--append', 'module.sig_enforce=1', '--file', files.plain!, '--file', join(dir, 'builder.pub')];
    for (const s of steps) args.push('--exec', s);
    const { json } = sutureJson(args, { timeoutMs: 400_000 });
    if (json.error) throw new Error(`vm run failed: ${JSON.stringify(json.error)}`);
    expect(json.commands[0].output).toBe('Y\nmodule.sig_enforce=1\n');
    const e = (json.commands[1].output as string).split(/^@@\n/m);
    expect(e[0], e[1]).toBe('rc=32\n');
    expect(e[1]).toMatch(/plain\.suture(:\S+)?: this kernel enforces module signatures \(module\.sig_enforce=1 or Secure Boot lockdown\) and the module is not signed; nothing was loaded/);
    expect(e[3]).toBe('');
  });
});
