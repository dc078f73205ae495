// SPDX-License-Identifier: GPL-2.0-only
/**
 * The position a livepatch module gives the kernel for a klp symbol (the
 * `,<sympos>` of `.klp.sym.<object>.<name>,<sympos>`).
 *
 * The livepatch core finds a klp symbol by walking kallsyms with a callback
 * (klp_find_object_symbol): all of vmlinux's for a vmlinux name (about
 * 150,000 entries on Debian's 6.1, each decompressed), and for a module's
 * name the symbols of every loaded module (6.1's
 * module_kallsyms_on_each_symbol takes no module name), newest first. It
 * does so for every klp relocation, not once per symbol (klp_resolve_symbols).
 * Position 0 ("unique") makes each walk go to the end to prove the name
 * unique; position 1 stops it at the name. suture resolved the name against
 * this exact kernel and found one copy (for a module, one while it loads and
 * once its init has run, or the name is refused: kernel/symbols/resolve.ts),
 * and the module names the build it was made for (`suture load` refuses
 * another), so position 1 is the same symbol. Measured on the whole
 * 6.1.0-53 → 56 catch-up's patch under QEMU's TCG (1,551 vmlinux and 7,717
 * module klp relocations): its insmod took 45 s with position 0 and 22–26 s
 * with 1; the 501 patched modules loaded after it 91 s and 46 s.
 *
 * A replaced function (klp_func.old_sympos) is walked for once, and named
 * 1 only where the kernel's atomic replace takes 0 and 1 alike
 * (kernel/livepatch-source.ts): a replacing patch finds the functions of the
 * one it replaces by name and position (klp_find_func), and a kernel before
 * that change would see another function, so a cumulative patch could not
 * replace one built with 0 (an older suture's, kpatch's).
 */
export function kernelSympos(sympos: number): number {
  return sympos === 0 ? 1 : sympos;
}
