// SPDX-License-Identifier: GPL-2.0-only
/**
 * `suture vm host` on a real Debian 12 system booted from the 6.1 kernel (two boots of one kept
 * disk in one call, two more in a later call): systemd is init and reaches
 * `running`, Debian's nodejs runs, `uname -r` is the workspace's release. Then the path a patch
 * takes to a host: `apt install ./suture_*.deb` (offline: nodejs and kmod are in the image), a
 * trusted key in /etc/suture/keys.d, bundles by an untrusted key, for another build or changed by
 * one byte refused with nothing loaded, `suture install` of the signed bundle; after a reboot
 * suture.service has loaded it before multi-user.target and `suture status` shows it; a later call
 * boots the disk again, crashes the kernel inside the guard window (sysrq c), and the boot after it
 * finds the guard tripped, the patch blamed and not loaded; after `apt purge` the next boot loads
 * nothing and has no suture unit. Then the same path on a Debian 13 host from 6.12 (one call, three
 * boots): the .deb with apt on Debian 13's node 20.19, a bundle that `suture build --sign` made for
 * 6.12 from the example patch (its module also kernel-signed with --module-sign-key: a kernel that
 * does not enforce signatures loads it all the same), installed, loaded by suture.service before
 * multi-user.target at the next boot, shown by `suture status`; `apt purge`, and the boot after it
 * loads nothing. The first two boots of both hosts are one parametrised sequence (firstBoots). The
 * images are made on first use (debootstrap, about 100 s here) and cached under $SUTURE_HOME/images.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { elfGnuBuildId } from '../../src/kernel/build-id.js';
import { extractVmlinux } from '../../src/kernel/symbols/image.js';
import { ROOT, suture, sutureJson } from '../helpers/cli.js';
import { ensureKernel, REFERENCE_KERNEL, TRIXIE_KERNEL } from '../helpers/kernel.js';
import { buildFixtureModule } from '../helpers/modules.js';

const skip = process.getuid?.() !== 0 ? 'needs root (debootstrap and chroot make the image)' : undefined;
const F = '$SUTURE_VM_FILES';
const MARKER = 'suture-fixture: cmdline_proc_show is live patched';
const TOKEN = `kept-${process.pid}-${Date.now()}`;
let dir = '';
let release = '';
const files: Record<string, string> = {};

const must = (args: string[]) => {
  const r = suture(args);
  if (r.status !== 0) throw new Error(`suture ${args.join(' ')}: ${r.status}\n${r.stderr}`);
  return r.stdout;
};

beforeAll(async () => {
  if (skip) return;
  const meta = await ensureKernel();
  release = meta.release;
  dir = mkdtempSync(join(tmpdir(), 'suture-host-vm-'));
  const p = spawnSync('bash', [join(ROOT, 'scripts/package.sh'), join(dir, 'deb')], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, LINTIAN: '0' } });
  if (p.status !== 0) throw new Error(`scripts/package.sh failed (exit ${p.status}):\n${p.stderr}`);
  files.deb = p.stdout.trim().split('\n').pop()!;
  const ko = join(dir, 'livepatch_cmdline.ko');
  copyFileSync(await buildFixtureModule(meta, 'livepatch-cmdline'), ko);
  await extractVmlinux(meta.paths.vmlinuz, join(dir, 'vmlinux'));
  const buildId = elfGnuBuildId(readFileSync(join(dir, 'vmlinux')))!;
  must(['key', 'generate', join(dir, 'builder')]);
  must(['key', 'generate', join(dir, 'stranger')]);
  files.good = join(dir, 'good.suture');
  must(['bundle', 'sign', ko, '--key', join(dir, 'builder.key'), '--build-id', buildId, '-o', files.good]);
  files.untrusted = join(dir, 'untrusted.suture');
  must(['bundle', 'sign', ko, '--key', join(dir, 'stranger.key'), '--build-id', buildId, '-o', files.untrusted]);
  files.otherbuild = join(dir, 'otherbuild.suture');
  must(['bundle', 'sign', ko, '--key', join(dir, 'builder.key'), '--build-id', '0'.repeat(40), '-o', files.otherbuild]);
  const t = readFileSync(files.good);
  t[t.length - 3000] ^= 0x40; // a byte inside the module
  files.tampered = join(dir, 'tampered.suture');
  writeFileSync(files.tampered, t);
  files.pub = join(dir, 'builder.pub');
  for (const f of Object.values(files)) chmodSync(f, 0o644);
}, 1_800_000);

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

interface Step {
  label: string;
  status: number | null;
  output: string;
}
interface HostJson {
  outcome: string;
  reason?: string;
  exitCode: number;
  diskCreated: boolean;
  image: { node: string; made: boolean; timings: Record<string, number> };
  boots: { outcome: string; expectedCrash: boolean; bootMs: number; totalMs: number; commands: Step[]; consoleTail?: string[] }[];
}

/** Exit status, then what is live-patched, of a command whose output is not the point. */
const refused = (cmd: string) => `${cmd} >/tmp/out 2>&1; echo "rc=$?"; ls /sys/kernel/livepatch; cat /tmp/out`;

