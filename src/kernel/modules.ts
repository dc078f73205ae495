// SPDX-License-Identifier: GPL-2.0-only
/** The target kernel's own modules, from the unpacked image package: names, files, dependencies. */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SutureError } from '../util/errors.js';

/** Kernel module names treat '-' and '_' alike (kernel/params.c parameqn). */
export function moduleName(fileOrName: string): string {
  const base = fileOrName.split('/').pop()!;
  return base.replace(/\.ko(\.xz|\.zst|\.gz)?$/, '').replace(/-/g, '_');
}

export interface ModuleIndex {
  /** name → path relative to the modules dir */
  files: Map<string, string>;
  /** name → names it depends on */
  deps: Map<string, string[]>;
  builtin: Set<string>;
  /** name → what modprobe loads before it (`softdep X pre: ...` of modules.softdep): module names or aliases */
  softPre: Map<string, string[]>;
  /** alias → module names (modules.alias; only plain names, not device patterns) */
  aliases: Map<string, string[]>;
}

/** Read modules.dep and modules.builtin of a lib/modules/<release> directory. */
export function readModuleIndex(modulesDir: string): ModuleIndex {
  const depFile = join(modulesDir, 'modules.dep');
  if (!existsSync(depFile)) {
    throw new SutureError('not-found', `${depFile} is missing`, { hint: 'fetch the kernel again (depmod runs when it is unpacked)' });
  }
  const files = new Map<string, string>();
  const deps = new Map<string, string[]>();
  for (const line of readFileSync(depFile, 'utf8').split('\n')) {
    const m = /^([^:]+):\s*(.*)$/.exec(line);
    if (!m) continue;
    const name = moduleName(m[1]!);
    files.set(name, m[1]!);
    deps.set(name, m[2]!.split(/\s+/).filter(Boolean).map(moduleName));
  }
  const builtinFile = join(modulesDir, 'modules.builtin');
  const builtin = new Set(
    existsSync(builtinFile) ? readFileSync(builtinFile, 'utf8').split('\n').filter(Boolean).map(moduleName) : [],
  );
  const softPre = new Map<string, string[]>();
  const softFile = join(modulesDir, 'modules.softdep');
  if (existsSync(softFile)) {
    for (const line of readFileSync(softFile, 'utf8').split('\n')) {
      const m = /^softdep\s+(\S+)\s+(.*)$/.exec(line);
      const pre = m ? /(?:^|\s)pre:\s*(.*?)(?:\s+post:.*)?$/.exec(m[2]!) : null;
      if (m && pre) softPre.set(moduleName(m[1]!), [...(softPre.get(moduleName(m[1]!)) ?? []), ...pre[1]!.split(/\s+/).filter(Boolean)]);
    }
  }
  const aliases = new Map<string, string[]>();
  const aliasFile = join(modulesDir, 'modules.alias');
  if (existsSync(aliasFile)) {
    for (const line of readFileSync(aliasFile, 'utf8').split('\n')) {
      const m = /^alias\s+([\w.-]+)\s+(\S+)$/.exec(line);
      if (m) aliases.set(m[1]!, [...(aliases.get(m[1]!) ?? []), moduleName(m[2]!)]);
    }
  }
  return { files, deps, builtin, softPre, aliases };
}

/**
 * The module a soft dependency names, as modprobe would find it: a module of
 * that name, or one its alias names. Of several implementations the generic
 * one is taken (crc32c_generic before crc32c_intel): it loads on any CPU,
 * the guest's emulated one included. Undefined when it is built in or unknown.
 */
function softTarget(index: ModuleIndex, dep: string): string | undefined {
  const name = moduleName(dep);
  if (index.builtin.has(name)) return undefined;
  if (index.files.has(name)) return name;
  const mods = (index.aliases.get(dep) ?? []).filter((m) => index.files.has(m) || index.builtin.has(m));
  if (mods.some((m) => index.builtin.has(m))) return undefined;
  return mods.find((m) => m.endsWith('_generic')) ?? mods.sort()[0];
}

export interface ModuleLoad {
  name: string;
  path: string;
}

/**
 * The modules to insmod, in order, for the names asked for: each one's
 * soft (`pre:`) and hard dependencies first, every module once. Built-in names are skipped (reported
 * in `builtin`).
 */
export function resolveModules(index: ModuleIndex, modulesDir: string, names: readonly string[]): { loads: ModuleLoad[]; builtin: string[] } {
  const order: string[] = [];
  const seen = new Set<string>();
  const builtin: string[] = [];
  const visit = (name: string, chain: string[]) => {
    if (seen.has(name)) return;
    if (chain.includes(name)) throw new SutureError('invalid-input', `module dependency cycle: ${[...chain, name].join(' → ')}`);
    // What modprobe loads first: soft dependencies (libcrc32c's init fails without a crc32c module), then hard ones.
    for (const s of index.softPre.get(name) ?? []) {
      const t = softTarget(index, s);
      if (t && !chain.includes(t)) visit(t, [...chain, name]);
    }
    for (const d of index.deps.get(name) ?? []) visit(d, [...chain, name]);
    seen.add(name);
    order.push(name);
  };
  for (const raw of names) {
    const name = moduleName(raw);
    if (index.builtin.has(name)) {
      builtin.push(name);
      continue;
    }
    if (!index.files.has(name)) {
      const close = [...index.files.keys()]
        .map((n) => ({ n, d: n.includes(name) || name.includes(n) ? 0 : editDistance(n, name) }))
        .filter((x) => x.d <= 2)
        .sort((a, b) => a.d - b.d || a.n.localeCompare(b.n))
        .slice(0, 8)
        .map((x) => x.n);
      throw new SutureError('not-found', `the kernel has no module named ${raw}`, {
        hint: close.length ? `did you mean: ${close.join(', ')}` : `list them with: ls ${modulesDir}/kernel`,
      });
    }
    visit(name, []);
  }
  return { loads: order.map((n) => ({ name: n, path: join(modulesDir, index.files.get(n)!) })), builtin };
}

/** Levenshtein distance, for "did you mean" suggestions. */
export function editDistance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0]!;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = prev[j]!;
      prev[j] = Math.min(prev[j]! + 1, prev[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = up;
    }
  }
  return prev[b.length]!;
}
