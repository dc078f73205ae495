// SPDX-License-Identifier: GPL-2.0-only
/** Reading the guest kernel's console: crashes, warnings and livepatch lines. */

export type CrashKind = 'panic' | 'oops' | 'bug' | 'general-protection';

export interface ConsoleCrash {
  kind: CrashKind;
  /** The console line that shows it. */
  line: string;
}

/** Each rule: the kind of crash and the console text the kernel prints for it. */
const CRASH_RULES: { kind: CrashKind; re: RegExp }[] = [
  // "Oops: 0002 [#1] PREEMPT SMP NOPTI" (arch/x86/kernel/dumpstack.c __die_header)
  { kind: 'oops', re: /\bOops: [0-9a-f]{4}\b/ },
  // "BUG: kernel NULL pointer dereference, address: 0000000000000000", "BUG: unable to handle page fault"
  { kind: 'bug', re: /\bBUG: (?!scheduling while atomic)/ },
  // "general protection fault, probably for non-canonical address ..."
  { kind: 'general-protection', re: /\bgeneral protection fault\b/ },
  // "Kernel panic - not syncing: ..." (kernel/panic.c)
  { kind: 'panic', re: /Kernel panic - not syncing/ },
];

/** The first crash the console shows, if any. */
export function findCrash(lines: readonly string[]): ConsoleCrash | undefined {
  for (const line of lines) {
    for (const r of CRASH_RULES) if (r.re.test(line)) return { kind: r.kind, line: stripTimestamp(line) };
  }
  return undefined;
}

/** `[   12.345678] text` → `text` */
export function stripTimestamp(line: string): string {
  return line.replace(/^\[\s*\d+\.\d+\]\s?/, '');
}

/** Seconds since boot printed in a dmesg line, if it has a timestamp. */
export function timestampOf(line: string): number | undefined {
  const m = /^\[\s*(\d+\.\d+)\]/.exec(line);
  return m ? Number(m[1]) : undefined;
}

/** Lines of dmesg that the livepatch core printed (or that name a klp module). */
export function livepatchLines(dmesg: readonly string[]): string[] {
  return dmesg.filter((l) => /\blivepatch\b|\bklp\b|TAINT_LIVEPATCH/.test(l));
}

/**
 * The kernel's own transition time for a patch: from "'<p>': starting patching
 * transition" to "'<p>': patching complete" (kernel/livepatch/transition.c).
 */
export function kernelTransitionMs(dmesg: readonly string[], patch: string): number | undefined {
  let start: number | undefined;
  for (const l of dmesg) {
    if (l.includes(`'${patch}': starting patching transition`)) start = timestampOf(l);
    else if (l.includes(`'${patch}': patching complete`) && start !== undefined) {
      const end = timestampOf(l);
      if (end !== undefined) return Math.round((end - start) * 1e6) / 1e3;
    }
  }
  return undefined;
}
