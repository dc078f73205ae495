// SPDX-License-Identifier: GPL-2.0-only
/**
 * x86_64 relocation types (System V x86-64 psABI, "Relocation Types").
 */

/** One relocation type. */
export interface RelocType {
  /** Name without the R_X86_64_ prefix, e.g. 'PC32'. */
  readonly name: string;
  /** r_type value. */
  readonly number: number;
  /** Bytes the relocation writes at r_offset (0 for NONE and marker relocations). */
  readonly width: number;
  /** True when the value is relative to the place being relocated (P). */
  readonly pcRelative: boolean;
}

function t(name: string, number: number, width: number, pcRelative: boolean): RelocType {
  return Object.freeze({ name, number, width, pcRelative });
}

/** Every x86_64 relocation type, by number. */
export const X86_64_RELOCS: readonly RelocType[] = Object.freeze([
  t('NONE', 0, 0, false),
  t('64', 1, 8, false), // S + A
  t('PC32', 2, 4, true), // S + A - P
  t('GOT32', 3, 4, false), // G + A
  t('PLT32', 4, 4, true), // L + A - P
  t('COPY', 5, 0, false),
  t('GLOB_DAT', 6, 8, false),
  t('JUMP_SLOT', 7, 8, false),
  t('RELATIVE', 8, 8, false), // B + A
  t('GOTPCREL', 9, 4, true), // G + GOT + A - P
  t('32', 10, 4, false), // S + A, zero-extended
  t('32S', 11, 4, false), // S + A, sign-extended
  t('16', 12, 2, false),
  t('PC16', 13, 2, true),
  t('8', 14, 1, false),
  t('PC8', 15, 1, true),
  t('DTPMOD64', 16, 8, false),
  t('DTPOFF64', 17, 8, false),
  t('TPOFF64', 18, 8, false),
  t('TLSGD', 19, 4, true),
  t('TLSLD', 20, 4, true),
  t('DTPOFF32', 21, 4, false),
  t('GOTTPOFF', 22, 4, true),
  t('TPOFF32', 23, 4, false),
  t('PC64', 24, 8, true),
  t('GOTOFF64', 25, 8, false), // S + A - GOT
  t('GOTPC32', 26, 4, true), // GOT + A - P
  t('GOT64', 27, 8, false),
  t('GOTPCREL64', 28, 8, true),
  t('GOTPC64', 29, 8, true),
  t('GOTPLT64', 30, 8, false),
  t('PLTOFF64', 31, 8, false),
  t('SIZE32', 32, 4, false), // Z + A
  t('SIZE64', 33, 8, false),
  t('GOTPC32_TLSDESC', 34, 4, true),
  t('TLSDESC_CALL', 35, 0, false),
  t('TLSDESC', 36, 16, false),
  t('IRELATIVE', 37, 8, false),
  t('RELATIVE64', 38, 8, false),
  t('PC32_BND', 39, 4, true), // deprecated (MPX)
  t('PLT32_BND', 40, 4, true), // deprecated (MPX)
  t('GOTPCRELX', 41, 4, true),
  t('REX_GOTPCRELX', 42, 4, true),
]);

const byName = new Map(X86_64_RELOCS.map((r) => [r.name, r]));

/** R_X86_64_* constants for code that builds relocations. */
export const R_X86_64_NONE = 0;
export const R_X86_64_64 = 1;
export const R_X86_64_PC32 = 2;
export const R_X86_64_PLT32 = 4;
export const R_X86_64_GOTPCREL = 9;
export const R_X86_64_32 = 10;
export const R_X86_64_32S = 11;
export const R_X86_64_PC64 = 24;
export const R_X86_64_GOTPCRELX = 41;
export const R_X86_64_REX_GOTPCRELX = 42;

/**
 * The relocation type with this number, or undefined for an unknown one.
 *
 * @example
 * relocType(2) // { name: 'PC32', number: 2, width: 4, pcRelative: true }
 */
export function relocType(number: number): RelocType | undefined {
  return X86_64_RELOCS[number];
}

/** The relocation type with this name, with or without the R_X86_64_ prefix. */
export function relocTypeByName(name: string): RelocType | undefined {
  return byName.get(name.startsWith('R_X86_64_') ? name.slice(9) : name);
}

/** 'R_X86_64_PC32' for 2; 'R_X86_64_<n>' style unknown marker for numbers not in the table. */
export function relocTypeName(number: number): string {
  const r = relocType(number);
  return r === undefined ? `R_X86_64_unknown(${number})` : `R_X86_64_${r.name}`;
}

/** `endbr64`: the first instruction of every indirectly callable function in a kernel built with CONFIG_X86_KERNEL_IBT (6.12 on Debian). */
export const ENDBR64: readonly number[] = [0xf3, 0x0f, 0x1e, 0xfa];

/** `nopl 0x0(%rax,%rax,1)`: the 5-byte NOP ftrace writes over a disabled `call __fentry__` (objtool may leave it at build time). */
export const NOP5: readonly number[] = [0x0f, 0x1f, 0x44, 0x00, 0x00];

/**
 * Where a function's ftrace site sits, from the function's start: its first
 * byte (`-mfentry`), or right behind the `endbr64` an IBT kernel puts first.
 * The kernel's ftrace_location() maps a function's start to that site.
 */
export function ftraceSiteOffset(code: Uint8Array, fnStart: number): number {
  return ENDBR64.every((b, i) => code[fnStart + i] === b) ? ENDBR64.length : 0;
}
