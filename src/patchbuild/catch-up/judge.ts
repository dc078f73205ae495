// SPDX-License-Identifier: GPL-2.0-only
/**
 * A verdict per fix, never half of one:
 *
 *   included              its functions changed, and nothing of it is refused;
 *   no-functional-change  it compiles to the same code in this kernel's config;
 *   not-built             nothing of it is compiled in this config (another
 *                         architecture, a driver the config leaves out, docs);
 *   refused               any part of it a livepatch cannot carry, with the
 *                         rule and what a person could do instead.
 *
 * Before compiling (prejudge): files no build compiles, files a livepatch
 * cannot be built from, headers that reach too many units. After (fixVerdicts):
 * the diff engine's refusals by unit, units that do not compile, and fixes
 * that share a unit (compiled together, so judged together: one refused
 * takes the other along).
 */
import { join } from 'node:path';
import { KbuildObjects } from '../../kernel/kbuild-objects.js';
import type { KernelMetadata } from '../../kernel/workspace.js';
import type { RuleId } from '../diff/rules.js';
import { unbuildableFile } from '../diff/rules.js';
import { includersOf, treeIncludeGraph } from '../include-graph.js';
import type { FunctionReport } from '../reasons.js';
import type { Refusal } from '../diff/rules.js';
import type { Unit } from '../units.js';
import { includingUnits, objectName } from '../units.js';
import type { Fix } from './fixes.js';
import { outsideBuild } from './group.js';
import { SutureError } from '../../util/errors.js';

export type FixVerdict = 'included' | 'no-functional-change' | 'not-built' | 'refused';

/** The diff engine's rules, and catch-up's own: a header past the unit limit, a unit that does not compile, a fix judged with another, provenance. */
export type CatchUpRule = RuleId | 'header-reach' | 'does-not-compile' | 'entangled' | 'provenance' | 'unresolved-symbol' | 'kbuild-unknown' | 'excluded';

export interface FixRefusal {
  readonly rule: CatchUpRule;
  readonly file: string;
  readonly symbol: string;
  readonly reason: string;
  readonly instead: string;
}

/** A fix as formed (fixes.ts), its files by path, with its verdict. */
export interface FixReport extends Omit<Fix, 'files'> {
  readonly files: readonly string[];
  readonly verdict: FixVerdict;
  /** One line: why this verdict. */
  readonly why: string;
  readonly refusals: readonly FixRefusal[];
  readonly units: readonly { unit: string; object: string; module: string }[];
  readonly notBuilt: readonly { file: string; why: string }[];
  /** Changed and new functions of its units (included: what the patch replaces or carries). */
  readonly functions: readonly FunctionReport[];
}

interface FixPlan {
  readonly notBuilt: { file: string; why: string }[];
  /** Files that need no build and change nothing that runs (text beside the code). */
  readonly ignored: string[];
  readonly refusals: FixRefusal[];
  readonly units: Unit[];
}

export interface Prejudged {
  readonly byFix: ReadonlyMap<string, FixPlan>;
  /** Every unit to compile, once. */
  readonly units: readonly Unit[];
  /** The fixes whose changes go into the patched tree, in order. */
  readonly applied: readonly Fix[];
  /** A unit reached through changed headers → those headers. */
  readonly viaHeader: ReadonlyMap<string, string[]>;
  /** A unit → the fixes that reach it. */
  readonly unitFixes: ReadonlyMap<string, string[]>;
}

const TEXT_FILE = /(^|\/)(README[^/]*|MAINTAINERS|CREDITS|[^/]+\.(txt|rst|md|yaml|json))$/;

function refusalOf(r: Refusal): FixRefusal {
  return { rule: r.rule, file: r.file, symbol: r.symbol, reason: r.reason, instead: r.instead };
}

/**
 * The fixes `--exclude` names: a fix id (F0042, a series file), or a CVE id for every fix that carries
 * it. Every name must match a fix: a typo must not quietly carry the fix it meant to leave out.
 * The refusal each excluded fix gets, by fix id.
 */
