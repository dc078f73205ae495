// SPDX-License-Identifier: GPL-2.0-only
/**
 * `suture build --source fix.c`: a livepatch from plain kernel C.
 *
 *  1. read fix.c's SUTURE_* lines; check names against the kernel's limits;
 *     resolve each replaced function and check that ftrace can patch it
 *     (refusals here happen before anything is compiled);
 *  2. compile fix.c alone, with kbuild's flags for this kernel, to learn what
 *     it really refers to (after the preprocessor, inlining and dead-code
 *     removal) and to read its SUTURE_* records;
 *  3. resolve every symbol it refers to (exported by vmlinux, or a klp
 *     symbol of vmlinux or of a target module, with its sympos); refusals
 *     here happen before the module is generated or linked;
 *  4. generate the klp structures beside a copy of fix.c in a build
 *     directory under $SUTURE_HOME/builds (never in the author's directory)
 *     and build the module with kbuild (KBUILD_MODPOST_WARN=1: modpost
 *     accepts the names vmlinux does not export);
 *  5. turn every reference vmlinux does not export into a klp relocation
 *     (patchbuild/klp) and write the module.
 */
import { timedSteps } from './steps.js';
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DataSection, ElfObject, SHF_ALLOC, SHN_UNDEF, STT_FUNC, STT_SECTION, RelocationSection, parseModinfo } from '../elf/mod.js';
import { toolchainFor } from '../kernel/kbuild.js';
import {
  checkPatchable,
  workspaceSymbolSources,
  resolveSymbol as resolveKernelSymbol,
  SymbolResolutionError,
  type Candidate,
  type ResolveRequest,
  type ResolvedSymbol,
  type SymbolHint,
  type SymbolSources,
} from '../kernel/symbols/mod.js';
import type { KernelMetadata } from '../kernel/workspace.js';
import { SutureError, fsError, isSutureError } from '../util/errors.js';
import type { Reporter } from '../util/progress.js';
import { checkDirectives, directiveKey, parseRecords, scanDirectives, type Directive } from './directives.js';
import { checkModuleName, kbuildFile, klpModuleSource, type KlpObjectSpec } from './generate.js';
import type { KlpConversion } from './klp/mod.js';
import { GENERATED_REFERENCES, defaultModuleName, freshBuildDir, linkLivepatch, symbolDispositions } from './link.js';

export interface SourceBuildOptions {
  readonly meta: KernelMetadata;
  readonly home: string;
  /** The author's fix.c. */
  readonly source: string;
  /** Module name (default: livepatch_<stem of fix.c>, or the -o file's name). */
  readonly name?: string | undefined;
  /** Where to write the .ko (default: ./<name>.ko). */
  readonly output?: string | undefined;
  /** klp_patch.replace (atomic replace). */
  readonly replace?: boolean | undefined;
  readonly reporter: Reporter;
}

export interface ReplacedFunction {
  readonly object: string;
  readonly name: string;
  readonly sympos: number;
  readonly newFunction: string;
  readonly how: string;
  readonly why: string;
  /** What was checked to know ftrace can patch it. */
  readonly ftrace: string;
  readonly where: string;
}

export interface ResolvedReference {
  readonly object: string;
  readonly name: string;
  readonly sympos: number;
  /** 'exported': an ordinary relocation; 'klp': a klp relocation. */
  readonly binding: 'exported' | 'klp';
  readonly how: string;
  readonly why: string;
  readonly crc?: number | undefined;
  readonly namespace?: string | undefined;
  /** The fix's functions (or sections) that refer to it. */
  readonly usedBy: readonly string[];
  /** The klp symbol name, for klp bindings. */
  readonly klpSymbol?: string | undefined;
  /** Relocation entries using it (klp bindings). */
  readonly relocations?: number | undefined;
}

