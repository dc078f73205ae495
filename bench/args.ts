// SPDX-License-Identifier: GPL-2.0-only
/** What the benchmarks share besides medians: their options (node:util parseArgs) and the object files they read. */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

/** A positive integer option, or the default; a clear error for anything else. */
export function positiveInt(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`--${name} must be a positive integer (got ${value})`);
  return n;
}

/** The fuzz benches' options: --cases N, --seed S, --dir DIR (repeatable), and any more integer options they name. */
export function fuzzArgs(argv: string[], defaults: { cases: number; more?: Record<string, number> }): { cases: number; seed: number; dirs: string[]; more: Record<string, number> } {
  const extra = Object.fromEntries(Object.keys(defaults.more ?? {}).map((k) => [k, { type: 'string' as const }]));
  const { values } = parseArgs({ args: argv, options: { cases: { type: 'string' }, seed: { type: 'string' }, dir: { type: 'string', multiple: true }, ...extra } });
  const v = values as Record<string, string | string[] | undefined>;
  const seed = v.seed === undefined ? Date.now() % 1_000_000 : Number(v.seed);
  if (!Number.isInteger(seed)) throw new Error(`--seed must be an integer (got ${String(v.seed)})`);
  const more = Object.fromEntries(Object.entries(defaults.more ?? {}).map(([k, d]) => [k, positiveInt(k, v[k] as string | undefined, d)]));
  return { cases: positiveInt('cases', v.cases as string | undefined, defaults.cases), seed, dirs: (v.dir as string[] | undefined) ?? [], more };
}

/** Every file under dir (recursively, sorted) whose name ends with one of the suffixes. */
export function filesUnder(dir: string, suffixes: readonly string[]): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d).sort()) {
      const p = join(d, e);
      if (statSync(p).isDirectory()) walk(p);
      else if (suffixes.some((s) => p.endsWith(s))) out.push(p);
    }
  };
  walk(dir);
  return out;
}
