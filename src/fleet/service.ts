// SPDX-License-Identifier: GPL-2.0-only
/**
 * The fleet server's operations over its database: identity (admins, enrol
 * tokens, hosts, request nonces), bundles, check-ins and rollouts. Every
 * change runs in one transaction; every request is validated before it gets
 * here (app.ts) and every entity checked before anything is written, so a
 * refused request changes nothing. The rollout decisions themselves are in
 * rollout.ts; this file loads, locks and stores.
 *
 * Concurrency (PostgreSQL, several server processes): a change to a rollout
 * holds a lock on its row while it reads the targets and writes the result;
 * a tick (which hands out hosts) first locks the single fleet_lock row, so
 * two ticks never pick hosts at the same time; host_active (primary key
 * host_id) makes a host in two rollouts at once a constraint violation
 * rather than a race. The rollout row's lock modes:
 *
 *   FOR UPDATE       admin actions, a host event that records a failure (it may halt the rollout), a tick
 *                    with the targets (it may fail silent hosts): anything that may change any target
 *   FOR NO KEY UPDATE  a tick with counts: it only adds targets and moves the rollout's stage or status
 *   FOR KEY SHARE    any other host event: it changes its own target only, toward settled
 *
 * FOR NO KEY UPDATE and FOR KEY SHARE do not conflict: hosts' results do not
 * wait for a hand-out. That is safe because such a host event never
 * unsettles a target (a counted tick that saw it unsettled only waits a
 * tick longer), never changes the rollout row, and a counted tick never
 * changes an existing target.
 *
 * A tick holds the rollout row briefly: it picks its hosts (at most
 * `handOutBatch`, and how many are still free) holding only fleet_lock, then
 * locks the rollout, counts its targets by state (it loads them only when
 * one may be silent) and writes at most one batch of new targets. A stage of
 * thousands of hosts is handed out over several ticks (its size is kept in
 * the rollout row), and hosts' results, which share the rollout row, wait
 * for one batch at most.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { z } from 'zod';
import { openBundle } from '../bundle/bundle.js';
import { isSutureError } from '../util/errors.js';
import { sql, type QueryCreator } from 'kysely';
import { forKeyShare, forNoKeyUpdate, forUpdate, type Database, type DB, type RolloutTable, type TargetTable, type Tx } from './db.js';
import { FleetError } from './errors.js';
import {
  keyIdOf,
  readSignedHeaders,
  verifyRequest,
  WINDOW_MS,
  type CheckinReply,
  type CheckinRequest,
  type HostFacts,
  HostInfo,
  type RolloutInfo,
  type RolloutShow,
  ROLLOUT_PAGE,
} from './protocol.js';
import { BOUNDS, cveReport, distributionOf, hostState, percentileIndex, rolloutReport, SERIES_POINTS, type Blocker, type TargetSummary } from './reports.js';
import { ACTIVE, failures, formatStages, holdsHost, instructionFor, parseStages, RolloutRefusal, transition, type AdminAction, type RolloutCore, type RolloutEvent, type RolloutStatus, type StageSpec, type Target, type TargetCounts, type TargetState } from './rollout.js';

export interface Caller {
  role: 'admin' | 'host';
  id: string;
  keyId: string;
  /** The caller's clock when it signed the request (ms). */
  time?: number;
  /**
   * The request's nonce, not recorded yet (authenticate's `deferNonce`, PostgreSQL): the operation records it in
   * its own first statement and refuses the request, having changed nothing, if it was used already.
   */
  pendingNonce?: { nonce: string; expiresAt: number };
}

export interface FleetOptions {
  now?: () => number;
  /** A host without a check-in for this long is silent (failed in a soak, no candidate). */
  silentMs?: number;
  /** How often hosts are told to check in. */
  checkinSec?: number;
  /** At most this many hosts are handed out to a stage per tick (default 250). */
  handOutBatch?: number;
}

const sha256 = (b: Uint8Array | string) => createHash('sha256').update(b).digest('hex');

export class Fleet {
  readonly now: () => number;
  readonly silentMs: number;
  readonly checkinSec: number;
  readonly handOutBatch: number;

  constructor(
    readonly d: Database,
    o: FleetOptions = {},
  ) {
    this.now = o.now ?? Date.now;
    this.checkinSec = o.checkinSec ?? 60;
    this.silentMs = o.silentMs ?? this.checkinSec * 3 * 1000;
    this.handOutBatch = o.handOutBatch ?? 250;
  }

  get db() {
    return this.d.db;
  }

  // ---------- identity ----------

  async addAdmin(publicKey: string, name: string): Promise<string> {
    const id = `a-${keyIdOf(publicKey)}`;
    await this.db.insertInto('admins').values({ id, public_key: publicKey, name, created_at: this.now() }).onConflict((oc) => oc.column('id').doNothing()).execute();
    return id;
  }

  /**
   * Check a request's signature and record its nonce. `enrollKey` is the
   * public key an enrolment request carries (the one request signed by a key
   * the server does not know yet).
   */
  async authenticate(headers: Record<string, string | string[] | undefined>, method: string, url: string, body: Buffer, want: 'admin' | 'host' | 'any' | 'enroll', enrollKey?: string, o: { deferNonce?: boolean } = {}): Promise<Caller> {
    const s = readSignedHeaders(headers);
    if (typeof s === 'string') throw new FleetError('unauthenticated', `the request has no valid ${s} header: every request is signed (see protocol.ts)`, { type: 'request', id: `${method} ${url}` });
    const now = this.now();
    if (Math.abs(now - s.time) > WINDOW_MS) {
      throw new FleetError('unauthenticated', `the request's time ${new Date(s.time).toISOString()} is more than ${WINDOW_MS / 1000} s from the server's; check the caller's clock`, { type: 'key', id: s.keyId });
    }
    let caller: Caller;
    let publicKey: string;
    if (want === 'enroll') {
      if (!enrollKey || keyIdOf(enrollKey) !== s.keyId) throw new FleetError('unauthenticated', `an enrolment is signed by the key it enrols; key ${s.keyId} is not ${enrollKey ? keyIdOf(enrollKey) : 'given'}`, { type: 'key', id: s.keyId });
      publicKey = enrollKey;
      caller = { role: 'host', id: `h-${s.keyId}`, keyId: s.keyId, time: s.time };
    } else {
      const known = this.keys.get(s.keyId) ?? (await this.lookUpKey(s.keyId));
      if (!known) throw new FleetError('unauthenticated', `key ${s.keyId} belongs to no enrolled host and no admin`, { type: 'key', id: s.keyId });
      publicKey = known.publicKey;
      caller = { role: known.role, id: known.id, keyId: s.keyId, time: s.time };
    }
    if (!verifyRequest(publicKey, s, method, url, body)) throw new FleetError('unauthenticated', `the signature of key ${s.keyId} does not match this request (method, path, body, time or nonce changed, or another key signed it)`, { type: 'key', id: s.keyId });
    if (want !== 'enroll' && want !== 'any' && caller.role !== want) throw new FleetError('forbidden', `${caller.role} ${caller.id} may not call ${method} ${url.split('?')[0]} (${want}s only)`, { type: caller.role, id: caller.id });
    // a check-in on PostgreSQL records its nonce in its own first statement (one round trip less)
    if (o.deferNonce && this.d.dialect === 'postgres') return { ...caller, pendingNonce: { nonce: s.nonce, expiresAt: s.time + WINDOW_MS } };
    const r = await this.db
      .insertInto('nonces')
      .values({ key_id: s.keyId, nonce: s.nonce, expires_at: s.time + WINDOW_MS })
      .onConflict((oc) => oc.columns(['key_id', 'nonce']).doNothing())
      .executeTakeFirst();
    if (Number(r.numInsertedOrUpdatedRows ?? 0) !== 1) throw replayed(s.keyId, s.nonce);
    return caller;
  }