export interface SourceBuildResult {
  readonly kernel: string;
  readonly source: string;
  readonly module: { readonly name: string; readonly path: string; readonly bytes: number };
  readonly replaced: readonly ReplacedFunction[];
  readonly symbols: readonly ResolvedReference[];
  readonly klp: {
    readonly sections: readonly { readonly name: string; readonly object: string; readonly entries: number }[];
    readonly removedSections: readonly string[];
    readonly versionsDropped: readonly string[];
    readonly dependsDropped: readonly string[];
    readonly importNamespaces: readonly string[];
  };
  readonly buildDir: string;
  /** Milliseconds per step. */
  readonly timings: Readonly<Record<string, number>>;
  readonly warnings: readonly string[];
}

const here = dirname(fileURLToPath(import.meta.url));

/** include/suture.h of this installation (from src/patchbuild, dist/patchbuild or dist/bundle). */
export function sutureHeader(): string {
  const p = join(here, '..', '..', 'include', 'suture.h');
  if (!existsSync(p)) throw new SutureError('internal', `${p} is missing from this suture installation`);
  return p;
}

/** The default module name for a fix file: livepatch_<stem> (link.ts). */
export function defaultSourceModuleName(source: string): string {
  return defaultModuleName(basename(source).replace(/\.[^.]*$/, ''));
}

/** Undefined symbols of an object and the functions (or sections) that refer to each. */
export function undefinedReferences(obj: ElfObject): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  const symtab = obj.symtab;
  if (!symtab) return out;
  for (const s of symtab.symbols) if (s.section === SHN_UNDEF && s.name !== '' && s.type !== STT_SECTION) out.set(s.name, new Set());
  const funcs = symtab.symbols.filter((s) => s.type === STT_FUNC && typeof s.section !== 'number');
  for (const sec of obj.sections) {
    if (!(sec instanceof RelocationSection) || !sec.target || (sec.target.flags & SHF_ALLOC) === 0n) continue;
    const mine = funcs.filter((f) => f.section === sec.target);
    for (const r of sec.relocations) {
      const users = r.symbol ? out.get(r.symbol.name) : undefined;
      if (!users || r.symbol!.section !== SHN_UNDEF) continue;
      const f = mine.find((fn) => r.offset >= fn.value && r.offset < fn.value + (fn.size || 1n));
      users.add(f ? f.name : sec.target.name);
    }
  }
  return out;
}

function hintFor(directives: readonly Directive[], object: string | undefined, name: string): SymbolHint | undefined {
  for (const d of directives) {
    if (d.kind === 'sympos' && d.name === name && (object === undefined || d.object === object)) {
      return { kind: 'sympos', object: d.object, name, pos: d.pos, where: d.where, label: `SUTURE_SYMPOS(${d.object}, ${name}, ${d.pos})` };
    }
    if (d.kind === 'near' && d.name === name && (object === undefined || d.object === object)) {
      return { kind: 'near', object: d.object, name, neighbour: d.neighbour, where: d.where, label: `SUTURE_SYMBOL_NEAR(${d.object}, ${name}, ${d.neighbour})` };
    }
  }
  return undefined;
}

/** What a fix's author writes to settle a name the kernel layer could not resolve. */
export function sutureHint(e: SymbolResolutionError, file: string): string | undefined {
  const name = e.symbol;
  if (e.kind === 'ambiguous') {
    const objs = [...new Set(e.candidates.map((c) => c.object))];
    if (objs.length === 1) {
      return `add SUTURE_SYMPOS(${objs[0]}, ${name}, N) to ${file} (N = the copy's number above), or SUTURE_SYMBOL_NEAR(${objs[0]}, ${name}, <a function of the same source file>)`;
    }
    return `name the object and the copy: SUTURE_SYMPOS(<${objs.join('|')}>, ${name}, N) (N = the copy's number in that object, 0 when it is unique there)`;
  }
  const notes: string[] = [];
  if (e.clones.length) {
    const c = e.clones[0]!;
    notes.push(`the compiler renamed or split it (${e.clones.join(', ')}): replace SUTURE_REPLACE(${c}, ...), or call it through extern ... ${name}(...) __asm__("${c}")`);
  }
  if (e.exportedBy) {
    notes.push(`module ${e.exportedBy} exports it: a fix may use a module's symbols only when it patches that module (SUTURE_REPLACE_MODULE(${e.exportedBy}, ...))`);
  }
  return notes.length ? notes.join('; ') : e.hint;
}

