// SPDX-License-Identifier: GPL-2.0-only
/**
 * Which translation units a changed header reaches: the kernel tree's
 * `#include` graph, followed backwards from the header to every `.c` file
 * that includes it directly or through other headers.
 *
 * The graph is read from the source text, not from a build (the prepared tree
 * has no dependency files), so it over-approximates: an include inside an
 * `#ifdef` the configuration leaves out still counts. That costs compile time,
 * never a missed unit: a unit the header does not really reach compiles to the
 * same object and drops out of the diff. Include paths follow kbuild's for
 * x86_64 (LINUXINCLUDE), plus the including file's own directory for quoted
 * names, and kconfig.h / compiler_types.h / compiler-version.h, which kbuild
 * puts in front of every unit with `-include`.
 *
 * Built once per workspace (a grep over the tree, ~3 s) and kept as JSON.
 */
import { existsSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import { SutureError, fsError } from '../util/errors.js';
import { run, runChecked } from '../util/exec.js';

export interface IncludeDirective {
  name: string;
  quoted: boolean;
}

/** Angle-bracket search path of an x86_64 kernel unit, in kbuild's order (Makefile: LINUXINCLUDE). */
export const X86_INCLUDE_DIRS = [
  'arch/x86/include',
  'arch/x86/include/generated',
  'include',
  'arch/x86/include/uapi',
  'arch/x86/include/generated/uapi',
  'include/uapi',
  'include/generated/uapi',
] as const;

/** Headers every unit includes through kbuild's `-include` flags. */
export const FORCED_INCLUDES = ['include/linux/compiler-version.h', 'include/linux/kconfig.h', 'include/linux/compiler_types.h'] as const;

/** Top-level directories that hold no kernel units for x86_64 (host tools, docs, other architectures). */
export function skippedDir(path: string): boolean {
  return /^(tools|Documentation|scripts|usr|debian)(\/|$)/.test(path) || (/^arch\//.test(path) && !/^arch\/x86(\/|$)/.test(path) && path !== 'arch');
}

const INCLUDE_RE = /^\s*#\s*include\s*([<"])([^>"]+)[>"]/;

/** One `#include` line, or undefined (computed includes like `#include MACRO` are not followed). */
export function parseIncludeLine(line: string): IncludeDirective | undefined {
  const m = INCLUDE_RE.exec(line);
  if (!m) return undefined;
  return { name: m[2]!.trim(), quoted: m[1] === '"' };
}

export interface IncludeGraph {
  version: 1;
  /** Every .c and .h file seen, relative to the tree. */
  files: string[];
  /** For each file (by index), the files it includes (by index). */
  includes: number[][];
}

/**
 * Resolve one include of `from` against the set of files in the tree: quoted
 * names first relative to the including file, then the search path; a quoted
 * name found nowhere (a directory's Makefile may add `-I` paths of its own)
 * falls back to files of that name in the including file's subsystem.
 */
export function resolveInclude(from: string, inc: IncludeDirective, has: (p: string) => boolean, byBase: ReadonlyMap<string, string[]>): string[] {
  if (inc.quoted) {
    const rel = posix.normalize(posix.join(posix.dirname(from), inc.name));
    if (!rel.startsWith('../') && has(rel)) return [rel];
  }
  for (const d of X86_INCLUDE_DIRS) {
    const p = posix.normalize(posix.join(d, inc.name));
    if (has(p)) return [p];
  }
  if (!inc.quoted) return [];
  // Makefile -I paths: the same name somewhere under the including file's top two directories.
  const scope = from.split('/').slice(0, 2).join('/') + '/';
  return (byBase.get(posix.basename(inc.name)) ?? []).filter((p) => p.startsWith(scope) && p.endsWith(`/${inc.name.replace(/^(\.\.\/)+/, '')}`));
}

/** The graph from `grep -o` output lines (`path:#include <x.h>`); pure. */
export function graphFromGrep(lines: Iterable<string>, allFiles: readonly string[]): IncludeGraph {
  const files = [...new Set(allFiles)].sort();
  const index = new Map(files.map((f, i) => [f, i]));
  const byBase = new Map<string, string[]>();
  for (const f of files) {
    const b = posix.basename(f);
    const l = byBase.get(b);
    if (l) l.push(f);
    else byBase.set(b, [f]);
  }
  const has = (p: string) => index.has(p);
  const includes: Set<number>[] = files.map(() => new Set<number>());
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const from = line.slice(0, colon).replace(/^\.\//, '');
    const i = index.get(from);
    const inc = parseIncludeLine(line.slice(colon + 1));
    if (i === undefined || !inc) continue;
    for (const to of resolveInclude(from, inc, has, byBase)) includes[i]!.add(index.get(to)!);
  }
  return { version: 1, files, includes: includes.map((s) => [...s].sort((a, b) => a - b)) };
}

export interface Includers {
  /** .c files with an `#include` of the header itself. */
  direct: string[];
  /** .c files that reach it directly or through other headers. */
  all: string[];
  /** The header is one of kbuild's forced includes, or reached from one: every unit includes it. */
  everyUnit: boolean;
}

const reversed = new WeakMap<IncludeGraph, { index: Map<string, number>; rev: number[][] }>();

/** The graph's file index and who includes each file, made once per graph (catch-up asks for hundreds of headers). */
function reverseOf(g: IncludeGraph): { index: Map<string, number>; rev: number[][] } {
  let r = reversed.get(g);
  if (!r) {
    const rev: number[][] = g.files.map(() => []);
    g.includes.forEach((tos, from) => {
      for (const to of tos) rev[to]!.push(from);
    });
    reversed.set(g, (r = { index: new Map(g.files.map((f, i) => [f, i])), rev }));
  }
  return r;
}

/** The .c files that include `header` directly or transitively. */
export function includersOf(g: IncludeGraph, header: string): Includers {
  const { index, rev } = reverseOf(g);
  const target = index.get(header);
  if (target === undefined) return { direct: [], all: [], everyUnit: false };
  const seen = new Set<number>([target]);
  const queue = [target];
  while (queue.length) {
    const n = queue.pop()!;
    for (const from of rev[n]!) {
      if (!seen.has(from)) {
        seen.add(from);
        queue.push(from);
      }
    }
  }
  const everyUnit = FORCED_INCLUDES.some((f) => {
    const i = index.get(f);
    return i !== undefined && seen.has(i);
  });
  const cFiles = (ids: Iterable<number>) => [...ids].map((i) => g.files[i]!).filter((f) => f.endsWith('.c')).sort();
  const all = everyUnit ? g.files.filter((f) => f.endsWith('.c')) : cFiles(seen);
  return { direct: cFiles(rev[target]!), all, everyUnit };
}

const readGraphs = new Map<string, { mtime: number; graph: IncludeGraph }>();

/** Read the tree's include graph from `cacheFile`, or build it with grep and keep it there. */
export async function treeIncludeGraph(tree: string, cacheFile: string): Promise<IncludeGraph> {
  if (existsSync(cacheFile)) {
    // Read once per process while the file stays the same: catch-up asks for it once per changed file, and each
    // read is a 3 MB parse and, in includersOf, a new reverse index.
    const mtime = statSync(cacheFile).mtimeMs;
    const kept = readGraphs.get(cacheFile);
    if (kept && kept.mtime === mtime) return kept.graph;
    try {
      const g = JSON.parse(readFileSync(cacheFile, 'utf8')) as IncludeGraph;
      if (g.version === 1 && Array.isArray(g.files) && Array.isArray(g.includes) && g.files.length === g.includes.length) {
        readGraphs.set(cacheFile, { mtime, graph: g });
        return g;
      }
    } catch {
      // rebuilt below
    }
  }
  const top = (await runChecked(['find', '.', '-mindepth', '1', '-maxdepth', '1', '-type', 'd'], { cwd: tree, kind: 'environment', what: 'listing the source tree' })).stdout
    .split('\n')
    .map((p) => p.replace(/^\.\//, ''))
    .filter((p) => p && !p.includes('/') && !skippedDir(p));
  const dirs = [...top.filter((d) => d !== 'arch'), 'arch/x86'].filter((d) => existsSync(join(tree, d)));
  const listed = await runChecked(['find', ...dirs, '-type', 'f', '(', '-name', '*.c', '-o', '-name', '*.h', ')'], {
    cwd: tree,
    maxCapture: 64 << 20,
    kind: 'environment',
    what: 'listing the source files',
  });
  const grep = await run(['grep', '-rEo', '--include=*.c', '--include=*.h', '^\\s*#\\s*include\\s*[<"][^>"]+[>"]', ...dirs], { cwd: tree, maxCapture: 256 << 20 });
  if (grep.code !== 0 && grep.code !== 1) {
    throw new SutureError('environment', `grep over the #include lines of ${tree} failed (exit ${grep.code})`, { details: grep.stderr.trim().split('\n').slice(-5).join('\n') });
  }
  const g = graphFromGrep(grep.stdout.split('\n'), listed.stdout.split('\n').filter(Boolean));
  try {
    writeFileSync(`${cacheFile}.tmp`, JSON.stringify(g));
    renameSync(`${cacheFile}.tmp`, cacheFile);
  } catch (e) {
    throw fsError(e, 'writing the include graph', cacheFile);
  }
  return g;
}
