// SPDX-License-Identifier: GPL-2.0-only
/**
 * The shipped kernel image: the vmlinux ELF inside Debian's bzImage, which
 * holds the exact bytes of every built-in function and the kernel's BTF.
 */
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { ExecView } from '../elf/mod.js';
import { SutureError } from '../util/errors.js';
import { run } from '../util/exec.js';
import type { KernelMetadata } from './workspace.js';

export interface Payload {
  format: 'xz' | 'gzip' | 'zstd' | 'lz4' | 'none';
  bytes: Uint8Array;
}

/**
 * The compressed payload of an x86 bzImage (boot protocol 2.08+: payload_offset
 * and payload_length in the setup header, after the real-mode setup sectors).
 */
export function bzImagePayload(image: Uint8Array, file: string): Payload {
  const dv = new DataView(image.buffer, image.byteOffset, image.byteLength);
  if (image.length < 0x250 || dv.getUint32(0x202, true) !== 0x53726448 /* "HdrS" */) {
    throw new SutureError('invalid-input', `${file} is not an x86 bzImage (no "HdrS" setup header at 0x202)`);
  }
  const version = dv.getUint16(0x206, true);
  if (version < 0x0208) throw new SutureError('invalid-input', `${file} uses boot protocol ${version.toString(16)}, older than 2.08`);
  const setupSects = image[0x1f1] || 4;
  const start = (setupSects + 1) * 512 + dv.getUint32(0x248, true);
  const length = dv.getUint32(0x24c, true);
  if (start + length > image.length) throw new SutureError('invalid-input', `${file}: the payload (offset 0x${start.toString(16)}, ${length} bytes) lies outside the file`);
  const bytes = image.subarray(start, start + length);
  const magic = Buffer.from(bytes.subarray(0, 6));
  const format: Payload['format'] = magic.equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))
    ? 'xz'
    : magic[0] === 0x1f && magic[1] === 0x8b
      ? 'gzip'
      : magic.readUInt32LE(0) === 0xfd2fb528
        ? 'zstd'
        : magic.readUInt32LE(0) === 0x184c2102
          ? 'lz4'
          : magic.readUInt32BE(0) === 0x7f454c46
            ? 'none'
            : (() => {
                throw new SutureError('invalid-input', `${file}: unknown payload compression (magic ${magic.toString('hex')})`);
              })();
  return { format, bytes };
}

/** Decompress the bzImage payload into an ELF file. */
export async function extractVmlinux(bzImage: string, out: string): Promise<void> {
  const p = bzImagePayload(readFileSync(bzImage), bzImage);
  const tmp = `${out}.tmp`;
  if (p.format === 'none') writeFileSync(tmp, p.bytes);
  else if (p.format === 'gzip') writeFileSync(tmp, gunzipSync(p.bytes));
  else {
    const argv = p.format === 'xz' ? ['xz', '-dc', '--single-stream'] : p.format === 'zstd' ? ['zstd', '-dcq'] : ['lz4', '-dc'];
    const r = await run(argv, { input: Buffer.from(p.bytes), stdoutFile: tmp });
    // The kernel appends the uncompressed size after the stream; xz reports it as trailing garbage.
    if (r.code !== 0 && !existsSync(tmp)) {
      throw new SutureError('environment', `decompressing the ${p.format} payload of ${bzImage} failed`, { details: r.stderr.trim() });
    }
  }
  const head = readFileSync(tmp).subarray(0, 4);
  if (head.readUInt32BE(0) !== 0x7f454c46) {
    rmSync(tmp, { force: true });
    throw new SutureError('invalid-input', `the payload of ${bzImage} did not decompress to an ELF image`);
  }
  renameSync(tmp, out);
}

/** The decompressed vmlinux of a workspace, extracted once and kept beside the image. */
export async function workspaceVmlinux(meta: KernelMetadata): Promise<ExecView> {
  const file = join(meta.paths.image, 'boot', `vmlinux-${meta.release}`);
  if (!existsSync(file)) await extractVmlinux(meta.paths.vmlinuz, file);
  return ExecView.parse(readFileSync(file), file);
}