/** resolveSymbol, with hints phrased as SUTURE_* lines. */
function resolveSymbol(src: SymbolSources, req: ResolveRequest, file: string): ResolvedSymbol {
  try {
    return resolveKernelSymbol(src, req);
  } catch (e) {
    if (e instanceof SymbolResolutionError) {
      throw new SutureError(e.kind, e.message, { details: e.details, hint: sutureHint(e, file), cause: e });
    }
    throw e;
  }
}

/** Make a compiler message point at the author's file instead of the copy in the build directory. */
function mapPaths(e: unknown, dirs: readonly string[], userFile: string): unknown {
  if (!isSutureError(e)) return e;
  const fix = (s: string | undefined) => {
    if (s === undefined) return s;
    let t = s;
    for (const d of dirs) t = t.split(join(d, 'user', basename(userFile))).join(userFile);
    return t;
  };
  return new SutureError(e.kind, fix(e.message)!, { hint: fix(e.hint), details: fix(e.details), cause: e });
}

/** Compile one object of a kbuild directory (`make M=<dir> <target>`), with the kernel's own compiler. */
export async function compileObject(meta: KernelMetadata, home: string, dir: string, target: string, onLine?: (l: string) => void, what = target): Promise<string> {
  const tc = toolchainFor(meta, home);
  const cc = meta.compiler.command;
  const argv = ['make', `-j${Math.max(1, cpus().length)}`, '-C', meta.paths.headers, `M=${dir}`, `CC=${cc}`, `HOSTCC=${cc}`, target];
  const r = await tc.run(argv, dir, { onLine: onLine ? (l) => onLine(l) : undefined });
  if (r.code !== 0) {
    const log = (r.stdout + r.stderr).trim().split('\n');
    const errors = log.filter((l) => /(error|warning): /i.test(l) && !/^make(\[\d+\])?: /.test(l)).slice(0, 12);
    throw new SutureError('build', `compiling ${what} failed (make exit ${r.code})`, {
      details: (errors.length ? errors : log.slice(-15)).join('\n'),
      hint: `the build directory is ${dir}`,
    });
  }
  const out = join(dir, target);
  if (!existsSync(out)) throw new SutureError('build', `make succeeded but left no ${target} in ${dir}`);
  return out;
}

function readObject(path: string): ElfObject {
  const b = readFileSync(path);
  return ElfObject.parse(new Uint8Array(b.buffer, b.byteOffset, b.byteLength), { file: path });
}

