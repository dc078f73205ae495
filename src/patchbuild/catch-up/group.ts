// SPDX-License-Identifier: GPL-2.0-only
/**
 * Fixes from a tree's changes, never half of one. Files are joined when
 *
 *   - a changed header reaches a changed .c file (the unit and the headers
 *     that reach it belong together), unless the header reaches so many
 *     units that it is judged alone (a fix through it would be refused for
 *     its reach anyway, and joining would swallow the whole update);
 *   - one file's change names what another file's change brings or takes
 *     away: a function, macro or export defined in added (or removed) lines
 *     of one and used in added (or removed) lines of the other (a new helper
 *     and its callers);
 *   - they are files no build compiles (documentation, tools, another
 *     architecture), which are grouped by directory.
 *
 * Each fix says on which basis it was formed. Pure: file patches and two
 * look-ups (who includes a header; a file's old text) in, fixes out.
 */
import type { FilePatch } from '../patch/parse.js';

export interface FormedFix {
  /** F001, F002, ... in path order of their first file. */
  readonly id: string;
  readonly files: readonly FilePatch[];
  /** Why these files are one fix, one line per join (or why a file stands alone). */
  readonly basis: readonly string[];
}

export interface GroupContext {
  /** The .c files including a header, directly or not; `every` when kbuild's forced includes reach it. */
  includers(header: string): { units: readonly string[]; every: boolean };
  /** A header past this many including .c files is judged alone. */
  readonly wideHeader: number;
}

/** Where a path goes when no build compiles it: its group key, or undefined when it is part of the build. */
export function outsideBuild(path: string): string | undefined {
  const arch = /^arch\/([^/]+)\//.exec(path);
  if (arch && arch[1] !== 'x86') return `arch/${arch[1]}`;
  const top = /^(Documentation|tools|samples|LICENSES|usr\/include|scripts\/(?:package|dtc|coccinelle|kconfig))\b/.exec(path);
  if (top) return path.split('/').slice(0, 2).join('/');
  if (!path.includes('/')) return /^(Makefile|Kbuild|Kconfig)$/.test(path) ? undefined : '(top-level files)';
  return undefined;
}

class UnionFind {
  private readonly parent: number[];
  constructor(n: number) {
    this.parent = Array.from({ length: n }, (_, i) => i);
  }
  find(i: number): number {
    while (this.parent[i] !== i) i = this.parent[i] = this.parent[this.parent[i]!]!;
    return i;
  }
  union(a: number, b: number): boolean {
    const [x, y] = [this.find(a), this.find(b)];
    if (x === y) return false;
    this.parent[Math.max(x, y)] = Math.min(x, y);
    return true;
  }
}

const KEYWORDS = new Set(['static', 'inline', 'const', 'void', 'struct', 'union', 'enum', 'unsigned', 'signed', 'extern', 'return', 'sizeof', 'while', 'switch', 'case', 'break', 'goto', 'else', 'true', 'false', 'NULL', 'bool', 'long', 'short', 'char', 'int', 'typeof', 'defined', 'include']);