  /**
   * The enrolled hosts' and admins' keys seen by this process. A host's or admin's row and key never change
   * and are never deleted, so a key once read stays right: a request costs one query (its nonce), not two.
   */
  private readonly keys = new Map<string, { role: 'host' | 'admin'; id: string; publicKey: string }>();
  private async lookUpKey(keyId: string) {
    const host = await this.db.selectFrom('hosts').select(['id', 'public_key']).where('id', '=', `h-${keyId}`).executeTakeFirst();
    const admin = host ? undefined : await this.db.selectFrom('admins').select(['id', 'public_key']).where('id', '=', `a-${keyId}`).executeTakeFirst();
    const row = host ?? admin;
    if (!row) return undefined;
    const k = { role: host ? ('host' as const) : ('admin' as const), id: row.id, publicKey: row.public_key };
    if (this.keys.size >= 200_000) this.keys.clear();
    this.keys.set(keyId, k);
    return k;
  }

  async purgeNonces(): Promise<void> {
    await this.db.deleteFrom('nonces').where('expires_at', '<', this.now() - WINDOW_MS).execute();
  }

  async enrollToken(by: Caller, expiresSec: number): Promise<{ token: string; expiresAt: number }> {
    const token = `st_${randomBytes(32).toString('base64url')}`;
    const now = this.now();
    const expiresAt = now + expiresSec * 1000;
    await this.db.insertInto('enroll_tokens').values({ hash: sha256(token), expires_at: expiresAt, created_at: now, created_by: by.id, used_at: null, host_id: null }).execute();
    return { token, expiresAt };
  }

  async enroll(keyId: string, req: { token: string; publicKey: string; name: string; channel: string }): Promise<{ hostId: string; keyId: string; channel: string }> {
    const hostId = `h-${keyId}`;
    const hash = sha256(req.token);
    const tokenId = hash.slice(0, 12);
    return this.db.transaction().execute(async (tx) => {
      const now = this.now();
      const t = await forUpdate(this.d.dialect, tx.selectFrom('enroll_tokens').selectAll().where('hash', '=', hash)).executeTakeFirst();
      if (!t) throw new FleetError('unauthenticated', `enrolment token ${tokenId}… is not one this server made`, { type: 'token', id: tokenId });
      if (t.used_at !== null) throw new FleetError('conflict', `enrolment token ${tokenId}… was used already (by host ${t.host_id}); tokens are one-time`, { type: 'token', id: tokenId });
      if (t.expires_at <= now) throw new FleetError('unauthenticated', `enrolment token ${tokenId}… expired at ${new Date(t.expires_at).toISOString()}`, { type: 'token', id: tokenId });
      const exists = await tx.selectFrom('hosts').select('id').where('public_key', '=', req.publicKey).executeTakeFirst();
      if (exists) throw new FleetError('conflict', `host ${exists.id} is enrolled with this key already`, { type: 'host', id: exists.id });
      const used = await tx.updateTable('enroll_tokens').set({ used_at: now, host_id: hostId }).where('hash', '=', hash).where('used_at', 'is', null).executeTakeFirst();
      if (Number(used.numUpdatedRows) !== 1) throw new FleetError('conflict', `enrolment token ${tokenId}… was used already`, { type: 'token', id: tokenId });
      await tx
        .insertInto('hosts')
        .values({ id: hostId, public_key: req.publicKey, name: req.name, channel: req.channel, enrolled_at: now, last_seen: null, release: null, build_id: null, boot_id: null, effective_version: null, health_ok: null, facts: null, reported_at: null })
        .execute();
      return { hostId, keyId, channel: req.channel };
    });
  }

  // ---------- bundles ----------

  async publish(by: Caller, bytes: Buffer, channel: string) {
    const id = sha256(bytes);
    let b;
    try {
      b = openBundle(bytes, `bundle ${id.slice(0, 12)}`);
    } catch (e) {
      if (isSutureError(e)) throw new FleetError('invalid-bundle', e.message, { type: 'bundle', id });
      throw e;
    }
    const m = b.manifest;
    return this.db.transaction().execute(async (tx) => {
      const old = await tx.selectFrom('bundles').select(['id', 'channel']).where('id', '=', id).executeTakeFirst();
      if (old && old.channel !== channel) throw new FleetError('conflict', `bundle ${id} is published on channel ${old.channel} already`, { type: 'bundle', id });
      if (!old) {
        await tx
          .insertInto('bundles')
          .values({ id, name: m.patch.name, channel, release: m.kernel.release, build_id: m.kernel.buildId, manifest: JSON.stringify(m), size: bytes.length, data: bytes, published_at: this.now(), published_by: by.id })
          .execute();
      }
      return this.bundleInfo((await tx.selectFrom('bundles').selectAll().where('id', '=', id).executeTakeFirstOrThrow()));
    });
  }

  private bundleInfo(r: { id: string; name: string; channel: string; release: string; build_id: string; size: number; manifest: string; published_at: number }) {
    const m = JSON.parse(r.manifest) as { patch: { cves: string[]; replace: boolean; effectiveVersion: string | null } };
    return { id: r.id, name: r.name, channel: r.channel, release: r.release, buildId: r.build_id, size: Number(r.size), cves: m.patch.cves, replace: m.patch.replace, effectiveVersion: m.patch.effectiveVersion, publishedAt: r.published_at };
  }

  async listBundles() {
    const rows = await this.db.selectFrom('bundles').select(['id', 'name', 'channel', 'release', 'build_id', 'size', 'manifest', 'published_at']).orderBy('published_at').orderBy('id').execute();
    return rows.map((r) => this.bundleInfo(r));
  }

  private readonly bundleBytes = new Map<string, { data: Buffer; build_id: string }>();
  /** A bundle's bytes. A host gets only bundles for its own kernel build. */
  async bundleData(caller: Caller, id: string): Promise<Buffer> {
    const b = this.bundleBytes.get(id) ?? (await this.db.selectFrom('bundles').select(['data', 'build_id']).where('id', '=', id).executeTakeFirst());
    if (!b) throw new FleetError('not-found', `bundle ${id} is not published here`, { type: 'bundle', id });
    // a bundle's row never changes (its id is its bytes' sha256): the last 8 read of at most 16 MiB each are kept, so
    // a stage's downloads cost no read of them
    if (!this.bundleBytes.has(id) && b.data.length <= 16 * 2 ** 20) {
      if (this.bundleBytes.size >= 8) this.bundleBytes.delete(this.bundleBytes.keys().next().value!);
      this.bundleBytes.set(id, b);
    }
    if (caller.role === 'host') {
      const h = await this.db.selectFrom('hosts').select('build_id').where('id', '=', caller.id).executeTakeFirstOrThrow();
      if (h.build_id !== b.build_id) throw new FleetError('forbidden', `bundle ${id} is for kernel build ${b.build_id}; host ${caller.id} runs ${h.build_id ?? 'an unreported build'}`, { type: 'bundle', id });
    }
    return Buffer.from(b.data);
  }

  // ---------- hosts ----------

  /** How many hosts are enrolled. */
  async countHosts(): Promise<number> {
    return Number((await this.db.selectFrom('hosts').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).n);
  }

