// SPDX-License-Identifier: GPL-2.0-only
/**
 * What a host trusts: the public keys in /etc/suture/keys.d/ (*.pub, minisign
 * format), and the signed revocation list /etc/suture/revoked.json (with
 * revoked.json.minisig beside it) that withdraws keys and modules.
 *
 * Both are read strictly: the directory and every file in it must belong to
 * root (or to the user running suture, for tests) and be writable by nobody
 * else, files must be regular files (no symbolic links). A revocation list
 * that exists but does not check (unsigned, signed by an untrusted key,
 * damaged) fails closed: nothing is trusted until it is fixed.
 */
import { closeSync, constants, fstatSync, lstatSync, openSync, readdirSync, readSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { SutureError } from '../util/errors.js';
import { MAX_KEY_FILE_BYTES, parsePublicKey, parseSignature, signData, verifySignature, type PublicKey, type SecretKey } from './minisign.js';

export const DEFAULT_KEYS_DIR = '/etc/suture/keys.d';
export const REVOCATION_FORMAT = 'suture-revocations';
export const MAX_REVOCATION_BYTES = 1024 * 1024;

export function keysDirFromEnv(env: NodeJS.ProcessEnv = process.env): string {
  return env.SUTURE_KEYS_DIR || DEFAULT_KEYS_DIR;
}

/** The revocation list that belongs to a keys directory: revoked.json beside it. */
export function revocationPath(keysDir: string): string {
  return join(dirname(keysDir), 'revoked.json');
}

export interface TrustedKey {
  pub: PublicKey;
  file: string;
}

export interface Revocations {
  createdAt: string;
  /** Revoked key ids (minisign's display form). */
  keys: Map<string, string>;
  /** Revoked modules by sha256. */
  modules: Map<string, string>;
  /** The key that signed the list. */
  signedBy: string;
  file: string;
}

export interface TrustStore {
  dir: string;
  keys: Map<string, TrustedKey>;
  revocations: Revocations | undefined;
}

function untrusted(message: string, hint: string): SutureError {
  return new SutureError('untrusted', message, { hint });
}

function checkOwner(path: string, st: { uid: number; mode: number }, what: string): void {
  const uid = process.getuid?.() ?? 0;
  if (st.uid !== 0 && st.uid !== uid) {
    throw untrusted(`${what} ${path} is owned by uid ${st.uid}, not root: suture trusts nothing in it`, `chown root:root ${path}`);
  }
  if ((st.mode & 0o022) !== 0) {
    throw untrusted(`${what} ${path} is writable by ${st.mode & 0o002 ? 'every user' : 'its group'} (mode ${(st.mode & 0o7777).toString(8)}): suture trusts nothing in it`, `chmod go-w ${path}`);
  }
}

/** Read a small trust file strictly (regular, not a link, root's, not writable by others). */
export function readTrustFile(path: string, max: number, what: string): Buffer {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ELOOP') throw untrusted(`${what} ${path} is a symbolic link: suture reads only regular files there`, `replace the link with the file itself`);
    if (code === 'ENOENT') throw new SutureError('not-found', `${what} ${path} does not exist`);
    throw new SutureError('environment', `reading ${what} ${path}: ${(e as Error).message}`, { hint: code === 'EACCES' ? 'run suture as root' : undefined });
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw untrusted(`${what} ${path} is not a regular file`, `remove it`);
    checkOwner(path, st, what);
    if (st.size > max) throw new SutureError('invalid-input', `${what} ${path} is ${st.size} bytes, more than the ${max} allowed`);
    const b = Buffer.alloc(st.size);
    let off = 0;
    while (off < b.length) {
      const n = readSync(fd, b, off, b.length - off, off);
      if (n <= 0) break;
      off += n;
    }
    return b.subarray(0, off);
  } finally {
    closeSync(fd);
  }
}

/** Load the trusted keys and the revocation list. */
export function loadTrustStore(dir: string): TrustStore {
  let st;
  try {
    st = lstatSync(dir);
  } catch {
    throw untrusted(
      `no trusted keys: ${dir} does not exist, so no signed bundle can be checked`,
      `install the builder's public key: install -D -m 0644 -o root builder.pub ${dir}/builder.pub`,
    );
  }
  if (!st.isDirectory()) throw untrusted(`${dir} is not a directory (a symbolic link?): suture trusts no key in it`, `make it a directory owned by root, mode 0755`);
  checkOwner(dir, st, 'the keys directory');
  const keys = new Map<string, TrustedKey>();
  for (const name of readdirSync(dir).sort()) {
    if (!name.endsWith('.pub')) continue;
    const file = join(dir, name);
    const pub = parsePublicKey(readTrustFile(file, MAX_KEY_FILE_BYTES, 'trusted key').toString('utf8'), file);
    const seen = keys.get(pub.id);
    if (seen && !seen.pub.raw.equals(pub.raw)) throw untrusted(`${file} and ${seen.file} hold different keys with one key id ${pub.id}`, `remove one of them`);
    if (!seen) keys.set(pub.id, { pub, file });
  }
  const store: TrustStore = { dir, keys, revocations: undefined };
  store.revocations = loadRevocations(store);
  return store;
}

