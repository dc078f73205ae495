// SPDX-License-Identifier: GPL-2.0-only
/**
 * The admin side of the fleet protocol: identity files and a client that
 * signs each request (protocol.ts), over http or https (a CA file, or the
 * system store). Uses only node:http(s), node:tls and node:crypto (as on
 * Node 18), so the agent can build on it.
 */
import { closeSync, fstatSync, openSync, readFileSync, writeSync, fsyncSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { rootCertificates } from 'node:tls';
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

/** Bytes a reply may have: the largest bundle the server takes, and some. */
const MAX_REPLY = 64 * 1024 * 1024;

/** Debian's system CA bundle (ca-certificates), used with Node's own roots when no --ca is given. */
export const SYSTEM_CA_FILE = '/etc/ssl/certs/ca-certificates.crt';

/** TLS errors that mean "this server's certificate is not one we trust". */
const UNTRUSTED_CERT = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_SIGNATURE_FAILURE',
  'CERT_UNTRUSTED',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

export interface ClientOptions {
  timeoutMs?: number;
  /**
   * The CA certificate file (PEM) an https server's certificate must chain to.
   * Default: $SUTURE_FLEET_CA, else Node's roots and the system store.
   */
  caFile?: string;
  /** Keep connections open between requests (an agent makes one request a minute: it does not). */
  keepAlive?: boolean;
  /** A connection pool shared by many clients (the load bench's simulated agents); http only. */
  httpAgent?: http.Agent;
}

/**
 * Read a CA file given with --ca (or SUTURE_FLEET_CA): it must hold a PEM certificate. Called before
 * anything is written (the agent checks it before it enrols), and again by each client.
 */
export function readCaFile(caFile: string): Buffer {
  let pem: Buffer;
  try {
    pem = readFileSync(caFile);
  } catch (e) {
    throw fsError(e, 'reading the fleet server CA (--ca)', caFile);
  }
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) {
    throw new SutureError('invalid-input', `the fleet server CA (--ca) ${caFile} holds no PEM certificate`, { hint: 'give the CA certificate (-----BEGIN CERTIFICATE-----) that signed the server\'s' });
  }
  return pem;
}

function readCa(caFile: string | undefined): { ca: (string | Buffer)[]; from: string } {
  if (caFile) return { ca: [readCaFile(caFile)], from: `CA file ${caFile}` };
  const ca: (string | Buffer)[] = [...rootCertificates];
  try {
    ca.push(readFileSync(SYSTEM_CA_FILE));
  } catch {
    // no system store: Node's roots alone
  }
  return { ca, from: `the system store (${SYSTEM_CA_FILE} and Node's roots)` };
}

export class FleetClient {
  readonly timeoutMs: number;
  private readonly transport: { mod: typeof http | typeof https; agent: http.Agent; trust: string };

  /** `o` as a number is the timeout in ms (the agent's older call). */
  constructor(
    readonly base: string,
    readonly id: Identity,
    o: number | ClientOptions = {},
  ) {
    const opts: ClientOptions = typeof o === 'number' ? { timeoutMs: o } : o;
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    const keepAlive = opts.keepAlive ?? false;
    if (new URL(base).protocol === 'https:') {
      const { ca, from } = readCa(opts.caFile ?? (process.env.SUTURE_FLEET_CA || undefined));
      this.transport = { mod: https, agent: new https.Agent({ ca, keepAlive, maxSockets: keepAlive ? 64 : Infinity }), trust: from };
    } else {
      this.transport = { mod: http, agent: opts.httpAgent ?? new http.Agent({ keepAlive, maxSockets: keepAlive ? 64 : Infinity }), trust: '' };
    }
  }

  /** Close kept-alive connections. */
  close(): void {
    this.transport.agent.destroy();
  }

  /** Send a signed request; a JSON body, raw bytes, or none. Returns the parsed JSON reply or the bytes. */
  async request(method: 'GET' | 'POST', path: string, body?: unknown): Promise<unknown> {
    const raw = body === undefined ? Buffer.alloc(0) : Buffer.isBuffer(body) ? body : Buffer.from(JSON.stringify(body));
    const headers: Record<string, string> = { ...signRequest(this.id, method, path, raw) };
    if (body !== undefined) {
      headers['content-type'] = Buffer.isBuffer(body) ? 'application/octet-stream' : 'application/json';
      headers['content-length'] = String(raw.length);
    }
    const url = new URL(path, this.base);
    const res = await new Promise<{ status: number; type: string; data: Buffer }>((resolve, reject) => {
      const req = this.transport.mod.request(url, { method, headers, agent: this.transport.agent, timeout: this.timeoutMs }, (r) => {
        const chunks: Buffer[] = [];
        let n = 0;
        r.on('data', (c: Buffer) => {
          n += c.length;
          if (n > MAX_REPLY) {
            req.destroy(new Error(`the reply is larger than ${MAX_REPLY} bytes`));
            return;
          }
          chunks.push(c);
        });
        r.on('end', () => resolve({ status: r.statusCode ?? 0, type: String(r.headers['content-type'] ?? ''), data: Buffer.concat(chunks) }));
        r.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error(`no reply within ${this.timeoutMs} ms`)));
      req.on('error', reject);
      req.end(raw.length ? raw : undefined);
    }).catch((e: NodeJS.ErrnoException) => {
      if (e.code && UNTRUSTED_CERT.has(e.code)) {
        throw new SutureError('untrusted', `the fleet server at ${this.base} presented a certificate that ${this.transport.trust} does not vouch for (${e.code}: ${e.message})`, {
          hint: 'give --ca FILE with the CA certificate that signed the server\'s (or SUTURE_FLEET_CA), and a --server name the certificate is for',
        });
      }
      throw new SutureError('environment', `the fleet server at ${this.base} cannot be reached: ${e.message}`, {
        hint: 'start it with suture server, or give --server URL',
      });
    });
    if (res.status >= 200 && res.status < 300) return res.type.startsWith('application/json') ? JSON.parse(res.data.toString('utf8')) : res.data;
    const text = res.data.toString('utf8');
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
