// SPDX-License-Identifier: GPL-2.0-only
/**
 * The kernel's own module signature: what `scripts/sign-file` appends to a
 * `.ko` and what the kernel checks at load time when it enforces signatures
 * (module.sig_enforce=1, Secure Boot lockdown). The layout is the kernel's
 * (include/linux/module_signature.h):
 *
 *   <module> <PKCS#7 signature, sig_len bytes> <struct module_signature, 12 bytes> "~Module signature appended~\n"
 *
 *   struct module_signature { u8 algo, hash, id_type, signer_len, key_id_len, __pad[3]; __be32 sig_len; }
 *
 * With PKCS#7 (id_type 2, the only kind current kernels accept) algo, hash,
 * signer_len and key_id_len are 0: the signer and the hash are inside the
 * PKCS#7 message. This reads the trailer only (no key, no crypto): whether a
 * module carries a signature, and how long it is. Host-safe.
 */

export const MODULE_SIG_MAGIC = '~Module signature appended~\n';
const TRAILER = 12;
/** id_type of a PKCS#7 signature (PKEY_ID_PKCS7). */
export const PKEY_ID_PKCS7 = 2;

export interface ModuleSignatureTrailer {
  /** id_type: 2 (PKCS#7) for every signature a current kernel accepts. */
  idType: number;
  /** Length of the PKCS#7 message. */
  sigLen: number;
  /** Where the module proper ends (what the signature covers). */
  moduleEnd: number;
}

/** The appended signature's trailer, or undefined when the module carries none (or a damaged one: `damaged`). */
export function moduleSignatureTrailer(bytes: Uint8Array): ModuleSignatureTrailer | { damaged: string } | undefined {
  const magic = Buffer.from(MODULE_SIG_MAGIC);
  if (bytes.length < magic.length || !Buffer.from(bytes.subarray(bytes.length - magic.length)).equals(magic)) return undefined;
  const end = bytes.length - magic.length;
  if (end < TRAILER) return { damaged: 'the signature trailer is cut short' };
  const t = Buffer.from(bytes.buffer, bytes.byteOffset + end - TRAILER, TRAILER);
  const idType = t[2]!;
  const sigLen = t.readUInt32BE(8);
  const moduleEnd = end - TRAILER - sigLen;
  if (sigLen === 0 || moduleEnd <= 0) return { damaged: `the signature length ${sigLen} does not fit the file` };
  return { idType, sigLen, moduleEnd };
}
