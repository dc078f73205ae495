// SPDX-License-Identifier: GPL-2.0-only
/**
 * `suture server [--listen ADDR:PORT] [--database URL] [--tls-cert C --tls-key K]` and `suture server
 * init`: the fleet server (src/fleet). Fastify, Kysely and the database
 * drivers are imported only when a server command runs.
 */
import { Command, InvalidArgumentError } from 'commander';
import { mkdirSync, readFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { createSecureContext } from 'node:tls';
import { dirname, join } from 'node:path';
import { sutureHome } from '../util/paths.js';
import { fsError, SutureError } from '../util/errors.js';
import { out, printJson } from './output.js';

export function defaultDatabase(env = process.env): string {
  return env.SUTURE_FLEET_DATABASE ?? `sqlite:${join(sutureHome(env), 'server', 'fleet.db')}`;
}
export function defaultAdminKey(env = process.env): string {
  return env.SUTURE_FLEET_ADMIN_KEY ?? join(sutureHome(env), 'server', 'admin.key');
}

export function parseListen(v: string): { host: string; port: number } {
  const m = /^(\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-f:]+\]|localhost):(\d{1,5})$/.exec(v);
  if (!m || Number(m[2]) > 65535) throw new InvalidArgumentError('give ADDRESS:PORT, e.g. 127.0.0.1:7443');
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port: Number(m[2]) };
}

/** Read and check --tls-cert/--tls-key before anything else is opened: a bad pair is refused naming the file. */
export function readTls(certFile: string | undefined, keyFile: string | undefined): { cert: Buffer; key: Buffer } | undefined {
  if (!certFile && !keyFile) return undefined;
  if (!certFile || !keyFile) throw new SutureError('usage', `--tls-cert and --tls-key go together (${certFile ? `--tls-cert ${certFile}` : `--tls-key ${keyFile}`} alone)`);
  const read = (f: string, what: string) => {
    try {
      return readFileSync(f);
    } catch (e) {
      throw fsError(e, `reading the server's TLS ${what}`, f);
    }
  };
  const cert = read(certFile, 'certificate');
  const key = read(keyFile, 'key');
  try {
    new X509Certificate(cert);
  } catch (e) {
    throw new SutureError('invalid-input', `--tls-cert ${certFile} is not a PEM certificate: ${(e as Error).message}`);
  }
  try {
    createSecureContext({ cert, key });
  } catch (e) {
    throw new SutureError('invalid-input', `--tls-key ${keyFile} is not the private key of --tls-cert ${certFile}: ${(e as Error).message}`, { hint: 'give the key the certificate was made for (PEM)' });
  }
  return { cert, key };
}

async function openMigrated(url: string) {
  const [{ openDatabase, migrate }, { FleetError }] = await Promise.all([import('../fleet/db.js'), import('../fleet/errors.js')]);
  const d = openDatabase(url);
  try {
    await migrate(d);
  } catch (e) {
    await d.db.destroy();
    if (e instanceof FleetError) throw new SutureError('environment', e.message, { hint: 'check --database and that the database server runs' });
    throw new SutureError('environment', `the database ${d.where} cannot be used: ${(e as Error).message}`, { hint: 'check --database and that the database server runs' });
  }
  return d;
}

function parseBatch(v: string): number {
  const n = Number(v);
  if (!/^\d{1,6}$/.test(v) || n < 1) throw new SutureError('usage', `--hand-out-batch ${v}: give a whole number of hosts from 1 to 999999`);
  return n;
}