  /** The hosts in enrolment order with their states; `page`: only those (the query limited in SQL). */
  async listHosts(page?: { offset: number; limit: number }): Promise<z.infer<typeof HostInfo>[]> {
    let q = this.db
      .selectFrom('hosts')
      .leftJoin('host_active', 'host_active.host_id', 'hosts.id')
      .leftJoin('host_pins', 'host_pins.host_id', 'hosts.id')
      .selectAll('hosts')
      .select(['host_active.rollout_id', 'host_pins.patch as pin'])
      .orderBy('hosts.enrolled_at')
      .orderBy('hosts.id');
    if (page) q = q.limit(page.limit).offset(page.offset);
    const rows = await q.execute();
    const ids = rows.map((h) => h.id);
    if (page && !ids.length) return [];
    const builds = new Set((await this.db.selectFrom('bundles').select('build_id').distinct().execute()).map((b) => b.build_id));
    // each host's latest recorded failure
    const failed = new Map<string, { rolloutId: string; reason: string; at: number | null }>();
    let fq = this.db.selectFrom('rollout_targets').select(['host_id', 'rollout_id', 'failure', 'failed_at', 'assigned_at']).where('failure', 'is not', null);
    if (page) fq = fq.where('host_id', 'in', ids);
    for (const f of await fq.orderBy('assigned_at').execute()) {
      failed.set(f.host_id, { rolloutId: f.rollout_id, reason: f.failure!, at: f.failed_at });
    }
    // a failure is the host's state only while no later rollout of it has succeeded
    const ok = new Map<string, number>();
    let oq = this.db.selectFrom('rollout_targets').select(['host_id', 'assigned_at']).where('state', '=', 'healthy');
    if (page) oq = oq.where('host_id', 'in', ids);
    for (const t of await oq.execute()) ok.set(t.host_id, Math.max(ok.get(t.host_id) ?? 0, t.assigned_at));
    const now = this.now();
    return rows.map((h) => {
      const facts = h.facts ? (JSON.parse(h.facts) as HostFacts) : null;
      const f = failed.get(h.id);
      const failure = f && !(ok.get(h.id)! > (f.at ?? 0)) ? f : undefined;
      const st = hostState({ ...h, facts }, { now, silentMs: this.silentMs, builds, failure });
      return {
        id: h.id,
        name: h.name,
        channel: h.channel,
        enrolledAt: h.enrolled_at,
        lastSeen: h.last_seen,
        release: h.release,
        buildId: h.build_id,
        effectiveVersion: h.effective_version,
        healthOk: h.health_ok === null ? null : h.health_ok === 1,
        loaded: facts?.loaded.map((p) => p.name) ?? [],
        rolloutId: h.rollout_id ?? null,
        state: st.state,
        stateReason: st.reason,
        installed: facts?.installed.map((p) => p.name) ?? [],
        pin: h.pin ?? null,
        lastTransition: facts?.lastTransition ?? null,
      };
    });
  }

  /** A host by id or by name (a name two hosts share is refused: give the id). */
  private async findHost(ref: string): Promise<{ id: string; name: string }> {
    const rows = await this.db.selectFrom('hosts').select(['id', 'name']).where((eb) => eb.or([eb('id', '=', ref), eb('name', '=', ref)])).execute();
    const exact = rows.find((r) => r.id === ref);
    if (exact) return exact;
    if (rows.length === 0) throw new FleetError('not-found', `no enrolled host has the id or name ${ref}`, { type: 'host', id: ref });
    if (rows.length > 1) throw new FleetError('conflict', `${rows.length} hosts are named ${ref} (${rows.map((r) => r.id).join(', ')}): give the host id`, { type: 'host', id: ref });
    return rows[0]!;
  }

  /**
   * Pin a host to a patch: rollouts of any other patch skip it (their reports say so); its
   * running rollout, if of another patch, keeps it (an admin aborts or rolls that back).
   */
  async pin(by: Caller, ref: string, patch: string): Promise<{ hostId: string; name: string; pin: string | null }> {
    const h = await this.findHost(ref);
    const known = await this.db.selectFrom('bundles').select('id').where('name', '=', patch).executeTakeFirst();
    if (!known) throw new FleetError('not-found', `no bundle named ${patch} is published: a host is pinned to a published patch`, { type: 'bundle', id: patch });
    await this.db
      .insertInto('host_pins')
      .values({ host_id: h.id, patch, pinned_at: this.now(), pinned_by: by.id })
      .onConflict((oc) => oc.column('host_id').doUpdateSet({ patch, pinned_at: this.now(), pinned_by: by.id }))
      .execute();
    return { hostId: h.id, name: h.name, pin: patch };
  }

  async unpin(ref: string): Promise<{ hostId: string; name: string; pin: string | null }> {
    const h = await this.findHost(ref);
    await this.db.deleteFrom('host_pins').where('host_id', '=', h.id).execute();
    return { hostId: h.id, name: h.name, pin: null };
  }

  /** Per CVE of the published bundles: the hosts covered and not. */
  async cves() {
    const bundles = (await this.db.selectFrom('bundles').select(['id', 'name', 'build_id', 'release', 'manifest']).execute()).map((b) => {
      const m = JSON.parse(b.manifest) as { patch: { cves: string[] }; module: { sha256: string } };
      return { id: b.id, name: b.name, build_id: b.build_id, release: b.release, cves: m.patch.cves, moduleSha256: m.module.sha256 };
    });
    const hosts = (await this.db.selectFrom('hosts').select(['id', 'name', 'build_id', 'last_seen', 'reported_at', 'health_ok', 'facts']).orderBy('enrolled_at').orderBy('id').execute()).map((h) => ({ ...h, facts: h.facts ? (JSON.parse(h.facts) as HostFacts) : null }));
    return { cves: cveReport(bundles, hosts) };
  }

