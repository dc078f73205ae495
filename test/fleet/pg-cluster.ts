// SPDX-License-Identifier: GPL-2.0-only
/**
 * A private PostgreSQL cluster from Debian's `postgresql` package, for the
 * fleet's PostgreSQL test and the fleet load bench: initdb and pg_ctl run as
 * the postgres user, the cluster listens on 127.0.0.1 on its own port with
 * its socket in its own directory, and is stopped by `stop()`.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

/** The newest PostgreSQL Debian installed (15 on Debian 12, 17 on Debian 13). */
export const PGBIN = (() => {
  const v = existsSync('/usr/lib/postgresql') ? readdirSync('/usr/lib/postgresql').filter((x) => /^\d+$/.test(x)).sort((a, b) => Number(b) - Number(a))[0] : undefined;
  return `/usr/lib/postgresql/${v ?? 'missing'}/bin`;
})();

function asPostgres(cmd: string, args: string[]): string {
  const r = spawnSync('runuser', ['-u', 'postgres', '--', cmd, ...args], { encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr || r.stdout}`);
  return r.stdout;
}

export interface PgCluster {
  url: string;
  stop(): void;
}

/** Make and start a cluster under dir (made world-traversable for the postgres user); `settings` are extra -c options. */
export function startPostgres(dir: string, port: number, settings: string[] = []): PgCluster {
  if (!existsSync(join(PGBIN, 'initdb'))) throw new Error('this needs PostgreSQL: apt-get install postgresql (scripts/setup.sh installs it)');
  chmodSync(dir, 0o755);
  const data = join(dir, 'pg');
  mkdirSync(data, { mode: 0o700 });
  const uid = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).stdout.trim();
  const gid = spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).stdout.trim();
  chownSync(data, Number(uid), Number(gid));
  asPostgres(join(PGBIN, 'initdb'), ['-D', join(data, 'db'), '-U', 'suture', '--auth=trust', '-E', 'UTF8', '--no-sync']);
  const opts = [`-p ${port}`, `-k ${data}`, '-c listen_addresses=127.0.0.1', ...settings.map((s) => `-c ${s}`)].join(' ');
  asPostgres(join(PGBIN, 'pg_ctl'), ['-D', join(data, 'db'), '-l', join(data, 'log'), '-w', '-t', '60', '-o', opts, 'start']);
  return {
    url: `postgres://suture@127.0.0.1:${port}/postgres`,
    stop: () => void spawnSync('runuser', ['-u', 'postgres', '--', join(PGBIN, 'pg_ctl'), '-D', join(data, 'db'), '-m', 'fast', '-w', 'stop'], { timeout: 60_000 }),
  };
}
