// SPDX-License-Identifier: GPL-2.0-only
/**
 * The generated klp structures with callbacks and relocation clearing,
 * compiled with gcc against a stand-in of the few kernel declarations they
 * use (the real thing is compiled by kbuild and proven in the guest by
 * corpus 24, 25 and 28); nm and the compiler are the oracle.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { klpModuleSource } from '../../src/patchbuild/generate.js';

const spec = {
  name: 'lp_test',
  prelude: '',
  declareNewFunctions: true,
  objects: [
    { object: 'vmlinux', funcs: [{ oldName: 'cmdline_proc_show', newFunction: 'new_cmdline', sympos: 0 }], callbacks: { pre_patch: 'cb_pre', post_unpatch: 'cb_post_unpatch' }, clearRelocations: true },
    { object: 'nfsd', funcs: [{ oldName: 'e_show', newFunction: 'new_e_show', sympos: 0 }], callbacks: { pre_patch: 'nfsd_pre' }, clearRelocations: true },
    { object: 'binfmt_misc', funcs: [], callbacks: { post_patch: 'bm_post' } },
  ],
};

describe('generated klp structures', () => {
  const src = klpModuleSource(spec);

  it('sets each object\'s callbacks, wrapping those that must also clear a module\'s relocations', () => {
    expect(src).toContain('{ .name = NULL, .funcs = __suture_funcs_0, .callbacks = { .pre_patch = __suture_pre_patch_0, .post_unpatch = __suture_post_unpatch_0 } },');
    expect(src).toContain('{ .name = "nfsd", .funcs = __suture_funcs_1, .callbacks = { .pre_patch = __suture_pre_patch_1, .post_unpatch = __suture_post_unpatch_1 } },');
    expect(src).toContain('{ .name = "binfmt_misc", .funcs = __suture_funcs_2, .callbacks = { .post_patch = __suture_post_patch_2 } },');
    // vmlinux's relocations are written once, when the livepatch loads: nothing to clear.
    const vm = src.slice(src.indexOf('static void __suture_post_unpatch_0'), src.indexOf('/* vmlinux */'));
    expect(vm).not.toContain('__suture_clear_relocations');
    // nfsd: cleared after a refused pre-patch and after every unpatch.
    const pre = src.slice(src.indexOf('static int __suture_pre_patch_1'), src.indexOf('static void __suture_post_unpatch_1'));
    expect(pre).toMatch(/int ret = nfsd_pre\(obj\);\s+if \(ret\)\s+__suture_clear_relocations\(obj\);/);
    expect(src.slice(src.indexOf('static void __suture_post_unpatch_1'))).toMatch(/^[^}]*__suture_clear_relocations\(obj\);/);
  });

  it('compiles, with the callbacks\' types checked against struct klp_object', () => {
    const d = mkdtempSync(join(tmpdir(), 'suture-gen-'));
    // The kernel declarations the generated code uses, as 6.1 spells them (include/linux/livepatch.h, module.h, elf.h).
    const stub = [
      '#define NULL ((void *)0)', '#define __init', '#define __exit', '#define THIS_MODULE (&__this_module)', '#define MODULE_NAME_LEN 56',
      '#define module_init(f) int init_module(void) { return f(); }', '#define module_exit(f) void cleanup_module(void) { f(); }',
      '#define MODULE_LICENSE(x)', '#define MODULE_INFO(a, b)', '#define MODULE_DESCRIPTION(x)',
      'typedef unsigned long long u64; typedef unsigned long size_t;',
      'typedef struct { unsigned int sh_name, sh_type; u64 sh_flags, sh_addr, sh_offset, sh_size; unsigned int sh_link, sh_info; u64 sh_addralign, sh_entsize; } Elf64_Shdr;',
      'typedef struct { u64 r_offset, r_info; long long r_addend; } Elf64_Rela;',
      'typedef struct { unsigned char e_ident[16]; unsigned short e_type, e_machine; unsigned int e_version; u64 e_entry, e_phoff, e_shoff; unsigned int e_flags; unsigned short e_ehsize, e_phentsize, e_phnum, e_shentsize, e_shnum, e_shstrndx; } Elf64_Ehdr;',
      '#define ELF64_R_TYPE(i) ((i) & 0xffffffff)', '#define SHF_RELA_LIVEPATCH 0x00100000',
      '#define R_X86_64_64 1', '#define R_X86_64_PC32 2', '#define R_X86_64_32 10', '#define R_X86_64_32S 11', '#define R_X86_64_PC64 24', '#define R_X86_64_PLT32 4',
      'struct klp_modinfo { Elf64_Ehdr hdr; Elf64_Shdr *sechdrs; char *secstrings; unsigned int symndx; };',
      'struct module { struct klp_modinfo *klp_info; }; extern struct module __this_module;',
      'struct mutex { int x; }; extern struct mutex text_mutex; void mutex_lock(struct mutex *); void mutex_unlock(struct mutex *);',
      'void *text_poke(void *addr, const void *opcode, size_t len); void text_poke_sync(void);',
      'int snprintf(char *, size_t, const char *, ...); int strncmp(const char *, const char *, size_t);',
      'struct klp_func { const char *old_name; void *new_func; unsigned long old_sympos; };',
      'struct klp_object; struct klp_callbacks { int (*pre_patch)(struct klp_object *); void (*post_patch)(struct klp_object *); void (*pre_unpatch)(struct klp_object *); void (*post_unpatch)(struct klp_object *); int post_unpatch_enabled; };',
      'struct klp_object { const char *name; struct klp_func *funcs; struct klp_callbacks callbacks; };',
      'struct klp_patch { struct module *mod; struct klp_object *objs; int replace; }; int klp_enable_patch(struct klp_patch *);',
    ].join('\n');
    for (const h of ['linux/kernel.h', 'linux/livepatch.h', 'linux/module.h', 'linux/elf.h', 'linux/memory.h', 'linux/string.h', 'asm/text-patching.h']) {
      execFileSync('mkdir', ['-p', join(d, 'inc', h, '..')]);
      writeFileSync(join(d, 'inc', h), h === 'linux/kernel.h' ? `#pragma once\n${stub}\n` : '#pragma once\n#include <linux/kernel.h>\n');
    }
    writeFileSync(join(d, 'klp.c'), src);
    execFileSync('gcc', ['-c', '-O2', '-Wall', '-Werror', '-Wno-unused-function', `-I${join(d, 'inc')}`, '-o', join(d, 'klp.o'), join(d, 'klp.c')]);
    const nm = execFileSync('nm', [join(d, 'klp.o')], { encoding: 'utf8' });
    for (const s of ['cb_pre', 'cb_post_unpatch', 'nfsd_pre', 'bm_post', 'text_poke', 'text_mutex']) expect(nm).toMatch(new RegExp(`U ${s}$`, 'm'));
    expect(nm).toMatch(/t __suture_clear_relocations$/m);
  });

  it('refuses an object with neither functions nor callbacks', () => {
    expect(() => klpModuleSource({ ...spec, objects: [{ object: 'vmlinux', funcs: [] }] })).toThrow(/needs a function or a callback/);
  });

  it('imports the symbol namespaces of the exports the carried code calls (modpost refuses the module otherwise)', () => {
    const ns = klpModuleSource({ ...spec, importNamespaces: ['EFIVAR', 'FIRMWARE_LOADER_PRIVATE'] });
    expect(ns).toContain('MODULE_IMPORT_NS(EFIVAR);\nMODULE_IMPORT_NS(FIRMWARE_LOADER_PRIVATE);');
    expect(src).not.toContain('MODULE_IMPORT_NS');
    expect(() => klpModuleSource({ ...spec, importNamespaces: ['A B'] })).toThrow(/not a C identifier/);
  });
});
