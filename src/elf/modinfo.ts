// SPDX-License-Identifier: GPL-2.0-only
/**
 * `.modinfo` of a kernel module: NUL-separated `key=value` strings
 * (MODULE_INFO, MODULE_LICENSE, vermagic, name, depends, livepatch, ...).
 */
import { SHT_NOBITS } from './constants.js';
import { ElfView } from './view.js';

/** One `key=value` string of `.modinfo`, in file order. Keys may repeat (alias=, parm=). */
export interface ModinfoEntry {
  readonly key: string;
  readonly value: string;
}

const utf8 = new TextDecoder('utf-8');

/**
 * Split the raw bytes of a `.modinfo` section into entries. Empty strings
 * (alignment padding) are skipped; a string without '=' becomes a key with an
 * empty value. A missing final NUL is tolerated.
 *
 * @example
 * parseModinfo(new TextEncoder().encode('license=GPL\0name=foo\0'))
 * // [{ key: 'license', value: 'GPL' }, { key: 'name', value: 'foo' }]
 */
export function parseModinfo(data: Uint8Array): ModinfoEntry[] {
  const out: ModinfoEntry[] = [];
  let start = 0;
  while (start < data.length) {
    let end = data.indexOf(0, start);
    if (end < 0) end = data.length;
    if (end > start) {
      const text = utf8.decode(data.subarray(start, end));
      const eq = text.indexOf('=');
      out.push(eq < 0 ? { key: text, value: '' } : { key: text.slice(0, eq), value: text.slice(eq + 1) });
    }
    start = end + 1;
  }
  return out;
}

/**
 * Read the `.modinfo` entries of a kernel module (`.ko`) or object file.
 * Throws ElfError when the bytes are not a valid x86_64 ELF64 relocatable
 * object; returns [] when it has no `.modinfo` section.
 *
 * @example
 * const info = readModinfo(readFileSync('binfmt_misc.ko'));
 * const vermagic = info.find((e) => e.key === 'vermagic')?.value;
 */
export function readModinfo(bytes: Uint8Array, file?: string): ModinfoEntry[] {
  const view = ElfView.parse(bytes, file === undefined ? {} : { file });
  const sec = view.findSection('.modinfo');
  if (sec === undefined || sec.type === SHT_NOBITS) return [];
  return parseModinfo(view.data(sec));
}

/** The value of the first entry with this key, or undefined. */
export function modinfoValue(entries: readonly ModinfoEntry[], key: string): string | undefined {
  return entries.find((e) => e.key === key)?.value;
}
