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
 *
 * Each list carries a serial that only grows (`suture key revoke` makes it
 * so). A host remembers the highest serial it accepted
 * (/var/lib/suture/revocation-serial.json) and refuses a list with a lower
 * one, or no list at all once it has accepted one: putting back an old
 * signed list (a rollback) would withdraw revocations. A list of version 1
 * (before serials) counts as serial 0.
 */
import { createHash } from 'node:crypto';
import { closeSync, constants, fstatSync, lstatSync, openSync, readdirSync, readSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { stateDirFromEnv, writeDurable } from '../livepatch/records.js';
import { SutureError } from '../util/errors.js';
import { MAX_KEY_FILE_BYTES, parsePublicKey, parseSignature, signData, verifySignature, type PublicKey, type SecretKey } from './minisign.js';

export const DEFAULT_KEYS_DIR = '/etc/suture/keys.d';
export const REVOCATION_FORMAT = 'suture-revocations';
export const REVOCATION_VERSION = 2;
export const MAX_REVOCATION_BYTES = 1024 * 1024;
/** Where a host keeps the highest revocation serial it accepted, in its state directory. */
export const SERIAL_FILE = 'revocation-serial.json';

/** The remembered serial of a host (SUTURE_STATE_DIR, default /var/lib/suture). */
export function serialFileFromEnv(env: NodeJS.ProcessEnv = process.env): string {
  return join(stateDirFromEnv(env), SERIAL_FILE);
}

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
  /** Grows with every list; 0 for a list of version 1. */
  serial: number;
  createdAt: string;
  /** Revoked key ids (minisign's display form). */
  keys: Map<string, string>;
  /** Revoked modules by sha256. */
  modules: Map<string, string>;
  /** The key that signed the list. */
  signedBy: string;
  file: string;
  sha256: string;
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

/** How loadTrustStore guards against an older revocation list. */
export interface SerialGuard {
  /** The host's remembered serial (serialFileFromEnv()). */
  file: string;
  /** Remember a higher serial once the list checks (install, load, boot); false to only compare (bundle verify). */
  record: boolean;
}

/** Load the trusted keys and the revocation list (compared with the host's remembered serial when `serial` is given). */
export function loadTrustStore(dir: string, serial?: SerialGuard): TrustStore {
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
  if (serial) guardSerial(store, serial);
  return store;
}

interface RememberedSerial {
  serial: number;
  /** sha256 of the list that carried it, and when this host first accepted it. */
  listSha256: string;
  acceptedAt: string;
}

/** The highest serial this host accepted, or undefined when it never accepted a list with a serial. */
export function readRememberedSerial(file: string): RememberedSerial | undefined {
  let text: string;
  try {
    text = readTrustFile(file, 4096, 'the remembered revocation serial').toString('utf8');
  } catch (e) {
    if ((e as SutureError).kind === 'not-found') return undefined;
    throw e;
  }
  let v: RememberedSerial;
  try {
    v = JSON.parse(text) as RememberedSerial;
  } catch {
    v = undefined as unknown as RememberedSerial;
  }
  if (typeof v !== 'object' || v === null || !Number.isSafeInteger(v.serial) || v.serial < 0) {
    throw new SutureError('state-damaged', `${file} is damaged: it does not hold the revocation serial this host accepted`, {
      hint: `install the newest revocation list from the builder and remove ${file}; the next install, load or boot remembers its serial again`,
    });
  }
  return v;
}

/** Refuse a list older than the one this host accepted (or none at all after one); remember a newer one. */
function guardSerial(store: TrustStore, g: SerialGuard): void {
  const seen = readRememberedSerial(g.file);
  const r = store.revocations;
  const fix = `install the newest revocation list from the builder (suture key revoke --merge writes a higher serial); only if this host must forget the lists it accepted: rm ${g.file}`;
  if (!r) {
    if (seen && seen.serial > 0) {
      throw untrusted(
        `the revocation list ${revocationPath(store.dir)} is missing, but this host accepted one with serial ${seen.serial} (${g.file}): a removed list would lift its revocations; suture trusts no bundle until it is fixed`,
        fix,
      );
    }
    return;
  }
  if (seen && r.serial < seen.serial) {
    throw untrusted(
      `the revocation list ${r.file} has serial ${r.serial}, older than serial ${seen.serial} this host already accepted (${g.file}): an old list put back (a rollback) would lift later revocations; suture trusts no bundle until it is fixed`,
      fix,
    );
  }
  if (g.record && r.serial > (seen?.serial ?? 0)) {
    const body: RememberedSerial = { serial: r.serial, listSha256: r.sha256, acceptedAt: new Date().toISOString() };
    writeDurable(g.file, `${JSON.stringify(body)}\n`, 0o644);
  }
}

interface RevocationJson {
  format: string;
  version: number;
  serial?: number;
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

const sha256hex = (b: Buffer) => createHash('sha256').update(b).digest('hex');

export function parseRevocations(bytes: Buffer, file: string, signedBy: string): Revocations {
  const bad = (what: string) => new SutureError('invalid-input', `${file}: ${what}`, { hint: 'make the list again with suture key revoke' });
  let v: RevocationJson;
  try {
    v = JSON.parse(bytes.toString('utf8')) as RevocationJson;
  } catch {
    throw bad('not JSON');
  }
  if (typeof v !== 'object' || v === null || v.format !== REVOCATION_FORMAT || (v.version !== 1 && v.version !== REVOCATION_VERSION)) {
    throw bad(`not a ${REVOCATION_FORMAT} list of version 1 or ${REVOCATION_VERSION}`);
  }
  const fields = v.version === 1 ? ['format', 'version', 'createdAt', 'keys', 'modules'] : ['format', 'version', 'serial', 'createdAt', 'keys', 'modules'];
  for (const k of Object.keys(v)) if (!fields.includes(k)) throw bad(`unknown field ${k}`);
  if (v.version !== 1 && (!Number.isSafeInteger(v.serial) || v.serial! < 1)) throw bad('serial is not a whole number of at least 1');
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
  return { serial: v.version === 1 ? 0 : v.serial!, createdAt: v.createdAt, keys, modules, signedBy, file, sha256: sha256hex(bytes) };
}

/**
 * The serial of a new list: above the list it continues (`--merge`), and at
 * least the time in seconds, so lists made without --merge grow too. An
 * explicit serial must still be above the merged list's.
 */
export function nextSerial(previous: number | undefined, now: Date, explicit?: number): number {
  const floor = (previous ?? 0) + 1;
  if (explicit !== undefined) {
    if (!Number.isSafeInteger(explicit) || explicit < floor) {
      throw new SutureError('usage', `--serial ${explicit} is not above the merged list's serial ${previous ?? 0}: hosts that accepted that list would refuse this one`, { hint: `leave --serial out, or give at least ${floor}` });
    }
    return explicit;
  }
  return Math.max(floor, Math.floor(now.getTime() / 1000));
}

/** The list and its signature, as `suture key revoke` writes them. */
export function makeRevocations(
  sk: SecretKey,
  keys: { id: string; reason: string }[],
  modules: { sha256: string; reason: string }[],
  now = new Date(),
  serial = nextSerial(undefined, now),
): { json: Buffer; sig: string; serial: number } {
  const body: RevocationJson = { format: REVOCATION_FORMAT, version: REVOCATION_VERSION, serial, createdAt: now.toISOString(), keys, modules };
  const json = Buffer.from(`${JSON.stringify(body, null, 2)}\n`);
  parseRevocations(json, '(new list)', sk.pub.id);
  const sig = signData(sk, json, `suture revocation list ${serial} of ${body.createdAt}: ${keys.length} key(s), ${modules.length} module(s)`);
  return { json, sig, serial };
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
