// SPDX-License-Identifier: GPL-2.0-only
/**
 * What a patch's author tells suture from inside the patched source, read
 * from the patched object of each unit (pure: an ObjectIndex in, records out):
 *
 * - callbacks: `.discard.suture.callback.<kind>` holds one pointer per
 *   callback (KPATCH_*_CALLBACK of kpatch-macros.h, SUTURE_*_CALLBACK of
 *   suture.h), relocated to the function;
 * - kpatch's directives: `.discard.suture.kpatch` holds NUL-terminated
 *   records (`ignore-function f`, `ignore-section .name`, `force-unsafe f`);
 * - suture.h's callback records in `.discard.suture` name their object
 *   (`suture callback pre_patch vmlinux f`): in a patch, it must be the
 *   object of the unit the line is in.
 *
 * The linker drops `.discard*`: nothing of this reaches the module.
 */
import { DataSection, STT_FUNC, STT_SECTION } from '../elf/mod.js';
import { SutureError } from '../util/errors.js';
import { bytesOf, type ObjectIndex } from './diff/object-index.js';
import { CALLBACK_KINDS, type CallbackKind } from './generate.js';
import type { CarriedDiff } from './diff/carry.js';

export interface CallbackRecord {
  readonly kind: CallbackKind;
  /** The function, as the patched object names it. */
  readonly function: string;
  readonly unit: string;
}

export interface AuthorRecords {
  readonly callbacks: CallbackRecord[];
  readonly ignoreFunctions: string[];
  readonly ignoreSections: string[];
  readonly forceUnsafe: string[];
  /** Objects named by suture.h callback lines (each must be the unit's object). */
  readonly namedObjects: { kind: CallbackKind; object: string; function: string }[];
}

function strings(data: Uint8Array): string[] {
  return Buffer.from(data).toString('latin1').split('\0').filter(Boolean);
}

export function readAuthorRecords(idx: ObjectIndex, unit: string): AuthorRecords {
  const out: AuthorRecords = { callbacks: [], ignoreFunctions: [], ignoreSections: [], forceUnsafe: [], namedObjects: [] };
  for (const sec of idx.obj.sections) {
    const cb = /^\.discard\.suture\.callback\.(\w+)$/.exec(sec.name);
    if (cb) {
      const kind = cb[1] as CallbackKind;
      if (!CALLBACK_KINDS.includes(kind)) throw new SutureError('usage', `${unit}: unknown callback section ${sec.name}`, { hint: `callbacks are ${CALLBACK_KINDS.join(', ')}` });
      for (const r of idx.relocationsOf(sec)) {
        const s = r.symbol;
        if (!s) continue;
        let fn: string | undefined;
        if (s.type === STT_FUNC) fn = s.name;
        else if (s.type === STT_SECTION && typeof s.section !== 'number') fn = idx.symbolAt(s.section, Number(r.addend))?.name;
        if (!fn || !idx.functions.has(fn)) {
          throw new SutureError('usage', `${unit}: a ${kind} callback does not point at a function defined in ${unit}`, {
            hint: 'define the callback function in the same file as the KPATCH_/SUTURE_ callback line',
          });
        }
        out.callbacks.push({ kind, function: fn, unit });
      }
      continue;
    }
    if (!(sec instanceof DataSection)) continue;
    if (sec.name === '.discard.suture.kpatch') {
      for (const rec of strings(bytesOf(sec))) {
        const m = /^(ignore-function|ignore-section|force-unsafe) (.+)$/.exec(rec);
        if (!m) continue;
        if (m[1] === 'ignore-function') out.ignoreFunctions.push(m[2]!);
        else if (m[1] === 'ignore-section') out.ignoreSections.push(m[2]!);
        else out.forceUnsafe.push(m[2]!);
      }
    } else if (sec.name === '.discard.suture') {
      for (const rec of strings(bytesOf(sec))) {
        const m = /^suture callback (\w+) (\S+) (\S+)$/.exec(rec);
        if (m) out.namedObjects.push({ kind: m[1] as CallbackKind, object: m[2]!, function: m[3]! });
      }
    }
  }
  return out;
}

export interface AuthoredDiff {
  /** The unit's diff with KPATCH_IGNORE_FUNCTION/SECTION applied and callbacks named as such. */
  readonly diff: CarriedDiff;
  /** The unit's callbacks, by kind (checked: each a new function of the patch). */
  readonly callbacks: readonly CallbackRecord[];
  readonly warnings: readonly string[];
}

/**
 * Apply what the author wrote to a unit's diff (a new diff; the input is not
 * changed): ignored functions and sections leave the patch with their
 * refusals; every callback must be a new function of the patch and names the
 * unit's own object.
 */
export function applyAuthorRecords(diff: CarriedDiff, rec: AuthorRecords, patched: ObjectIndex, object: string): AuthoredDiff {
  const unit = diff.unit;
  const warnings: string[] = [];
  for (const n of rec.namedObjects) {
    if (n.object.replace(/-/g, '_') !== object) {
      throw new SutureError('usage', `${unit}: the ${n.kind} callback ${n.function} names ${n.object}, but ${unit} is built into ${object}`, {
        hint: `a callback belongs to the object of the file it is written in: name ${object}, or move it to a file of ${n.object}`,
      });
    }
  }
  let functions = diff.functions;
  let refusals = diff.refusals;
  for (const f of rec.ignoreFunctions) {
    if (functions.some((v) => v.name === f)) {
      functions = functions.filter((v) => v.name !== f);
      refusals = refusals.filter((r) => r.symbol !== f);
      warnings.push(`${unit}: KPATCH_IGNORE_FUNCTION(${f}): its change is left out of the patch`);
    } else warnings.push(`${unit}: KPATCH_IGNORE_FUNCTION(${f}): ${f} did not change (is the line needed?)`);
  }
  for (const sec of rec.ignoreSections) {
    const before = refusals.length + functions.length;
    refusals = refusals.filter((r) => r.symbol !== sec);
    functions = functions.filter((v) => patched.functions.get(v.name)?.section.name !== sec);
    warnings.push(`${unit}: KPATCH_IGNORE_SECTION("${sec}"): ${before - refusals.length - functions.length ? 'its changes are left out of the patch' : 'nothing in it changed (is the line needed?)'}`);
  }
  for (const f of rec.forceUnsafe) {
    warnings.push(`${unit}: KPATCH_FORCE_UNSAFE(${f}) has no effect: the kernel's livepatch has no per-function force, so ${f} is switched by the consistency model like every patched function (kpatch-build ignores it for livepatch too)`);
  }
  for (const c of rec.callbacks) {
    const v = functions.find((x) => x.name === c.function);
    if (!v || v.status !== 'new') {
      throw new SutureError('usage', `${c.unit}: the ${c.kind} callback ${c.function} is not a new function of the patch`, {
        hint: 'write the callback as a new function in the patch (give it a name the file does not already use)',
      });
    }
    functions = functions.map((x) => (x === v ? { ...x, reasons: [...x.reasons, `the ${c.kind} callback of ${object}`] } : x));
  }
  return { diff: { ...diff, functions, refusals }, callbacks: rec.callbacks, warnings };
}
