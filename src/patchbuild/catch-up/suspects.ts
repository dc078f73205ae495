// SPDX-License-Identifier: GPL-2.0-only
/**
 * Which carried fixes a failed proof points at. The kernel names the code a
 * `WARNING`, `BUG` or oops was raised in as `function+0xOFF/0xSIZE [module]`;
 * code in the livepatch module is a function some included fix carries, so
 * the fix can be named and left out with `--exclude`.
 */
import type { FixReport } from './judge.js';

export interface Suspect {
  readonly fix: string;
  readonly title: string;
  /** Its carried functions the kernel log names. */
  readonly functions: readonly string[];
  /** The first log line naming each of them. */
  readonly lines: readonly string[];
}

export function suspectFixes(fixes: readonly FixReport[], moduleName: string, logLines: readonly string[]): Suspect[] {
  const named = new Map<string, string>(); // function → first line naming it in the livepatch module
  const site = /([A-Za-z_][\w.]*)\+0x[0-9a-f]+\/0x[0-9a-f]+ \[([\w-]+)\]/g;
  for (const line of logLines) {
    for (const m of line.matchAll(site)) if (m[2] === moduleName && !named.has(m[1]!)) named.set(m[1]!, line.trim());
  }
  const out: Suspect[] = [];
  for (const f of fixes) {
    if (f.verdict !== 'included') continue;
    const fns = [...new Set(f.functions.map((x) => x.name).filter((n) => named.has(n)))];
    if (fns.length) out.push({ fix: f.id, title: f.title ?? f.label, functions: fns, lines: fns.map((n) => named.get(n)!) });
  }
  return out;
}