export function excludedFixes(fixes: readonly Fix[], names: readonly string[], what: string): Map<string, FixRefusal> {
  const out = new Map<string, FixRefusal>();
  for (const name of names) {
    const hit = fixes.filter((f) => f.id === name || f.cves.includes(name));
    if (!hit.length) {
      throw new SutureError('usage', `--exclude ${name}: no fix of ${what} is ${/^CVE-/i.test(name) ? 'for that CVE' : 'called that'}`, {
        hint: /^CVE-/i.test(name) ? 'CVE ids are written CVE-YYYY-NNNN, as the changelog has them; --json lists each fix\'s cves' : 'fix ids are those of a previous run of the same catch-up (the table, or fixes[].id in --json): F0042, or a series file name',
      });
    }
    for (const f of hit) {
      if (out.has(f.id)) continue;
      out.set(f.id, { rule: 'excluded', file: f.files[0]?.path ?? f.label, symbol: name, reason: `left out on request (--exclude ${name})`, instead: `drop --exclude ${name} to carry it` });
    }
  }
  return out;
}

export async function prejudge(meta: KernelMetadata, fixes: readonly Fix[], maxUnits: number, update: (d: string) => void, excluded: ReadonlyMap<string, FixRefusal> = new Map()): Promise<Prejudged> {
  const kb = new KbuildObjects(meta.paths.source, join(meta.paths.root, 'kbuild-dirs.json'));
  const graph = await treeIncludeGraph(meta.paths.source, join(meta.paths.root, 'include-graph.json'));
  const byFix = new Map<string, FixPlan>();
  const viaHeader = new Map<string, string[]>();
  const homes = new Map<string, Awaited<ReturnType<KbuildObjects['home']>>>();
  // A Makefile kbuild cannot evaluate alone (it needs its parent's variables, as amdgpu's do) leaves the object unknown.
  const unknown = new Map<string, string>();
  const home = async (p: string) => {
    let h = homes.get(p);
    if (!h) {
      try {
        h = await kb.home(p);
      } catch (e) {
        if (!(e instanceof SutureError)) throw e;
        unknown.set(p, `${e.message}: ${(e.details ?? '').split('\n')[0]}`);
        h = { kind: 'not-built', object: p.replace(/\.[cS]$/, '.o'), why: 'unknown' };
      }
      homes.set(p, h);
    }
    return h;
  };
  const unknownRefusal = (p: string): FixRefusal => ({
    rule: 'kbuild-unknown',
    file: p,
    symbol: p,
    reason: `kbuild cannot say which object ${p} is built into: ${unknown.get(p)}`,
    instead: `build this fix on its own from a source patch (suture build), after checking that ${p} is built in this config`,
  });
  try {
    let n = 0;
    for (const fix of fixes) {
      if (++n % 25 === 0) update(`${n} of ${fixes.length} fixes`);
      const plan: FixPlan = { notBuilt: [], ignored: [], refusals: [], units: [] };
      const asked = excluded.get(fix.id);
      if (asked) {
        // Left out before anything is compiled: its files stay as the running kernel has them.
        plan.refusals.push(asked);
        byFix.set(fix.id, plan);
        continue;
      }
      const units = new Map<string, Unit>();
      for (const f of fix.files) {
        const outside = outsideBuild(f.path);
        if (outside) {
          plan.notBuilt.push({ file: f.path, why: outside.startsWith('arch/') ? `another architecture (${outside})` : `not part of the kernel's build (${outside})` });
          continue;
        }
        if (f.kind === 'other' && TEXT_FILE.test(f.path)) {
          plan.ignored.push(f.path);
          continue;
        }
        if ((f.change === 'delete' || f.change === 'rename') || (f.change === 'create' && f.kind !== 'header')) {
          // A removed file no build compiled changes nothing here; a new one cannot be placed before it exists.
          const h = f.change !== 'create' && (f.kind === 'c' || f.kind === 'asm') ? await home(f.path) : undefined;
          if (h?.kind === 'not-built') {
            plan.notBuilt.push({ file: f.path, why: h.why });
            continue;
          }
          plan.refusals.push(refusalOf(unbuildableFile(f.path, 'created-deleted-renamed')));
          continue;
        }
        if (f.kind === 'asm' || f.kind === 'c') {
          const h = await home(f.path);
          if (unknown.has(f.path)) {
            plan.refusals.push(unknownRefusal(f.path));
            continue;
          }
          if (h.kind === 'not-built') {
            const inside = f.kind === 'c' && !h.why.startsWith('another architecture') ? await includingUnits(meta, kb, f.path) : [];
            if (!inside.length) {
              plan.notBuilt.push({ file: f.path, why: h.why });
              continue;
            }
            for (const u of inside) {
              units.set(u.unit, u);
              viaHeader.set(u.unit, [...new Set([...(viaHeader.get(u.unit) ?? []), f.path])]);
            }
            continue;
          }
          if (f.kind === 'asm') {
            plan.refusals.push(refusalOf(unbuildableFile(f.path, 'asm')));
            continue;
          }
          units.set(f.path, { unit: f.path, object: h.object, home: h });
          continue;
        }
        if (f.kind === 'build' || f.kind === 'other') {
          plan.refusals.push(refusalOf(unbuildableFile(f.path, 'build')));
          continue;
        }
        // A header: every built unit it reaches.
        const r = includersOf(graph, f.path);
        if (r.everyUnit || r.all.length > 4 * maxUnits) {
          plan.refusals.push(headerReach(f.path, r.everyUnit ? 'every unit of the kernel (kbuild forces it in)' : `${r.all.length} source files`, maxUnits));
          continue;
        }
        const built: Unit[] = [];
        const unsure: string[] = [];
        for (const u of r.all) {
          const h = await home(u);
          if (unknown.has(u)) unsure.push(u);
          else if (h.kind !== 'not-built') built.push({ unit: u, object: h.object, home: h });
        }
        if (unsure.length) {
          plan.refusals.push({ ...unknownRefusal(unsure[0]!), file: f.path, symbol: f.path, reason: `it reaches ${unsure.length} source file${unsure.length === 1 ? '' : 's'} kbuild cannot place (${unsure.slice(0, 3).join(', ')}): ${unknown.get(unsure[0]!)}` });
          continue;
        }
        if (built.length > maxUnits) {
          plan.refusals.push(headerReach(f.path, `${built.length} units built in this kernel`, maxUnits));
          continue;
        }
        if (!built.length) {
          plan.notBuilt.push({ file: f.path, why: r.all.length ? `none of the ${r.all.length} source files including it is built in this config` : 'no source file includes it' });
          continue;
        }
        for (const u of built) {
          units.set(u.unit, u);
          viaHeader.set(u.unit, [...new Set([...(viaHeader.get(u.unit) ?? []), f.path])]);
        }
      }
      plan.units.push(...units.values());
      byFix.set(fix.id, plan);
    }
  } finally {
    kb.close();
  }
  // A series fix that touches a file a refused fix touched before it was located with that fix applied: it cannot go alone.
  const applied: Fix[] = [];
  const leftOut = new Map<string, string>();
  for (const fix of fixes) {
    const plan = byFix.get(fix.id)!;
    const after = fix.files.map((f) => f.path).find((p) => leftOut.has(p));
    if (after && !plan.refusals.length) {
      plan.refusals.push({ rule: 'entangled', file: after, symbol: after, reason: `${after} was changed before by ${leftOut.get(after)}, which is refused: this fix's hunks sit on top of it`, instead: `carry both, or refresh this fix against the kernel's own ${after}` });
    }
    if (plan.refusals.length) {
      for (const f of fix.files) if (!leftOut.has(f.path)) leftOut.set(f.path, fix.id);
      continue;
    }
    if (plan.units.length) applied.push(fix);
  }
  const unitFixes = new Map<string, string[]>();
  const units = new Map<string, Unit>();
  for (const fix of applied) {
    for (const u of byFix.get(fix.id)!.units) {
      unitFixes.set(u.unit, [...(unitFixes.get(u.unit) ?? []), fix.id]);
      units.set(u.unit, u);
    }
  }
  return { byFix, units: [...units.values()].sort((a, b) => (a.unit < b.unit ? -1 : 1)), applied, viaHeader, unitFixes };
}