/** Ends the last boot of a host: clear the guard, apt purge; then a reboot must load nothing and have no suture unit. */
const PURGE = 'suture boot --clear-guard >/dev/null && apt-get purge -y -q suture >/dev/null 2>&1; dpkg-query -W suture >/dev/null 2>&1; echo "dpkg $?"; ls -A /var/lib/suture /etc/suture 2>&1 | sed "s/^.*No such file.*$/gone/"';
const AFTER_PURGE = 'ls -A /sys/kernel/livepatch; systemctl list-unit-files suture.service suture-guard.service --no-legend | wc -l; cat /proc/cmdline';

/** One Debian host: its kernel, its OS, the bundle that goes on it (a --file of the run) and what shows it live. */
interface HostCase {
  kernel: string;
  release: string;
  /** Debian's nodejs of that release. */
  node: RegExp;
  /** Guest path of the good bundle. */
  bundle: string;
  patch: string;
  /** What /proc/cmdline shows once the patch is live. */
  marker: string;
  /** Bundles refused before the install: guest path → exit status (37 untrusted, 30 another build). */
  refusals: [string, number][];
}

/**
 * The first two boots of a fresh kept disk: systemd up, the .deb installed with apt, the builder's key
 * trusted, each refusal with nothing loaded, `suture install` of the good bundle (not loaded yet), then
 * a reboot where suture.service loads it before multi-user.target and `suture status` shows it.
 * Returns the arguments of those boots and the check of their results.
 */
function firstBoots(c: HostCase): { args: string[]; check: (json: HostJson) => void } {
  const boot1 = [
    'cat /proc/1/comm',
    'systemctl is-system-running --wait',
    'uname -r',
    'node --version',
    `test ! -e /var/lib/suture-vm-test-mark && ! dpkg -s suture >/dev/null 2>&1 && echo clean && echo ${TOKEN} > /var/lib/suture-vm-test-mark`,
    `apt-get install -y -q ${F}/suture_*_all.deb 2>&1 | tail -n 3 && dpkg -s suture | grep -E '^(Status|Version):'`,
    `install -D -m 0644 -o root ${F}/builder.pub /etc/suture/keys.d/builder.pub && echo trusted`,
    ...c.refusals.map(([b]) => refused(`suture install ${b}`)),
    `suture install ${c.bundle} && ls /sys/kernel/livepatch && cat /proc/cmdline`,
    'systemctl is-enabled suture.service',
  ];
  const boot2 = [
    'cat /var/lib/suture-vm-test-mark',
    'systemctl is-system-running --wait',
    'systemctl show -p ActiveState -p Result suture.service',
    // suture.service finished loading before multi-user.target was reached (monotonic µs).
    'a=$(systemctl show -P ExecMainExitTimestampMonotonic suture.service); b=$(systemctl show -P ActiveEnterTimestampMonotonic multi-user.target); echo "$a $b"; [ "$a" -gt 0 ] && [ "$a" -lt "$b" ]',
    `cat /proc/cmdline; cat /sys/kernel/livepatch/${c.patch}/enabled`,
    'suture status',
  ];
  const args = [...boot1.flatMap((x) => ['--exec', x]), '--reboot', ...boot2.flatMap((x) => ['--exec', x])];
  const check = (json: HostJson) => {
    const out = (b: number, i: number) => json.boots[b]!.commands[i]!.output;
    expect(out(0, 0).trim()).toBe('systemd');
    expect(out(0, 1).trim()).toBe('running');
    expect(out(0, 2).trim()).toBe(c.release);
    expect(out(0, 3).trim()).toMatch(c.node);
    expect(out(0, 4).trim()).toBe('clean'); // a new kept disk starts from the untouched image
    expect(out(0, 5)).toContain('Status: install ok installed');
    expect(out(0, 6).trim()).toBe('trusted');
    // untrusted key, another kernel build, a changed byte: refused (37 untrusted, 30 wrong build), nothing loaded
    c.refusals.forEach(([, rc], i) => expect(out(0, 7 + i)).toMatch(new RegExp(`^rc=${rc}\\n(?!${c.patch})`)));
    const n = 7 + c.refusals.length;
    // installed, not loaded: it goes live at the next boot
    expect(out(0, n)).toMatch(new RegExp(`^installed ${c.patch} for `));
    expect(out(0, n)).not.toContain(c.marker);
    expect(out(0, n + 1).trim()).toBe('enabled');
    // boot 2: the same disk, the patch loaded by suture.service at boot
    expect(out(1, 0).trim()).toBe(TOKEN);
    expect(out(1, 1).trim()).toBe('running');
    expect(out(1, 2)).toContain('ActiveState=active');
    expect(out(1, 2)).toContain('Result=success');
    expect(json.boots[1]!.commands[3]!.status).toBe(0);
    expect(out(1, 4)).toContain(c.marker);
    expect(out(1, 4).trim().endsWith('1')).toBe(true);
    expect(out(1, 5)).toContain(c.patch);
  };
  return { args, check };
}

