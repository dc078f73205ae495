// SPDX-License-Identifier: GPL-2.0-only
/**
 * The host side of livepatching, split like the kernel's kernel/livepatch/:
 *
 * - sysfs.ts       the only file-system access to /sys/kernel/livepatch and /proc/<pid>/task/<tid>/*
 * - kernel-log.ts  /dev/kmsg: the kernel's refusal reasons and transition times
 * - loader.ts      insmod / rmmod
 * - patch-file.ts  a .ko before loading: modinfo, klp_patch/objects/funcs, replace flag
 * - validate.ts    every check made before the kernel is touched
 * - transition.ts  the transition state machine and the watch loop
 * - blockers.ts    pending tasks and the patched functions on their stacks
 * - core.ts        load, disable, unload, replace, force
 * - records.ts     suture's own records on the host (installed patches, boot marks, per-boot load records, the lock); not the kernel's klp_state
 * - boot.ts        install, uninstall, boot with the crash-loop guard
 * - status.ts      list, status, info
 * - effective-version.ts  the kernel version the enabled patches make it
 *
 * It never imports the build pipeline (src/patchbuild/): a production host has no compiler.
 *
 * @example
 * const host = realHost();
 * const r = await loadPatch(host, 'fix.ko', { timeoutMs: 60_000, revertOnTimeout: true });
 * if (r.outcome !== 'complete') console.error(r.transition.blockers);
 */
export * from './blockers.js';
export * from './boot.js';
export * from './core.js';
export * from './effective-version.js';
export * from './kernel-log.js';
export * from './loader.js';
export * from './patch-file.js';
export * from './records.js';
export * from './status.js';
export * from './sysfs.js';
export * from './transition.js';
export * from './validate.js';