export async function buildFromSource(opts: SourceBuildOptions): Promise<SourceBuildResult> {
  const { meta, home, reporter } = opts;
  const source = resolve(opts.source);
  const { step, warn, timings, warnings } = timedSteps(reporter);

  // 1. The fix's own lines, checked and resolved before anything is compiled.
  let text: string;
  try {
    text = readFileSync(source, 'utf8');
  } catch (e) {
    throw fsError(e, 'reading the fix', opts.source);
  }
  const fileLabel = basename(source);
  const name = opts.name ?? (opts.output ? basename(opts.output).replace(/\.ko$/, '') : defaultSourceModuleName(source));
  checkModuleName(name, opts.name ? '--name' : 'module name');
  const output = resolve(opts.output ?? `${name}.ko`);
  if (!output.endsWith('.ko')) throw new SutureError('usage', `-o ${opts.output}: a kernel module file must end in .ko`);
  const scanned = scanDirectives(text, fileLabel);
  checkDirectives(scanned, fileLabel);
  const targets = [...new Set(scanned.flatMap((d) => ((d.kind === 'replace' || d.kind === 'callback') && d.object !== 'vmlinux' ? [d.object] : [])))];
  for (const d of scanned) {
    if ((d.kind === 'sympos' || d.kind === 'near') && d.object !== 'vmlinux' && !targets.includes(d.object)) {
      throw new SutureError('usage', `${d.where}: a hint for ${d.name} in ${d.object}, but the fix replaces no function of ${d.object}`, {
        hint: `a patch can use a module's symbols only for a module it patches: add SUTURE_REPLACE_MODULE(${d.object}, ...) or name vmlinux`,
      });
    }
  }

  const src: SymbolSources = await step('symbols', `Loading the symbols of ${meta.name}`, async (update) => {
    update(targets.length ? `vmlinux, ${targets.join(', ')}` : 'vmlinux');
    return workspaceSymbolSources(meta, targets);
  });

  const replaced = new Map<string, { d: Extract<Directive, { kind: 'replace' }>; r?: ResolvedSymbol; c?: Candidate; ftrace?: string }>();
  await step('replaced', 'Checking the functions it replaces', () => {
    for (const d of scanned) if (d.kind === 'replace') replaced.set(`${d.object} ${d.oldName}`, { d });
    resolveReplaced(src, scanned, replaced, [], false, fileLabel);
  });

  // 2. Compile fix.c alone: what it really refers to.
  const buildDir = freshBuildDir(home, name);
  const srcDir = join(buildDir, 'src');
  const probeDir = join(buildDir, 'probe');
  const outDir = join(buildDir, 'kbuild');
  const userRel = join('user', basename(source));
  const ccflags = ['-I$(src)/include'];
  if (!/\s/.test(dirname(source))) ccflags.push(`-iquote ${dirname(source)}`);
  const writeSources = (dir: string, klp: string) => {
    mkdirSync(join(dir, 'user'), { recursive: true });
    mkdirSync(join(dir, 'include'), { recursive: true });
    copyFileSync(source, join(dir, userRel));
    copyFileSync(sutureHeader(), join(dir, 'include', 'suture.h'));
    writeFileSync(join(dir, `${name}.c`), klp);
    writeFileSync(join(dir, 'Kbuild'), kbuildFile(name, { ccflags }));
  };
  const prelude = `#include "${userRel}"`;
  writeSources(probeDir, `// SPDX-License-Identifier: GPL-2.0-only\n/* Generated by suture: ${fileLabel} alone, to see what it refers to. */\n${prelude}\n`);
  const probe = await step('compile', `Compiling ${fileLabel}`, async (update) => {
    try {
      return readObject(await compileObject(meta, home, probeDir, `${name}.o`, update, fileLabel));
    } catch (e) {
      throw mapPaths(e, [probeDir], source);
    }
  });

  // The compiled records are the truth; they must say what the text says.
  const recSec = probe.section('.discard.suture');
  const records = recSec instanceof DataSection ? parseRecords(recSec.data, fileLabel) : [];
  const textKeys = new Set(scanned.map(directiveKey));
  const recKeys = new Set(records.map(directiveKey));
  const onlyText = [...textKeys].filter((k) => !recKeys.has(k));
  const onlyRec = [...recKeys].filter((k) => !textKeys.has(k));
  if (onlyText.length || onlyRec.length) {
    throw new SutureError('usage', `${fileLabel}: the SUTURE_* lines the compiler saw differ from the lines written`, {
      details: [...onlyText.map((k) => `written but not compiled: ${k}`), ...onlyRec.map((k) => `compiled but not written as a plain line: ${k}`)].join('\n'),
      hint: 'write each SUTURE_* line at file scope, outside #if blocks and other macros, and #include <suture.h>',
    });
  }
  checkProbe(probe, fileLabel, scanned);

  // 3. Every symbol it refers to.
  const refs = undefinedReferences(probe);
  const resolved = new Map<string, ResolvedSymbol>();
  await step('resolve', `Resolving the ${refs.size} symbols it refers to`, () => {
    const objects = ['vmlinux', ...targets];
    const anchorsOf = () => [
      ...[...replaced.values()].flatMap((x) => (x.c ? [x.c] : [])),
      ...[...resolved.values()].flatMap((r) => (r.candidate && r.how !== 'exported' && r.copies === 1 ? [r.candidate] : [])),
    ];
    const pending: string[] = [];
    for (const n of refs.keys()) {
      const usedBy = `${fileLabel}: ${[...refs.get(n)!].join(', ') || 'data'}`;
      try {
        resolved.set(n, resolveSymbol(src, { name: n, objects, role: 'referenced', anchors: [], hint: hintFor(scanned, undefined, n), usedBy }, fileLabel));
      } catch (e) {
        if (isSutureError(e) && e.kind === 'ambiguous') pending.push(n);
        else throw e;
      }
    }
    resolveReplaced(src, scanned, replaced, anchorsOf(), true, fileLabel);
    for (const n of pending) {
      const usedBy = `${fileLabel}: ${[...refs.get(n)!].join(', ') || 'data'}`;
      resolved.set(n, resolveSymbol(src, { name: n, objects, role: 'referenced', anchors: anchorsOf(), hint: hintFor(scanned, undefined, n), usedBy }, fileLabel));
    }
    for (const [n, r] of resolved) {
      const rep = replaced.get(`${r.object} ${n}`);
      if (rep && !r.exported) {
        warn(`${fileLabel}: ${[...refs.get(n)!].join(', ')} calls ${n}, which this patch replaces: the call runs the new function (ftrace redirects it)`);
      }
    }
  });

  // 4. Generate and build the module.
  const objects: KlpObjectSpec[] = [];
  for (const { d, r } of replaced.values()) {
    let o = objects.find((x) => x.object === d.object);
    if (!o) objects.push((o = { object: d.object, funcs: [] }));
    (o.funcs as { oldName: string; newFunction: string; sympos: number }[]).push({ oldName: d.oldName, newFunction: d.newFunction, sympos: r!.sympos });
  }
  // Callbacks (SUTURE_*_CALLBACK): fix.c is included above the generated structures, so they are called by name.
  for (const d of scanned) {
    if (d.kind !== 'callback') continue;
    let o = objects.find((x) => x.object === d.object);
    if (!o) objects.push((o = { object: d.object, funcs: [] }));
    (o as { callbacks?: Record<string, string> }).callbacks = { ...(o.callbacks ?? {}), [d.callback]: d.fn };
  }
  // Module objects reached through klp relocations clear them when unpatched (generate.ts RELOCATION_CLEARING).
  for (const o of objects) if (o.object !== 'vmlinux') (o as { clearRelocations?: boolean }).clearRelocations = true;
  const klpSource = klpModuleSource({
    name,
    objects,
    prelude,
    replace: opts.replace ?? false,
    description: `livepatch built by suture from ${fileLabel}`,
    origin: `from ${fileLabel} for ${meta.name}`,
  });
  writeSources(srcDir, klpSource);
  // 5. Link: kbuild, then klp relocations (link.ts).
  const dispose = symbolDispositions(src, (n) => {
    const r = resolved.get(n);
    if (!r) return undefined;
    return r.exported
      ? { kind: 'exported', crc: r.exported.crc, namespace: r.exported.namespace }
      : { kind: 'klp', object: r.object, name: r.name, sympos: r.sympos, exportedBy: src.exports.get(n)?.object === r.object ? r.object : undefined };
  });
  const conv: KlpConversion = await step('kbuild', `Building module ${name}`, async (update) => {
    try {
      return await linkLivepatch({
        meta, home, sourceDir: srcDir, buildDir: outDir, name, output, dispose, src,
        onLine: (l) => {
          update(l.trim());
          const m = /modpost: "([^"]+)" \[.*\] undefined!/.exec(l);
          if (m && !resolved.has(m[1]!) && !GENERATED_REFERENCES.includes(m[1]!)) warn(`modpost: ${m[1]} is undefined and was not in ${fileLabel}'s object`);
        },
      });
    } catch (e) {
      throw mapPaths(e, [srcDir, outDir], source);
    }
  });

  const renames = new Map(conv.plan.renames.map((r) => [r.from, r]));
  return {
    kernel: meta.name,
    source,
    module: { name, path: output, bytes: conv.bytes },
    replaced: [...replaced.values()].map(({ d, r, ftrace }) => ({
      object: d.object,
      name: d.oldName,
      sympos: r!.sympos,
      newFunction: d.newFunction,
      how: r!.how,
      why: r!.why,
      ftrace: ftrace ?? '',
      where: d.where,
    })),
    symbols: [...resolved.entries()].sort(([a, x], [b, y]) => bindingOrder(x) - bindingOrder(y) || x.object.localeCompare(y.object) || a.localeCompare(b)).map(([n, r]) => ({
      object: r.object,
      name: r.name,
      sympos: r.sympos,
      binding: r.exported ? ('exported' as const) : ('klp' as const),
      how: r.how,
      why: r.why,
      ...(r.exported ? { crc: r.exported.crc, namespace: r.exported.namespace || undefined } : {}),
      usedBy: [...refs.get(n)!],
      ...(r.exported ? {} : { klpSymbol: renames.get(n)?.to, relocations: renames.get(n)?.uses ?? 0 }),
    })),
    klp: {
      sections: conv.check.sections,
      removedSections: conv.removed,
      versionsDropped: conv.plan.versionsDropped,
      dependsDropped: conv.plan.dependsDropped,
      importNamespaces: conv.plan.importNamespaces,
    },
    buildDir,
    timings,
    warnings,
  };
}

