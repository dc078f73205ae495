// SPDX-License-Identifier: GPL-2.0-only
/**
 * The fleet server's database: one Kysely query layer over SQLite (the
 * embedded default: better-sqlite3, a file, nothing to start) and PostgreSQL
 * (pg, for several server processes sharing one database), and its schema
 * migrations (Kysely's Migrator, migrations written here in code).
 *
 * Times are integers (ms since the epoch): `bigint` in PostgreSQL, read back
 * as numbers. The native drivers are loaded with createRequire, so the CLI's
 * esbuild bundle leaves them in node_modules (better-sqlite3 is a native
 * addon; pg has an optional native half).
 *
 * SQLite serves one server process (better-sqlite3 is synchronous; Kysely
 * runs one transaction at a time on its one connection). PostgreSQL serves
 * many: the rollout row is locked for every change (service.ts says how).
 */
import { createRequire } from 'node:module';
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { Kysely, Migrator, PostgresDialect, SqliteDialect, sql, type Generated, type Migration, type MigrationProvider, type SelectQueryBuilder, type Transaction } from 'kysely';
import { FleetError } from './errors.js';

const require = createRequire(import.meta.url);

export interface AdminTable {
  id: string;
  public_key: string;
  name: string;
  created_at: number;
}
export interface TokenTable {
  /** sha256 of the token: the token itself is never stored. */
  hash: string;
  expires_at: number;
  created_at: number;
  created_by: string;
  used_at: number | null;
  host_id: string | null;
}
export interface HostTable {
  id: string;
  public_key: string;
  name: string;
  channel: string;
  enrolled_at: number;
  last_seen: number | null;
  release: string | null;
  build_id: string | null;
  boot_id: string | null;
  effective_version: string | null;
  health_ok: number | null;
  /** The last check-in's facts, JSON. */
  facts: string | null;
  /** The host's own clock when it signed its last check-in (its facts' "now"; a transition reported at it is still running). */
  reported_at: number | null;
}
/** A host pinned to one patch: rollouts of any other patch skip it. */
export interface PinTable {
  host_id: string;
  patch: string;
  pinned_at: number;
  pinned_by: string;
}
export interface NonceTable {
  key_id: string;
  nonce: string;
  expires_at: number;
}
export interface BundleTable {
  id: string;
  name: string;
  channel: string;
  release: string;
  build_id: string;
  manifest: string;
  size: number;
  data: Buffer;
  published_at: number;
  published_by: string;
}
export interface RolloutTable {
  id: string;
  bundle_id: string;
  name: string;
  channel: string;
  build_id: string;
  status: string;
  stage: number;
  /** How many hosts the current stage reaches in all, fixed when it started (rollout.ts stageSize); 0 before. */
  stage_size: number;
  stages: string;
  soak_ms: number;
  max_failures: number;
  start_at: number;
  reason: string | null;
  created_at: number;
  created_by: string;
  updated_at: number;
}
export interface TargetTable {
  rollout_id: string;
  host_id: string;
  stage: number;
  state: string;
  failure: string | null;
  assigned_at: number;
  applied_at: number | null;
  /** When the host was found healthy past the soak (for the progress plot). */
  healthy_at: number | null;
  /** When its failure was recorded. */
  failed_at: number | null;
  /** The host's report of its transition to this rollout's patch: seconds, when, the tasks that held it up (JSON). */
  transition_sec: number | null;
  transition_at: number | null;
  transition_blockers: string | null;
}
/** The one rollout a host is in: the primary key makes "two rollouts at once" impossible in the database itself. */
export interface HostActiveTable {
  host_id: string;
  rollout_id: string;
}
export interface EventTable {
  id: Generated<number>;
  rollout_id: string;
  at: number;
  text: string;
}
/** One row, locked by every rollout tick so that ticks (which hand out hosts) run one at a time across processes. */
export interface LockTable {
  id: number;
}

/** A dashboard login: a name and its scrypt password hash. */
export interface DashboardUserTable {
  name: string;
  /** scrypt$N$r$p$salt-base64$hash-base64 */
  password: string;
  created_at: number;
}
/** A dashboard session: the sha256 of its cookie (the cookie itself is never stored) and its CSRF token. */
export interface SessionTable {
  hash: string;
  user: string;
  csrf: string;
  created_at: number;
  expires_at: number;
}

