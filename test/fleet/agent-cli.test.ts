// SPDX-License-Identifier: GPL-2.0-only
/**
 * `suture agent` as a user runs it (the built CLI), against `suture server`
 * (another process of the built CLI, SQLite, 127.0.0.1): enrol with a token
 * from `suture fleet enroll-token`, one cycle with --once on this machine's
 * own kernel (its facts read through the host layer, nothing changed: no
 * assignment), the host's health command failing → unhealthy at the server;
 * refusals. And the agent's systemd unit: disabled by the package, after
 * suture.service, never before it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT } from '../../src/cli/exit-codes.js';
import { ROOT, suture, sutureJson } from '../helpers/cli.js';

let home: string;
let server: ChildProcess | undefined;
let url = '';
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  home = mkdtempSync(join(tmpdir(), 'suture-agent-cli-'));
  env = { ...process.env, SUTURE_HOME: home, SUTURE_STATE_DIR: join(home, 'state'), SUTURE_RUN_DIR: join(home, 'run') };
  delete env.SUTURE_AGENT_DIR;
  const init = suture(['server', 'init', '--json'], { env });
  expect(init.status, init.stderr).toBe(0);
  const p = spawn(process.execPath, [join(ROOT, 'bin/suture.js'), 'server', '--listen', '127.0.0.1:0', '--tick', '200'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  server = p;
  url = await new Promise<string>((resolve, reject) => {
    let err = '';
    const t = setTimeout(() => reject(new Error(`server did not start in 30 s: ${err}`)), 30_000);
    p.stderr!.on('data', (b: Buffer) => {
      err += b.toString();
      const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(err);
      if (m) {
        clearTimeout(t);
        resolve(m[1]!);
      }
    });
    p.on('exit', (c) => reject(new Error(`server exited ${c}: ${err}`)));
  });
  env.SUTURE_FLEET_SERVER = url;
}, 60_000);

afterAll(() => {
  server?.kill('SIGTERM');
});

describe('suture agent (CLI)', () => {
  it('refuses to run unenrolled without --server and --token (exit 2), and a bad URL', () => {
    const r = suture(['agent', '--once'], { env });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/this host is not enrolled in a fleet yet \(.*state\/agent\/agent\.json\)/);
    expect(r.stderr).toMatch(/hint: enrol it once: suture agent --server URL --token T/);
    const u = suture(['agent', '--server', 'ftp://x', '--token', 't', '--once'], { env });
    expect(u.status).toBe(2);
    expect(u.stderr).toMatch(/--server ftp:\/\/x: give an http:\/\/ or https:\/\/ URL/);
  });

  it('enrols with a one-time token, checks in with this machine\'s facts; a failing health command makes it unhealthy at the server', () => {
    const tok = sutureJson<{ token: string }>(['fleet', 'enroll-token'], { env });
    expect(tok.status, tok.stderr).toBe(0);
    const t0 = performance.now();
    const r = sutureJson<{ hostId: string; checkins: number; assignment: unknown; healthy: boolean }>(['agent', '--server', url, '--token', tok.json.token, '--name', 'builder', '--once'], { env });
    const ms = performance.now() - t0;
    expect(r.status, r.stderr).toBe(0);
    expect(r.json).toMatchObject({ hostId: expect.stringMatching(/^h-[0-9a-f]{32}$/), checkins: 1, assignment: null, healthy: true });
    expect(statSync(join(home, 'state/agent/host.key')).mode & 0o777).toBe(0o600);
    // the token was one-time; enrolled, the agent needs neither it nor --server
    const again = sutureJson<{ hostId: string }>(['agent', '--once'], { env });
    expect(again.json.hostId).toBe(r.json.hostId);
    const sick = sutureJson<{ healthy: boolean }>(['agent', '--once', '--health-cmd', 'echo disk full >&2; exit 3'], { env });
    expect(sick.json.healthy).toBe(false);
    const hosts = sutureJson<{ hosts: { id: string; name: string; healthOk: boolean; release: string; buildId: string }[] }>(['fleet', 'hosts'], { env });
    const me = hosts.json.hosts.find((h) => h.id === r.json.hostId)!;
    expect(me).toMatchObject({ name: 'builder', healthOk: false });
    expect(me.release).toBe(readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim());
    const other = suture(['agent', '--server', 'http://127.0.0.1:1', '--once'], { env });
    expect(other.status).toBe(EXIT.conflict);
    expect(other.stderr).toMatch(/this host is enrolled with http:\/\/127\.0\.0\.1:\d+, not http:\/\/127\.0\.0\.1:1/);
    console.log(`suture agent --server --token --once (enrol + check-in, one process): ${ms.toFixed(0)} ms`);
  });
});

describe('suture agent (the service)', () => {
  it('runs until SIGTERM (systemctl stop), then stops on its own between steps: exit 0', async () => {
    const p = spawn(process.execPath, [join(ROOT, 'bin/suture.js'), 'agent'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr!.on('data', (b: Buffer) => (err += b.toString()));
    const t0 = performance.now();
    await new Promise<void>((res, rej) => {
      const t = setTimeout(() => rej(new Error(`no first cycle in 20 s: ${err}`)), 20_000);
      const look = setInterval(() => {
        if (/running as h-/.test(err)) {
          clearInterval(look);
          clearTimeout(t);
          res();
        }
      }, 20);
    });
    // its first check-in is done (or under way); nothing is loaded on this machine
    await new Promise((r) => setTimeout(r, 300));
    const s0 = performance.now();
    p.kill('SIGTERM');
    const code = await new Promise<number | null>((res) => p.once('exit', (c) => res(c)));
    const stopMs = performance.now() - s0;
    expect(code, err).toBe(0);
    expect(err).toMatch(/suture agent: stopped \(SIGTERM\)/);
    expect(stopMs).toBeLessThan(10_000);
    console.log(`suture agent: started in ${(s0 - t0).toFixed(0)} ms, stopped ${stopMs.toFixed(0)} ms after SIGTERM`);
  }, 40_000);
});

describe('suture-agent.service', () => {
  const unit = readFileSync(join(ROOT, 'packaging/suture-agent.service'), 'utf8');
  it('runs suture agent after suture.service (never before it, never required by it), only once enrolled', () => {
    expect(unit).toMatch(/^ExecStart=\/usr\/bin\/suture agent \$SUTURE_AGENT_OPTS$/m);
    expect(unit).toMatch(/^After=suture\.service network-online\.target$/m);
    expect(unit).not.toMatch(/^Before=/m);
    expect(unit).toMatch(/^ConditionPathExists=\/var\/lib\/suture\/agent\/agent\.json$/m);
    expect(unit).toMatch(/^WantedBy=multi-user\.target$/m);
    expect(readFileSync(join(ROOT, 'packaging/suture.service'), 'utf8')).not.toMatch(/agent/);
  });
  it('the package installs it disabled: postinst enables only suture.service and suture-guard.service', () => {
    const postinst = readFileSync(join(ROOT, 'packaging/debian/postinst'), 'utf8');
    expect(postinst).toMatch(/for unit in suture\.service suture-guard\.service; do/);
    expect(postinst).not.toMatch(/enable suture-agent/);
    expect(postinst).toMatch(/update-state suture-agent\.service/);
    expect(readFileSync(join(ROOT, 'packaging/debian/postrm'), 'utf8')).toMatch(/purge suture\.service suture-guard\.service suture-agent\.service/);
    expect(readFileSync(join(ROOT, 'scripts/package.sh'), 'utf8')).toMatch(/packaging\/suture-agent\.service "\$root\/usr\/lib\/systemd\/system\/suture-agent\.service"/);
  });
});
