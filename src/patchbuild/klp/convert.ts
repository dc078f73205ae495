// SPDX-License-Identifier: GPL-2.0-only
/** The one step that writes: read a linked module, plan, apply, write atomically, check the result. */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { ElfObject, writeElf } from '../../elf/mod.js';
import { fsError } from '../../util/errors.js';
import { applyKlp } from './apply.js';
import { checkLivepatchModule, type LivepatchCheck } from './check.js';
import { planKlp, type KlpPlan, type SymbolDisposition } from './plan.js';

export interface KlpConversion {
  readonly plan: KlpPlan;
  readonly check: LivepatchCheck;
  /** Names of the klp relocation sections written. */
  readonly sections: readonly string[];
  /** Ordinary relocation sections that became empty and were removed. */
  readonly removed: readonly string[];
  readonly bytes: number;
}

/**
 * Convert the module at `input` into a livepatch module at `output` (they may
 * be the same path). `dispose` resolves each undefined symbol; `exported`
 * says whether vmlinux exports a name (for the final check).
 */
export function convertModuleFile(
  input: string,
  output: string,
  dispose: (name: string) => SymbolDisposition | undefined,
  exported: (name: string) => boolean,
): KlpConversion {
  let bytes: Buffer;
  try {
    bytes = readFileSync(input);
  } catch (e) {
    throw fsError(e, 'reading the linked module', input);
  }
  const obj = ElfObject.parse(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), { file: input });
  const plan = planKlp(obj, dispose);
  const applied = applyKlp(obj, plan);
  const out = writeElf(obj);
  const check = checkLivepatchModule(out, output, exported);
  const tmp = `${output}.tmp`;
  try {
    writeFileSync(tmp, out);
    renameSync(tmp, output);
  } catch (e) {
    throw fsError(e, 'writing the livepatch module', output);
  }
  return { plan, check, sections: applied.sections.map((s) => s.name), removed: applied.removed, bytes: out.length };
}
