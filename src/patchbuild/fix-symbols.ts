// SPDX-License-Identifier: GPL-2.0-only
/**
 * The symbol stages of `suture build --source`: each replaced function
 * resolved in its object (with its sympos) and checked patchable by ftrace,
 * before anything is compiled; then every symbol the compiled fix refers to
 * (exported by vmlinux, or a klp symbol of vmlinux or of a target module).
 * A duplicated name waits for the anchors the others bring; what stays
 * ambiguous is refused with the SUTURE_* line that settles it.
 */
import {
  checkPatchable,
  resolveSymbol as resolveKernelSymbol,
  SymbolResolutionError,
  type Candidate,
  type ResolveRequest,
  type ResolvedSymbol,
  type SymbolHint,
  type SymbolSources,
} from '../kernel/symbols/mod.js';
import { SutureError, isSutureError } from '../util/errors.js';
import type { Directive } from './directives.js';
import type { Fix } from './fix-read.js';

type ReplaceDirective = Extract<Directive, { kind: 'replace' }>;

/** A replaced function: its line, and once resolved, its symbol, its copy and what showed ftrace can patch it. */
interface Replacing {
  readonly d: ReplaceDirective;
  r?: ResolvedSymbol;
  c?: Candidate;
  ftrace?: string;
}

export interface ReplacedSymbol {
  readonly d: ReplaceDirective;
  readonly r: ResolvedSymbol;
  /** What was checked to know ftrace can patch it. */
  readonly ftrace: string;
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

/**
 * The replaced functions of a fix. `resolveEarly` (before compiling) resolves
 * what it can and checks ftrace can patch each; an ambiguous name waits for
 * the anchors of the compiled object (`resolveReferences`).
 */
export class ReplacedFunctions {
  private readonly replacing = new Map<string, Replacing>();

  constructor(
    private readonly src: SymbolSources,
    private readonly fix: Fix,
  ) {
    for (const d of fix.directives) if (d.kind === 'replace') this.replacing.set(`${d.object} ${d.oldName}`, { d });
  }

  /** Before anything is compiled: every name that is not ambiguous, resolved and checked. */
  resolveEarly(): void {
    this.resolve([], false);
  }

  has(object: string, name: string): boolean {
    return this.replacing.has(`${object} ${name}`);
  }

  /** The copies resolved so far (anchors for the others). */
  candidates(): Candidate[] {
    return [...this.replacing.values()].flatMap((x) => (x.c ? [x.c] : []));
  }

  /** Every replaced function, resolved (after `resolve(..., true)`). */
  all(): ReplacedSymbol[] {
    return [...this.replacing.values()].map(({ d, r, ftrace }) => ({ d, r: r!, ftrace: ftrace ?? '' }));
  }

  /**
   * Resolve the replaced functions and check that ftrace can patch each. With
   * `final` false, an ambiguous name waits; with `final` true it is refused.
   */
  resolve(extraAnchors: readonly Candidate[], final: boolean): void {
    for (let pass = 0; pass < 2; pass++) {
      for (const x of this.replacing.values()) {
        if (x.r) continue;
        const { d } = x;
        const anchors = [...extraAnchors, ...[...this.replacing.values()].flatMap((y) => (y.c && y !== x ? [y.c] : []))];
        try {
          x.r = resolveSymbol(
            this.src,
            {
              name: d.oldName,
              objects: [d.object],
              role: 'replaced',
              anchors,
              hint: hintFor(this.fix.directives, d.object, d.oldName),
              usedBy: `${d.where}: ${d.object === 'vmlinux' ? 'SUTURE_REPLACE' : 'SUTURE_REPLACE_MODULE'}`,
            },
            this.fix.label,
          );
        } catch (e) {
          if (isSutureError(e) && e.kind === 'ambiguous' && (!final || pass === 0)) continue;
          throw e;
        }
        x.c = x.r.candidate!;
        const p = checkPatchable(this.src, x.c);
        if (!p.ok) {
          throw new SutureError('unpatchable', `${d.where}: cannot replace ${d.oldName} in ${d.object}: ${p.reason}`, { hint: p.hint });
        }
        x.ftrace = p.evidence;
      }
    }
  }
}

/**
 * Every symbol the compiled fix refers to (`refs`: name → its users),
 * resolved; the replaced functions finish resolving with the anchors these
 * bring. A call to a replaced function is said (it runs the new one).
 */
export function resolveReferences(src: SymbolSources, fix: Fix, refs: ReadonlyMap<string, ReadonlySet<string>>, replaced: ReplacedFunctions, warn: (m: string) => void): Map<string, ResolvedSymbol> {
  const resolved = new Map<string, ResolvedSymbol>();
  const objects = ['vmlinux', ...fix.targets];
  const anchorsOf = () => [...replaced.candidates(), ...[...resolved.values()].flatMap((r) => (r.candidate && r.how !== 'exported' && r.copies === 1 ? [r.candidate] : []))];
  const usedBy = (n: string) => `${fix.label}: ${[...refs.get(n)!].join(', ') || 'data'}`;
  const pending: string[] = [];
  for (const n of refs.keys()) {
    try {
      resolved.set(n, resolveSymbol(src, { name: n, objects, role: 'referenced', anchors: [], hint: hintFor(fix.directives, undefined, n), usedBy: usedBy(n) }, fix.label));
    } catch (e) {
      if (isSutureError(e) && e.kind === 'ambiguous') pending.push(n);
      else throw e;
    }
  }
  replaced.resolve(anchorsOf(), true);
  for (const n of pending) {
    resolved.set(n, resolveSymbol(src, { name: n, objects, role: 'referenced', anchors: anchorsOf(), hint: hintFor(fix.directives, undefined, n), usedBy: usedBy(n) }, fix.label));
  }
  for (const [n, r] of resolved) {
    if (replaced.has(r.object, n) && !r.exported) {
      warn(`${fix.label}: ${[...refs.get(n)!].join(', ')} calls ${n}, which this patch replaces: the call runs the new function (ftrace redirects it)`);
    }
  }
  return resolved;
}
