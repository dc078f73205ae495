// SPDX-License-Identifier: GPL-2.0-only
/**
 * TLS: `suture server --tls-cert C --tls-key K` (the built CLI, SQLite,
 * 127.0.0.1) with a CA and a server certificate made here by Debian's
 * openssl; `suture fleet hosts --ca` trusts it; a wrong CA, the system store
 * (which does not hold the test CA) and plain http are refused with a clear
 * error. The server refuses a key that is not its certificate's before it
 * opens anything. `suture agent --ca` (or SUTURE_FLEET_CA) enrols and checks
 * in over https; a wrong CA, a missing one and a file that is no certificate
 * are refused, and the agent has then enrolled nothing.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT } from '../../src/cli/exit-codes.js';
import { FleetClient, readIdentityFile } from '../../src/fleet/client.js';
import { ROOT, suture, sutureJson } from '../helpers/cli.js';
import { listening } from './helpers.js';

const OPENSSL = '/usr/bin/openssl';
let dir: string;
let home: string;
let env: NodeJS.ProcessEnv;
let server: ChildProcess | undefined;
let url = '';

function openssl(args: string[]): void {
  execFileSync(OPENSSL, args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A CA (self-signed) and a server certificate for 127.0.0.1 signed by it. */
function makeCa(name: string): void {
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}-ca.key`, '-out', `${name}-ca.pem`, '-days', '2', '-subj', `/CN=suture test ${name} CA`]);
}

function startServer(args: string[]): Promise<string> {
  const p = spawn(process.execPath, [join(ROOT, 'bin/suture.js'), 'server', '--listen', '127.0.0.1:0', ...args], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  server = p;
  return listening(p, 30_000);
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'suture-tls-'));
  home = join(dir, 'home');
  env = { ...process.env, SUTURE_HOME: home };
  delete env.SUTURE_FLEET_CA;
  delete env.SUTURE_FLEET_SERVER;
  makeCa('good');
  makeCa('wrong');
  writeFileSync(join(dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1']);
  openssl(['x509', '-req', '-in', 'server.csr', '-CA', 'good-ca.pem', '-CAkey', 'good-ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '2', '-extfile', 'san.ext']);
  const init = suture(['server', 'init', '--json'], { env });
  expect(init.status, init.stderr).toBe(0);
  url = await startServer(['--tls-cert', join(dir, 'server.pem'), '--tls-key', join(dir, 'server.key')]);
}, 60_000);

afterAll(() => {
  server?.kill('SIGTERM');
});

describe('suture server over TLS', () => {
  it('listens on https; the admin CLI with --ca (the CA that signed it) is served', () => {
    expect(url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const r = suture(['fleet', 'hosts', '--json', '--server', url, '--ca', join(dir, 'good-ca.pem')], { env });
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ hosts: [] });
    // the same through SUTURE_FLEET_CA (how an agent's unit can carry it)
    const e = suture(['fleet', 'enroll-token', '--json', '--server', url], { env: { ...env, SUTURE_FLEET_CA: join(dir, 'good-ca.pem') } });
    expect(e.status, e.stderr).toBe(0);
    expect(JSON.parse(e.stdout).token).toMatch(/^st_/);
  });

  it('the report commands over https: cves (none yet), pin of an unknown host refused naming it (exit 10)', () => {
    const ca = ['--server', url, '--ca', join(dir, 'good-ca.pem')];
    const c = suture(['fleet', 'cves', ...ca], { env });
    expect(c.status, c.stderr).toBe(0);
    expect(c.stdout.trim()).toBe('no published bundle names a CVE');
    const p = suture(['fleet', 'pin', 'nohost', 'fake_bound', ...ca], { env });
    expect(p.status).toBe(EXIT.notFound);
    expect(p.stderr).toContain('no enrolled host has the id or name nohost');
    const r = suture(['fleet', 'rollouts', '--json', ...ca], { env });
    expect(JSON.parse(r.stdout)).toEqual({ rollouts: [] });
  });

  it('a wrong CA is refused, naming the CA file and the server (exit of untrusted)', () => {
    const r = suture(['fleet', 'hosts', '--server', url, '--ca', join(dir, 'wrong-ca.pem')], { env });
    expect(r.status).toBe(EXIT.untrusted);
    expect(r.stderr).toContain(`the fleet server at ${url} presented a certificate that CA file ${join(dir, 'wrong-ca.pem')} does not vouch for`);
    expect(r.stderr).toMatch(/hint: give --ca FILE with the CA certificate that signed the server's/);
  });

  it('without --ca the system store is used, and it does not hold the test CA', async () => {
    const c = new FleetClient(url, readIdentityFile(join(home, 'server', 'admin.key')));
    await expect(c.request('GET', '/v1/admin/hosts')).rejects.toMatchObject({ kind: 'untrusted', message: expect.stringMatching(/the system store \(\/etc\/ssl\/certs\/ca-certificates\.crt and Node's roots\) does not vouch for \(UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED/) });
    c.close();
  });

  it('plain http to the https port gets no fleet reply', () => {
    const r = suture(['fleet', 'hosts', '--server', url.replace('https:', 'http:')], { env });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/fleet server/);
  });

  it('suture agent --ca FILE enrols and checks in over https; a wrong, missing or non-certificate CA is refused and nothing is enrolled', () => {
    const good = join(dir, 'good-ca.pem');
    const agentEnv = { ...env, SUTURE_STATE_DIR: join(dir, 'state'), SUTURE_RUN_DIR: join(dir, 'run') };
    const token = () => {
      const t = sutureJson<{ token: string }>(['fleet', 'enroll-token', '--server', url, '--ca', good], { env });
      expect(t.status, t.stderr).toBe(0);
      return t.json.token;
    };
    const tok = token();
    const agent = (name: string, ca: string[], e = agentEnv) => suture(['agent', '--server', url, '--token', tok, '--once', '--dir', join(dir, name), ...ca], { env: e });
    const wrong = agent('agent-wrong', ['--ca', join(dir, 'wrong-ca.pem')]);
    expect(wrong.status).toBe(EXIT.untrusted);
    expect(wrong.stderr).toContain(`the fleet server at ${url} presented a certificate that CA file ${join(dir, 'wrong-ca.pem')} does not vouch for`);
    expect(existsSync(join(dir, 'agent-wrong', 'agent.json'))).toBe(false);
    const missing = agent('agent-missing', ['--ca', join(dir, 'none.pem')]);
    expect(missing.status).toBe(EXIT.notFound);
    expect(missing.stderr).toContain(`reading the fleet server CA (--ca): ${join(dir, 'none.pem')} does not exist`);
    expect(existsSync(join(dir, 'agent-missing'))).toBe(false);
    const key = agent('agent-key', ['--ca', join(dir, 'server.key')]);
    expect(key.status).toBe(EXIT.invalidInput);
    expect(key.stderr).toContain(`the fleet server CA (--ca) ${join(dir, 'server.key')} holds no PEM certificate`);
    expect(existsSync(join(dir, 'agent-key'))).toBe(false);
    // without a CA the system store is used, which does not hold the test CA
    const none = agent('agent-none', []);
    expect(none.status).toBe(EXIT.untrusted);
    // the right CA: enrolled (the token was not used by the refused tries), one check-in
    const ok = sutureJson<{ hostId: string; checkins: number }>(['agent', '--server', url, '--token', tok, '--once', '--dir', join(dir, 'agent-ok'), '--ca', good], { env: agentEnv });
    expect(ok.status, ok.stderr).toBe(0);
    expect(ok.json).toMatchObject({ hostId: expect.stringMatching(/^h-/), checkins: 1 });
    // enrolled, the CA through SUTURE_FLEET_CA (how the unit's environment file can carry it)
    const again = sutureJson<{ hostId: string }>(['agent', '--once', '--dir', join(dir, 'agent-ok')], { env: { ...agentEnv, SUTURE_FLEET_CA: good } });
    expect(again.status, again.stderr).toBe(0);
    expect(again.json.hostId).toBe(ok.json.hostId);
    const help = suture(['agent', '--help'], { env });
    expect(help.stdout.replace(/\s+/g, ' ')).toContain("--ca <file> https: the CA certificate (PEM) the server's must chain to (default: the system store) (env: SUTURE_FLEET_CA)");
  });

  it('the server refuses a key that is not its certificate\'s, and a lone --tls-cert, before opening anything', () => {
    const mismatch = suture(['server', '--listen', '127.0.0.1:0', '--database', `sqlite:${join(dir, 'never.db')}`, '--tls-cert', join(dir, 'server.pem'), '--tls-key', join(dir, 'wrong-ca.key')], { env });
    expect(mismatch.status).toBe(EXIT.invalidInput);
    expect(mismatch.stderr).toContain(`--tls-key ${join(dir, 'wrong-ca.key')} is not the private key of --tls-cert ${join(dir, 'server.pem')}`);
    const lone = suture(['server', '--listen', '127.0.0.1:0', '--database', `sqlite:${join(dir, 'never.db')}`, '--tls-cert', join(dir, 'server.pem')], { env });
    expect(lone.status).toBe(EXIT.usage);
    expect(lone.stderr).toContain('--tls-cert and --tls-key go together');
    const notCert = suture(['server', '--listen', '127.0.0.1:0', '--database', `sqlite:${join(dir, 'never.db')}`, '--tls-cert', join(dir, 'server.key'), '--tls-key', join(dir, 'server.key')], { env });
    expect(notCert.status).toBe(EXIT.invalidInput);
    expect(notCert.stderr).toContain('is not a PEM certificate');
    expect(() => execFileSync('/usr/bin/test', ['-e', join(dir, 'never.db')])).toThrow();
  });
});
