// SPDX-License-Identifier: GPL-2.0-only
/**
 * The few members of a bundle in a POSIX ustar archive: `tar xf` unpacks it
 * anywhere, and the reader here accepts only what the writer makes (regular
 * files, plain names, no links, no extensions, each header's checksum right,
 * sizes within the caller's bounds, nothing after the end blocks but zeros).
 */
import { SutureError } from '../util/errors.js';

const BLOCK = 512;

export interface TarMember {
  name: string;
  data: Buffer;
}

function octal(n: number, width: number): string {
  return `${n.toString(8).padStart(width - 1, '0')}\0`;
}

function header(name: string, size: number, mtime: number): Buffer {
  const h = Buffer.alloc(BLOCK);
  h.write(name, 0, 100, 'latin1');
  h.write(octal(0o644, 8), 100, 'latin1');
  h.write(octal(0, 8), 108, 'latin1');
  h.write(octal(0, 8), 116, 'latin1');
  h.write(octal(size, 12), 124, 'latin1');
  h.write(octal(mtime, 12), 136, 'latin1');
  h.fill(0x20, 148, 156);
  h.write('0', 156, 'latin1');
  h.write('ustar\x0000', 257, 'latin1');
  h.write('root', 265, 'latin1');
  h.write('root', 297, 'latin1');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return h;
}

export function writeTar(members: TarMember[], mtime: number): Buffer {
  const parts: Buffer[] = [];
  for (const m of members) {
    if (!/^[A-Za-z0-9._+-]{1,99}$/.test(m.name)) throw new SutureError('internal', `tar member name ${JSON.stringify(m.name)}`);
    parts.push(header(m.name, m.data.length, Math.max(0, Math.floor(mtime))), m.data, Buffer.alloc((BLOCK - (m.data.length % BLOCK)) % BLOCK));
  }
  parts.push(Buffer.alloc(2 * BLOCK));
  return Buffer.concat(parts);
}

/** The archive looks like a ustar archive (magic at offset 257). */
export function isTar(b: Buffer): boolean {
  return b.length >= BLOCK && b.toString('latin1', 257, 262) === 'ustar';
}

function field(h: Buffer, at: number, len: number): string {
  const s = h.toString('latin1', at, at + len);
  const z = s.indexOf('\0');
  return z < 0 ? s : s.slice(0, z);
}

function readOctal(h: Buffer, at: number, len: number, file: string, what: string): number {
  const s = field(h, at, len).trim();
  if (!/^[0-7]{1,11}$/.test(s)) throw new SutureError('invalid-input', `${file}: tar header ${what} is not an octal number`);
  return parseInt(s, 8);
}

/**
 * Read the members, in order. `limitOf` gives each allowed member's largest
 * size (undefined: not allowed; `allowed` says which are); anything else is refused, naming it.
 */
export function readTar(b: Buffer, file: string, limitOf: (name: string) => number | undefined, allowed: string): TarMember[] {
  const out: TarMember[] = [];
  let at = 0;
  for (;;) {
    if (at + BLOCK > b.length) throw new SutureError('invalid-input', `${file}: the archive ends without its end blocks (truncated?)`, { hint: 'download or copy the bundle again' });
    const h = b.subarray(at, at + BLOCK);
    if (h.every((x) => x === 0)) {
      if (!b.subarray(at).every((x) => x === 0)) throw new SutureError('invalid-input', `${file}: data after the archive's end block`);
      if (b.length - at < 2 * BLOCK) throw new SutureError('invalid-input', `${file}: the archive ends without its end blocks (truncated?)`);
      return out;
    }
    let sum = 0;
    for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : h[i]!;
    if (readOctal(h, 148, 8, file, 'checksum') !== sum) throw new SutureError('invalid-input', `${file}: tar header at byte ${at} has a wrong checksum (damaged)`, { hint: 'download or copy the bundle again' });
    if (h.toString('latin1', 257, 263) !== 'ustar\0' && h.toString('latin1', 257, 265) !== 'ustar  \0') throw new SutureError('invalid-input', `${file}: not a ustar archive member at byte ${at}`);
    const name = field(h, 0, 100);
    const type = String.fromCharCode(h[156]!);
    if (field(h, 345, 155) !== '') throw new SutureError('invalid-input', `${file}: member ${JSON.stringify(name)} has a path prefix; a bundle holds plain file names only`);
    if (type !== '0' && type !== '\0') throw new SutureError('invalid-input', `${file}: member ${JSON.stringify(name)} is not a regular file (tar type ${JSON.stringify(type)}); a bundle holds regular files only`);
    const max = limitOf(name);
    if (max === undefined) throw new SutureError('invalid-input', `${file}: unexpected member ${JSON.stringify(name)}; a bundle holds only ${allowed}`);
    if (out.some((m) => m.name === name)) throw new SutureError('invalid-input', `${file}: member ${name} appears twice`);
    const size = readOctal(h, 124, 12, file, `size of ${name}`);
    if (size > max) throw new SutureError('invalid-input', `${file}: member ${name} is ${size} bytes, more than the ${max} a bundle allows`);
    const start = at + BLOCK;
    if (start + size > b.length) throw new SutureError('invalid-input', `${file}: member ${name} is cut short (truncated?)`, { hint: 'download or copy the bundle again' });
    out.push({ name, data: Buffer.from(b.subarray(start, start + size)) });
    at = start + Math.ceil(size / BLOCK) * BLOCK;
  }
}