/** The reason a host run failed, with every command's output and the console's tail. */
const why = (json: HostJson, stderr: string) =>
  `${json.reason ?? ''}\n${stderr}\n${JSON.stringify(json.boots.map((b) => b.commands.map((c) => [c.label, c.status, c.output])), null, 1)}\n${json.boots.flatMap((b) => b.consoleTail ?? []).join('\n')}`;

describe.skipIf(!!skip)('a Debian 12 host in the VM', () => {
  let disk = '';

  it('boots with systemd, installs the package and a signed bundle; the next boot loads it before multi-user.target', () => {
    disk = join(dir, 'host.qcow2');
    const host = firstBoots({
      kernel: REFERENCE_KERNEL,
      release,
      node: /^v18\.(19|[2-9]\d)\./,
      bundle: `${F}/good.suture`,
      patch: 'livepatch_cmdline',
      marker: MARKER,
      refusals: [[`${F}/untrusted.suture`, 37], [`${F}/otherbuild.suture`, 30], [`${F}/tampered.suture`, 37]],
    });
    const args = ['vm', 'host', '--kernel', REFERENCE_KERNEL, '--keep-disk', disk];
    for (const f of Object.values(files)) args.push('--file', f);
    const { status, json, stderr } = sutureJson<HostJson>([...args, ...host.args], { timeoutMs: 1_800_000 });
    const b1 = json.boots[0]!;
    const b2 = json.boots[1];
    console.log(
      `vm host: image ${json.image.made ? `made (${JSON.stringify(json.image.timings)})` : 'cached'}; boot 1 up in ${b1.bootMs} ms (run ${b1.totalMs} ms)` +
        (b2 ? `; boot 2 up in ${b2.bootMs} ms (run ${b2.totalMs} ms)` : ''),
    );
    expect(json.outcome, why(json, stderr)).toBe('ok');
    expect(status).toBe(0);
    expect(json.diskCreated).toBe(true);
    host.check(json);
  }, 1_800_000);

  it('a later call boots the kept disk again; a crash inside the guard window trips the guard at the next boot; apt purge leaves nothing to load', () => {
    expect(existsSync(disk)).toBe(true);
    const { json, stderr } = sutureJson<HostJson>(
      [
        'vm', 'host', '--kernel', REFERENCE_KERNEL, '--keep-disk', disk,
        '--exec', "cat /var/lib/suture-vm-test-mark; dpkg-query -W -f '${Status}\\n' suture; ls /sys/kernel/livepatch",
        '--exec', 'sync; echo c > /proc/sysrq-trigger',
        '--expect-crash',
        '--reboot',
        '--exec', 'systemctl show -p Result -p ExecMainStatus suture.service; ls /sys/kernel/livepatch; echo listed',
        '--exec', 'suture status; echo "rc=$?"',
        // apt purge: the package, its state and keys go; nothing loads at the next boot
        '--exec', PURGE,
        '--reboot',
        '--exec', AFTER_PURGE,
      ],
      { timeoutMs: 1_800_000 },
    );
    const [crashed, after] = json.boots;
    console.log(`vm host: crash boot ${crashed?.totalMs} ms; boot after it up in ${after?.bootMs} ms`);
    expect(json.outcome, `${json.reason}\n${stderr}\n${JSON.stringify(json.boots.map((b) => b.commands))}`).toBe('ok');
    expect(json.diskCreated).toBe(false);
    expect(crashed!.commands[0]!.output).toBe(`${TOKEN}\ninstall ok installed\nlivepatch_cmdline\n`);
    expect(crashed!.outcome).toBe('crash');
    expect(crashed!.expectedCrash).toBe(true);
    // the guard blames the one patch that was live when the machine died: suture boot exits 35, nothing loads
    expect(after!.commands[0]!.output).toBe('Result=exit-code\nExecMainStatus=35\nlisted\n');
    expect(after!.commands[1]!.output).toMatch(/guard/i);
    expect(after!.commands[1]!.output).toContain('livepatch_cmdline');
    expect(after!.commands[1]!.output).toMatch(/rc=1\n$/);
    expect(after!.commands[2]!.output).toBe('dpkg 1\ngone\ngone\n');
    const purged = json.boots[2]!;
    expect(purged.commands[0]!.output).toMatch(/^0\n/); // no livepatch, no suture unit
    expect(purged.commands[0]!.output).not.toContain(MARKER);
  }, 1_800_000);
});

