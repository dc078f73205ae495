/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * kpatch-syscall.h: KPATCH_SYSCALL_DEFINE0..6 for patches written for
 * kpatch-build, as suture implements them (x86_64). Written for suture from
 * kpatch's documented behaviour (doc/patch-author-guide.md, "System calls");
 * not kpatch's code.
 *
 * The kernel's SYSCALL_DEFINEn puts a syscall's body in `__do_sys<name>`,
 * declared `inline`, which the kernel makes `notrace`: it has no ftrace call
 * and cannot be patched by itself. Replace SYSCALL_DEFINEn by
 * KPATCH_SYSCALL_DEFINEn in the patch and the body becomes a new, ordinary
 * (traceable, never inlined) function, `__kpatch_do_sys<name>`, called from
 * the same entry points (`__x64_sys<name>`, `__ia32_sys<name>`), which are
 * what the patch replaces. The syscall's tracing metadata is emitted exactly
 * as SYSCALL_DEFINEn emits it, so it compares equal to the running kernel's.
 */
#ifndef _SUTURE_KPATCH_SYSCALL_H
#define _SUTURE_KPATCH_SYSCALL_H

#include <linux/syscalls.h>

#ifndef CONFIG_X86_64
#error "kpatch-syscall.h: suture implements KPATCH_SYSCALL_DEFINE* for x86_64 only"
#endif

#define __KPATCH_SYSCALL_DEFINEx(x, name, ...)                                 \
	static long __se_sys##name(__MAP(x, __SC_LONG, __VA_ARGS__));          \
	static noinline long __kpatch_do_sys##name(__MAP(x, __SC_DECL, __VA_ARGS__)); \
	__X64_SYS_STUBx(x, name, __VA_ARGS__)                                  \
	__IA32_SYS_STUBx(x, name, __VA_ARGS__)                                 \
	static long __se_sys##name(__MAP(x, __SC_LONG, __VA_ARGS__))           \
	{                                                                      \
		long ret = __kpatch_do_sys##name(__MAP(x, __SC_CAST, __VA_ARGS__)); \
		__MAP(x, __SC_TEST, __VA_ARGS__);                              \
		__PROTECT(x, ret, __MAP(x, __SC_ARGS, __VA_ARGS__));           \
		return ret;                                                    \
	}                                                                      \
	static noinline long __kpatch_do_sys##name(__MAP(x, __SC_DECL, __VA_ARGS__))

#define KPATCH_SYSCALL_DEFINE1(name, ...) SYSCALL_METADATA(_##name, 1, __VA_ARGS__) __KPATCH_SYSCALL_DEFINEx(1, _##name, __VA_ARGS__)
#define KPATCH_SYSCALL_DEFINE2(name, ...) SYSCALL_METADATA(_##name, 2, __VA_ARGS__) __KPATCH_SYSCALL_DEFINEx(2, _##name, __VA_ARGS__)
#define KPATCH_SYSCALL_DEFINE3(name, ...) SYSCALL_METADATA(_##name, 3, __VA_ARGS__) __KPATCH_SYSCALL_DEFINEx(3, _##name, __VA_ARGS__)
#define KPATCH_SYSCALL_DEFINE4(name, ...) SYSCALL_METADATA(_##name, 4, __VA_ARGS__) __KPATCH_SYSCALL_DEFINEx(4, _##name, __VA_ARGS__)
#define KPATCH_SYSCALL_DEFINE5(name, ...) SYSCALL_METADATA(_##name, 5, __VA_ARGS__) __KPATCH_SYSCALL_DEFINEx(5, _##name, __VA_ARGS__)
#define KPATCH_SYSCALL_DEFINE6(name, ...) SYSCALL_METADATA(_##name, 6, __VA_ARGS__) __KPATCH_SYSCALL_DEFINEx(6, _##name, __VA_ARGS__)

/* No arguments: the kernel's own SYSCALL_DEFINE0 has no inline body to lift out. */
#define KPATCH_SYSCALL_DEFINE0(name) SYSCALL_DEFINE0(name)

#endif /* _SUTURE_KPATCH_SYSCALL_H */