function headerReach(path: string, what: string, maxUnits: number): FixRefusal {
  return {
    rule: 'header-reach',
    file: path,
    symbol: path,
    reason: `it reaches ${what}; a livepatch recompiles every unit a header reaches and suture stops at ${maxUnits}`,
    instead: 'carry the fix in the .c files whose behaviour it changes (a source patch, suture build), or raise --max-units',
  };
}

/** The verdict of every fix, from the prejudgement and the compiled units' verdicts. */
export function fixVerdicts(fixes: readonly Fix[], pre: Prejudged, unitRefusals: readonly Refusal[], functions: readonly FunctionReport[], failedUnits: ReadonlyMap<string, string>): FixReport[] {
  const out = new Map<string, FixReport>();
  for (const fix of fixes) {
    const plan = pre.byFix.get(fix.id)!;
    const unitSet = new Set(plan.units.map((u) => u.unit));
    const base = {
      id: fix.id,
      label: fix.label,
      title: fix.title,
      cves: fix.cves,
      basis: fix.basis,
      files: fix.files.map((f) => f.path),
      changelog: fix.changelog,
      notBuilt: plan.notBuilt,
      units: plan.units.map((u) => ({ unit: u.unit, object: u.object, module: objectName(u.home) })),
    };
    const refusals: FixRefusal[] = [...plan.refusals];
    for (const u of unitSet) {
      const f = failedUnits.get(u);
      if (f) refusals.push({ rule: 'does-not-compile', file: u, symbol: u, reason: `it does not compile with the fixes applied: ${f.split('\n')[0]}`, instead: 'the fix needs a change the update makes elsewhere: find it and carry them as one series file' });
    }
    refusals.push(...unitRefusals.filter((r) => unitSet.has(r.file)).map(refusalOf));
    const mine = functions.filter((f) => unitSet.has(f.unit));
    if (refusals.length) {
      out.set(fix.id, { ...base, verdict: 'refused', why: refusals.map((r) => `${r.rule}: ${r.symbol}`).slice(0, 3).join('; ') + (refusals.length > 3 ? `; and ${refusals.length - 3} more` : ''), refusals, functions: mine });
      continue;
    }
    const replaced = mine.filter((f) => f.status === 'changed' && !f.carriedOnly);
    if (replaced.length) {
      const objs = [...new Set(replaced.map((f) => f.object))];
      out.set(fix.id, { ...base, verdict: 'included', why: `${replaced.length} function${replaced.length === 1 ? '' : 's'} replaced in ${objs.join(', ')}`, refusals: [], functions: mine });
    } else if (plan.units.length) {
      out.set(fix.id, { ...base, verdict: 'no-functional-change', why: `its ${plan.units.length} unit${plan.units.length === 1 ? '' : 's'} compile to the same code in this config`, refusals: [], functions: mine });
    } else if (plan.notBuilt.length) {
      out.set(fix.id, { ...base, verdict: 'not-built', why: plan.notBuilt.map((n) => `${n.file}: ${n.why}`).slice(0, 2).join('; '), refusals: [], functions: [] });
    } else {
      out.set(fix.id, { ...base, verdict: 'no-functional-change', why: `only text beside the code changes (${plan.ignored.join(', ')})`, refusals: [], functions: [] });
    }
  }
  // Fixes compiled into one unit stand or fall together.
  let changed = true;
  while (changed) {
    changed = false;
    for (const [unit, ids] of pre.unitFixes) {
      if (ids.length < 2) continue;
      const refused = ids.find((id) => out.get(id)!.verdict === 'refused');
      if (!refused) continue;
      for (const id of ids) {
        const r = out.get(id)!;
        if (r.verdict === 'refused') continue;
        out.set(id, { ...r, verdict: 'refused', why: `entangled: shares ${unit} with ${refused}, which is refused`, refusals: [{ rule: 'entangled', file: unit, symbol: unit, reason: `${unit} is compiled with ${refused}'s changes too`, instead: `fix ${refused} first, or carry this fix alone (suture build)` }] });
        changed = true;
      }
    }
  }
  return fixes.map((f) => out.get(f.id)!);
}
