// SPDX-License-Identifier: GPL-2.0-only
/**
 * The rules of the diff engine, one named predicate each, with the kernel
 * case that motivates it; and every refusal a user can see, one named
 * constructor each (its identity a RuleId, its example in the comment).
 */
import { ftraceSiteOffset } from '../../elf/mod.js';
import { DataSection, SHF_WRITE, STB_LOCAL, STT_NOTYPE, STT_SECTION, type ElfSymbol, type Section } from '../../elf/mod.js';
import type { IndexedSymbol, ObjectIndex } from './object-index.js';
import type { Relocation } from '../../elf/mod.js';
import { SutureError } from '../../util/errors.js';

/** Every refusal of the diff engine, by name (the `rule:` line of a refusal, and docs/patch-author-guide.md). */
export type RuleId =
  | 'changed-init-or-exit'
  | 'data-size-changed'
  | 'changed-data'
  | 'unsupported-section'
  | 'notrace-without-callers'
  | 'changed-struct-layout'
  | 'module-static-key'
  | 'unnamed-data-reference'
  | 'kthread-main-loop'
  | 'assembly-file'
  | 'build-file'
  | 'file-created-deleted-renamed';

/** A change a livepatch cannot carry: where, why, and what to write instead. */
export interface Refusal {
  readonly rule: RuleId;
  /** The translation unit. */
  readonly file: string;
  /** The function, data, section or type refused. */
  readonly symbol: string;
  readonly reason: string;
  readonly instead: string;
}

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

