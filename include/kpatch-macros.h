/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * kpatch-macros.h: kpatch's patch-author macros, for patches written for
 * kpatch-build, as suture implements them. Written for suture from kpatch's
 * documented behaviour (its doc/patch-author-guide.md); not kpatch's code.
 *
 * A patch includes it from a kernel source file (`#include "kpatch-macros.h"`);
 * suture puts it on the include path of the patched build only. Each macro
 * leaves a record in a `.discard.suture.*` section of the compiled object:
 * suture reads the records from the patched object, and the records never
 * reach the module (the linker drops .discard sections).
 *
 *   KPATCH_PRE_PATCH_CALLBACK(fn)    int fn(patch_object *obj): before the object is
 *                                    patched; non-zero refuses the patch (or, for a module
 *                                    loaded later, that module's load)
 *   KPATCH_POST_PATCH_CALLBACK(fn)   void fn(patch_object *obj): after it is patched
 *   KPATCH_PRE_UNPATCH_CALLBACK(fn)  void fn(patch_object *obj): before it is unpatched
 *   KPATCH_POST_UNPATCH_CALLBACK(fn) void fn(patch_object *obj): after it is unpatched
 *                                    (runs only when the pre-patch callback succeeded)
 *
 * The callbacks belong to the object (vmlinux or the module) of the source
 * file they are written in: suture sets them on that klp_object.
 *
 *   KPATCH_IGNORE_FUNCTION(fn)       leave fn out of the patch even if its code changed
 *   KPATCH_IGNORE_SECTION("name")    leave changes to section `name` out
 *   KPATCH_FORCE_UNSAFE(fn)          accepted and reported: it only ever meant something to
 *                                    kpatch's old core module; the kernel's livepatch has no
 *                                    per-function force, so fn follows the consistency model
 *   KPATCH_PRINTK(fmt, ...)          printk, behind a condition that keeps gcc from moving
 *                                    the surrounding code into .text.unlikely (printk is cold)
 *   KPATCH_STATIC_CALL(name)         a plain indirect call through the static call's key
 *                                    (for static calls whose key lives in a module)
 */
#ifndef _SUTURE_KPATCH_MACROS_H
#define _SUTURE_KPATCH_MACROS_H

#include <linux/compiler.h>
#include <linux/jiffies.h>
#include <linux/livepatch.h>
#include <linux/printk.h>

/* kpatch's name for the kernel's struct klp_object. */
typedef struct klp_object patch_object;

#define __SUTURE_KPATCH_CALLBACK(kind, ret, fn)                                \
	static ret (*const __UNIQUE_ID(__suture_##kind))(patch_object *) __used \
		__section(".discard.suture.callback." #kind) = (fn)

#define KPATCH_PRE_PATCH_CALLBACK(fn)    __SUTURE_KPATCH_CALLBACK(pre_patch, int, fn)
#define KPATCH_POST_PATCH_CALLBACK(fn)   __SUTURE_KPATCH_CALLBACK(post_patch, void, fn)
#define KPATCH_PRE_UNPATCH_CALLBACK(fn)  __SUTURE_KPATCH_CALLBACK(pre_unpatch, void, fn)
#define KPATCH_POST_UNPATCH_CALLBACK(fn) __SUTURE_KPATCH_CALLBACK(post_unpatch, void, fn)

#define __SUTURE_KPATCH_RECORD(text)                                           \
	static const char __UNIQUE_ID(__suture_kpatch)[] __used                \
		__section(".discard.suture.kpatch") __aligned(1) = text

/* The function must exist (the pointer checks it); the record names it. */
#define KPATCH_IGNORE_FUNCTION(fn)                                             \
	static void *const __UNIQUE_ID(__suture_ignored) __used                 \
		__section(".discard.suture.kpatch.ref") = (void *)&(fn);        \
	__SUTURE_KPATCH_RECORD("ignore-function " #fn)

#define KPATCH_IGNORE_SECTION(name) __SUTURE_KPATCH_RECORD("ignore-section " name)

#define KPATCH_FORCE_UNSAFE(fn)                                                \
	static void *const __UNIQUE_ID(__suture_forced) __used                  \
		__section(".discard.suture.kpatch.ref") = (void *)&(fn);        \
	__SUTURE_KPATCH_RECORD("force-unsafe " #fn)

#define KPATCH_PRINTK(fmt, ...)                                                \
	do {                                                                   \
		if (READ_ONCE(jiffies))                                        \
			printk(fmt, ##__VA_ARGS__);                            \
	} while (0)

#ifdef CONFIG_HAVE_STATIC_CALL
#include <linux/static_call.h>
#define KPATCH_STATIC_CALL(name)                                               \
	((typeof(STATIC_CALL_TRAMP(name)) *)READ_ONCE(STATIC_CALL_KEY(name).func))
#endif

#endif /* _SUTURE_KPATCH_MACROS_H */