  /**
   * A check-in: store the facts, turn the host's results and facts into
   * rollout events, reply with its assignment. Idempotent: the same check-in
   * twice changes nothing the second time (events on a target already past
   * them are no-ops in rollout.ts).
   */
  async checkin(caller: Caller, req: CheckinRequest): Promise<CheckinReply> {
    const f = req.facts;
    const now = this.now();
    const update = (q: Database['db']) =>
      q
        .updateTable('hosts')
        .set({ last_seen: now, release: f.release, build_id: f.buildId, boot_id: f.bootId, effective_version: f.effectiveVersion, health_ok: f.health.ok ? 1 : 0, facts: JSON.stringify(f), reported_at: caller.time ?? now })
        .where('id', '=', caller.id);
    // The host's rollout and its target in it, in one query (most check-ins need nothing else).
    const activeOf = (q: QueryCreator<DB>) =>
      q
        .selectFrom('host_active')
        .innerJoin('rollouts', 'rollouts.id', 'host_active.rollout_id')
        .innerJoin('rollout_targets', (j) => j.onRef('rollout_targets.rollout_id', '=', 'host_active.rollout_id').onRef('rollout_targets.host_id', '=', 'host_active.host_id'))
        .selectAll('rollouts')
        .select(['rollout_targets.host_id', 'rollout_targets.stage as t_stage', 'rollout_targets.state', 'rollout_targets.failure', 'rollout_targets.assigned_at', 'rollout_targets.applied_at', 'rollout_targets.transition_at'])
        .where('host_active.host_id', '=', caller.id);
    let active;
    if (this.d.dialect === 'postgres') {
      // One round trip: the request's nonce recorded (when authenticate left it to this), the facts written only if it
      // was new (data-modifying WITHs, which PostgreSQL runs whatever the SELECT returns), and the host's rollout read.
      const pending = caller.pendingNonce;
      const kept = (q: QueryCreator<DB>) =>
        pending
          ? q.insertInto('nonces').values({ key_id: caller.keyId, nonce: pending.nonce, expires_at: pending.expiresAt }).onConflict((oc) => oc.columns(['key_id', 'nonce']).doNothing()).returning('nonce')
          : q.selectNoFrom(sql<string>`null`.as('nonce'));
      const row = (await this.db
        .with('kept', kept)
        .with('facts_written', (q) => update(q as unknown as Database['db']).where((eb) => eb.exists((eb as unknown as QueryCreator<DB & { kept: { nonce: string } }>).selectFrom('kept').select('kept.nonce'))).returning('hosts.id'))
        .selectFrom(sql<{ one: number }>`(select 1 as one)`.as('one'))
        .leftJoin(activeOf(this.db as unknown as QueryCreator<DB>).as('a'), (j) => j.onTrue())
        .selectAll('a')
        .select(sql<number>`(select count(*) from kept)`.as('fresh'))
        .executeTakeFirstOrThrow()) as Awaited<ReturnType<ReturnType<typeof activeOf>['executeTakeFirstOrThrow']>> & { fresh: number | string };
      if (pending && Number(row.fresh) !== 1) throw replayed(caller.keyId, pending.nonce);
      active = row.id === null ? undefined : row;
    } else {
      await update(this.db).execute();
      active = await activeOf(this.db).executeTakeFirst();
    }
    const rolloutIds = new Set(req.results.map((r) => r.rolloutId));
    if (active) rolloutIds.add(active.id);
    let changed = false;
    let moved = false;
    // the host's assignment as a step written at once left it (undefined: read it again)
    let settledAssignment: CheckinReply['assignment'] | undefined;
    let underLocks = false;
    for (const rid of [...rolloutIds].sort()) {
      // Without a lock first: this host's target only. Host events touch only their own target (a failure that
      // halts the rollout is a change of it too), so events that change nothing here change nothing at all, and
      // the check-in need not lock the rollout nor load its other targets: the common case of a fleet's minute.
      let r: RolloutTable | undefined;
      let row: TargetRow | undefined;
      if (active && active.id === rid) {
        r = active;
        row = { host_id: caller.id, stage: active.t_stage, state: active.state, failure: active.failure, assigned_at: active.assigned_at, applied_at: active.applied_at, transition_at: active.transition_at, last_seen: now };
      } else {
        r = await this.db.selectFrom('rollouts').selectAll().where('id', '=', rid).executeTakeFirst();
        row = r && (await this.targetRows(this.db, rid, caller.id).executeTakeFirst());
      }
      if (!r || !row) continue;
      const bundle = await this.bundleMeta(r.bundle_id);
      const events = hostEvents(caller.id, rid, bundle, req, now);
      let core = coreOf(r);
      const before = toTarget(row);
      let mine = [before];
      let moves = false;
      let fails = false;
      const lines: string[] = [];
      for (const e of events) {
        const step = transition(core, mine, e);
        if (step.changed.length || step.log.length || step.rollout.status !== core.status) moves = true;
        if (step.changed.some((c) => c.failure !== null && mine[0]!.failure === null)) fails = true;
        core = step.rollout;
        mine = step.changed.length ? step.changed : mine;
        lines.push(...step.log);
      }
      // the host's transition to this patch, kept with the target for the rollout's report
      const lt = f.lastTransition;
      const transitionNow = lt && lt.patch === bundle.name && row.transition_at !== lt.at ? lt : null;
      if (moves) moved = true;
      if (moves && this.d.dialect === 'postgres' && !fails && core.status === r.status && holdsHost(core.status, before) === holdsHost(core.status, mine[0]!)) {
        // one statement: the target moved only if it is still as read, its transition and the log written with it
        const step = await this.hostStepAtOnce(rid, before, mine[0]!, lines, transitionNow, now);
        if (step.written) {
          if (step.lastOpen) changed = true;
          if (active && active.id === rid) settledAssignment = assignmentOf({ ...r, state: mine[0]!.state });
          continue;
        }
      }
      if (transitionNow) {
        await this.db.updateTable('rollout_targets').set({ transition_sec: transitionNow.seconds, transition_at: transitionNow.at, transition_blockers: JSON.stringify(transitionNow.blockers) }).where('rollout_id', '=', rid).where('host_id', '=', caller.id).execute();
      }
      if (!moves) continue;
      underLocks = true;
      if (await this.onHost(rid, caller.id, events, fails)) changed = true;
    }
    // the ticker does the rest (new candidates, silent hosts); a rollout a check-in can move is ticked now
    if (changed) await this.tick();
    // nothing moved: the assignment is what the row read above says; a step written at once: what it wrote
    const assignment = !moved ? (active ? assignmentOf(active) : null) : settledAssignment !== undefined && !underLocks && !changed ? settledAssignment : await this.assignment(caller.id);
    return { hostId: caller.id, assignment, nextCheckinSec: this.checkinSec };
  }

  /**
   * A host's own step on its target (PostgreSQL), written in one statement instead of a transaction of five:
   * it holds the rollout row FOR KEY SHARE for the statement (as onHostOnce does: full ticks, halts and admin
   * actions wait for it; its lock is taken before the target is read, in the statement's one-time filter), and
   * writes the target only if it is still what the check-in read (state, failure, applied time), with the
   * host's transition and the step's log lines. Only for a step that records no failure, keeps the rollout's
   * status and neither takes nor lets go of the host (rollout.ts holdsHost): what a host's results and
   * reports do in a soak. `written` false: the target was not as read (or the rollout is gone); nothing was
   * written, and the caller runs the step under the locks. `lastOpen`: the step settled the last target of
   * the rollout that was open (a tick may move it now).
   */
  private async hostStepAtOnce(rid: string, was: Target, t: Target, lines: string[], tr: NonNullable<HostFacts['lastTransition']> | null, now: number): Promise<{ written: boolean; lastOpen: boolean }> {
    const settles = t.state !== 'assigned' && t.state !== 'applied';
    const r = await sql<{ n: number; last_open: boolean | null }>`
      with held as (select id from rollouts where id = ${rid} for key share),
      moved as (
        update rollout_targets set
          state = ${t.state}, failure = ${t.failure}, applied_at = ${t.appliedAt},
          healthy_at = ${t.state === 'healthy' ? sql`coalesce(healthy_at, ${now}::bigint)` : sql`healthy_at`},
          failed_at = ${t.failure !== null ? sql`coalesce(failed_at, ${now}::bigint)` : sql`failed_at`}
          ${tr ? sql`, transition_sec = ${tr.seconds}, transition_at = ${tr.at}::bigint, transition_blockers = ${JSON.stringify(tr.blockers)}` : sql``}
        where rollout_id = ${rid} and host_id = ${t.hostId} and exists (select 1 from held)
          and state = ${was.state} and failure is not distinct from ${was.failure}::text and applied_at is not distinct from ${was.appliedAt}::bigint
        returning host_id),
      logged as (insert into rollout_events (rollout_id, at, text) select ${rid}, ${now}::bigint, u.x from moved, unnest(${lines}::text[]) with ordinality as u(x, n) order by u.n)
      select (select count(*) from moved)::int as n,
        ${settles ? sql`not exists (select 1 from rollout_targets where rollout_id = ${rid} and state in ('assigned', 'applied') and host_id <> ${t.hostId})` : sql`null`} as last_open`.execute(this.db);
    const row = r.rows[0]!;
    return { written: Number(row.n) === 1, lastOpen: Number(row.n) === 1 && row.last_open === true };
  }

