// SPDX-License-Identifier: GPL-2.0-only
/**
 * Dashboard logins and sessions, in the fleet database (so every server
 * process on one PostgreSQL knows them). A password is kept as its scrypt
 * hash (node:crypto, N=2^15, r=8, p=1, 16-byte salt); a session is a random
 * 32-byte cookie stored as its sha256, with its own CSRF token, for 12 hours.
 */
import { createHash, randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import type { Database } from './db.js';
import { FleetError } from './errors.js';

export const SESSION_MS = 12 * 3600_000;
export const MIN_PASSWORD = 12;
const N = 2 ** 15;
const R = 8;
const P = 1;

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

function scryptHash(password: string, salt: Buffer, n: number, r: number, p: number): Promise<Buffer> {
  return new Promise((resolve, reject) => scrypt(password, salt, 32, { N: n, r, p, maxmem: 256 * n * r }, (e, k) => (e ? reject(e) : resolve(k))));
}

export const UserName = /^[A-Za-z0-9_.-]{1,64}$/;

export class Sessions {
  constructor(
    readonly d: Database,
    readonly now: () => number = Date.now,
  ) {}

  /** Add a user or set its password. */
  async setUser(name: string, password: string): Promise<void> {
    if (!UserName.test(name)) throw new FleetError('bad-request', `dashboard user name ${JSON.stringify(name)}: use 1 to 64 of A-Z a-z 0-9 _ . -`, { type: 'admin', id: name.slice(0, 64) });
    if (password.length < MIN_PASSWORD) throw new FleetError('bad-request', `the password for dashboard user ${name} has ${password.length} characters: give at least ${MIN_PASSWORD}`, { type: 'admin', id: name });
    const salt = randomBytes(16);
    const hash = await scryptHash(password, salt, N, R, P);
    const stored = `scrypt$${N}$${R}$${P}$${salt.toString('base64')}$${hash.toString('base64')}`;
    await this.d.db
      .insertInto('dashboard_users')
      .values({ name, password: stored, created_at: this.now() })
      .onConflict((oc) => oc.column('name').doUpdateSet({ password: stored }))
      .execute();
  }

  /** Check a login; a new session (cookie value and CSRF token), or undefined. The same work is done for an unknown name. */
  async login(name: string, password: string): Promise<{ cookie: string; csrf: string } | undefined> {
    const u = UserName.test(name) ? await this.d.db.selectFrom('dashboard_users').select('password').where('name', '=', name).executeTakeFirst() : undefined;
    const parts = (u?.password ?? `scrypt$${N}$${R}$${P}$${randomBytes(16).toString('base64')}$${Buffer.alloc(32).toString('base64')}`).split('$');
    const [, n, r, p, salt, want] = parts;
    const got = await scryptHash(password.slice(0, 1024), Buffer.from(salt!, 'base64'), Number(n), Number(r), Number(p));
    const ok = timingSafeEqual(got, Buffer.from(want!, 'base64')) && u !== undefined;
    if (!ok) return undefined;
    const cookie = randomBytes(32).toString('base64url');
    const csrf = randomBytes(32).toString('base64url');
    const now = this.now();
    await this.d.db.insertInto('sessions').values({ hash: sha256(cookie), user: name, csrf, created_at: now, expires_at: now + SESSION_MS }).execute();
    await this.d.db.deleteFrom('sessions').where('expires_at', '<', now).execute();
    return { cookie, csrf };
  }

  /** The session of a cookie value, if it is one and has not expired. */
  async session(cookie: string | undefined): Promise<{ user: string; csrf: string } | undefined> {
    if (!cookie || !/^[A-Za-z0-9_-]{43}$/.test(cookie)) return undefined;
    const s = await this.d.db.selectFrom('sessions').select(['user', 'csrf', 'expires_at']).where('hash', '=', sha256(cookie)).executeTakeFirst();
    if (!s || s.expires_at <= this.now()) return undefined;
    return { user: s.user, csrf: s.csrf };
  }

  async logout(cookie: string): Promise<void> {
    await this.d.db.deleteFrom('sessions').where('hash', '=', sha256(cookie)).execute();
  }
}

/** Whether a form's CSRF token is the session's (constant time). */
export function csrfMatches(session: { csrf: string }, sent: unknown): boolean {
  if (typeof sent !== 'string' || sent.length !== session.csrf.length) return false;
  return timingSafeEqual(Buffer.from(sent), Buffer.from(session.csrf));
}
