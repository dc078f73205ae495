// SPDX-License-Identifier: GPL-2.0-only
/**
 * The Debian package (scripts/package.sh) on real Debian systems: fresh debootstrapped Debian 12 and
 * Debian 13 roots (test/packaging/fresh-root.ts), where apt installs it with Debian's own nodejs,
 * suture runs, systemd's offline tools see its units enabled, and apt remove/purge leave nothing
 * behind. Real dpkg, apt, deb-systemd-helper and systemctl; no VM (it sits in the slow `vm` project
 * for its time: cold, debootstrap takes 1-3 min per release; warm, about half a minute each).
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/cli.js';
import { cannotRun, FreshRoot, type Suite } from './fresh-root.js';

const skip = cannotRun();
const VERSION = (JSON.parse(spawnSync('cat', [join(ROOT, 'package.json')], { encoding: 'utf8' }).stdout) as { version: string }).version;

let deb = '';
let outDir = '';
let fakeModule = '';

beforeAll(() => {
  if (skip) return;
  outDir = mkdtempSync(join(tmpdir(), 'suture-deb-test-'));
  const r = spawnSync('bash', [join(ROOT, 'scripts/package.sh'), outDir], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, LINTIAN: '0' } });
  if (r.status !== 0) throw new Error(`scripts/package.sh failed (exit ${r.status}):\n${r.stderr}`);
  deb = r.stdout.trim().split('\n').pop()!;
  // a livepatch-shaped module (test/fixtures/livepatch: gcc, no kernel tree) for the signing round trip
  const f = spawnSync('bash', [join(ROOT, 'test/fixtures/livepatch/build.sh'), join(outDir, 'ko')], { encoding: 'utf8' });
  if (f.status !== 0) throw new Error(`test/fixtures/livepatch/build.sh failed:\n${f.stderr}`);
  fakeModule = join(outDir, 'ko/fake_bound.ko');
}, 300_000);

afterAll(() => {
  if (outDir) rmSync(outDir, { recursive: true, force: true });
});

let servers = 0;
/** `suture server` from the checkout (Node 20, SQLite) on 127.0.0.1, a process of its own (root.sh blocks this one). */
function startFleetServer(): { url: string; cli: (args: string[]) => { stdout: string; stderr: string }; stop: () => void } {
  const home = mkdtempSync(join(tmpdir(), 'suture-deb-fleet-'));
  const env = { ...process.env, SUTURE_HOME: home };
  const serve = (args: string[]) => [`--import`, 'tsx', join(ROOT, 'test/fleet/serve.ts'), ...args];
  const init = spawnSync(process.execPath, serve(['server', 'init']), { cwd: ROOT, env, encoding: 'utf8', timeout: 60_000 });
  if (init.status !== 0) throw new Error(`suture server init: ${init.stderr}`);
  const port = 20_000 + (process.pid % 20_000) + servers++;
  const p = spawn(process.execPath, serve(['server', '--listen', `127.0.0.1:${port}`]), { cwd: ROOT, env, stdio: 'ignore' });
  const url = `http://127.0.0.1:${port}`;
  const cli = (args: string[]) => {
    const r = spawnSync(process.execPath, serve([...args, '--server', url]), { cwd: ROOT, env, encoding: 'utf8', timeout: 60_000 });
    if (r.status !== 0) throw new Error(`suture ${args.join(' ')}: ${r.status} ${r.stderr}`);
    return r;
  };
  // bounded: the server answers within 30 s (an admin request through the CLI)
  for (let i = 0; ; i++) {
    const r = spawnSync(process.execPath, serve(['fleet', 'hosts', '--json', '--server', url]), { cwd: ROOT, env, encoding: 'utf8', timeout: 60_000 });
    if (r.status === 0) break;
    if (i >= 30) {
      p.kill('SIGTERM');
      throw new Error(`suture server did not answer on ${url}: ${r.stderr}`);
    }
    spawnSync('sleep', ['1']);
  }
  return { url, cli, stop: () => (p.kill('SIGTERM'), rmSync(home, { recursive: true, force: true })) };
}

