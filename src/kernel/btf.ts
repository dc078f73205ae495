// SPDX-License-Identifier: GPL-2.0-only
/**
 * A reader for the kernel's BTF (include/uapi/linux/btf.h), enough to learn
 * the size of a struct by name: special-section entry sizes come from the
 * kernel itself, never from a table in suture.
 */
import { SutureError } from '../util/errors.js';
import { workspaceImage, workspaceVmlinux } from './symbols/mod.js';
import type { KernelMetadata } from './workspace.js';

const BTF_MAGIC = 0xeb9f;

/** Bytes that follow the common 12-byte btf_type header, by kind. */
function extraBytes(kind: number, vlen: number): number {
  switch (kind) {
    case 1: return 4; // INT
    case 3: return 12; // ARRAY
    case 4: case 5: return 12 * vlen; // STRUCT, UNION: btf_member
    case 6: return 8 * vlen; // ENUM
    case 13: return 8 * vlen; // FUNC_PROTO: btf_param
    case 14: return 4; // VAR
    case 15: return 12 * vlen; // DATASEC
    case 17: return 4; // DECL_TAG
    case 19: return 12 * vlen; // ENUM64
    case 2: case 7: case 8: case 9: case 10: case 11: case 12: case 16: case 18: return 0;
    default:
      throw new SutureError('invalid-input', `BTF type of unknown kind ${kind}`);
  }
}

export interface BtfStructs {
  /** Size in bytes of `struct name`, or undefined if BTF has no such struct. */
  structSize(name: string): number | undefined;
}

/** Parse a .BTF section and index its structs (and unions) by name. */
export function parseBtf(data: Uint8Array, what = '.BTF'): BtfStructs {
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  if (data.length < 24 || dv.getUint16(0, true) !== BTF_MAGIC) throw new SutureError('invalid-input', `${what} is not BTF (bad magic)`);
  const hdrLen = dv.getUint32(4, true);
  const typeOff = hdrLen + dv.getUint32(8, true);
  const typeLen = dv.getUint32(12, true);
  const strOff = hdrLen + dv.getUint32(16, true);
  const strLen = dv.getUint32(20, true);
  if (typeOff + typeLen > data.length || strOff + strLen > data.length) throw new SutureError('invalid-input', `${what}: type or string section outside the data`);
  const str = (off: number): string => {
    let end = strOff + off;
    while (end < strOff + strLen && data[end] !== 0) end++;
    return Buffer.from(data.subarray(strOff + off, end)).toString('latin1');
  };
  const sizes = new Map<string, number>();
  let p = typeOff;
  while (p < typeOff + typeLen) {
    if (p + 12 > typeOff + typeLen) throw new SutureError('invalid-input', `${what}: truncated type at offset ${p}`);
    const nameOff = dv.getUint32(p, true);
    const info = dv.getUint32(p + 4, true);
    const kind = (info >>> 24) & 0x1f;
    const vlen = info & 0xffff;
    if ((kind === 4 || kind === 5) && nameOff) {
      const name = str(nameOff);
      if (!sizes.has(name)) sizes.set(name, dv.getUint32(p + 8, true));
    }
    p += 12 + extraBytes(kind, vlen);
  }
  return { structSize: (name) => sizes.get(name) };
}

/**
 * The BTF of a workspace's kernel: the bytes between __start_BTF and
 * __stop_BTF in the shipped image, located by the captured kallsyms.
 */
export async function workspaceBtf(meta: KernelMetadata): Promise<BtfStructs> {
  const syms = workspaceVmlinux(meta);
  const start = syms.first('__start_BTF');
  const stop = syms.first('__stop_BTF');
  if (!start || !stop) {
    throw new SutureError('invalid-input', `${meta.name} has no BTF (no __start_BTF/__stop_BTF in its kallsyms)`, {
      hint: 'suture reads special-section entry sizes from BTF: the kernel needs CONFIG_DEBUG_INFO_BTF=y',
    });
  }
  const { image } = await workspaceImage(meta, syms);
  const data = image.read(start.address, Number(stop.address - start.address));
  if (!data) throw new SutureError('invalid-input', `${image.file}: the BTF at ${start.address.toString(16)} is outside the image`);
  return parseBtf(data, `.BTF of ${meta.name}`);
}
