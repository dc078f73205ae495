// SPDX-License-Identifier: GPL-2.0-only
/**
 * Signatures in minisign's format (https://jedisct1.github.io/minisign/), made
 * and checked with Ed25519 from node:crypto: no dependency, and anyone can
 * check a suture signature without suture, with Debian's `minisign` package:
 *
 *   minisign -Vm SHA256SUMS -p builder.pub
 *
 * Why minisign and not OpenPGP (gpgv): the format is four lines of base64 over
 * fixed-size fields (an OpenPGP packet parser would be a large attack surface
 * in a root-run loader, or a dependency); keys are one Ed25519 key, nothing
 * else (no subkeys, expiry, user ids, keyrings to manage); and the signed
 * "trusted comment" lets the signature itself say what it signs.
 *
 * Formats (all base64 lines after one "untrusted comment: " line):
 *   public key:  "Ed" | key id (8 bytes) | Ed25519 public key (32)
 *   signature:   "ED" | key id (8) | Ed25519(BLAKE2b-512(file)) (64)   -- "prehashed", minisign's default
 *                "trusted comment: <text>"
 *                Ed25519(signature (64) | text) (64)                    -- the "global signature"
 * The secret key file is suture's own (PKCS#8 PEM, mode 0600, with its key id):
 * only suture signs, so only verification needs to be minisign's.
 * The key id is the first 8 bytes of the public key's SHA-256; shown, as
 * minisign shows it, as the little-endian 64-bit number in upper-case hex.
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { SutureError } from '../util/errors.js';

export const UNTRUSTED_PREFIX = 'untrusted comment: ';
export const TRUSTED_PREFIX = 'trusted comment: ';
/** minisign's own bound on a comment (COMMENTMAXBYTES). */
export const MAX_COMMENT_BYTES = 1024;
/** No key or signature file is anywhere near this; bigger ones are refused before they are parsed. */
export const MAX_KEY_FILE_BYTES = 8192;

export interface PublicKey {
  /** 8 bytes, as in the files. */
  keyNum: Buffer;
  /** minisign's display of the key id: 16 upper-case hex digits. */
  id: string;
  /** The raw 32-byte Ed25519 public key. */
  raw: Buffer;
  key: KeyObject;
  /** The untrusted comment of the file it came from. */
  comment: string;
}

export interface SecretKey {
  pub: PublicKey;
  key: KeyObject;
}

export interface Signature {
  keyNum: Buffer;
  keyId: string;
  /** "ED": prehashed (BLAKE2b-512 of the file). */
  algorithm: 'ED';
  sig: Buffer;
  untrustedComment: string;
  trustedComment: string;
  globalSig: Buffer;
}

export function keyIdOf(keyNum: Buffer): string {
  return Buffer.from(keyNum).reverse().toString('hex').toUpperCase();
}

function rawOf(key: KeyObject): Buffer {
  const jwk = key.export({ format: 'jwk' }) as { x?: string };
  if (!jwk.x) throw new SutureError('internal', 'an Ed25519 key without its public part');
  return Buffer.from(jwk.x, 'base64url');
}

function publicFromRaw(raw: Buffer, comment: string): PublicKey {
  const keyNum = createHash('sha256').update(raw).digest().subarray(0, 8);
  return { keyNum, id: keyIdOf(keyNum), raw, key: createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: raw.toString('base64url') }, format: 'jwk' }), comment };
}

/** A new key pair. */
export function generateKey(comment: string): SecretKey {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const pub = publicFromRaw(rawOf(publicKey), comment);
  return { pub, key: privateKey };
}

function oneLine(s: string, what: string): string {
  if (/[\r\n\0]/.test(s) || Buffer.byteLength(s) > MAX_COMMENT_BYTES) {
    throw new SutureError('invalid-input', `${what} must be one line of at most ${MAX_COMMENT_BYTES} bytes`);
  }
  return s;
}

export function formatPublicKey(pub: PublicKey): string {
  return `${UNTRUSTED_PREFIX}${oneLine(pub.comment || `minisign public key ${pub.id}`, 'a key comment')}\n${Buffer.concat([Buffer.from('Ed'), pub.keyNum, pub.raw]).toString('base64')}\n`;
}

const SECRET_HEADER = 'suture secret key ';

export function formatSecretKey(sk: SecretKey): string {
  const pem = sk.key.export({ format: 'pem', type: 'pkcs8' }).toString();
  return `${UNTRUSTED_PREFIX}${SECRET_HEADER}${sk.pub.id} (${oneLine(sk.pub.comment, 'a key comment')}); keep it secret; its public half is the .pub file\n${pem}`;
}

function lines(text: string, file: string, what: string): string[] {
  const l = text.split('\n');
  if (l[l.length - 1] === '') l.pop();
  if (l.some((x) => x.endsWith('\r'))) throw new SutureError('invalid-input', `${file}: not a ${what} (CR line ends)`);
  return l;
}

const B64 = /^[A-Za-z0-9+/]+={0,2}$/;

function b64(line: string | undefined, len: number, file: string, what: string): Buffer {
  const b = line !== undefined && B64.test(line) ? Buffer.from(line, 'base64') : undefined;
  if (!b || b.length !== len || b.toString('base64') !== line) {
    throw new SutureError('invalid-input', `${file}: not a ${what} (expected ${len} bytes in base64 on line ${what === 'minisign public key' ? 2 : '2 or 4'})`, {
      hint: 'give the file suture key generate or suture bundle sign wrote',
    });
  }
  return b;
}