describe.skipIf(!!skip)('the package itself', () => {
  it('is named suture_<version>_all.deb and says what it needs', () => {
    expect(basename(deb)).toBe(`suture_${VERSION}_all.deb`);
    const fields = spawnSync('dpkg-deb', ['-f', deb, 'Package', 'Version', 'Architecture', 'Depends'], { encoding: 'utf8' }).stdout;
    expect(fields).toContain(`Version: ${VERSION}`);
    expect(fields).toContain('Architecture: all');
    expect(fields).toMatch(/Depends: nodejs \(>= 18\.19\), kmod/);
  });

  it('is reproducible: built again from the same tree, the same bytes', () => {
    const again = join(outDir, 'again');
    const r = spawnSync('bash', [join(ROOT, 'scripts/package.sh'), again], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, LINTIAN: '0' } });
    expect(r.status, r.stderr).toBe(0);
    const sums = spawnSync('sha256sum', [deb, r.stdout.trim().split('\n').pop()!], { encoding: 'utf8' }).stdout.trim().split('\n').map((l) => l.split(' ')[0]);
    expect(sums[0]).toBe(sums[1]);
  });

  it('lintian: no error, every warning fixed or overridden with its reason in packaging/', () => {
    const r = spawnSync('lintian', ['--fail-on', 'error,warning', deb], { encoding: 'utf8' });
    expect(r.error, 'lintian is not installed: run scripts/setup.sh').toBeUndefined();
    expect(`${r.stdout}${r.stderr}`.split('\n').filter((l) => /^[EW]: /.test(l))).toEqual([]);
    expect(r.status).toBe(0);
  });
});