export interface DB {
  admins: AdminTable;
  enroll_tokens: TokenTable;
  hosts: HostTable;
  nonces: NonceTable;
  bundles: BundleTable;
  rollouts: RolloutTable;
  rollout_targets: TargetTable;
  host_active: HostActiveTable;
  rollout_events: EventTable;
  fleet_lock: LockTable;
  host_pins: PinTable;
  dashboard_users: DashboardUserTable;
  sessions: SessionTable;
}

export type Dialect = 'sqlite' | 'postgres';

export interface Database {
  db: Kysely<DB>;
  dialect: Dialect;
  /** Where it is, without a password. */
  where: string;
}

/** `sqlite:PATH`, a bare path, or `postgres://…` / `postgresql://…`. */
export function parseDatabaseUrl(url: string): { dialect: Dialect; target: string } {
  if (/^postgres(ql)?:\/\//.test(url)) return { dialect: 'postgres', target: url };
  const path = url.startsWith('sqlite:') ? url.slice('sqlite:'.length) : url;
  if (!path) throw new FleetError('bad-request', `--database ${url}: give sqlite:PATH or postgres://…`, { type: 'database', id: url });
  return { dialect: 'sqlite', target: path === ':memory:' ? path : resolve(path) };
}

export function openDatabase(url: string): Database {
  const { dialect, target } = parseDatabaseUrl(url);
  if (dialect === 'sqlite') {
    if (target !== ':memory:') mkdirSync(dirname(target), { recursive: true, mode: 0o700 });
    const SQLite = require('better-sqlite3') as typeof import('better-sqlite3');
    const conn = new SQLite(target);
    conn.pragma('journal_mode = WAL');
    // WAL with synchronous=NORMAL: a commit is durable at the next checkpoint, not each fsync; the database stays
    // consistent on power loss (SQLite's documented guarantee), and a check-in no longer waits on the disk twice
    conn.pragma('synchronous = NORMAL');
    conn.pragma('busy_timeout = 5000');
    conn.pragma('foreign_keys = ON');
    // Kysely prepares every query anew; keep the prepared statements (a server repeats the same few hundred
    // queries; 4% of its time under load went to preparing them). Bounded: `in (…)` lists of other lengths differ.
    const cache = new Map<string, import('better-sqlite3').Statement>();
    const database = {
      close: () => conn.close(),
      prepare: (q: string) => {
        let st = cache.get(q);
        if (!st) {
          if (cache.size >= 1000) cache.clear();
          st = conn.prepare(q);
          cache.set(q, st);
        }
        return st;
      },
    };
    return { db: new Kysely<DB>({ dialect: new SqliteDialect({ database }) }), dialect, where: `sqlite:${target}` };
  }
  const pg = require('pg') as typeof import('pg');
  // int8 (bigint) columns hold ms times: read them as numbers (they stay far below 2^53).
  const types = { getTypeParser: (oid: number, format?: string) => (oid === 20 ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format as 'text')) };
  const pool = new pg.Pool({ connectionString: target, max: 10, types } as import('pg').PoolConfig);
  const u = new URL(target);
  u.password = '';
  return { db: new Kysely<DB>({ dialect: new PostgresDialect({ pool }) }), dialect, where: u.toString() };
}

/** Lock the rows a query selects until the transaction ends (PostgreSQL; SQLite runs one writer at a time). */
export function forUpdate<O>(d: Dialect, q: SelectQueryBuilder<DB, keyof DB, O>): SelectQueryBuilder<DB, keyof DB, O> {
  return d === 'postgres' ? q.forUpdate() : q;
}

/**
 * Key-share-lock the rows a query selects until the transaction ends (PostgreSQL): others may key-share-lock them
 * and lock them FOR NO KEY UPDATE (forNoKeyUpdate) too; none may lock them FOR UPDATE or delete them.
 */
export function forKeyShare<O>(d: Dialect, q: SelectQueryBuilder<DB, keyof DB, O>): SelectQueryBuilder<DB, keyof DB, O> {
  return d === 'postgres' ? q.forKeyShare() : q;
}

/** Lock the rows a query selects FOR NO KEY UPDATE (PostgreSQL): exclusive of itself and FOR UPDATE, not of forKeyShare. */
export function forNoKeyUpdate<O>(d: Dialect, q: SelectQueryBuilder<DB, keyof DB, O>): SelectQueryBuilder<DB, keyof DB, O> {
  return d === 'postgres' ? q.forNoKeyUpdate() : q;
}

