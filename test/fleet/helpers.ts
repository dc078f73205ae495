// SPDX-License-Identifier: GPL-2.0-only
/** Shared by the fleet tests: real signed bundles, a test clock, signed inject calls, host facts, table snapshots. */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { signBundle } from '../../src/bundle/bundle.js';
import { generateKeyFiles, readSecretKey } from '../../src/bundle/keys.js';
import type { ChildProcess } from 'node:child_process';
import { buildApp } from '../../src/fleet/app.js';
import { migrate, openDatabase, type Database } from '../../src/fleet/db.js';
import { Fleet } from '../../src/fleet/service.js';
import { newIdentity, signRequest, type HostFacts, type Identity } from '../../src/fleet/protocol.js';
import { readPatchFile } from '../../src/livepatch/patch-file.js';
import { buildFakePatches } from '../livepatch/fake-kernel.js';

export const BOUND = 'eb4fbcd037e7253717950bf2b93bd5566f47c56f';
export const OTHER = '00112233445566778899aabbccddeeff00112233';

/** Signed bundles of the gcc-built fake livepatch modules: fake_bound (build BOUND), fake_rebuild (build OTHER), fake_cumulative (BOUND, a second patch); each carries CVE-0000-0010/11/12. */
export function makeBundles(): { bound: Buffer; rebuild: Buffer; cumulative: Buffer; dir: string } {
  const ko = buildFakePatches();
  const dir = mkdtempSync(join(tmpdir(), 'suture-fleet-test-'));
  const k = generateKeyFiles(join(dir, 'builder'));
  const sign = (n: string, buildId?: string) => signBundle({ module: readPatchFile(ko(n)), key: readSecretKey(k.key), buildId, builderVersion: '0.1.0', now: new Date('2026-05-01T12:00:00Z') }).bytes;
  return { bound: sign('fake_bound'), rebuild: sign('fake_rebuild'), cumulative: sign('fake_cumulative', BOUND), dir };
}

export class Clock {
  t = Date.UTC(2026, 4, 1, 12);
  now = () => this.t;
  advance(ms: number) {
    this.t += ms;
  }
}

export function facts(buildId: string, o: Partial<HostFacts> = {}): HostFacts {
  return {
    release: '6.1.0-56-amd64',
    buildId,
    bootId: '0b5c1c8e-3a63-4f5e-9f6d-2d1f4b7e8a90',
    uptimeSec: 1000,
    effectiveVersion: null,
    loaded: [],
    installed: [],
    lastTransition: null,
    health: { ok: true, reasons: [] },
    ...o,
  };
}

export interface Call {
  status: number;
  json: any;
  body: Buffer;
}

/** A signed request through inject (no socket). `tweak` may change the headers or body after signing. */
export async function call(app: FastifyInstance, clock: Clock, id: Identity | null, method: 'GET' | 'POST', url: string, body?: unknown, tweak?: (h: Record<string, string>, raw: Buffer) => Buffer | void): Promise<Call & { headers: Record<string, string>; raw: Buffer }> {
  const raw = body === undefined ? Buffer.alloc(0) : Buffer.isBuffer(body) ? body : Buffer.from(JSON.stringify(body));
  const headers: Record<string, string> = id ? signRequest(id, method, url, raw, clock.now()) : {};
  if (body !== undefined) headers['content-type'] = Buffer.isBuffer(body) ? 'application/octet-stream' : 'application/json';
  const sent = tweak?.(headers, raw) ?? raw;
  return send(app, method, url, headers, sent);
}

export async function send(app: FastifyInstance, method: 'GET' | 'POST', url: string, headers: Record<string, string>, raw: Buffer) {
  const r = await app.inject({ method, url, headers, payload: raw.length ? raw : undefined });
  let json: any;
  try {
    json = r.json();
  } catch {
    json = undefined;
  }
  return { status: r.statusCode, json, body: r.rawPayload, headers, raw };
}

/** Enrol a new host: a token from the admin, a key pair made here, the enrolment signed by it. */
export async function enrollHost(app: FastifyInstance, clock: Clock, admin: Identity, name: string): Promise<Identity & { hostId: string }> {
  const t = await call(app, clock, admin, 'POST', '/v1/admin/enroll-tokens', { expiresSec: 3600 });
  if (t.status !== 200) throw new Error(JSON.stringify(t.json));
  const id = newIdentity();
  const r = await call(app, clock, id, 'POST', '/v1/enroll', { token: t.json.token, publicKey: id.publicKey, name });
  if (r.status !== 200) throw new Error(JSON.stringify(r.json));
  return { ...id, hostId: r.json.hostId };
}

/** A fleet server on a fresh SQLite file through inject, on a test clock, with one admin. `migrated`: the migrations it ran. */
export async function apiOnSqlite(prefix: string): Promise<{ d: Database; app: FastifyInstance; fleet: Fleet; clock: Clock; admin: Identity; migrated: string[] }> {
  const d = openDatabase(`sqlite:${join(mkdtempSync(join(tmpdir(), prefix)), 'fleet.db')}`);
  const migrated = await migrate(d);
  const clock = new Clock();
  const fleet = new Fleet(d, { now: clock.now, checkinSec: 60 });
  const admin = newIdentity();
  await fleet.addAdmin(admin.publicKey, 'admin');
  return { d, app: buildApp(fleet), fleet, clock, admin, migrated };
}

/** Wait for `suture server` (a child process) to say where it listens; its URL (bounded). */
export function listening(p: ChildProcess, timeoutMs = 60_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let err = '';
    const t = setTimeout(() => reject(new Error(`server did not start in ${timeoutMs / 1000} s: ${err}`)), timeoutMs);
    p.stderr!.on('data', (b: Buffer) => {
      err += b.toString();
      const m = /listening on (https?:\/\/127\.0\.0\.1:\d+)/.exec(err);
      if (m) {
        clearTimeout(t);
        resolve(m[1]!);
      }
    });
    p.on('exit', (c) => reject(new Error(`server exited ${c}: ${err}`)));
  });
}

/** Every table but the nonces (which a refused but well-signed request does record, by design), as sorted rows. */
export async function snapshot(d: Database): Promise<Record<string, unknown[]>> {
  const out: Record<string, unknown[]> = {};
  for (const t of ['admins', 'enroll_tokens', 'hosts', 'bundles', 'rollouts', 'rollout_targets', 'host_active', 'rollout_events', 'host_pins', 'dashboard_users', 'sessions'] as const) {
    const rows = (await d.db.selectFrom(t).selectAll().execute()) as Record<string, unknown>[];
    out[t] = rows.map((r) => JSON.stringify(r, (_k, v) => (v && typeof v === 'object' && v.type === 'Buffer' ? `bytes:${v.data.length}` : v))).sort();
  }
  return out;
}