  private async assignment(hostId: string): Promise<CheckinReply['assignment']> {
    const a = await this.db
      .selectFrom('host_active')
      .innerJoin('rollouts', 'rollouts.id', 'host_active.rollout_id')
      .innerJoin('rollout_targets', (j) => j.onRef('rollout_targets.rollout_id', '=', 'host_active.rollout_id').onRef('rollout_targets.host_id', '=', 'host_active.host_id'))
      .select(['rollouts.id', 'rollouts.bundle_id', 'rollouts.name', 'rollouts.soak_ms', 'rollout_targets.state', 'rollout_targets.failure'])
      .where('host_active.host_id', '=', hostId)
      .executeTakeFirst();
    return a ? assignmentOf(a) : null;
  }

  // ---------- rollouts ----------

  async createRollout(by: Caller, req: { name: string; channel: string; stages: string; soakSec: number; maxFailures: number; delaySec: number }): Promise<RolloutShow> {
    let stages: StageSpec[];
    try {
      stages = parseStages(req.stages);
    } catch (e) {
      throw new FleetError('bad-request', (e as Error).message, { type: 'request', id: 'stages' });
    }
    const b = await this.db.selectFrom('bundles').select(['id', 'build_id']).where('name', '=', req.name).where('channel', '=', req.channel).orderBy('published_at', 'desc').orderBy('id', 'desc').executeTakeFirst();
    if (!b) throw new FleetError('not-found', `no bundle ${req.name} is published on channel ${req.channel}`, { type: 'bundle', id: req.name });
    const id = `r-${randomBytes(8).toString('hex')}`;
    const now = this.now();
    await this.db.transaction().execute(async (tx) => {
      await tx
        .insertInto('rollouts')
        .values({ id, bundle_id: b.id, name: req.name, channel: req.channel, build_id: b.build_id, status: 'pending', stage: -1, stage_size: 0, stages: JSON.stringify(stages), soak_ms: req.soakSec * 1000, max_failures: req.maxFailures, start_at: now + req.delaySec * 1000, reason: null, created_at: now, created_by: by.id, updated_at: now })
        .execute();
      await tx.insertInto('rollout_events').values({ rollout_id: id, at: now, text: `created by ${by.id}: ${req.name} (bundle ${b.id.slice(0, 12)}, build ${b.build_id}) on ${req.channel}, stages ${formatStages(stages)}, soak ${req.soakSec} s, max failures ${req.maxFailures}, delay ${req.delaySec} s` }).execute();
    });
    await this.tick();
    return this.showRollout(id);
  }

  async act(by: Caller, id: string, action: AdminAction): Promise<RolloutShow> {
    const found = await this.onRollout(id, async () => [{ type: 'admin', action, now: this.now(), by: by.id }]);
    if (!found) throw new FleetError('not-found', `rollout ${id} does not exist`, { type: 'rollout', id });
    await this.tick();
    return this.showRollout(id);
  }

  /**
   * Run events on one rollout under its row lock: load, transition, store.
   * Returns false when the rollout does not exist.
   */
  private async onRollout(id: string, eventsFor: (r: RolloutTable, targets: Target[], tx: Tx) => Promise<RolloutEvent[]>, lockFleet = false): Promise<boolean> {
    return this.db.transaction().execute(async (tx) => {
      if (lockFleet) await forUpdate(this.d.dialect, tx.selectFrom('fleet_lock').select('id').where('id', '=', 1)).execute();
      const r = await forUpdate(this.d.dialect, tx.selectFrom('rollouts').selectAll().where('id', '=', id)).executeTakeFirst();
      if (!r) return false;
      const targets = await this.loadTargets(tx, id);
      await this.apply(tx, r, targets, await eventsFor(r, targets, tx));
      return true;
    });
  }

  /**
   * One host's events on one rollout, under the rollout's row lock. Host events change only their own
   * target, except a new failure (which may halt the rollout and so touch every target): only then are
   * the other targets loaded. A fleet's check-ins cost one row each, not the whole rollout.
   */
  private async onHost(id: string, hostId: string, events: RolloutEvent[], exclusive: boolean): Promise<boolean> {
    try {
      return await this.onHostOnce(id, hostId, events, exclusive);
    } catch (e) {
      if (e instanceof NeedsExclusive) return this.onHostOnce(id, hostId, events, true);
      throw e;
    }
  }

  /**
   * Lock: a new failure may halt the rollout (it changes the rollout row and every target), so it takes the
   * rollout row FOR UPDATE, as a full tick does. Any other host event changes only its own target: it takes the
   * rollout row FOR KEY SHARE (full ticks, halts and admin actions wait for it; other hosts' events and hand-out
   * ticks do not) and its target FOR UPDATE, and leaves the rollout row as it is. Found to fail only under the
   * locks: NeedsExclusive, and again.
   */
  private async onHostOnce(id: string, hostId: string, events: RolloutEvent[], exclusive: boolean): Promise<boolean> {
    return this.db.transaction().execute(async (tx) => {
      const q = tx.selectFrom('rollouts').selectAll().where('id', '=', id);
      const r = await (exclusive ? forUpdate(this.d.dialect, q) : forKeyShare(this.d.dialect, q)).executeTakeFirst();
      if (!r) return false;
      const mine = (await forUpdate(this.d.dialect, this.targetRows(tx, id, hostId)).execute()).map(toTarget);
      if (!mine.length) return false;
      let core = coreOf(r);
      let t = mine;
      let fails = false;
      for (const e of events) {
        const step = transition(core, t, e);
        if (step.changed.some((c) => c.failure !== null && t[0]!.failure === null)) fails = true;
        core = step.rollout;
        t = step.changed.length ? step.changed : t;
      }
      if (fails && !exclusive) throw new NeedsExclusive();
      await this.apply(tx, r, fails ? await this.loadTargets(tx, id) : mine, events);
      // A tick may move the rollout now only if this ended a stage's last unsettled target, or the status changed (a halt).
      if (fails || core.status !== r.status) return true;
      if (t[0]!.state === 'assigned' || t[0]!.state === 'applied') return false;
      const open = await tx.selectFrom('rollout_targets').select('host_id').where('rollout_id', '=', id).where('state', 'in', ['assigned', 'applied']).limit(1).executeTakeFirst();
      return open === undefined;
    });
  }

  /** Run events over a rollout and the targets given (all of them, or the only ones the events can touch), and store the result. */
  private async apply(tx: Tx, r: RolloutTable, initial: Target[], events: RolloutEvent[]): Promise<void> {
    const id = r.id;
    {
      let core = coreOf(r);
      let targets = initial;
      const before = core.status;
      const changed = new Map<string, Target>();
      const log: string[] = [];
      for (const e of events) {
        let step;
        try {
          step = transition(core, targets, e);
        } catch (err) {
          if (err instanceof RolloutRefusal) throw new FleetError('conflict', `rollout ${id}: ${err.message}`, { type: 'rollout', id });
          throw err;
        }
        core = step.rollout;
        for (const t of step.changed) changed.set(t.hostId, t);
        const byHost = new Map(targets.map((t) => [t.hostId, t]));
        for (const t of step.changed) byHost.set(t.hostId, t);
        targets = [...byHost.values()];
        log.push(...step.log);
      }
      if (!changed.size && !log.length && core.status === before && core.stage === r.stage && core.stageSize === Number(r.stage_size)) return;
      await this.store(tx, r, core, initial, [...changed.values()], log);
    }
  }

  /** A rollout's targets with their hosts' last check-in (one host's, given hostId). */
  private targetRows(q: Tx | Database['db'], id: string, hostId?: string) {
    let sel = q.selectFrom('rollout_targets').innerJoin('hosts', 'hosts.id', 'rollout_targets.host_id').selectAll('rollout_targets').select('hosts.last_seen').where('rollout_id', '=', id);
    if (hostId !== undefined) sel = sel.where('rollout_targets.host_id', '=', hostId);
    return sel.orderBy('rollout_targets.assigned_at').orderBy('rollout_targets.host_id');
  }

