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
