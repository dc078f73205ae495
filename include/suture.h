/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * suture.h: what a livepatch written as plain kernel C tells suture.
 *
 * `suture build --source fix.c` puts this header on the include path. In
 * fix.c, write the new functions, declare the kernel symbols they use with
 * `extern` (exported or not, in vmlinux or in a module), and add one line
 * per function the patch replaces:
 *
 *   SUTURE_REPLACE(cmdline_proc_show, my_cmdline_proc_show);
 *   SUTURE_REPLACE_MODULE(binfmt_misc, bm_status_read, my_bm_status_read);
 *
 * When a name has several copies in the kernel (a `static` function or
 * variable defined in more than one file) and suture cannot tell from the
 * fix's other symbols which one is meant, name the copy:
 *
 *   SUTURE_SYMPOS(vmlinux, m_show, 1);          the 1st copy in kallsyms order
 *   SUTURE_SYMBOL_NEAR(vmlinux, m_show, modules_open);
 *                                               the copy in modules_open's file
 *
 * Each line expands to a record in a `.discard.suture` section, which suture
 * reads from the compiled object and the module linker drops. suture
 * generates the klp_patch/klp_object/klp_func structures, module_init and
 * MODULE_LICENSE itself: fix.c must not define them.
 */
#ifndef _SUTURE_H
#define _SUTURE_H

#include <linux/compiler.h>

#define __SUTURE_RECORD(text)                                                  \
	static const char __UNIQUE_ID(__suture_record)[] __used               \
		__section(".discard.suture") __aligned(1) = "suture " text

/* Replace function `old_name` of vmlinux by `new_function` (defined above this line). */
#define SUTURE_REPLACE(old_name, new_function)                                 \
	__SUTURE_RECORD("replace vmlinux " #old_name " " #new_function);     \
	static void *const __UNIQUE_ID(__suture_new) __used                     \
		__section(".discard.suture.new") = (void *)&(new_function)

/* Replace function `old_name` of loadable module `module` by `new_function`. */
#define SUTURE_REPLACE_MODULE(module, old_name, new_function)                  \
	__SUTURE_RECORD("replace " #module " " #old_name " " #new_function); \
	static void *const __UNIQUE_ID(__suture_new) __used                     \
		__section(".discard.suture.new") = (void *)&(new_function)

/* `name` in `object` (vmlinux or a module) is its copy number `pos` (1-based, kallsyms order; 0: unique). */
#define SUTURE_SYMPOS(object, name, pos)                                       \
	__SUTURE_RECORD("sympos " #object " " #name " " #pos)

/* `name` in `object` is the copy defined in the same source file as `neighbour`. */
#define SUTURE_SYMBOL_NEAR(object, name, neighbour)                            \
	__SUTURE_RECORD("near " #object " " #name " " #neighbour)

/*
 * Callbacks of the kernel's klp_object (Documentation/livepatch/callbacks.rst),
 * for `object` (vmlinux or a module name). The function takes the kernel's
 * struct klp_object *; a pre-patch callback returns 0, or an error that
 * refuses the patch (the livepatch's load fails) or, for a module loaded
 * after the patch, that module's load. The post-unpatch callback runs only
 * when the pre-patch callback succeeded.
 *
 *   static int my_pre(struct klp_object *obj) { ... return 0; }
 *   SUTURE_PRE_PATCH_CALLBACK(vmlinux, my_pre);
 *
 * In a patch (`suture build fix.patch`), `object` must be the object of the
 * file the line is in. One callback of each kind per object.
 */
struct klp_object;

#define __SUTURE_CALLBACK(kind, ret, object, fn)                               \
	__SUTURE_RECORD("callback " #kind " " #object " " #fn);              \
	static ret (*const __UNIQUE_ID(__suture_##kind))(struct klp_object *) \
		__used __section(".discard.suture.callback." #kind) = (fn)

#define SUTURE_PRE_PATCH_CALLBACK(object, fn)    __SUTURE_CALLBACK(pre_patch, int, object, fn)
#define SUTURE_POST_PATCH_CALLBACK(object, fn)   __SUTURE_CALLBACK(post_patch, void, object, fn)
#define SUTURE_PRE_UNPATCH_CALLBACK(object, fn)  __SUTURE_CALLBACK(pre_unpatch, void, object, fn)
#define SUTURE_POST_UNPATCH_CALLBACK(object, fn) __SUTURE_CALLBACK(post_unpatch, void, object, fn)

#endif /* _SUTURE_H */