interface RevocationJson {
  format: string;
  version: number;
  createdAt: string;
  keys: { id: string; reason: string }[];
  modules: { sha256: string; reason: string }[];
}

function loadRevocations(store: TrustStore): Revocations | undefined {
  const file = revocationPath(store.dir);
  let bytes: Buffer;
  try {
    bytes = readTrustFile(file, MAX_REVOCATION_BYTES, 'the revocation list');
  } catch (e) {
    if ((e as SutureError).kind === 'not-found') return undefined;
    throw e;
  }
  const fix = `put back the revocation list and its signature as suture key revoke wrote them (${file}, ${file}.minisig)`;
  let sigText: string;
  try {
    sigText = readTrustFile(`${file}.minisig`, MAX_KEY_FILE_BYTES, 'the signature of the revocation list').toString('utf8');
  } catch (e) {
    if ((e as SutureError).kind === 'not-found') throw untrusted(`the revocation list ${file} has no signature (${file}.minisig): suture trusts no bundle until it is fixed`, fix);
    throw e;
  }
  const sig = parseSignature(sigText, `${file}.minisig`);
  const key = store.keys.get(sig.keyId);
  if (!key) throw untrusted(`the revocation list ${file} is signed by key ${sig.keyId}, which is not in ${store.dir}: suture trusts no bundle until it is fixed`, fix);
  if (!verifySignature(key.pub, sig, bytes)) throw untrusted(`the revocation list ${file} does not match its signature (changed or damaged): suture trusts no bundle until it is fixed`, fix);
  return parseRevocations(bytes, file, sig.keyId);
}

export function parseRevocations(bytes: Buffer, file: string, signedBy: string): Revocations {
  const bad = (what: string) => new SutureError('invalid-input', `${file}: ${what}`, { hint: 'make the list again with suture key revoke' });
  let v: RevocationJson;
  try {
    v = JSON.parse(bytes.toString('utf8')) as RevocationJson;
  } catch {
    throw bad('not JSON');
  }
  if (typeof v !== 'object' || v === null || v.format !== REVOCATION_FORMAT || v.version !== 1) throw bad(`not a ${REVOCATION_FORMAT} list of version 1`);
  for (const k of Object.keys(v)) if (!['format', 'version', 'createdAt', 'keys', 'modules'].includes(k)) throw bad(`unknown field ${k}`);
  if (typeof v.createdAt !== 'string' || !Array.isArray(v.keys) || !Array.isArray(v.modules)) throw bad('createdAt, keys or modules missing');
  const reason = (r: unknown, at: string) => {
    if (typeof r !== 'string' || r.length > 1024) throw bad(`${at}.reason is not a string of at most 1024 characters`);
    return r;
  };
  const keys = new Map<string, string>();
  v.keys.forEach((k, i) => {
    if (typeof k?.id !== 'string' || !/^[0-9A-F]{16}$/.test(k.id)) throw bad(`keys[${i}].id is not a key id (16 upper-case hex digits)`);
    keys.set(k.id, reason(k.reason, `keys[${i}]`));
  });
  const modules = new Map<string, string>();
  v.modules.forEach((m, i) => {
    if (typeof m?.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(m.sha256)) throw bad(`modules[${i}].sha256 is not a sha256`);
    modules.set(m.sha256, reason(m.reason, `modules[${i}]`));
  });
  return { createdAt: v.createdAt, keys, modules, signedBy, file };
}

/** The list and its signature, as `suture key revoke` writes them. */
export function makeRevocations(sk: SecretKey, keys: { id: string; reason: string }[], modules: { sha256: string; reason: string }[], now = new Date()): { json: Buffer; sig: string } {
  const body: RevocationJson = { format: REVOCATION_FORMAT, version: 1, createdAt: now.toISOString(), keys, modules };
  const json = Buffer.from(`${JSON.stringify(body, null, 2)}\n`);
  parseRevocations(json, '(new list)', sk.pub.id);
  const sig = signData(sk, json, `suture revocation list of ${body.createdAt}: ${keys.length} key(s), ${modules.length} module(s)`);
  return { json, sig };
}

/** Refuse a revoked key or module, naming it and the reason. */
export function checkNotRevoked(store: TrustStore, what: string, keyId: string | undefined, moduleSha256: string): void {
  const r = store.revocations;
  if (!r) return;
  if (keyId && r.keys.has(keyId)) {
    throw untrusted(`${what} is signed by key ${keyId}, which is revoked by ${r.file} (${r.keys.get(keyId) || 'no reason given'})`, 'get a bundle signed by a key that is not revoked');
  }
  if (r.modules.has(moduleSha256)) {
    throw untrusted(`${what}: its module (sha256 ${moduleSha256.slice(0, 16)}…) is revoked by ${r.file} (${r.modules.get(moduleSha256) || 'no reason given'})`, 'get the fixed patch that replaces it');
  }
}
