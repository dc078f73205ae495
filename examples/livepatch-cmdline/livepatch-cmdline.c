// SPDX-License-Identifier: GPL-2.0-only
/*
 * Example livepatch, written by hand: replaces cmdline_proc_show() of
 * fs/proc/cmdline.c so /proc/cmdline shows that the kernel is live patched.
 */
#include <linux/kernel.h>
#include <linux/livepatch.h>
#include <linux/module.h>
#include <linux/seq_file.h>

static int example_cmdline_show(struct seq_file *m, void *v)
{
	seq_puts(m, "this kernel was live patched by suture\n");
	return 0;
}

static struct klp_func example_funcs[] = {
	{ .old_name = "cmdline_proc_show", .new_func = example_cmdline_show },
	{}
};

static struct klp_object example_objs[] = {
	{ .funcs = example_funcs },	/* .name NULL: vmlinux */
	{}
};

static struct klp_patch example_patch = {
	.mod = THIS_MODULE,
	.objs = example_objs,
};

static int __init example_init(void)
{
	return klp_enable_patch(&example_patch);
}

static void __exit example_exit(void)
{
}

module_init(example_init);
module_exit(example_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("example: /proc/cmdline says the kernel is live patched");
MODULE_INFO(livepatch, "Y");
