// SPDX-License-Identifier: GPL-2.0-only
/** Kernel .config files: parse values, read the compiler the kernel was built with. */

export type KconfigValue = string | boolean;

/** Parse a .config: `CONFIG_X=y` → true, `# CONFIG_X is not set` → false, strings unquoted. */
export function parseKconfig(text: string): Map<string, KconfigValue> {
  const out = new Map<string, KconfigValue>();
  for (const line of text.split('\n')) {
    const unset = /^# (CONFIG_\w+) is not set$/.exec(line);
    if (unset) {
      out.set(unset[1]!, false);
      continue;
    }
    const m = /^(CONFIG_\w+)=(.*)$/.exec(line);
    if (!m) continue;
    const raw = m[2]!;
    if (raw === 'y' || raw === 'm') out.set(m[1]!, raw === 'y' ? true : 'm');
    else if (raw.startsWith('"')) out.set(m[1]!, raw.slice(1, -1).replace(/\\(.)/g, '$1'));
    else out.set(m[1]!, raw);
  }
  return out;
}

/** `CONFIG_CC_VERSION_TEXT`, e.g. `gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0`. */
export function compilerText(config: Map<string, KconfigValue>): string | undefined {
  const v = config.get('CONFIG_CC_VERSION_TEXT');
  return typeof v === 'string' ? v : undefined;
}

/** The compiler command the kernel was built with: the first word of its version text (`gcc-12`). */
export function compilerCommand(ccVersionText: string): string {
  return ccVersionText.split(/\s+/)[0]!;
}

/**
 * The Debian package that brings a compiler command: `gcc-12` for bookworm's
 * kernels, `gcc-14` for `x86_64-linux-gnu-gcc-14` (trixie's kernels name the
 * triplet-prefixed binary, which gcc-14 pulls in).
 */
export function compilerPackage(command: string): string {
  return command.replace(/^x86_64-linux-gnu-/, '');
}