describe.skipIf(!!skip).each([
  { suite: 'bookworm' as Suite, node: /^v18\.(19|[2-9]\d)\./ },
  { suite: 'trixie' as Suite, node: /^v20\.(19|[2-9]\d)\./ },
])('in a fresh $suite root', ({ suite, node }) => {
  let root: FreshRoot;
  const timings: string[] = [];
  let installed: string[] = [];

  beforeAll(() => {
    const made = FreshRoot.create(suite);
    root = made.root;
    timings.push(made.baseMadeInSeconds !== undefined ? `debootstrap ${made.baseMadeInSeconds} s` : 'cached root');
    timings.push(`copy ${made.copySeconds} s`);
    root.put(deb, `/tmp/${basename(deb)}`);
  }, 1_800_000);

  afterAll(() => {
    root?.destroy();
    console.log(`[deb ${suite}] ${timings.join(', ')}`);
  });

  const sh = (cmd: string) => root.sh(cmd);
  const ok = (cmd: string) => {
    const r = sh(cmd);
    expect(r.status, `${cmd}\n${r.stdout}\n${r.stderr}`).toBe(0);
    return r.stdout;
  };

  it('starts without any Node.js', () => {
    expect(sh('command -v node || command -v nodejs').status).not.toBe(0);
    expect(sh('dpkg-query -W -f=\'${Status}\' nodejs 2>/dev/null | grep -q "ok installed"').status).not.toBe(0);
  });

  it('apt installs the .deb with Debian\'s own nodejs', () => {
    const t0 = Date.now();
    ok('apt-get update -q');
    ok(`apt-get install -y -q --no-install-recommends /tmp/${basename(deb)}`);
    timings.push(`apt install ${Math.round((Date.now() - t0) / 1000)} s`);
    expect(ok('dpkg-query -W -f=\'${Status} ${Version}\' suture')).toBe(`install ok installed ${VERSION}`);
    // /usr/bin/node is Debian's nodejs package (no Node copied in), of this release's version
    expect(ok('dpkg -S "$(readlink -f /usr/bin/node)"')).toMatch(/^nodejs: /);
    expect(ok('node --version').trim()).toMatch(node);
    installed = ok('dpkg -L suture').trim().split('\n');
    expect(installed).toEqual(expect.arrayContaining(['/usr/bin/suture', '/usr/share/man/man8/suture.8.gz', '/usr/lib/systemd/system/suture.service', '/etc/suture/keys.d', '/var/lib/suture']));
  });

  it('suture runs on it: --version, --help, list, status', () => {
    expect(ok('suture --version').trim()).toBe(VERSION);
    const help = ok('suture --help');
    expect(help).toMatch(/\bload \[options\]/);
    expect(help).toMatch(/\binstall\b/);
    // the builder's commands are not part of the host package: hidden, and a plain refusal
    expect(help).not.toMatch(/^ {2}(kernel|vm|build|analyze|server|fleet)\b/m);
    const build = sh('suture build --kernel debian:6.1.0-56-amd64 fix.patch');
    expect(build.status).toBe(12);
    expect(build.stderr).toContain('suture build is a builder command');
    // no livepatch sysfs in a chroot: said, not a crash
    for (const cmd of ['suture list', 'suture list --json', 'suture status', 'suture status --json', 'suture info nosuchpatch']) {
      const r = sh(cmd);
      expect(r.stderr, cmd).not.toMatch(/internal error|TypeError|ReferenceError|is not a function/);
      expect([0, 1, 10], `${cmd}: exit ${r.status}\n${r.stderr}`).toContain(r.status);
    }
    const status = sh('suture status');
    expect(status.stdout).toContain('livepatch is not available on this kernel (/sys/kernel/livepatch is missing)');
    expect(status.status).toBe(1);
    const list = sh('suture list');
    expect(list.stdout).toContain('livepatch is not available here: /sys/kernel/livepatch is missing');
    expect(list.status).toBe(1);
    expect(JSON.parse(sh('suture list --json').stdout)).toEqual({ livepatchAvailable: false, patches: [] });
  });

  it('keys, bundles and module files under Debian\'s nodejs: generate, sign, verify, trust, refuse', () => {
    root.put(fakeModule, '/tmp/fake_bound.ko');
    ok('suture key generate /root/builder');
    expect(ok('stat -c %a /root/builder.key').trim()).toBe('600');
    ok('suture bundle sign /tmp/fake_bound.ko --key /root/builder.key -o /tmp/fake_bound.suture');
    ok('suture bundle verify /tmp/fake_bound.suture --pub /root/builder.pub');
    expect(JSON.parse(ok('suture bundle info /tmp/fake_bound.suture --json'))).toBeTruthy();
    expect(ok('suture info /tmp/fake_bound.ko')).toContain('fake_bound');
    // the package's empty trust store trusts nothing: verify and install refuse (37), nothing installed
    const untrusted = sh('suture bundle verify /tmp/fake_bound.suture');
    expect(untrusted.status, `${untrusted.stdout}${untrusted.stderr}`).toBe(37);
    const refused = sh('suture install /tmp/fake_bound.suture');
    expect(refused.status, `${refused.stdout}${refused.stderr}`).toBe(37);
    expect(sh('find /var/lib/suture -name "*.ko" | grep -q .').status).not.toBe(0);
    // the key placed there is trusted: the bundle installs (for its own release, 6.1.0-56-amd64:
    // suture boot loads it once that kernel runs), 0600 under /var/lib/suture
    ok('install -m 0644 /root/builder.pub /etc/suture/keys.d/builder.pub');
    ok('suture bundle verify /tmp/fake_bound.suture');
    ok('suture install /tmp/fake_bound.suture');
    expect(ok('stat -c "%U %a" /var/lib/suture/kernels/6.1.0-56-amd64/fake_bound.ko').trim()).toBe('root 600');
  });

  it('the fleet agent runs under Debian\'s nodejs (zod, fetch, Ed25519): unenrolled it says so; no server: its key (0600) made, the server named; a real suture server on loopback: enrolled', () => {
    const none = sh('suture agent --once');
    expect(none.status, `${none.stdout}${none.stderr}`).toBe(2);
    expect(none.stderr).toContain('this host is not enrolled in a fleet yet (/var/lib/suture/agent/agent.json)');
    const away = sh(`suture agent --server http://127.0.0.1:9 --token st_${'A'.repeat(43)} --once`);
    expect(away.status, `${away.stdout}${away.stderr}`).toBe(12);
    expect(away.stderr).toContain('the fleet server at http://127.0.0.1:9 cannot be reached');
    expect(away.stderr).not.toMatch(/internal error|TypeError|ReferenceError|is not a function|SyntaxError/);
    expect(ok('stat -c "%U %a" /var/lib/suture/agent /var/lib/suture/agent/host.key').trim().split('\n')).toEqual(['root 700', 'root 600']);
    // a real fleet server on this machine's loopback (the chroot shares its network): the agent enrols with
    // the key it made (Ed25519 signature, fetch and zod on this release's nodejs); its first check-in then
    // needs the kernel's build ID, which a chroot without /sys cannot read: said, exit 12
    const fleet = startFleetServer();
    try {
      const tok = fleet.cli(['fleet', 'enroll-token', '--json']);
      const token = (JSON.parse(tok.stdout) as { token: string }).token;
      const r = sh(`suture agent --server ${fleet.url} --token ${token} --name deb-${suite} --once`);
      expect(r.status, `${r.stdout}${r.stderr}`).toBe(12);
      expect(r.stderr).toMatch(new RegExp(`suture agent: enrolled as h-[0-9a-f]{32} with ${fleet.url.replace(/[.]/g, '\\.')} \\(channel stable\\)`));
      expect(r.stderr).toContain("the running kernel's GNU build ID cannot be read (/sys/kernel/notes)");
      const hosts = JSON.parse(fleet.cli(['fleet', 'hosts', '--json']).stdout) as { hosts: { name: string }[] };
      expect(hosts.hosts.map((h) => h.name)).toEqual([`deb-${suite}`]);
      expect(ok('stat -c "%a" /var/lib/suture/agent/agent.json').trim()).toBe('600');
    } finally {
      fleet.stop();
    }
  });

  it('reinstall keeps the admin\'s choice: enabled stays enabled, disabled stays disabled', () => {
    ok(`apt-get install -y -q --reinstall /tmp/${basename(deb)}`);
    expect(sh('systemctl is-enabled suture.service').stdout.trim()).toBe('enabled');
    ok('systemctl disable suture-guard.service');
    ok(`apt-get install -y -q --reinstall /tmp/${basename(deb)}`);
    expect(sh('systemctl is-enabled suture-guard.service').stdout.trim()).toBe('disabled');
    expect(sh('systemctl is-enabled suture.service').stdout.trim()).toBe('enabled');
    ok('systemctl enable suture-guard.service');
    // the fleet agent: shipped disabled; an admin's enable survives a reinstall
    expect(sh('systemctl is-enabled suture-agent.service').stdout.trim()).toBe('disabled');
    ok('systemctl enable suture-agent.service');
    ok(`apt-get install -y -q --reinstall /tmp/${basename(deb)}`);
    expect(sh('systemctl is-enabled suture-agent.service').stdout.trim()).toBe('enabled');
    ok('systemctl disable suture-agent.service');
  });

  it('its units are enabled (systemctl, offline in the root) and its folders are root\'s', () => {
    expect(sh('systemctl is-enabled suture.service').stdout.trim()).toBe('enabled');
    expect(sh('systemctl is-enabled suture-guard.service').stdout.trim()).toBe('enabled');
    // the units as this release's systemd reads them (--man=no: minbase has no man-db for Documentation=)
    expect(sh('systemctl is-enabled suture-agent.service').stdout.trim()).toBe('disabled');
    ok('systemd-analyze verify --man=no /usr/lib/systemd/system/suture.service /usr/lib/systemd/system/suture-guard.service /usr/lib/systemd/system/suture-agent.service');
    expect(ok('stat -c "%U:%G %a %n" /etc/suture /etc/suture/keys.d /var/lib/suture').trim().split('\n')).toEqual([
      'root:root 755 /etc/suture',
      'root:root 755 /etc/suture/keys.d',
      'root:root 700 /var/lib/suture',
    ]);
    // the man page is there and is roff
    expect(ok('zcat /usr/share/man/man8/suture.8.gz | head -n 1')).toMatch(/^\.TH SUTURE 8 /);
  });

  it('apt remove: no program or unit left, the units disabled, the trusted keys kept', () => {
    // what the admin left (above): a trusted key and an installed patch
    ok('apt-get remove -y -q suture');
    const left = installed.filter((p) => !p.startsWith('/etc/suture') && !p.startsWith('/var/lib/suture') && sh(`test -f '${p}' -o -L '${p}'`).status === 0);
    expect(left).toEqual([]);
    expect(sh('command -v suture').status).not.toBe(0);
    expect(sh('systemctl is-enabled suture.service').stdout.trim()).not.toBe('enabled');
    expect(sh('systemctl is-enabled suture-guard.service').stdout.trim()).not.toBe('enabled');
    expect(sh('systemctl is-enabled suture-agent.service').stdout.trim()).not.toBe('enabled');
    expect(ok('cat /etc/suture/keys.d/builder.pub')).toContain('untrusted comment: suture key builder');
    ok('test -f /var/lib/suture/kernels/6.1.0-56-amd64/fake_bound.ko');
  });

  it('apt purge: nothing of suture left anywhere, no unit enabled', () => {
    ok('apt-get purge -y -q suture');
    expect(sh('dpkg-query -W -f=\'${Status}\' suture 2>/dev/null').stdout).not.toContain('installed');
    // (the admin's own files in /tmp and /root, the .deb and the bundle, are not the package's)
    const found = ok(`find / -xdev \\( -path /proc -o -path /dev -o -path /tmp -o -path /root \\) -prune -o -iname '*suture*' -print`);
    expect(found.trim().split('\n').filter(Boolean)).toEqual([]);
    const links = ok('grep -rlis suture /etc/systemd /var/lib/systemd 2>/dev/null || true');
    expect(links.trim()).toBe('');
    expect(sh('systemctl is-enabled suture.service').status).not.toBe(0);
  });

  it('this release\'s own lintian: no error, every warning fixed or overridden (after the purge: apt pulls lintian in)', () => {
    const t0 = Date.now();
    ok('apt-get install -y -q --no-install-recommends lintian');
    const r = sh(`lintian --fail-on error,warning /tmp/${basename(deb)}`);
    timings.push(`lintian ${Math.round((Date.now() - t0) / 1000)} s`);
    expect(`${r.stdout}${r.stderr}`.split('\n').filter((l) => /^[EW]: /.test(l))).toEqual([]);
    expect(r.status).toBe(0);
  });
});