export type Tx = Transaction<DB>;

// ---------- migrations ----------

function migrations(d: Dialect): Record<string, Migration> {
  const bigint = 'bigint' as const;
  const blob = d === 'postgres' ? 'bytea' : 'blob';
  return {
    '0001-fleet': {
      async up(db: Kysely<unknown>) {
        await db.schema.createTable('admins').addColumn('id', 'text', (c) => c.primaryKey()).addColumn('public_key', 'text', (c) => c.notNull().unique()).addColumn('name', 'text', (c) => c.notNull()).addColumn('created_at', bigint, (c) => c.notNull()).execute();
        await db.schema
          .createTable('enroll_tokens')
          .addColumn('hash', 'text', (c) => c.primaryKey())
          .addColumn('expires_at', bigint, (c) => c.notNull())
          .addColumn('created_at', bigint, (c) => c.notNull())
          .addColumn('created_by', 'text', (c) => c.notNull())
          .addColumn('used_at', bigint)
          .addColumn('host_id', 'text')
          .execute();
        await db.schema
          .createTable('hosts')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('public_key', 'text', (c) => c.notNull().unique())
          .addColumn('name', 'text', (c) => c.notNull())
          .addColumn('channel', 'text', (c) => c.notNull())
          .addColumn('enrolled_at', bigint, (c) => c.notNull())
          .addColumn('last_seen', bigint)
          .addColumn('release', 'text')
          .addColumn('build_id', 'text')
          .addColumn('boot_id', 'text')
          .addColumn('effective_version', 'text')
          .addColumn('health_ok', 'integer')
          .addColumn('facts', 'text')
          .execute();
        await db.schema.createIndex('hosts_build').on('hosts').columns(['build_id', 'channel']).execute();
        await db.schema
          .createTable('nonces')
          .addColumn('key_id', 'text', (c) => c.notNull())
          .addColumn('nonce', 'text', (c) => c.notNull())
          .addColumn('expires_at', bigint, (c) => c.notNull())
          .addPrimaryKeyConstraint('nonces_pk', ['key_id', 'nonce'])
          .execute();
        await db.schema.createIndex('nonces_expiry').on('nonces').column('expires_at').execute();
        await db.schema
          .createTable('bundles')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('name', 'text', (c) => c.notNull())
          .addColumn('channel', 'text', (c) => c.notNull())
          .addColumn('release', 'text', (c) => c.notNull())
          .addColumn('build_id', 'text', (c) => c.notNull())
          .addColumn('manifest', 'text', (c) => c.notNull())
          .addColumn('size', 'integer', (c) => c.notNull())
          .addColumn('data', blob, (c) => c.notNull())
          .addColumn('published_at', bigint, (c) => c.notNull())
          .addColumn('published_by', 'text', (c) => c.notNull())
          .execute();
        await db.schema
          .createTable('rollouts')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('bundle_id', 'text', (c) => c.notNull().references('bundles.id'))
          .addColumn('name', 'text', (c) => c.notNull())
          .addColumn('channel', 'text', (c) => c.notNull())
          .addColumn('build_id', 'text', (c) => c.notNull())
          .addColumn('status', 'text', (c) => c.notNull())
          .addColumn('stage', 'integer', (c) => c.notNull())
          .addColumn('stages', 'text', (c) => c.notNull())
          .addColumn('soak_ms', bigint, (c) => c.notNull())
          .addColumn('max_failures', 'integer', (c) => c.notNull())
          .addColumn('start_at', bigint, (c) => c.notNull())
          .addColumn('reason', 'text')
          .addColumn('created_at', bigint, (c) => c.notNull())
          .addColumn('created_by', 'text', (c) => c.notNull())
          .addColumn('updated_at', bigint, (c) => c.notNull())
          .execute();
        await db.schema
          .createTable('rollout_targets')
          .addColumn('rollout_id', 'text', (c) => c.notNull().references('rollouts.id'))
          .addColumn('host_id', 'text', (c) => c.notNull().references('hosts.id'))
          .addColumn('stage', 'integer', (c) => c.notNull())
          .addColumn('state', 'text', (c) => c.notNull())
          .addColumn('failure', 'text')
          .addColumn('assigned_at', bigint, (c) => c.notNull())
          .addColumn('applied_at', bigint)
          .addPrimaryKeyConstraint('rollout_targets_pk', ['rollout_id', 'host_id'])
          .execute();
        await db.schema
          .createTable('host_active')
          .addColumn('host_id', 'text', (c) => c.primaryKey().references('hosts.id'))
          .addColumn('rollout_id', 'text', (c) => c.notNull().references('rollouts.id'))
          .execute();
        await db.schema
          .createTable('rollout_events')
          .addColumn('id', d === 'postgres' ? 'bigserial' : 'integer', (c) => (d === 'postgres' ? c.primaryKey() : c.primaryKey().autoIncrement()))
          .addColumn('rollout_id', 'text', (c) => c.notNull())
          .addColumn('at', bigint, (c) => c.notNull())
          .addColumn('text', 'text', (c) => c.notNull())
          .execute();
        await db.schema.createIndex('rollout_events_rollout').on('rollout_events').columns(['rollout_id', 'id']).execute();
        await db.schema.createTable('fleet_lock').addColumn('id', 'integer', (c) => c.primaryKey()).execute();
        await sql`insert into fleet_lock (id) values (1)`.execute(db);
      },
    },
    '0002-reports-pins': {
      async up(db: Kysely<unknown>) {
        await db.schema.alterTable('hosts').addColumn('reported_at', bigint).execute();
        await db.schema.alterTable('rollout_targets').addColumn('healthy_at', bigint).execute();
        await db.schema.alterTable('rollout_targets').addColumn('failed_at', bigint).execute();
        await db.schema.alterTable('rollout_targets').addColumn('transition_sec', d === 'postgres' ? 'double precision' : 'real').execute();
        await db.schema.alterTable('rollout_targets').addColumn('transition_at', bigint).execute();
        await db.schema.alterTable('rollout_targets').addColumn('transition_blockers', 'text').execute();
        await db.schema
          .createTable('host_pins')
          .addColumn('host_id', 'text', (c) => c.primaryKey().references('hosts.id'))
          .addColumn('patch', 'text', (c) => c.notNull())
          .addColumn('pinned_at', bigint, (c) => c.notNull())
          .addColumn('pinned_by', 'text', (c) => c.notNull())
          .execute();
        // a check-in looks up its host's targets; the reports read a rollout's by state
        await db.schema.createIndex('rollout_targets_host').on('rollout_targets').column('host_id').execute();
        await db.schema.createIndex('hosts_name').on('hosts').column('name').execute();
      },
    },
    '0003-dashboard': {
      async up(db: Kysely<unknown>) {
        await db.schema.createTable('dashboard_users').addColumn('name', 'text', (c) => c.primaryKey()).addColumn('password', 'text', (c) => c.notNull()).addColumn('created_at', bigint, (c) => c.notNull()).execute();
        await db.schema
          .createTable('sessions')
          .addColumn('hash', 'text', (c) => c.primaryKey())
          .addColumn('user', 'text', (c) => c.notNull())
          .addColumn('csrf', 'text', (c) => c.notNull())
          .addColumn('created_at', bigint, (c) => c.notNull())
          .addColumn('expires_at', bigint, (c) => c.notNull())
          .execute();
      },
    },
    '0004-stage-size': {
      async up(db: Kysely<unknown>) {
        // a stage's hosts are handed out over several ticks: its size is kept with the rollout (0: as its hosts make it)
        await db.schema.alterTable('rollouts').addColumn('stage_size', 'integer', (c) => c.notNull().defaultTo(0)).execute();
      },
    },
    '0005-rollout-pages': {
      async up(db: Kysely<unknown>) {
        // a rollout's targets are read a page at a time in the order they were assigned (assigned_at never changes)
        await db.schema.createIndex('rollout_targets_order').on('rollout_targets').columns(['rollout_id', 'assigned_at', 'host_id']).execute();
      },
    },
  };
}

/** Bring the schema to the newest version; several processes may call it at once (PostgreSQL: Kysely's migration lock). */
export async function migrate(d: Database): Promise<string[]> {
  const provider: MigrationProvider = { getMigrations: async () => migrations(d.dialect) };
  const m = new Migrator({ db: d.db, provider });
  const { error, results } = await m.migrateToLatest();
  if (error) {
    throw new FleetError('unavailable', `migrating ${d.where}: ${(error as Error).message ?? String(error)}`, { type: 'database', id: d.where });
  }
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}
