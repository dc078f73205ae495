// SPDX-License-Identifier: GPL-2.0-only
/**
 * The notrace carry: a changed function ftrace cannot redirect (the kernel's
 * `inline` is notrace; SYSCALL_DEFINE bodies; noinstr code; lib/ without
 * CC_FLAGS_FTRACE) is carried inside the patch, and the functions of the
 * same unit that call it are patched instead, recursively: a caller that is
 * notrace too is carried in turn, until every path reaches a traceable
 * caller (6.1's fs/namei.c: may_create is inline, vfs_mkdir & co. are
 * patched). Pure: a unit's diff and its two indexed objects in, a new diff out.
 */
import type { ObjectDiff, FunctionVerdict } from './diff.js';
import { referencedSymbol, unnumbered } from './identity.js';
import type { IndexedSymbol, ObjectIndex } from './object-index.js';
import { isAnonymousTarget, notraceWithoutCallers, parentOfPiece, traceable } from './rules.js';

export interface CarriedDiff extends ObjectDiff {
  /** Changed functions carried only (patched through their callers): no klp_func of their own. */
  readonly carriedOnly: ReadonlySet<string>;
}

/** Functions of the patched object that call (or take the address of) `name`. */
function callersOf(idx: ObjectIndex, name: string): IndexedSymbol[] {
  return [...idx.functions.values()].filter(
    (c) =>
      c.name !== name &&
      idx.relocationsIn(c.section, c.offset, c.size).some((r) => {
        const s = r.symbol;
        if (!s) return false;
        if (s.name === name) return true;
        return isAnonymousTarget(s) && typeof s.section !== 'number' && referencedSymbol(idx, s.section, Number(s.value), r)?.sym.name === name;
      }),
  );
}

/** The function of the orig object a patched function corresponds to (same name, or the same with gcc's numbering ignored). */
function origOf(orig: ObjectIndex, name: string): IndexedSymbol | undefined {
  const exact = orig.functions.get(name);
  if (exact) return exact;
  const same = [...orig.functions.values()].filter((f) => unnumbered(f.name) === unnumbered(name));
  return same.length === 1 ? same[0] : undefined;
}

export function carryUntraceable(diff: ObjectDiff, orig: ObjectIndex, patched: ObjectIndex): CarriedDiff {
  const verdicts = new Map<string, FunctionVerdict>(diff.functions.map((f) => [f.name, f]));
  const refusals = [...diff.refusals];
  const carried = new Set<string>();
  const addReason = (name: string, reason: string) => {
    const v = verdicts.get(name)!;
    verdicts.set(name, { ...v, reasons: [...v.reasons, reason] });
  };
  for (;;) {
    const blocked = [...verdicts.values()].filter((f) => f.status === 'changed' && !f.traceable && !carried.has(f.name));
    if (!blocked.length) break;
    for (const f of blocked) {
      carried.add(f.name);
      // A piece (foo.cold, foo.part.N) belongs to its parent, which the diff already patches.
      const parent = parentOfPiece(f.name);
      if (parent && verdicts.has(parent)) {
        addReason(f.name, `a piece of ${parent}, carried with it`);
        continue;
      }
      // Its own pieces (foo.cold jumps back into foo) are not callers: counting them carried foo through itself, and
      // a changed notrace function with no other caller vanished from the patch without a refusal (6.1's
      // register_ftrace_graph, whose only reference is its .cold piece).
      const callers = callersOf(patched, f.name).filter((c) => parentOfPiece(c.name) !== f.name);
      if (!callers.length) refusals.push(notraceWithoutCallers(diff.unit, f.name));
      for (const c of callers) {
        const reason = `calls ${f.name}, which ftrace cannot patch`;
        if (verdicts.has(c.name)) {
          addReason(c.name, reason);
          continue;
        }
        // Whether ftrace can redirect the caller is a fact of the running kernel: the orig object says it.
        // A notrace caller is blocked in turn (next round) and its own callers are pulled in.
        const o = origOf(orig, c.name);
        verdicts.set(c.name, { name: c.name, status: 'changed', reasons: [reason], traceable: o !== undefined && traceable(orig, o) });
      }
    }
  }
  return {
    ...diff,
    functions: [...verdicts.values()].sort((a, b) => a.name.localeCompare(b.name)),
    refusals,
    carriedOnly: carried,
  };
}
