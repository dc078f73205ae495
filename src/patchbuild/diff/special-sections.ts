// SPDX-License-Identifier: GPL-2.0-only
/**
 * Special sections: tables the kernel walks at boot or module load, whose
 * entries point into functions. One row per section, with the kernel feature
 * it serves. Entry sizes come from the kernel's own BTF (`struct`), or are a
 * plain pointer/offset whose width the row states (`width`).
 *
 * `compare`: whether an entry can change while the function's code does not
 * (WARN_ON → WARN_ON_ONCE changes only the flags of its __bug_table entry),
 * so entries must be compared to decide whether a function changed.
 * `derived`: entries generated from the code itself (objtool, gcc), which
 * change exactly when the code does.
 */

export interface SpecialSection {
  name: string;
  /** A struct in the kernel's BTF whose size is the entry size... */
  struct?: string;
  /** ...or a fixed width for tables of plain offsets/pointers. */
  width?: number;
  /** A second table whose entries pair one to one with this one's (ORC: ip table → unwind data). */
  pairedWith?: { name: string; struct: string };
  compare: boolean;
  /** false: the kernel never reads this table on x86; a livepatch goes without it. */
  carry?: boolean;
  feature: string;
}

export const SPECIAL_SECTIONS: readonly SpecialSection[] = [
  { name: '__bug_table', struct: 'bug_entry', compare: true, feature: 'BUG()/WARN(): file, line and flags of each trap (lib/bug.c)' },
  { name: '__jump_table', struct: 'jump_entry', compare: true, feature: 'static keys / jump labels: code, target and key of each branch' },
  { name: '.altinstructions', struct: 'alt_instr', compare: true, feature: 'alternatives: CPU-feature dependent instruction replacements' },
  { name: '__ex_table', struct: 'exception_table_entry', compare: true, feature: 'exception fixups of user-memory accesses (uaccess)' },
  { name: '.static_call_sites', struct: 'static_call_site', compare: true, feature: 'static calls: call sites rewritten when the target changes' },
  { name: '.parainstructions', struct: 'paravirt_patch_site', compare: true, feature: 'paravirt patch sites' },
  { name: '.retpoline_sites', width: 4, compare: false, feature: 'retpoline call sites (objtool), patched by alternatives at boot' },
  { name: '.return_sites', width: 4, compare: false, feature: 'return thunk sites (objtool), patched at boot' },
  { name: '.call_sites', width: 4, compare: false, feature: 'call depth tracking sites (objtool)' },
  { name: '.ibt_endbr_seal', width: 4, compare: false, feature: 'IBT endbr sealing (objtool)' },
  { name: '__mcount_loc', width: 8, compare: false, feature: 'ftrace call sites (gcc -mrecord-mcount)' },
  { name: '.orc_unwind_ip', width: 4, pairedWith: { name: '.orc_unwind', struct: 'orc_entry' }, compare: false, feature: 'ORC unwinder tables (objtool)' },
  { name: '.smp_locks', width: 4, compare: false, feature: 'lock prefixes patched away on UP' },
  // 6.12 (gcc -fpatchable-function-entry=16,16 for CONFIG_CALL_PADDING): a pointer per function to the padding before
  // it. Only architectures whose ftrace uses it as FTRACE_CALLSITE_SECTION read it; x86 reads __mcount_loc. Never
  // carried: gcc-12 links one such section to several functions (SHF_LINK_ORDER to the first, often .init.text), so a
  // cut-down copy could only point at code the livepatch does not have.
  { name: '__patchable_function_entries', width: 8, compare: false, carry: false, feature: 'the padding before each function (CONFIG_CALL_PADDING): where call depth tracking and FineIBT write' },
];

/**
 * x86 runtime constants (6.10+, arch/x86/include/asm/runtime-const.h): vmlinux code loads a boot-time value as an
 * immediate (`movabs $0x0123456789abcdef` or `shrl $12`) that runtime_const_init() writes over once, at boot, for
 * vmlinux only; one section per constant lists the sites. Module code reads the variable instead, so a function
 * carried into a livepatch must too (runtime-const.ts), or it keeps the placeholder.
 */
export const RUNTIME_CONST_SECTIONS: readonly { match: RegExp; kind: 'ptr' | 'shift'; feature: string }[] = [
  { match: /^runtime_ptr_(\w+)$/, kind: 'ptr', feature: 'runtime constant pointers (USER_PTR_MAX for access_ok, dentry_hashtable), written at boot' },
  { match: /^runtime_shift_(\w+)$/, kind: 'shift', feature: 'runtime constant shifts (d_hash_shift), written at boot' },
];

/** Sections whose contents a livepatch cannot change, and why. */
export const UNSUPPORTED_SECTIONS: readonly { match: RegExp; feature: string; instead: string }[] = [
  { match: /^(___)?ksymtab/, feature: 'exported symbols (EXPORT_SYMBOL)', instead: 'a livepatch cannot add or change exports; call the symbol from the patched code instead' },
  { match: /^\.export_symbol$/, feature: 'exported symbols (EXPORT_SYMBOL, 6.12: read by modpost)', instead: 'a livepatch cannot add or change exports; call the symbol from the patched code instead' },
  { match: /^__tracepoints/, feature: 'tracepoint definitions', instead: 'keep tracepoints as they are' },
  { match: /^_ftrace_events|^_ftrace_eval_map/, feature: 'trace events', instead: 'keep trace events as they are' },
  { match: /^\.data\.\.ro_after_init/, feature: 'data made read-only after boot', instead: 'set it from a pre-patch callback is impossible too: leave it, or add new data' },
  { match: /^\.init\.|^\.exit\./, feature: 'boot-time (__init) or unload-time (__exit) code and data', instead: 'init code ran at boot and is gone; apply the fix through a callback or change its callers' },
  { match: /^\.initcall|^\.con_initcall|^__param|^\.modinfo$/, feature: 'initcalls, module parameters and modinfo', instead: 'these run or are read at boot/load only' },
];

export function specialSection(name: string): SpecialSection | undefined {
  return SPECIAL_SECTIONS.find((s) => s.name === name);
}