export function serverCommand(): Command {
  const c = new Command('server')
    .description('run the fleet server (HTTP API for agents and admins)')
    .option('--listen <addr:port>', 'address and port to listen on', parseListen, parseListen('127.0.0.1:7443'))
    .option('--database <url>', 'sqlite:PATH (default, embedded) or postgres://…', defaultDatabase())
    .option('--tick <ms>', 'how often rollouts are advanced', (v) => Number(v), 2000)
    .option('--hand-out-batch <n>', 'at most this many hosts are given to a stage per tick (a stage of thousands is handed out over several ticks)', parseBatch, 250)
    .option('--log', 'log each request (JSON, to stdout)')
    .option('--tls-cert <file>', 'serve https: the certificate chain (PEM); needs --tls-key')
    .option('--tls-key <file>', 'the private key of --tls-cert (PEM)')
    .action(async (o: { listen: { host: string; port: number }; database: string; tick: number; handOutBatch: number; log?: boolean; tlsCert?: string; tlsKey?: string }) => {
      const tls = readTls(o.tlsCert, o.tlsKey);
      const d = await openMigrated(o.database);
      const [{ buildApp, startTicker }, { Fleet }] = await Promise.all([import('../fleet/app.js'), import('../fleet/service.js')]);
      const fleet = new Fleet(d, { handOutBatch: o.handOutBatch });
      const app = buildApp(fleet, { logger: !!o.log, tls });
      try {
        await app.listen({ host: o.listen.host, port: o.listen.port });
      } catch (e) {
        await d.db.destroy();
        throw new SutureError('environment', `cannot listen on ${o.listen.host}:${o.listen.port}: ${(e as Error).message}`);
      }
      const addr = app.server.address();
      const port = typeof addr === 'object' && addr ? addr.port : o.listen.port;
      process.stderr.write(`suture server: listening on ${tls ? 'https' : 'http'}://${o.listen.host}:${port}, database ${d.where}\n`);
      const stop = startTicker(fleet, o.tick, (e) => app.log.error(e));
      await new Promise<void>((resolve) => {
        const end = () => resolve();
        process.once('SIGTERM', end);
        process.once('SIGINT', end);
      });
      stop();
      await app.close();
      await d.db.destroy();
    });
  c.command('init')
    .description('create or migrate the database (--database of suture server) and make an admin key (0600)')
    .option('--admin-key <file>', 'where to write the admin key', defaultAdminKey())
    .option('--name <name>', 'the admin name shown in rollout logs', 'admin')
    .option('--json', 'print JSON')
    .action(async (_o: unknown, cmd: Command) => {
      // --database is the parent command's option (`suture server init --database URL` parses it there)
      const o = cmd.optsWithGlobals<{ database: string; adminKey: string; name: string; json?: boolean }>();
      const d = await openMigrated(o.database);
      try {
        const [{ newIdentity }, { writeIdentityFile }, { Fleet }] = await Promise.all([import('../fleet/protocol.js'), import('../fleet/client.js'), import('../fleet/service.js')]);
        const id = newIdentity();
        mkdirSync(dirname(o.adminKey), { recursive: true, mode: 0o700 });
        writeIdentityFile(o.adminKey, id);
        const adminId = await new Fleet(d).addAdmin(id.publicKey, o.name);
        if (o.json) printJson({ database: d.where, adminId, adminKey: o.adminKey });
        else out(`database ${d.where} ready; admin ${adminId}, key ${o.adminKey} (0600)`);
      } finally {
        await d.db.destroy();
      }
    });
  c.command('dashboard-user')
    .description('add a dashboard login (or set its password): the password is read from standard input, its first line')
    .argument('<name>', 'user name')
    .option('--json', 'print JSON')
    .action(async (name: string, _o: unknown, cmd: Command) => {
      const o = cmd.optsWithGlobals<{ database: string; json?: boolean }>();
      const password = (await readStdin()).split('\n')[0]!.replace(/\r$/, '');
      const { MIN_PASSWORD, Sessions, UserName } = await import('../fleet/sessions.js');
      if (!UserName.test(name)) throw new SutureError('usage', `dashboard user name ${JSON.stringify(name)}: use 1 to 64 of A-Z a-z 0-9 _ . -`);
      if (password.length < MIN_PASSWORD) throw new SutureError('usage', `the password on standard input has ${password.length} characters: give at least ${MIN_PASSWORD}`, { hint: `e.g. head -c 18 /dev/urandom | base64 | tee pw | suture server dashboard-user ${name}` });
      const d = await openMigrated(o.database);
      try {
        await new Sessions(d).setUser(name, password);
      } finally {
        await d.db.destroy();
      }
      if (o.json) printJson({ database: d.where, user: name });
      else out(`dashboard user ${name} can log in at /dashboard (database ${d.where})`);
    });
  return c;
}

async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) throw new SutureError('usage', 'give the password on standard input (a pipe or a file), not a terminal', { hint: 'suture server dashboard-user NAME < password-file' });
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of process.stdin) {
    chunks.push(c as Buffer);
    n += (c as Buffer).length;
    if (n > 4096) throw new SutureError('usage', 'standard input holds more than 4096 bytes: give the password alone');
  }
  return Buffer.concat(chunks).toString('utf8');
}