/** hasFentry for a function of an indexed object: whether ftrace can redirect it. */
export function traceable(idx: ObjectIndex, fn: IndexedSymbol): boolean {
  return hasFentry(fn.section, idx.relocationsOf(fn.section), fn.offset);
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

/** Code or data used only at boot or unload: `.init.text` (`__init`), `.exit.text` (`__exit`), `.init.data`. */
export function isInitOrExit(sec: Section | string): boolean {
  return /^\.(init|exit)\./.test(typeof sec === 'string' ? sec : sec.name);
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

/**
 * A changed `__init`/`__exit` function (6.1: a fix in an initcall such as
 * proc_cmdline_init). Init code ran at boot and its memory is freed; exit
 * code runs only at unload. Rule 'changed-init-or-exit'.
 */
export function changedInitOrExit(unit: string, name: string, section: string): Refusal {
  return {
    rule: 'changed-init-or-exit',
    file: unit,
    symbol: name,
    reason: `${name} is ${section.startsWith('.init') ? '__init' : '__exit'} code (${section}) and it changed`,
    instead: 'init code ran at boot and is gone: fix the state it set up from a pre-patch callback, or patch the code that uses it',
  };
}

/**
 * A changed function that is a kernel thread's main function (the unit hands
 * it to kthread_create_on_node() or kthread_create_on_cpu(); kthread_run()
 * expands to those). The thread sleeps inside it and never returns from it:
 * livepatch's consistency model moves a task to the new code only when no
 * replaced function is on its stack, so the transition waits for that
 * thread forever (found on pktgen_thread_worker: the kpktgend threads
 * started after the patch ran the new loop, and the patch could not be
 * disabled). Rule 'kthread-main-loop'.
 */
export function kthreadMainLoop(unit: string, name: string, starter: string, creator: string): Refusal {
  return {
    rule: 'kthread-main-loop',
    file: unit,
    symbol: name,
    reason: `${name} is the main function of a kernel thread (${starter} starts it with ${creator}): a thread that sleeps in it never returns from it, so the livepatch transition can never move that thread to the new code, nor back`,
    instead: `change the functions ${name} calls (each is replaced at its next call), not the thread's loop itself`,
  };
}

/**
 * Existing data whose size changed: its type changed (a new field in a static
 * struct). The running kernel's copy keeps the old size. Rule 'data-size-changed'.
 */
export function dataSizeChanged(unit: string, name: string, before: number, after: number): Refusal {
  return {
    rule: 'data-size-changed',
    file: unit,
    symbol: name,
    reason: `the size of ${name} changed (${before} → ${after} bytes): its type or layout changed`,
    instead: 'a livepatch cannot change the layout of existing data; keep the struct as it is and put new fields in a shadow variable (klp_shadow_get_or_alloc)',
  };
}

/**
 * Writable data whose initial value changed (`static int limit = 10;` → 20):
 * the running kernel's copy already holds state, a new initialiser never
 * reaches it. Rule 'changed-data'.
 */
export function changedData(unit: string, name: string, section: string): Refusal {
  return {
    rule: 'changed-data',
    file: unit,
    symbol: name,
    reason: `the initial value of ${name} changed (${section}), but the running kernel's copy already holds state`,
    instead: 'set the new value from a post-patch callback (klp_callbacks), or keep new state in a shadow variable',
  };
}

/**
 * A section the kernel reads only at boot or load changed (an EXPORT_SYMBOL
 * added, a tracepoint defined, a module parameter): the table in
 * special-sections.ts says which feature and what to do. Rule 'unsupported-section'.
 */
export function unsupportedSection(unit: string, section: string, why: { feature: string; instead: string }): Refusal {
  return { rule: 'unsupported-section', file: unit, symbol: section, reason: `section ${section} changed: ${why.feature}`, instead: why.instead };
}

/**
 * A changed function ftrace cannot redirect (notrace, or built without
 * ftrace like lib/) that nothing in its unit calls: no caller to patch in its
 * place. Rule 'notrace-without-callers'.
 */
export function notraceWithoutCallers(unit: string, name: string): Refusal {
  return {
    rule: 'notrace-without-callers',
    file: unit,
    symbol: name,
    reason: `${name} changed, has no ftrace call site (notrace or built without ftrace), and nothing in ${unit} calls it`,
    instead: 'change a traceable function that calls it, or move the fix out of notrace/noinstr code',
  };
}

/**
 * A struct whose layout changed (a field added to struct seq_file): every
 * object of it in the running kernel has the old layout, and code of the
 * patch would read past it. Rule 'changed-struct-layout'.
 */
export function changedStructLayout(unit: string, type: string, before: string, after: string): Refusal {
  return {
    rule: 'changed-struct-layout',
    file: unit,
    symbol: type,
    reason: `the layout of ${type} changed (${before} → ${after}, or its members moved): the running kernel's data has the old layout`,
    instead: 'keep the struct as it is; put new fields in a shadow variable (klp_shadow_get_or_alloc) keyed by the object',
  };
}

/**
 * Files a livepatch cannot be built from, refused before anything is compiled
 * (units.ts): assembly (arch/x86/entry/entry_64.S has no ftrace call sites to
 * redirect), build files (a Makefile, Kconfig or linker script changes how the
 * kernel is built), and files the patch creates (a .c file), deletes or renames
 * (the build itself changes). Rules 'assembly-file', 'build-file',
 * 'file-created-deleted-renamed'.
 */
export function unbuildableFile(path: string, why: 'asm' | 'build' | 'created-deleted-renamed'): Refusal {
  if (why === 'asm') {
    return { rule: 'assembly-file', file: path, symbol: path, reason: 'assembly has no ftrace call sites to redirect', instead: 'change the C code that calls it instead' };
  }
  if (why === 'build') {
    return { rule: 'build-file', file: path, symbol: path, reason: 'a change to Makefiles, Kconfig or linker scripts changes how the kernel is built, not code a livepatch can replace', instead: 'drop it from the patch' };
  }
  return { rule: 'file-created-deleted-renamed', file: path, symbol: path, reason: 'files created, deleted or renamed change the build itself', instead: 'move the code into an existing file' };
}

/** Refusals as a user reads them: one per change, with its rule and what to do instead. */
export function formatRefusals(refusals: readonly Refusal[]): string {
  return refusals.map((r) => `${r.file === r.symbol ? r.file : `${r.file}: ${r.symbol}`}: ${r.reason}\n    rule: ${r.rule}\n    instead: ${r.instead}`).join('\n');
}


/** Stop the build on any refusal: all of them listed, each with its rule (nothing happens when there is none). */
export function refuse(refusals: readonly Refusal[], hint: string): void {
  if (!refusals.length) return;
  throw new SutureError('unsupported-change', `the patch makes ${refusals.length === 1 ? 'a change' : `${refusals.length} changes`} a livepatch cannot carry`, {
    details: formatRefusals(refusals),
    hint,
  });
}
