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
 * nothing and has no suture unit. Then a Debian 13 host from 6.12. The image is
 * made on first use (debootstrap, about 100 s here) and cached under $SUTURE_HOME/images.
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

describe.skipIf(!!skip)('a Debian 12 host in the VM', () => {
  let disk = '';

  it('boots with systemd, installs the package and a signed bundle; the next boot loads it before multi-user.target', () => {
    disk = join(dir, 'host.qcow2');
    const boot1 = [
      'cat /proc/1/comm',
      'systemctl is-system-running --wait',
      'uname -r',
      'node --version',
      `test ! -e /var/lib/suture-vm-test-mark && ! dpkg -s suture >/dev/null 2>&1 && echo clean && echo ${TOKEN} > /var/lib/suture-vm-test-mark`,
      `apt-get install -y -q ${F}/suture_*_all.deb 2>&1 | tail -n 3 && dpkg -s suture | grep -E '^(Status|Version):'`,
      `install -D -m 0644 -o root ${F}/builder.pub /etc/suture/keys.d/builder.pub && echo trusted`,
      refused(`suture install ${F}/untrusted.suture`),
      refused(`suture install ${F}/otherbuild.suture`),
      refused(`suture install ${F}/tampered.suture`),
      `suture install ${F}/good.suture && ls /sys/kernel/livepatch && cat /proc/cmdline`,
      'systemctl is-enabled suture.service',
    ];
    const boot2 = [
      'cat /var/lib/suture-vm-test-mark',
      'systemctl is-system-running --wait',
      'systemctl show -p ActiveState -p Result suture.service',
      // suture.service finished loading before multi-user.target was reached (monotonic µs).
      'a=$(systemctl show -P ExecMainExitTimestampMonotonic suture.service); b=$(systemctl show -P ActiveEnterTimestampMonotonic multi-user.target); echo "$a $b"; [ "$a" -gt 0 ] && [ "$a" -lt "$b" ]',
      'cat /proc/cmdline; cat /sys/kernel/livepatch/livepatch_cmdline/enabled',
      'suture status',
    ];
    const args = ['vm', 'host', '--kernel', REFERENCE_KERNEL, '--keep-disk', disk];
    for (const f of Object.values(files)) args.push('--file', f);
    for (const c of boot1) args.push('--exec', c);
    args.push('--reboot');
    for (const c of boot2) args.push('--exec', c);
    const { status, json, stderr } = sutureJson<HostJson>(args, { timeoutMs: 1_800_000 });
    const b1 = json.boots[0]!;
    const b2 = json.boots[1];
    console.log(
      `vm host: image ${json.image.made ? `made (${JSON.stringify(json.image.timings)})` : 'cached'}; boot 1 up in ${b1.bootMs} ms (run ${b1.totalMs} ms)` +
        (b2 ? `; boot 2 up in ${b2.bootMs} ms (run ${b2.totalMs} ms)` : ''),
    );
    const why = `${json.reason ?? ''}\n${stderr}\n${JSON.stringify(json.boots.map((b) => b.commands.map((c) => [c.label, c.status, c.output])), null, 1)}\n${(b1.consoleTail ?? b2?.consoleTail ?? []).join('\n')}`;
    expect(json.outcome, why).toBe('ok');
    expect(status).toBe(0);
    expect(json.diskCreated).toBe(true);
    const out = (b: number, i: number) => json.boots[b]!.commands[i]!.output;
    expect(out(0, 0).trim()).toBe('systemd');
    expect(out(0, 1).trim()).toBe('running');
    expect(out(0, 2).trim()).toBe(release);
    expect(out(0, 3).trim()).toMatch(/^v18\.(19|[2-9]\d)\./);
    expect(out(0, 4).trim()).toBe('clean'); // a new kept disk starts from the untouched image
    expect(out(0, 5)).toContain('Status: install ok installed');
    // untrusted key, another kernel build, a changed byte: refused (37 untrusted, 30 wrong build), nothing loaded
    expect(out(0, 7)).toMatch(/^rc=37\n(?!livepatch_cmdline)/);
    expect(out(0, 8)).toMatch(/^rc=30\n(?!livepatch_cmdline)/);
    expect(out(0, 9)).toMatch(/^rc=37\n(?!livepatch_cmdline)/);
    // installed, not loaded: it goes live at the next boot
    expect(out(0, 10)).toMatch(/^installed livepatch_cmdline for /);
    expect(out(0, 10)).not.toContain(MARKER);
    expect(out(0, 11).trim()).toBe('enabled');
    // boot 2: the same disk, the patch loaded by suture.service at boot
    expect(out(1, 0).trim()).toBe(TOKEN);
    expect(out(1, 1).trim()).toBe('running');
    expect(out(1, 2)).toContain('ActiveState=active');
    expect(out(1, 2)).toContain('Result=success');
    expect(json.boots[1]!.commands[3]!.status).toBe(0);
    expect(out(1, 4)).toContain(MARKER);
    expect(out(1, 4).trim().endsWith('1')).toBe(true);
    expect(out(1, 5)).toContain('livepatch_cmdline');
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
        '--exec', 'suture boot --clear-guard >/dev/null && apt-get purge -y -q suture >/dev/null 2>&1; dpkg-query -W suture >/dev/null 2>&1; echo "dpkg $?"; ls -A /var/lib/suture /etc/suture 2>&1 | sed "s/^.*No such file.*$/gone/"',
        '--reboot',
        '--exec', 'ls -A /sys/kernel/livepatch; systemctl list-unit-files suture.service suture-guard.service --no-legend | wc -l; cat /proc/cmdline',
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
  it('boots the 6.12 kernel with systemd and Debian 13\'s node 20.19; apt installs the package and suture runs on it', async () => {
    const meta = await ensureKernel(TRIXIE_KERNEL);
    const { json, stderr } = sutureJson<HostJson>(
      [
        'vm', 'host', '--kernel', TRIXIE_KERNEL, '--file', files.deb!,
        '--exec', 'cat /proc/1/comm; systemctl is-system-running --wait; uname -r; node --version; . /etc/os-release; echo "$VERSION_ID"',
        '--exec', `apt-get install -y -q ${F}/suture_*_all.deb >/dev/null 2>&1; suture --version && systemctl is-enabled suture.service`,
      ],
      { timeoutMs: 1_800_000 },
    );
    const b = json.boots[0]!;
    console.log(`vm host (Debian 13): image ${json.image.made ? `made (${JSON.stringify(json.image.timings)})` : 'cached'}; up in ${b.bootMs} ms (run ${b.totalMs} ms)`);
    expect(json.outcome, `${json.reason}\n${stderr}\n${JSON.stringify(b.commands)}`).toBe('ok');
    const [init, state, rel, node, version] = b.commands[0]!.output.trim().split('\n');
    expect([init, state, rel, version]).toEqual(['systemd', 'running', meta.release, '13']);
    expect(node).toMatch(/^v20\.(19|[2-9]\d)\./);
    expect(b.commands[1]!.output).toMatch(/enabled\n$/);
  }, 1_800_000);
});
