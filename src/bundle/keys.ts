// SPDX-License-Identifier: GPL-2.0-only
/** Key files on the machine that signs: writing a new pair, reading the secret half. */
import { closeSync, fstatSync, openSync, readFileSync, writeSync, fsyncSync } from 'node:fs';
import { basename } from 'node:path';
import { fsError, SutureError } from '../util/errors.js';
import { formatPublicKey, formatSecretKey, generateKey, MAX_KEY_FILE_BYTES, parsePublicKey, parseSecretKey, type PublicKey, type SecretKey } from './minisign.js';

/** Write a file that must not exist yet (a key is never overwritten). */
function writeNew(path: string, text: string, mode: number): void {
  let fd: number;
  try {
    fd = openSync(path, 'wx', mode);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new SutureError('conflict', `${path} already exists: suture never overwrites a key`, { hint: 'choose another name, or move the old key away first' });
    }
    throw fsError(e, 'writing a key', path);
  }
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** `suture key generate NAME`: NAME.key (0600) and NAME.pub (0644). */
export function generateKeyFiles(name: string, comment?: string): { key: string; pub: string; sk: SecretKey } {
  const base = name.endsWith('.key') || name.endsWith('.pub') ? name.slice(0, -4) : name;
  if (!basename(base) || /[\s]/.test(basename(base))) throw new SutureError('usage', `key name ${JSON.stringify(name)}: give a file name without spaces, e.g. builder`);
  const sk = generateKey(comment ?? `suture key ${basename(base)} ${new Date().toISOString().slice(0, 10)}`);
  const key = `${base}.key`;
  const pub = `${base}.pub`;
  writeNew(key, formatSecretKey(sk), 0o600);
  writeNew(pub, formatPublicKey(sk.pub), 0o644);
  return { key, pub, sk };
}

/** Read a secret key; refuse one that others can read (as ssh does). */
export function readSecretKey(path: string): SecretKey {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    throw fsError(e, 'reading the signing key', path);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile() || st.size > MAX_KEY_FILE_BYTES) throw new SutureError('invalid-input', `${path} is not a key file (not a regular file, or larger than ${MAX_KEY_FILE_BYTES} bytes)`);
    if ((st.mode & 0o077) !== 0) {
      throw new SutureError('invalid-input', `signing key ${path} can be read by others (mode ${(st.mode & 0o777).toString(8)}): suture will not use it`, {
        hint: `chmod 600 ${path} (and consider the key exposed if others did read it)`,
      });
    }
  } finally {
    closeSync(fd);
  }
  return parseSecretKey(readFileSync(path, 'utf8'), path);
}

export function readPublicKey(path: string): PublicKey {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw fsError(e, 'reading a public key', path);
  }
  return parsePublicKey(text, path);
}

