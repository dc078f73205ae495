// SPDX-License-Identifier: GPL-2.0-only
/**
 * The admin side of the fleet protocol: identity files and a client that
 * signs each request (protocol.ts). Uses only fetch and node:crypto (Node 18
 * has both), so the agent can build on it.
 */
import { closeSync, fstatSync, openSync, readFileSync, writeSync, fsyncSync } from 'node:fs';
import { fsError, SutureError } from '../util/errors.js';
import { kindForCode } from './errors.js';
import { ErrorBody, formatIdentity, parseIdentity, signRequest, type Identity } from './protocol.js';

/** Write a new identity (private key) file, 0600; never overwrites. */
export function writeIdentityFile(path: string, id: Identity): void {
  let fd: number;
  try {
    fd = openSync(path, 'wx', 0o600);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new SutureError('conflict', `${path} already exists: suture never overwrites a key`, { hint: 'use it, or move it away first' });
    throw fsError(e, 'writing a key', path);
  }
  try {
    writeSync(fd, formatIdentity(id));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Read an identity file; refuse one that others can read (as ssh does). */
export function readIdentityFile(path: string): Identity {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    throw fsError(e, 'reading the fleet key', path);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile() || st.size > 8192) throw new SutureError('invalid-input', `${path} is not a key file`);
    if ((st.mode & 0o077) !== 0) throw new SutureError('invalid-input', `key ${path} can be read by others (mode ${(st.mode & 0o777).toString(8)}): suture will not use it`, { hint: `chmod 600 ${path}` });
  } finally {
    closeSync(fd);
  }
  try {
    return parseIdentity(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new SutureError('invalid-input', `${path} is not an Ed25519 private key (PKCS#8 PEM): ${(e as Error).message}`);
  }
}

export class FleetClient {
  constructor(
    readonly base: string,
    readonly id: Identity,
    readonly timeoutMs = 30_000,
  ) {}

  /** Send a signed request; a JSON body, raw bytes, or none. Returns the parsed JSON reply or the bytes. */
  async request(method: 'GET' | 'POST', path: string, body?: unknown): Promise<unknown> {
    const raw = body === undefined ? Buffer.alloc(0) : Buffer.isBuffer(body) ? body : Buffer.from(JSON.stringify(body));
    const headers: Record<string, string> = { ...signRequest(this.id, method, path, raw) };
    if (body !== undefined) headers['content-type'] = Buffer.isBuffer(body) ? 'application/octet-stream' : 'application/json';
    const url = new URL(path, this.base).toString();
    let res: Response;
    try {
      res = await fetch(url, { method, headers, body: body === undefined ? undefined : raw, signal: AbortSignal.timeout(this.timeoutMs) });
    } catch (e) {
      throw new SutureError('environment', `the fleet server at ${this.base} cannot be reached: ${(e as Error).cause ? String(((e as Error).cause as Error).message) : (e as Error).message}`, {
        hint: 'start it with suture server, or give --server URL',
      });
    }
    const type = res.headers.get('content-type') ?? '';
    if (res.ok) return type.startsWith('application/json') ? res.json() : Buffer.from(await res.arrayBuffer());
    const text = await res.text();
    let parsed;
    try {
      parsed = ErrorBody.safeParse(JSON.parse(text));
    } catch {
      parsed = undefined;
    }
    if (parsed?.success) throw new SutureError(kindForCode(parsed.data.error.code), `fleet server: ${parsed.data.error.message}`);
    throw new SutureError('environment', `fleet server: ${method} ${path}: HTTP ${res.status} ${text.slice(0, 200)}`);
  }
}