/** klp symbols first (they are what the build is about), then exports. */
function bindingOrder(r: ResolvedSymbol): number {
  return r.exported ? 1 : 0;
}

/**
 * Resolve the replaced functions and check that ftrace can patch each. With
 * `final` false (before compiling), an ambiguous name waits for the anchors
 * the compiled object brings; with `final` true it is refused.
 */
function resolveReplaced(
  src: SymbolSources,
  directives: readonly Directive[],
  replaced: Map<string, { d: Extract<Directive, { kind: 'replace' }>; r?: ResolvedSymbol; c?: Candidate; ftrace?: string }>,
  extraAnchors: readonly Candidate[],
  final: boolean,
  file: string,
): void {
  for (let pass = 0; pass < 2; pass++) {
    for (const x of replaced.values()) {
      if (x.r) continue;
      const { d } = x;
      const anchors = [...extraAnchors, ...[...replaced.values()].flatMap((y) => (y.c && y !== x ? [y.c] : []))];
      try {
        x.r = resolveSymbol(src, {
          name: d.oldName,
          objects: [d.object],
          role: 'replaced',
          anchors,
          hint: hintFor(directives, d.object, d.oldName),
          usedBy: `${d.where}: ${d.object === 'vmlinux' ? 'SUTURE_REPLACE' : 'SUTURE_REPLACE_MODULE'}`,
        }, file);
      } catch (e) {
        if (isSutureError(e) && e.kind === 'ambiguous' && (!final || pass === 0)) continue;
        throw e;
      }
      x.c = x.r.candidate!;
      const p = checkPatchable(src, x.c);
      if (!p.ok) {
        throw new SutureError('unpatchable', `${d.where}: cannot replace ${d.oldName} in ${d.object}: ${p.reason}`, { hint: p.hint });
      }
      x.ftrace = p.evidence;
    }
  }
}