  private async loadTargets(tx: Tx, id: string): Promise<Target[]> {
    return (await this.targetRows(tx, id).execute()).map(toTarget);
  }

  /** A bundle's name and module sha256 (bundle rows never change: kept once read). */
  private readonly bundles = new Map<string, BundleMeta>();
  private async bundleMeta(id: string): Promise<BundleMeta> {
    let m = this.bundles.get(id);
    if (!m) {
      const b = await this.db.selectFrom('bundles').select(['name', 'manifest']).where('id', '=', id).executeTakeFirstOrThrow();
      m = { name: b.name, moduleSha256: (JSON.parse(b.manifest) as { module: { sha256: string } }).module.sha256 };
      this.bundles.set(id, m);
    }
    return m;
  }

  /**
   * Write a step: the rollout row, changed targets (new ones in batches), hosts taken and let go, the log.
   * `before`: the targets the step was given (all of them, or the only ones it could change; none for a tick with counts).
   */
  private async store(tx: Tx, r: RolloutTable, core: RolloutCore, before: Target[], changed: Target[], log: string[]): Promise<void> {
    const now = this.now();
    // (a host's own event leaves the rollout row alone: it holds that row only FOR KEY SHARE)
    if (core.status !== r.status || core.stage !== r.stage || core.reason !== r.reason || core.stageSize !== Number(r.stage_size)) {
      await tx.updateTable('rollouts').set({ status: core.status, stage: core.stage, stage_size: core.stageSize, reason: core.reason, updated_at: now }).where('id', '=', r.id).execute();
    }
    const prev = new Map(before.map((t) => [t.hostId, t]));
    const fresh: Target[] = [];
    for (const t of changed) {
      if (!prev.has(t.hostId)) {
        fresh.push(t);
        continue;
      }
      await tx
        .updateTable('rollout_targets')
        .set({
          stage: t.stage,
          state: t.state,
          failure: t.failure,
          assigned_at: t.assignedAt,
          applied_at: t.appliedAt,
          // the first time a target is healthy, or failed: the report's progress series
          healthy_at: t.state === 'healthy' ? sql<number>`coalesce(healthy_at, ${now})` : sql<number>`healthy_at`,
          failed_at: t.failure !== null ? sql<number>`coalesce(failed_at, ${now})` : sql<number>`failed_at`,
        })
        .where('rollout_id', '=', r.id)
        .where('host_id', '=', t.hostId)
        .execute();
    }
    for (let i = 0; i < fresh.length; i += 500) {
      const chunk = fresh.slice(i, i + 500);
      await tx
        .insertInto('rollout_targets')
        .values(chunk.map((t) => ({ rollout_id: r.id, host_id: t.hostId, stage: t.stage, state: t.state, failure: t.failure, assigned_at: t.assignedAt, applied_at: t.appliedAt, healthy_at: null, failed_at: null, transition_sec: null, transition_at: null, transition_blockers: null })))
        .execute();
      // The primary key on host_id refuses a second rollout for one host: the whole transaction rolls back.
      const held = chunk.filter((t) => holdsHost(core.status, t));
      if (held.length) await tx.insertInto('host_active').values(held.map((t) => ({ host_id: t.hostId, rollout_id: r.id }))).execute();
    }
    // Hosts this step lets go (held before, not now; rollout.ts holdsHost). A rollout that stops being active lets go
    // of every host but those still rolling back, whether or not the step was given their targets.
    const was = r.status as RolloutStatus;
    if (ACTIVE.includes(was) && !ACTIVE.includes(core.status)) {
      await tx
        .deleteFrom('host_active')
        .where('rollout_id', '=', r.id)
        .where((eb) => eb.not(eb.exists(eb.selectFrom('rollout_targets').select('rollout_targets.host_id').whereRef('rollout_targets.host_id', '=', 'host_active.host_id').where('rollout_targets.rollout_id', '=', r.id).where('rollout_targets.state', '=', 'rollback'))))
        .execute();
    } else {
      const release = changed.filter((t) => !holdsHost(core.status, t) && prev.has(t.hostId) && holdsHost(was, prev.get(t.hostId)!)).map((t) => t.hostId);
      for (let i = 0; i < release.length; i += 500) await tx.deleteFrom('host_active').where('rollout_id', '=', r.id).where('host_id', 'in', release.slice(i, i + 500)).execute();
    }
    if (log.length) await tx.insertInto('rollout_events').values(log.map((text) => ({ rollout_id: r.id, at: now, text }))).execute();
  }

  /**
   * Advance every rollout that may move (start, hand out hosts, silent hosts, settled stages). `full`: load
   * every rollout's targets and look at each (else a rollout's targets are counted, and loaded only when
   * one may be silent; a rollout that would not move is not locked at all).
   */
  async tick(o: { full?: boolean } = {}): Promise<void> {
    // every fifth tick also looks for silent hosts and for hosts that came back or enrolled since a stage filled up
    const periodic = this.ticks++ % 5 === 0;
    const rows = await this.db.selectFrom('rollouts').selectAll().where('status', 'in', ACTIVE as RolloutStatus[]).orderBy('created_at').orderBy('id').execute();
    for (const r of rows) {
      if (o.full || (periodic && (await this.maySilence(r.id)))) await this.fullTick(r.id);
      else await this.countedTick(r, periodic);
    }
  }
  private ticks = 0;

  /** A tick with the rollout's targets, under its row lock: the only one that finds silent hosts. */
  private async fullTick(id: string): Promise<void> {
    await this.onRollout(
      id,
      async (r, _targets, tx) => {
        const now = this.now();
        return [{ type: 'tick', now, ...(await this.freeHosts(tx, r, now)), silentMs: this.silentMs, batch: this.handOutBatch }];
      },
      true,
    );
  }

  /**
   * A tick with the counts of the rollout's targets. Tried first on what the database says now, without a
   * lock; only if that moves the rollout: under fleet_lock its hosts are picked, then under the rollout's row
   * lock its targets are counted again and the step is written (at most one batch of new targets).
   */
  private async countedTick(seen: RolloutTable, growth: boolean): Promise<void> {
    const now = this.now();
    if (seen.status === 'paused' || (seen.status === 'pending' && now < seen.start_at)) return;
    let handingOut = false;
    if (seen.status === 'running' && seen.stage >= 0) {
      const c = await this.countTargets(this.db, seen.id);
      handingOut = c.have < Number(seen.stage_size);
      // mid-stage, all its hosts there and some not settled: only hosts that came back could join (periodic)
      if (!growth && c.open > 0 && !handingOut) return;
    }
    // Tried first without a lock, unless hosts are being handed out (that tick moves) or on SQLite (one writer, no row locks).
    if (!handingOut && this.d.dialect === 'postgres') {
      const dry = transition(coreOf(seen), [], { type: 'tick', now, ...(await this.freeHosts(this.db, seen, now)), silentMs: this.silentMs, batch: this.handOutBatch, counts: await this.countTargets(this.db, seen.id) });
      if (!dry.changed.length && !dry.log.length && dry.rollout.status === seen.status && dry.rollout.stage === seen.stage && dry.rollout.stageSize === Number(seen.stage_size)) return;
    }
    await this.db.transaction().execute(async (tx) => {
      await forUpdate(this.d.dialect, tx.selectFrom('fleet_lock').select('id').where('id', '=', 1)).execute();
      // the time read again once the lock is held: a tick that waited for another server's (which may have finished a
      // rollout and let its hosts go) must not date what it hands out before what that one wrote
      const now = this.now();
      // the hosts (unchanging rollout fields only; other ticks wait on fleet_lock), then the rollout's row lock: FOR NO
      // KEY UPDATE, which hosts' own events (FOR KEY SHARE) do not wait for (the file's head says why that is safe)
      const e = { type: 'tick' as const, now, ...(await this.freeHosts(tx, seen, now)), silentMs: this.silentMs, batch: this.handOutBatch };
      const r = await forNoKeyUpdate(this.d.dialect, tx.selectFrom('rollouts').selectAll().where('id', '=', seen.id)).executeTakeFirst();
      if (!r || !ACTIVE.includes(r.status as RolloutStatus)) return;
      await this.apply(tx, r, [], [{ ...e, counts: await this.countTargets(tx, r.id) }]);
    });
  }

