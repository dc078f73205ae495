// SPDX-License-Identifier: GPL-2.0-only
/** A kernel module file (.ko) as the loader sees it: its name, vermagic, dependencies, livepatch flag. */
import { readFileSync, statSync } from 'node:fs';
import { modinfoValue, readModinfo, type ModinfoEntry } from '../elf/mod.js';
import { SutureError, fsError, isSutureError } from '../util/errors.js';

/** The longest module name the kernel takes: MODULE_NAME_LEN (56) less its NUL. */
export const MODULE_NAME_MAX = 55;

export interface ModuleFile {
  path: string;
  /** The module's name (modinfo `name`, as the kernel will call it). */
  name: string;
  vermagic: string | undefined;
  depends: string[];
  /** modinfo `livepatch` is present (MODULE_INFO(livepatch, "Y")). */
  livepatch: boolean;
  modinfo: ModinfoEntry[];
}

/** Read and check a module file; a clear error if it is missing or not a kernel module. */
export function readModuleFile(path: string): ModuleFile {
  let bytes: Buffer;
  try {
    if (!statSync(path).isFile()) throw new SutureError('invalid-input', `${path} is not a file`);
    bytes = readFileSync(path);
  } catch (e) {
    if (isSutureError(e)) throw e;
    throw fsError(e, 'reading a module', path);
  }
  return moduleFileFromBytes(bytes, path);
}

/** A module's facts from bytes already read (the host reads a file once and validates that buffer). */
export function moduleFileFromBytes(bytes: Uint8Array, path: string): ModuleFile {
  let modinfo: ModinfoEntry[];
  try {
    modinfo = readModinfo(bytes, path);
  } catch (e) {
    throw new SutureError('invalid-input', `${path} is not a kernel module: ${(e as Error).message}`, {
      hint: 'give the .ko file that kbuild produced',
      cause: e,
    });
  }
  const name = modinfoValue(modinfo, 'name');
  const vermagic = modinfoValue(modinfo, 'vermagic');
  if (!name && !vermagic) {
    throw new SutureError('invalid-input', `${path} is an ELF object but not a kernel module (no name or vermagic in .modinfo)`, {
      hint: 'give the final .ko (after modpost), not an intermediate .o',
    });
  }
  return {
    path,
    name: name ?? path.split('/').pop()!.replace(/\.ko$/, '').replace(/-/g, '_'),
    vermagic,
    depends: (modinfoValue(modinfo, 'depends') ?? '').split(',').filter(Boolean),
    livepatch: modinfo.some((e) => e.key === 'livepatch'),
    modinfo,
  };
}