/** Names a file's lines of one sign define: functions at column 0, macros, exports, prototypes in headers. */
export function definedNames(lines: readonly string[]): Set<string> {
  const out = new Set<string>();
  for (const l of lines) {
    const d = /^#\s*define\s+([A-Za-z_]\w*)/.exec(l);
    if (d) out.add(d[1]!);
    const e = /^EXPORT_SYMBOL(?:_GPL|_NS|_NS_GPL)?\(\s*([A-Za-z_]\w*)/.exec(l);
    if (e) out.add(e[1]!);
    // A definition or prototype starting at column 0: `type name(` (the name is the last identifier before the parenthesis).
    const f = /^(?!\s)(?!#)(?:[A-Za-z_][\w\s*]*?[\s*])([A-Za-z_]\w*)\s*\(/.exec(l);
    // An all-capitals name there is a macro being invoked (static DEFINE_MUTEX(x)), not defined.
    if (f && !KEYWORDS.has(f[1]!) && !/^[A-Z0-9_]+$/.test(f[1]!) && !/^(if|for|while|switch|return)\b/.test(l)) out.add(f[1]!);
  }
  return out;
}

function identifiers(lines: readonly string[]): Set<string> {
  const out = new Set<string>();
  for (const l of lines) for (const m of l.matchAll(/[A-Za-z_]\w{3,}/g)) if (!KEYWORDS.has(m[0])) out.add(m[0]);
  return out;
}

function signed(f: FilePatch, sign: '+' | '-'): string[] {
  return f.hunks.flatMap((h) => h.lines.filter((l) => l[0] === sign).map((l) => l.slice(1)));
}

/**
 * Group files into fixes. `oldText` gives a file's text before the change
 * (a name "brought" by a file must be new to it, not merely re-indented).
 */
export function groupFixes(files: readonly FilePatch[], ctx: GroupContext, oldText: (path: string) => string | undefined): FormedFix[] {
  const n = files.length;
  const uf = new UnionFind(n);
  const basis: string[][] = files.map(() => []);
  const joinWhy = (a: number, b: number, why: string) => {
    if (uf.union(a, b)) basis[a]!.push(why);
  };
  const byPath = new Map(files.map((f, i) => [f.path, i]));

  // Files outside the build: by directory.
  const outside = files.map((f) => outsideBuild(f.path));
  const firstOutside = new Map<string, number>();
  outside.forEach((key, i) => {
    if (key === undefined) return;
    const first = firstOutside.get(key);
    if (first === undefined) {
      firstOutside.set(key, i);
      basis[i]!.push(`${key}: files no build of this kernel compiles, grouped by directory`);
    } else uf.union(first, i);
  });

  // Headers with the changed .c files they reach.
  files.forEach((f, i) => {
    if (f.kind !== 'header' || outside[i] !== undefined) return;
    const inc = ctx.includers(f.path);
    if (inc.every || inc.units.length > ctx.wideHeader) {
      basis[i]!.push(`${f.path} is included by ${inc.every ? 'every unit (kbuild forces it in)' : `${inc.units.length} source files`}: judged alone, not joined with the .c files it reaches`);
      return;
    }
    const reached = inc.units.filter((u) => byPath.has(u));
    for (const u of reached) joinWhy(i, byPath.get(u)!, `${f.path} reaches ${u}`);
  });

  // Names one change brings (or takes away) and another uses.
  const brings = files.map((f, i) => {
    if (outside[i] !== undefined) return { added: new Set<string>(), removed: new Set<string>() };
    const old = oldText(f.path) ?? '';
    const added = [...definedNames(signed(f, '+'))].filter((x) => !new RegExp(`\\b${x}\\b`).test(old));
    const plusIds = identifiers(signed(f, '+'));
    const removed = [...definedNames(signed(f, '-'))].filter((x) => !plusIds.has(x));
    return { added: new Set(added), removed: new Set(removed) };
  });
  const uses = files.map((f, i) => (outside[i] !== undefined ? { plus: new Set<string>(), minus: new Set<string>() } : { plus: identifiers(signed(f, '+')), minus: identifiers(signed(f, '-')) }));
  const providers = new Map<string, number[]>();
  brings.forEach((b, i) => {
    for (const x of b.added) providers.set(`+${x}`, [...(providers.get(`+${x}`) ?? []), i]);
    for (const x of b.removed) providers.set(`-${x}`, [...(providers.get(`-${x}`) ?? []), i]);
  });
  uses.forEach((u, j) => {
    for (const [sign, ids] of [['+', u.plus], ['-', u.minus]] as const) {
      for (const x of ids) {
        // A name brought by two files is two unrelated statics, not one helper.
        const by = providers.get(`${sign}${x}`) ?? [];
        if (by.length !== 1) continue;
        for (const i of by) {
          if (i === j) continue;
          joinWhy(i, j, sign === '+' ? `${files[j]!.path} uses ${x}, which ${files[i]!.path} brings` : `${files[j]!.path} stops using ${x}, which ${files[i]!.path} takes away`);
        }
      }
    }
  });

  const groups = new Map<number, number[]>();
  for (let i = 0; i < n; i++) {
    const r = uf.find(i);
    groups.set(r, [...(groups.get(r) ?? []), i]);
  }
  return [...groups.values()]
    .sort((a, b) => a[0]! - b[0]!)
    .map((idx, k) => {
      const why = idx.flatMap((i) => basis[i]!);
      if (idx.length === 1 && !why.length) why.push(`${files[idx[0]!]!.path} alone: no other change reaches it or names what it changes`);
      return { id: `F${String(k + 1).padStart(3, '0')}`, files: idx.map((i) => files[i]!), basis: why };
    });
}