  /**
   * Matching hosts free of any rollout and not yet in this one: the first live ones (at most a batch, in
   * enrolment order) and how many there are in all, silent ones too (they count for percentages).
   */
  private async freeHosts(q: Tx | Database['db'], r: Pick<RolloutTable, 'id' | 'build_id' | 'channel' | 'name'>, now: number): Promise<{ candidates: string[]; waiting: number }> {
    const free = q
      .selectFrom('hosts')
      .where('build_id', '=', r.build_id)
      .where('channel', '=', r.channel)
      .where((eb) => eb.not(eb.exists(eb.selectFrom('host_active').select('host_id').whereRef('host_active.host_id', '=', 'hosts.id'))))
      .where((eb) => eb.not(eb.exists(eb.selectFrom('rollout_targets').select('host_id').whereRef('rollout_targets.host_id', '=', 'hosts.id').where('rollout_targets.rollout_id', '=', r.id))))
      // a host pinned to another patch is skipped (the rollout's report names it)
      .where((eb) => eb.not(eb.exists(eb.selectFrom('host_pins').select('host_id').whereRef('host_pins.host_id', '=', 'hosts.id').where('host_pins.patch', '!=', r.name))));
    const live = await free.select('id').where('last_seen', '>=', now - this.silentMs).orderBy('enrolled_at').orderBy('id').limit(this.handOutBatch).execute();
    const all = await free.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
    return { candidates: live.map((h) => h.id), waiting: Number(all.n) };
  }

  /** A rollout's targets counted: in all, not settled (assigned or in the soak), healthy. */
  private async countTargets(q: Tx | Database['db'], id: string): Promise<TargetCounts> {
    const rows = await q.selectFrom('rollout_targets').select(['state', (eb) => eb.fn.countAll<number>().as('n')]).where('rollout_id', '=', id).groupBy('state').execute();
    const n = (s: TargetState) => Number(rows.find((x) => x.state === s)?.n ?? 0);
    return { have: rows.reduce((a, x) => a + Number(x.n), 0), open: n('assigned') + n('applied'), healthy: n('healthy') };
  }

  /** Whether a target of the rollout is assigned or in its soak and its host has not checked in for silentMs (one row at most). */
  private async maySilence(id: string): Promise<boolean> {
    const silent = await this.db
      .selectFrom('rollout_targets')
      .innerJoin('hosts', 'hosts.id', 'rollout_targets.host_id')
      .select('rollout_targets.host_id')
      .where('rollout_targets.rollout_id', '=', id)
      .where('rollout_targets.state', 'in', ['assigned', 'applied'])
      .where((eb) => eb.or([eb('hosts.last_seen', 'is', null), eb('hosts.last_seen', '<', this.now() - this.silentMs)]))
      .limit(1)
      .executeTakeFirst();
    return silent !== undefined;
  }

  async listRollouts(): Promise<RolloutInfo[]> {
    const rows = await this.db.selectFrom('rollouts').selectAll().orderBy('created_at').orderBy('id').execute();
    const out: RolloutInfo[] = [];
    for (const r of rows) out.push(this.rolloutInfo(r, await this.countByState(r.id)));
    return out;
  }

  /**
   * A rollout with its report and one page of its targets (in the order they were assigned) and of its log
   * (page 1: the newest lines; each page in time order). The report's sums are made by the database: a
   * rollout of 10,000 hosts is never loaded whole.
   */
  async showRollout(id: string, page: Partial<RolloutPage> = {}): Promise<RolloutShow> {
    const per = page.per ?? ROLLOUT_PAGE;
    const tp = page.targets ?? 1;
    const lp = page.log ?? 1;
    const r = await this.db.selectFrom('rollouts').selectAll().where('id', '=', id).executeTakeFirst();
    if (!r) throw new FleetError('not-found', `rollout ${id} does not exist`, { type: 'rollout', id });
    const counts = await this.countByState(id);
    const targets = await this.db
      .selectFrom('rollout_targets')
      .select(['host_id', 'stage', 'state', 'failure', 'assigned_at', 'applied_at'])
      .where('rollout_id', '=', id)
      .orderBy('assigned_at')
      .orderBy('host_id')
      .limit(per)
      .offset((tp - 1) * per)
      .execute();
    const logCount = Number((await this.db.selectFrom('rollout_events').select((eb) => eb.fn.countAll<number>().as('n')).where('rollout_id', '=', id).executeTakeFirstOrThrow()).n);
    const log = (await this.db.selectFrom('rollout_events').select(['at', 'text']).where('rollout_id', '=', id).orderBy('id', 'desc').limit(per).offset((lp - 1) * per).execute()).reverse();
    const pinned = await this.db
      .selectFrom('host_pins')
      .innerJoin('hosts', 'hosts.id', 'host_pins.host_id')
      .select(['hosts.id as hostId', 'hosts.name', 'host_pins.patch'])
      .where('hosts.build_id', '=', r.build_id)
      .where('hosts.channel', '=', r.channel)
      .where('host_pins.patch', '!=', r.name)
      .orderBy('hosts.id')
      .execute();
    return {
      ...this.rolloutInfo(r, counts),
      targets: targets.map((t) => ({ hostId: t.host_id, stage: t.stage, state: t.state, failure: t.failure, assignedAt: t.assigned_at, appliedAt: t.applied_at })),
      log: log.map((e) => ({ at: e.at, text: e.text })),
      pages: { per, targets: { page: tp, count: counts.total }, log: { page: lp, count: logCount } },
      report: rolloutReport(await this.summarize(id, counts.byState), pinned),
    };
  }

  /** A rollout's targets counted by state, in all, and those with a failure recorded. */
  private async countByState(id: string): Promise<{ byState: Record<string, number>; total: number; failures: number }> {
    const rows = await this.db
      .selectFrom('rollout_targets')
      .select(['state', (eb) => eb.fn.countAll<number>().as('n'), (eb) => eb.fn.count<number>('failure').as('failed')])
      .where('rollout_id', '=', id)
      .groupBy('state')
      .orderBy('state')
      .execute();
    return { byState: Object.fromEntries(rows.map((x) => [x.state, Number(x.n)])), total: rows.reduce((a, x) => a + Number(x.n), 0), failures: rows.reduce((a, x) => a + Number(x.failed), 0) };
  }