/** What fix.c must not do, seen in its compiled object. */
function checkProbe(obj: ElfObject, file: string, directives: readonly Directive[]): void {
  const symtab = obj.symtab;
  const defined = new Map((symtab?.symbols ?? []).filter((s) => s.section !== SHN_UNDEF).map((s) => [s.name, s]));
  for (const n of ['init_module', 'cleanup_module']) {
    if (defined.has(n)) {
      throw new SutureError('usage', `${file} defines ${n === 'init_module' ? 'module_init' : 'module_exit'}; suture generates the module's init and exit`, {
        hint: 'remove module_init/module_exit (and the klp structures): suture writes them from the SUTURE_* lines',
      });
    }
  }
  const mi = obj.section('.modinfo');
  const info = mi instanceof DataSection ? parseModinfo(mi.data) : [];
  for (const key of ['license', 'livepatch']) {
    if (info.some((e) => e.key === key)) {
      throw new SutureError('usage', `${file} sets MODULE_${key === 'license' ? 'LICENSE' : 'INFO(livepatch)'}; suture adds it`, { hint: 'remove that line' });
    }
  }
  for (const d of directives) {
    if (d.kind !== 'replace') continue;
    const f = defined.get(d.newFunction);
    if (!f || f.type !== STT_FUNC) {
      throw new SutureError('usage', `${d.where}: ${d.newFunction} is not a function defined in ${file}`, { hint: 'define the new function above the SUTURE_REPLACE line' });
    }
  }
}
