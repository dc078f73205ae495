// SPDX-License-Identifier: GPL-2.0-only
/**
 * `suture build --source fix.c`: a livepatch from plain kernel C. One call
 * per stage, each stage its own module:
 *
 *   read the fix           fix-read.ts     (SUTURE_* lines, names checked against the kernel's limits)
 *   replaced functions     fix-symbols.ts  (resolved, ftrace can patch each: refusals before compiling)
 *   compile fix.c alone    fix-probe.ts    (what it really refers to; its records agree with its text)
 *   resolve references     fix-symbols.ts  (exported, or a klp symbol with its sympos)
 *   link                   fix-module.ts   (generated klp structures, kbuild, klp relocations: link.ts)
 *
 * Everything is built in a directory under $SUTURE_HOME/builds, never in the author's.
 */
import { join } from 'node:path';
import { workspaceSymbolSources, type ResolvedSymbol } from '../kernel/symbols/mod.js';
import type { KernelMetadata } from '../kernel/workspace.js';
import type { Reporter } from '../util/progress.js';
import { linkFix } from './fix-module.js';
import { FixSources, mapPaths, probeFix, undefinedReferences } from './fix-probe.js';
import { readFix } from './fix-read.js';
import { ReplacedFunctions, resolveReferences } from './fix-symbols.js';
import { freshBuildDir } from './link.js';
import { timedSteps, type Timings } from './steps.js';

export { defaultSourceModuleName } from './fix-read.js';

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
  /** Milliseconds per step (steps.ts). */
  readonly timings: Readonly<Timings>;
  readonly warnings: readonly string[];
}

export async function buildFromSource(opts: SourceBuildOptions): Promise<SourceBuildResult> {
  const { meta, home } = opts;
  const { step, warn, timings, warnings } = timedSteps(opts.reporter);
  const fix = readFix(opts);
  const src = await step('symbols', `Loading the symbols of ${meta.name}`, async (update) => {
    update(fix.targets.length ? `vmlinux, ${fix.targets.join(', ')}` : 'vmlinux');
    return workspaceSymbolSources(meta, [...fix.targets]);
  });
  const replaced = new ReplacedFunctions(src, fix);
  await step('replaced', 'Checking the functions it replaces', () => replaced.resolveEarly());

  const buildDir = freshBuildDir(home, fix.name);
  const [srcDir, probeDir, outDir] = ['src', 'probe', 'kbuild'].map((d) => join(buildDir, d)) as [string, string, string];
  const sources = new FixSources(fix);
  const probe = await probeFix(meta, home, fix, sources, probeDir, step);
  const refs = undefinedReferences(probe);
  const resolved = await step('resolve', `Resolving the ${refs.size} symbols it refers to`, () => resolveReferences(src, fix, refs, replaced, warn));

  const conv = await step('kbuild', `Building module ${fix.name}`, async (update) => {
    try {
      return await linkFix({ meta, home, fix, sources, srcDir, outDir, replace: opts.replace ?? false }, replaced.all(), src, resolved, { update, warn });
    } catch (e) {
      throw mapPaths(e, [srcDir, outDir], fix.source);
    }
  });

  const renames = new Map(conv.plan.renames.map((r) => [r.from, r]));
  return {
    kernel: meta.name,
    source: fix.source,
    module: { name: fix.name, path: fix.output, bytes: conv.bytes },
    replaced: replaced.all().map(({ d, r, ftrace }) => ({ object: d.object, name: d.oldName, sympos: r.sympos, newFunction: d.newFunction, how: r.how, why: r.why, ftrace, where: d.where })),
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
