// SPDX-License-Identifier: GPL-2.0-only
/**
 * A writer for the "newc" cpio format the kernel unpacks as an initramfs
 * (Documentation/driver-api/early-userspace/buffer-format.rst).
 */

export type CpioEntry =
  | { type: 'dir'; path: string; mode?: number }
  | { type: 'file'; path: string; data: Uint8Array; mode?: number }
  | { type: 'symlink'; path: string; target: string };

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;

function hex8(n: number): string {
  return n.toString(16).padStart(8, '0');
}

function pad4(n: number): number {
  return (4 - (n % 4)) % 4;
}

/** Serialise entries (parents before children) into one newc archive ending in TRAILER!!!. */
export function writeCpio(entries: readonly CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  let offset = 0;
  let ino = 1;
  const push = (b: Buffer) => {
    parts.push(b);
    offset += b.length;
  };
  const header = (path: string, mode: number, size: number, nlink: number) => {
    const name = Buffer.from(`${path}\0`, 'utf8');
    const fields = [
      '070701',
      hex8(ino++),
      hex8(mode),
      hex8(0), // uid
      hex8(0), // gid
      hex8(nlink),
      hex8(0), // mtime: fixed, so the same inputs give the same bytes
      hex8(size),
      hex8(0), // devmajor
      hex8(0), // devminor
      hex8(0), // rdevmajor
      hex8(0), // rdevminor
      hex8(name.length),
      hex8(0), // check
    ].join('');
    push(Buffer.from(fields, 'ascii'));
    push(name);
    push(Buffer.alloc(pad4(offset)));
  };
  for (const e of entries) {
    const path = e.path.replace(/^\/+/, '');
    if (!path) continue;
    if (e.type === 'dir') {
      header(path, S_IFDIR | (e.mode ?? 0o755), 0, 2);
    } else if (e.type === 'file') {
      header(path, S_IFREG | (e.mode ?? 0o644), e.data.length, 1);
      push(Buffer.from(e.data.buffer, e.data.byteOffset, e.data.byteLength));
      push(Buffer.alloc(pad4(offset)));
    } else {
      const target = Buffer.from(e.target, 'utf8');
      header(path, S_IFLNK | 0o777, target.length, 1);
      push(target);
      push(Buffer.alloc(pad4(offset)));
    }
  }
  header('TRAILER!!!', 0, 0, 1);
  return Buffer.concat(parts);
}
