// SPDX-License-Identifier: GPL-2.0-only
/**
 * The verdict stage of a patch build: for each compiled unit, what changed
 * and whether a livepatch can carry it. In order, each step a new value (none
 * edits another's result):
 *
 *   diff (diff/diff.ts) → functions ftrace cannot redirect, carried through
 *   their callers (diff/carry.ts) → what the author wrote inside the patch:
 *   callbacks, kpatch's ignore/force directives (author-records.ts) → struct
 *   layouts (pahole over the debug info: a changed layout makes every other
 *   verdict moot; catch-up reads them only where the code changes).
 *
 * Every refusal of any unit stops the build here, all of them listed.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import type { BtfStructs } from '../kernel/btf.js';
import { mapPool } from '../util/pool.js';
import { SutureError } from '../util/errors.js';
import { run } from '../util/exec.js';
import { writeAtomic } from '../util/files.js';
import { applyAuthorRecords, readAuthorRecords, type CallbackRecord } from './author-records.js';
import type { CompiledUnit, Side } from './compile.js';
import { carryUntraceable, type CarriedDiff } from './diff/carry.js';
import { diffObjects } from './diff/diff.js';
import { changedLayouts, parsePahole } from './diff/layouts.js';
import { changedStructLayout, refuse, type Refusal } from './diff/rules.js';
import type { CallbackKind } from './generate.js';
import type { TimedSteps } from './steps.js';
import { objectName } from './units.js';

export interface UnitVerdict {
  readonly compiled: CompiledUnit;
  /** vmlinux or the module's name. */
  readonly object: string;
  /** The unit's verdicts after every step (diff, notrace carry, the author's records). */
  readonly diff: CarriedDiff;
}

export interface Verdicts {
  readonly units: readonly UnitVerdict[];
  /** Each patched object's callbacks, by kind (one of each kind per object). */
  readonly callbacks: ReadonlyMap<string, Partial<Record<CallbackKind, CallbackRecord>>>;
}

/**
 * Struct layouts that differ between a unit's orig and patched debug info, as refusals. With `cacheDir`,
 * what pahole printed for an object file is kept there, keyed by the sha256 of the file's bytes (read
 * anyway, to skip identical objects): each catch-up copies its objects into a new build directory, so a
 * key of path, inode and mtime never matched again, and a warm catch-up ran pahole on its thousand units
 * every time (55 s); by content, it reads them from the cache.
 */
export async function layoutRefusals(units: readonly CompiledUnit[], update?: (detail: string) => void, cacheDir?: string): Promise<Refusal[]> {
  let done = 0;
  // One pahole per core: a catch-up compares thousands of units.
  const perUnit = await mapPool(units, cpus().length, async (u) => {
    const bytes = { orig: u.bytes.orig, patched: u.bytes.patched };
    if (Buffer.compare(bytes.orig, bytes.patched) === 0) return []; // the same object, debug info and all (not counted)
    const layout = async (side: Side) => {
      const file = u.files[side];
      const key = cacheDir ? createHash('sha256').update(bytes[side]).digest('hex') : undefined;
      const cached = key ? join(cacheDir!, key.slice(0, 2), `${key}.json`) : undefined;
      if (cached && existsSync(cached)) return new Map<string, string>(JSON.parse(readFileSync(cached, 'utf8')) as [string, string][]);
      const r = await run(['pahole', '--anon_include', file], { maxCapture: 64 << 20 });
      if (r.code !== 0) throw new SutureError('environment', `pahole could not read the debug info of ${u.object}`, { details: r.stderr.trim(), hint: 'install dwarves (scripts/setup.sh)' });
      const parsed = parsePahole(r.stdout);
      if (cached) writeAtomic(cached, JSON.stringify([...parsed]), 0o644, { mkdir: true });
      return parsed;
    };
    const changed = changedLayouts(await layout('orig'), await layout('patched')).map((c) => changedStructLayout(u.unit, c.type, c.before, c.after));
    if (++done % 100 === 0) update?.(`${done} of ${units.length} units`);
    return changed;
  });
  return perUnit.flat();
}