/** Parse a minisign public key file (what `suture key generate` writes as NAME.pub, and what `minisign -G` writes). */
export function parsePublicKey(text: string, file: string): PublicKey {
  const what = 'minisign public key';
  const l = lines(text, file, what);
  if (l.length !== 2 || !l[0]!.startsWith(UNTRUSTED_PREFIX)) {
    throw new SutureError('invalid-input', `${file}: not a ${what} (two lines: "untrusted comment: ...", then the key in base64)`, {
      hint: 'trusted keys are the NAME.pub files of suture key generate',
    });
  }
  const b = b64(l[1], 42, file, what);
  if (b.toString('latin1', 0, 2) !== 'Ed') throw new SutureError('invalid-input', `${file}: not an Ed25519 ${what} (algorithm ${JSON.stringify(b.toString('latin1', 0, 2))})`);
  const keyNum = b.subarray(2, 10);
  const raw = b.subarray(10);
  let key: KeyObject;
  try {
    key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: raw.toString('base64url') }, format: 'jwk' });
  } catch (e) {
    throw new SutureError('invalid-input', `${file}: not a valid Ed25519 public key`, { cause: e });
  }
  return { keyNum: Buffer.from(keyNum), id: keyIdOf(keyNum), raw: Buffer.from(raw), key, comment: l[0]!.slice(UNTRUSTED_PREFIX.length) };
}

/** Parse a secret key file of `suture key generate`. */
export function parseSecretKey(text: string, file: string): SecretKey {
  const nl = text.indexOf('\n');
  const first = nl < 0 ? text : text.slice(0, nl);
  const m = new RegExp(`^${UNTRUSTED_PREFIX}${SECRET_HEADER}([0-9A-F]{16}) \\((.*)\\); `).exec(first);
  if (!m) {
    throw new SutureError('invalid-input', `${file}: not a suture secret key (its first line must be "untrusted comment: suture secret key ID ...")`, {
      hint: 'give the NAME.key file that suture key generate wrote (not the .pub)',
    });
  }
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: text.slice(nl + 1), format: 'pem' });
  } catch (e) {
    throw new SutureError('invalid-input', `${file}: its PEM private key cannot be read`, { cause: e, hint: 'give the NAME.key file that suture key generate wrote' });
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new SutureError('invalid-input', `${file}: not an Ed25519 key (${key.asymmetricKeyType})`);
  const pub = publicFromRaw(rawOf(createPublicKey(key)), m[2]!);
  if (pub.id !== m[1]) throw new SutureError('invalid-input', `${file}: its first line names key ${m[1]}, but the key in it is ${pub.id}`, { hint: 'the file was edited; use the original' });
  return { pub, key };
}

const prehash = (data: Uint8Array) => createHash('blake2b512').update(data).digest();

/** Sign `data` as `minisign -S` does (prehashed), with a trusted comment. */
export function signData(sk: SecretKey, data: Uint8Array, trustedComment: string, untrustedComment = `signature from suture secret key ${sk.pub.id}`): string {
  oneLine(trustedComment, 'a trusted comment');
  const sig = sign(null, prehash(data), sk.key);
  const global = sign(null, Buffer.concat([sig, Buffer.from(trustedComment)]), sk.key);
  return [
    `${UNTRUSTED_PREFIX}${oneLine(untrustedComment, 'an untrusted comment')}`,
    Buffer.concat([Buffer.from('ED'), sk.pub.keyNum, sig]).toString('base64'),
    `${TRUSTED_PREFIX}${trustedComment}`,
    global.toString('base64'),
    '',
  ].join('\n');
}

/** Parse a minisign signature file (no check yet). */
export function parseSignature(text: string, file: string): Signature {
  const what = 'minisign signature';
  const l = lines(text, file, what);
  if (l.length !== 4 || !l[0]!.startsWith(UNTRUSTED_PREFIX) || !l[2]!.startsWith(TRUSTED_PREFIX)) {
    throw new SutureError('invalid-input', `${file}: not a ${what} (four lines: untrusted comment, signature, trusted comment, global signature)`);
  }
  const s = b64(l[1], 74, file, what);
  const alg = s.toString('latin1', 0, 2);
  if (alg !== 'ED') {
    throw new SutureError('invalid-input', `${file}: signature algorithm ${JSON.stringify(alg)}; suture accepts only prehashed Ed25519 signatures ("ED", minisign's default)`);
  }
  const keyNum = Buffer.from(s.subarray(2, 10));
  return {
    keyNum,
    keyId: keyIdOf(keyNum),
    algorithm: 'ED',
    sig: Buffer.from(s.subarray(10)),
    untrustedComment: l[0]!.slice(UNTRUSTED_PREFIX.length),
    trustedComment: oneLine(l[2]!.slice(TRUSTED_PREFIX.length), `${file}: the trusted comment`),
    globalSig: b64(l[3], 64, file, what),
  };
}

/** Both signatures check with this key (the caller has matched the key id). */
export function verifySignature(pub: PublicKey, sig: Signature, data: Uint8Array): boolean {
  if (!pub.keyNum.equals(sig.keyNum)) return false;
  return verify(null, prehash(data), pub.key, sig.sig) && verify(null, Buffer.concat([sig.sig, Buffer.from(sig.trustedComment)]), pub.key, sig.globalSig);
}
