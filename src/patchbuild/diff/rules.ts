// SPDX-License-Identifier: GPL-2.0-only
/**
 * The rules of the diff engine, one named predicate each, with the kernel
 * case that motivates it.
 */
import { ftraceSiteOffset } from '../../elf/mod.js';
import { DataSection, SHF_WRITE, STB_LOCAL, STT_NOTYPE, STT_SECTION, type ElfSymbol, type Section } from '../../elf/mod.js';
import type { IndexedSymbol } from './object-index.js';
import type { Refusal } from './diff.js';
import type { Relocation } from '../../elf/mod.js';

/**
 * Statics the compiler makes for a macro's own bookkeeping. They are never
 * correlated with the original: the patched function gets fresh ones.
 * Example: WARN_ON_ONCE() keeps `__already_done.N` in .data.once; lockdep's
 * `__key.N`; printk_ratelimited()'s `_rs.N`; `__func__.N` for __func__;
 * switch lookup tables `CSWTCH.N`.
 */
export function isSpecialStatic(name: string): boolean {
  return /^(__key|__warned|__already_done|__func__|__FUNCTION__|_rs|CSWTCH|__print_once|__once|descriptor|__UNIQUE_ID_[\w]*|_entry|_entry_ptr|__tpstrtab_\w+|__bpf_trace_tp_map_\w+)(\.\d+)*$/.test(name);
}

/**
 * Sections that do not matter for the diff. `.discard.*` never reaches the
 * image (objtool annotations, `__addressable`); debug info and `.comment`
 * change with every line move.
 */
export function isIgnoredSection(sec: Section): boolean {
  return /^\.(discard|debug_|comment|note\.GNU-stack|llvm_addrsig|BTF)/.test(sec.name) || /^\.rela?\.(discard|debug_)/.test(sec.name);
}

/**
 * A function whose first instruction is the ftrace call, `call __fentry__`
 * (x86-64 -mfentry: relocation at offset 1; behind `endbr64` in IBT kernels,
 * offset 5). Only those can be redirected by livepatch. Not so: everything
 * the kernel declares `inline` (it is `notrace`), noinstr entry code, and
 * whole directories built without CC_FLAGS_FTRACE (lib/ drops it in its
 * Makefile).
 */
export function hasFentry(sec: Section, relocs: readonly Relocation[], fnOffset: number): boolean {
  const site = fnOffset + (sec instanceof DataSection ? ftraceSiteOffset(sec.data, fnOffset) : 0);
  return relocs.some((r) => Number(r.offset) === site + 1 && r.symbol?.name === '__fentry__');
}

/**
 * Pieces gcc splits out of a function keep its name with a suffix:
 * `foo.cold` (in .text.unlikely), `foo.part.0`. A change in a piece that has
 * no ftrace call of its own means its parent must be patched.
 */
export function parentOfPiece(name: string): string | undefined {
  const m = /^(.+?)\.(cold|part\.\d+)(\.\d+)?$/.exec(name);
  return m ? m[1] : undefined;
}

/** Code that runs only at boot or unload: `.init.text` (`__init`), `.exit.text` (`__exit`). */
export function isInitOrExit(sec: Section): boolean {
  return /^\.(init|exit)\./.test(sec.name);
}

/**
 * Data a livepatch can carry as a new copy: read-only data (a const table, a
 * string). Every function reading it must then be patched to use the copy.
 * Writable data cannot be replaced in place: the running kernel's copy holds
 * state (a changed `static int limit = 10;` initialiser would never reach it).
 */
export function isReadOnly(sym: IndexedSymbol): boolean {
  return (sym.section.flags & SHF_WRITE) === 0n;
}

/**
 * A relocation target that stands for "this section, at this offset" rather
 * than for a function or object: a section symbol, or a local label gcc
 * emitted as a symbol (`.LC2`, a string of a WARN() in inline assembly).
 */
export function isAnonymousTarget(s: ElfSymbol): boolean {
  return s.type === STT_SECTION || (s.type === STT_NOTYPE && s.bind === STB_LOCAL && typeof s.section !== 'number');
}


/**
 * Jump labels and static calls of a module patch whose key (or static call
 * key) the module owns, or another module does. The livepatch's
 * `__jump_table` / `.static_call_sites` are set up when the livepatch
 * itself loads (jump_label_add_module), but a key in a module is reached
 * only through a klp relocation, written when that module loads, possibly
 * much later: the kernel would read an entry whose key is not there yet.
 * Keys of vmlinux are fine (their klp relocations are written before the
 * livepatch's jump table is read). Rule 'module-static-key'.
 */
export function moduleKeyRefusal(section: string, key: string, owner: string, unit: string, usedBy: string): Refusal {
  const call = section.includes('static_call');
  const tracepoint = /^__tracepoint_/.test(key) || /^__SCK__tp_func_/.test(key);
  return {
    rule: 'module-static-key',
    file: unit,
    symbol: usedBy,
    reason: `${usedBy} has a ${call ? 'static call' : 'jump label'} on ${key}, which module ${owner} owns: the livepatch's ${section} is set up when the livepatch loads, before livepatch can resolve a key of ${owner}`,
    instead: tracepoint
      ? `the jump label belongs to a tracepoint of ${owner}: call the tracepoint from a function the patch does not change, or drop it from the changed function`
      : call
        ? `call through the key's current target instead: KPATCH_STATIC_CALL(name) (kpatch-macros.h), or static_call_query(name)(...)`
        : `test the key with static_key_enabled(&${key}) (a plain load) instead of static_branch_likely/unlikely()`,
  };
}