  /** What the report needs of a rollout's targets, summed up by the database (reports.ts TargetSummary). */
  private async summarize(id: string, byState: Record<string, number>): Promise<TargetSummary> {
    const failures = await this.db
      .selectFrom('rollout_targets')
      .innerJoin('hosts', 'hosts.id', 'rollout_targets.host_id')
      .select(['rollout_targets.host_id', 'hosts.name', 'rollout_targets.failure', 'rollout_targets.failed_at'])
      .where('rollout_targets.rollout_id', '=', id)
      .where('rollout_targets.failure', 'is not', null)
      .orderBy('rollout_targets.failed_at')
      .orderBy('rollout_targets.host_id')
      .execute();
    // transition times: how many, the largest, how many at or below each bound, and the two percentile ranks
    const timed = this.db.selectFrom('rollout_targets').where('rollout_id', '=', id).where('transition_sec', 'is not', null);
    const t = (await timed
      .select((eb) => [
        eb.fn.count<number>('transition_sec').as('n'),
        eb.fn.max('transition_sec').as('max'),
        ...BOUNDS.map((b, i) => eb.fn.sum<number>(sql<number>`case when transition_sec <= ${b} then 1 else 0 end`).as(`le${i}`)),
      ])
      .executeTakeFirstOrThrow()) as unknown as Record<string, number | string | null>;
    const n = Number(t.n);
    const rank = async (p: number) => (n ? Number((await timed.select('transition_sec').orderBy('transition_sec').limit(1).offset(percentileIndex(n, p)).executeTakeFirstOrThrow()).transition_sec) : null);
    const transitions = distributionOf({ count: n, max: t.max === null ? null : Number(t.max), p50: await rank(50), p90: await rank(90), atOrBelow: BOUNDS.map((_, i) => Number(t[`le${i}`] ?? 0)) });
    const blocked = (
      await this.db
        .selectFrom('rollout_targets')
        .innerJoin('hosts', 'hosts.id', 'rollout_targets.host_id')
        .select(['hosts.name', 'rollout_targets.transition_blockers'])
        .where('rollout_targets.rollout_id', '=', id)
        .where('rollout_targets.transition_blockers', 'is not', null)
        .where('rollout_targets.transition_blockers', '!=', '[]')
        .execute()
    ).map((x) => ({ name: x.name, blockers: JSON.parse(x.transition_blockers!) as Blocker[] }));
    return { byState, failures: failures.map((f) => ({ hostId: f.host_id, name: f.name, reason: f.failure!, at: f.failed_at })), transitions, blocked, changes: await this.changes(id) };
  }

  /**
   * How many of a rollout's targets were assigned, applied, healthy, failed at each time, summed by the
   * database; more than SERIES_POINTS times are summed into that many equal spans (each at its last time).
   */
  private async changes(id: string): Promise<TargetSummary['changes']> {
    const points = sql`(select assigned_at as at, 'assigned' as k from rollout_targets where rollout_id = ${id}
      union all select applied_at, 'applied' from rollout_targets where rollout_id = ${id} and applied_at is not null
      union all select healthy_at, 'healthy' from rollout_targets where rollout_id = ${id} and healthy_at is not null
      union all select failed_at, 'failed' from rollout_targets where rollout_id = ${id} and failed_at is not null) as points`;
    const span = (await sql<{ lo: number | null; hi: number | null; times: number }>`select min(at) as lo, max(at) as hi, count(distinct at) as times from ${points}`.execute(this.db)).rows[0]!;
    if (span.lo === null || span.hi === null) return [];
    const lo = Number(span.lo);
    const width = Number(span.times) <= SERIES_POINTS ? 1 : Math.ceil((Number(span.hi) - lo + 1) / SERIES_POINTS);
    const rows = (await sql<{ b: number; at: number; k: string; n: number }>`select b, max(at) as at, k, count(*) as n from (select cast((at - ${lo}) / ${width} as integer) as b, at, k from ${points}) as spans group by b, k`.execute(this.db)).rows;
    const by = new Map<number, TargetSummary['changes'][number]>();
    for (const x of rows) {
      const b = Number(x.b);
      const c = by.get(b) ?? { at: 0, assigned: 0, applied: 0, healthy: 0, failed: 0 };
      c.at = Math.max(c.at, Number(x.at));
      c[x.k as 'assigned' | 'applied' | 'healthy' | 'failed'] += Number(x.n);
      by.set(b, c);
    }
    return [...by.values()].sort((a, b) => a.at - b.at);
  }

  private rolloutInfo(r: RolloutTable, counts: { failures: number }): RolloutInfo {
    return {
      id: r.id,
      bundleId: r.bundle_id,
      name: r.name,
      channel: r.channel,
      buildId: r.build_id,
      status: r.status,
      stage: r.stage,
      stages: formatStages(JSON.parse(r.stages) as StageSpec[]),
      soakSec: Math.round(r.soak_ms / 1000),
      maxFailures: r.max_failures,
      startAt: r.start_at,
      reason: r.reason,
      createdAt: r.created_at,
      failures: counts.failures,
    };
  }
}

/** Which page of a rollout's targets and of its log (1: the first targets assigned; the newest lines), and how many a page. */
export interface RolloutPage {
  targets: number;
  log: number;
  per: number;
}

function replayed(keyId: string, nonce: string): FleetError {
  return new FleetError('unauthenticated', `nonce ${nonce} of key ${keyId} was used already: a replayed request`, { type: 'key', id: keyId });
}

/** A host event turned out, under its locks, to record a failure: it runs again holding the rollout exclusively. */
class NeedsExclusive extends Error {}

interface BundleMeta {
  name: string;
  moduleSha256: string;
}

/** What toTarget and a check-in read of a target. */
type TargetRow = Pick<TargetTable, 'host_id' | 'stage' | 'state' | 'failure' | 'assigned_at' | 'applied_at' | 'transition_at'> & { last_seen: number | null };

/** What the server tells a host of its target (rollout.ts instructionFor), as the check-in reply's assignment. */
function assignmentOf(a: { id: string; bundle_id: string; name: string; soak_ms: number; state: string }): CheckinReply['assignment'] {
  const action = instructionFor({ state: a.state as TargetState } as Target);
  if (!action) return null;
  return { action, rolloutId: a.id, bundleId: a.bundle_id, name: a.name, path: `/v1/bundles/${a.bundle_id}`, soakSec: Math.round(a.soak_ms / 1000) };
}

function toTarget(t: TargetRow): Target {
  return { hostId: t.host_id, stage: t.stage, state: t.state as TargetState, failure: t.failure, assignedAt: t.assigned_at, appliedAt: t.applied_at, lastSeen: t.last_seen ?? t.assigned_at };
}

/** What one check-in says about one rollout the host is in: its results, and its facts (for an agent whose result was lost). */
function hostEvents(hostId: string, rid: string, bundle: BundleMeta, req: CheckinRequest, now: number): RolloutEvent[] {
  const f = req.facts;
  const events: RolloutEvent[] = [];
  for (const res of req.results.filter((x) => x.rolloutId === rid)) {
    if (res.action === 'install' && res.outcome === 'applied') events.push({ type: 'host-applied', hostId, now });
    else if (res.action === 'install' && res.outcome === 'failed') events.push({ type: 'host-failed', hostId, now, reason: res.reason ?? 'the host reported a failure' });
    else if (res.action === 'rollback' && res.outcome === 'rolled-back') events.push({ type: 'host-rolled-back', hostId, now });
  }
  const loaded = f.loaded.some((p) => p.name === bundle.name && (p.sha256 === null || p.sha256 === bundle.moduleSha256));
  const present = loaded || f.installed.some((p) => p.name === bundle.name);
  if (loaded) events.push({ type: 'host-applied', hostId, now });
  if (!present) events.push({ type: 'host-rolled-back', hostId, now });
  events.push({ type: 'host-report', hostId, now, healthy: f.health.ok, reasons: f.health.reasons });
  return events;
}

function coreOf(r: RolloutTable): RolloutCore {
  return { status: r.status as RolloutStatus, stage: r.stage, stageSize: Number(r.stage_size ?? 0), stages: JSON.parse(r.stages) as StageSpec[], soakMs: r.soak_ms, maxFailures: r.max_failures, startAt: r.start_at, reason: r.reason };
}