describe.skipIf(!!skip)('a Debian 13 host in the VM', () => {
  const EXAMPLE_MARKER = ' [live patched by suture]';
  let bundle = '';

  beforeAll(async () => {
    await ensureKernel(TRIXIE_KERNEL);
    // the builder's path for 6.12: suture build --sign from the example patch, its .ko also kernel-signed
    const mok = spawnSync('openssl', ['req', '-new', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'mok.pem'), '-outform', 'DER', '-out', join(dir, 'mok.der'), '-subj', '/CN=suture test MOK/', '-days', '36500'], { encoding: 'utf8' });
    if (mok.status !== 0) throw new Error(`openssl req (install the Debian package openssl): ${mok.stderr}`);
    chmodSync(join(dir, 'mok.pem'), 0o600);
    const b = sutureJson(
      ['build', join(ROOT, 'examples', 'proc-cmdline.patch'), '--kernel', TRIXIE_KERNEL, '--sign', join(dir, 'builder.key'), '--module-sign-key', join(dir, 'mok.pem'), '--module-sign-cert', join(dir, 'mok.der'), '-o', join(dir, 'trixie.ko')],
      { timeoutMs: 900_000 },
    );
    if (b.status !== 0) throw new Error(`suture build for ${TRIXIE_KERNEL}: ${b.status}\n${b.stderr}`);
    expect(b.json.moduleSignature).toMatchObject({ signer: 'suture test MOK' });
    bundle = b.json.bundle.path;
    chmodSync(bundle, 0o644);
  }, 1_800_000);

  it("6.12 with systemd and Debian 13's node 20.19: apt installs the package, a bundle built for 6.12 is installed and loaded by suture.service at the next boot; apt purge, and the boot after loads nothing", async () => {
    const meta = await ensureKernel(TRIXIE_KERNEL);
    const host = firstBoots({
      kernel: TRIXIE_KERNEL,
      release: meta.release,
      node: /^v20\.(19|[2-9]\d)\./,
      bundle: `${F}/trixie.suture`,
      patch: 'livepatch_proc_cmdline',
      marker: EXAMPLE_MARKER,
      refusals: [],
    });
    const { status, json, stderr } = sutureJson<HostJson>(
      [
        'vm', 'host', '--kernel', TRIXIE_KERNEL, '--file', files.deb!, '--file', files.pub!, '--file', bundle,
        '--exec', '. /etc/os-release; echo "$VERSION_ID"',
        ...host.args,
        '--exec', PURGE,
        '--reboot',
        '--exec', AFTER_PURGE,
      ],
      { timeoutMs: 1_800_000 },
    );
    const [b1, b2, b3] = json.boots;
    console.log(
      `vm host (Debian 13): image ${json.image.made ? `made (${JSON.stringify(json.image.timings)})` : 'cached'}; boot 1 up in ${b1?.bootMs} ms (run ${b1?.totalMs} ms)` +
        `; boot 2 up in ${b2?.bootMs} ms (run ${b2?.totalMs} ms); boot 3 up in ${b3?.bootMs} ms (run ${b3?.totalMs} ms)`,
    );
    expect(json.outcome, why(json, stderr)).toBe('ok');
    expect(status).toBe(0);
    expect(b1!.commands[0]!.output.trim()).toBe('13');
    // the OS line first: the shared sequence's commands follow it
    b1!.commands.shift();
    host.check(json);
    expect(b2!.commands.at(-1)!.output).toBe('dpkg 1\ngone\ngone\n');
    expect(b3!.commands[0]!.output).toMatch(/^0\n/); // no livepatch, no suture unit
    expect(b3!.commands[0]!.output).not.toContain(EXAMPLE_MARKER);
  }, 1_800_000);
});