/** The callbacks of every unit, by object; two of one kind for one object are refused. */
function callbacksByObject(units: readonly { object: string; callbacks: readonly CallbackRecord[] }[]): Map<string, Partial<Record<CallbackKind, CallbackRecord>>> {
  const out = new Map<string, Partial<Record<CallbackKind, CallbackRecord>>>();
  for (const { object, callbacks } of units) {
    for (const c of callbacks) {
      const mine = out.get(object) ?? {};
      const prev = mine[c.kind];
      if (prev) {
        throw new SutureError('usage', `two ${c.kind} callbacks for ${object}: ${prev.function} (${prev.unit}) and ${c.function} (${c.unit})`, {
          hint: `the kernel's klp_object has one callback of each kind: keep one and call the other from it`,
        });
      }
      out.set(object, { ...mine, [c.kind]: c });
    }
  }
  return out;
}

/** Layouts, diff, carry and the author's records for every unit (steps 'layouts' and 'diff'); refusals stop here. */
export async function unitVerdicts(units: readonly CompiledUnit[], btf: BtfStructs, steps: Pick<TimedSteps, 'step' | 'warn'>): Promise<Verdicts> {
  const { verdicts, refusals } = await judgeUnits(units, btf, steps);
  refuse(refusals, 'see Documentation/livepatch/shadow-vars.rst and callbacks.rst for what to do instead');
  return verdicts;
}

/**
 * The same stages, every refusal returned instead of thrown (each names its
 * unit in `file`): catch-up judges many fixes at once and leaves out only
 * the ones refused.
 */
export async function judgeUnits(
  units: readonly CompiledUnit[],
  btf: BtfStructs,
  { step, warn }: Pick<TimedSteps, 'step' | 'warn'>,
  opts: { layoutsWhereCodeChanged?: boolean; layoutCache?: string } = {},
): Promise<{ verdicts: Verdicts; refusals: Refusal[] }> {
  const compared = await step('diff', 'Comparing orig and patched objects', async (update) => {
    const out: { u: CompiledUnit; diff: ReturnType<typeof diffObjects> }[] = [];
    for (const [i, u] of units.entries()) {
      out.push({ u, diff: diffObjects(u.parse('orig'), u.parse('patched'), { unit: u.unit, structSize: (s) => btf.structSize(s) }) });
      if (units.length > 100 && (i + 1) % 100 === 0) {
        update(`${i + 1} of ${units.length} units`);
        await new Promise((r) => setImmediate(r)); // let the progress line out
      }
    }
    return out;
  });
  const authored = compared.map(({ u, diff }) => {
    const object = objectName(u.home);
    const carried = carryUntraceable(diff, u.index('orig'), u.index('patched'));
    const a = applyAuthorRecords(carried, readAuthorRecords(u.index('patched'), u.unit), u.index('patched'), object);
    for (const w of a.warnings) warn(w);
    // The parsed objects go now (the later stages index again the few units they use): a catch-up holds
    // thousands of units, and every unit's two indexes at once do not fit in node's heap.
    u.releaseIndexes();
    return { compiled: u, object, diff: a.diff, callbacks: a.callbacks };
  });
  // With layoutsWhereCodeChanged (catch-up, thousands of units), only units whose code or data differ: a
  // struct whose layout changes in a unit that compiles to the same code changes nothing that unit runs.
  const changedCode = (d: CarriedDiff) => d.functions.length > 0 || d.newData.length > 0 || d.changedConstants.length > 0;
  const layoutUnits = opts.layoutsWhereCodeChanged ? authored.filter((a) => changedCode(a.diff)).map((a) => a.compiled) : units;
  const layouts = await step('layouts', `Comparing struct layouts (pahole over the debug info${layoutUnits.length < units.length ? `, the ${layoutUnits.length} units whose code changes` : ''})`, (update) =>
    layoutRefusals(layoutUnits, layoutUnits.length > 100 ? update : undefined, opts.layoutCache),
  );
  const callbacks = callbacksByObject(authored);
  return {
    verdicts: { units: authored.map(({ compiled, object, diff }) => ({ compiled, object, diff })), callbacks },
    refusals: [...layouts, ...authored.flatMap((d) => d.diff.refusals)],
  };
}
