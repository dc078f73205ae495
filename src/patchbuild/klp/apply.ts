// SPDX-License-Identifier: GPL-2.0-only
/**
 * Applying a klp plan to the object model (in memory; writing is
 * convert.ts's job). The symbols keep their place in the symbol table, so
 * once the file is written their indices, which the klp relocation sections
 * hold, never change again.
 */
import {
  DataSection,
  ElfObject,
  RelocationSection,
  SHF_ALLOC,
  SHF_INFO_LINK,
  SHF_RELA_LIVEPATCH,
  SHN_LIVEPATCH,
  parseModinfo,
} from '../../elf/mod.js';
import { SutureError } from '../../util/errors.js';
import { MODVERSION_INFO_SIZE, type KlpPlan } from './plan.js';

export interface KlpApplied {
  /** The klp relocation sections added, in order. */
  readonly sections: readonly RelocationSection[];
  /** Ordinary relocation sections left empty and removed. */
  readonly removed: readonly string[];
}

export function applyKlp(obj: ElfObject, plan: KlpPlan): KlpApplied {
  for (const r of plan.renames) {
    r.symbol.name = r.to;
    r.symbol.nameOrigin = null;
    r.symbol.section = SHN_LIVEPATCH;
  }
  const added: RelocationSection[] = [];
  const touched = new Set<RelocationSection>();
  for (const m of plan.moves) {
    const moved = new Set(m.relocations);
    m.from.relocations = m.from.relocations.filter((r) => !moved.has(r));
    touched.add(m.from);
    const klp = new RelocationSection(m.sectionName, m.from.symtab, m.target);
    klp.flags = SHF_ALLOC | SHF_INFO_LINK | SHF_RELA_LIVEPATCH;
    klp.relocations = [...m.relocations];
    const after = added.filter((s) => obj.indexOf(s) > obj.indexOf(m.from)).pop() ?? m.from;
    obj.addSection(klp, after);
    added.push(klp);
  }
  const removed: string[] = [];
  for (const sec of touched) {
    if (sec.relocationCount === 0) {
      obj.sections.splice(obj.sections.indexOf(sec), 1);
      removed.push(sec.name);
    }
  }
  if (plan.versionsDropped.length) dropVersions(obj, new Set(plan.versionsDropped));
  if (plan.dependsDropped.length || plan.importNamespaces.length) editModinfo(obj, plan);
  // Any signature no longer matches the bytes.
  obj.trailer = new Uint8Array(0);
  return { sections: added, removed };
}

function dropVersions(obj: ElfObject, names: ReadonlySet<string>): void {
  const sec = obj.section('__versions');
  if (!(sec instanceof DataSection)) return;
  const keep: Uint8Array[] = [];
  for (let at = 0; at + MODVERSION_INFO_SIZE <= sec.data.length; at += MODVERSION_INFO_SIZE) {
    const entry = sec.data.subarray(at, at + MODVERSION_INFO_SIZE);
    const raw = entry.subarray(8);
    const end = raw.indexOf(0);
    const name = Buffer.from(end < 0 ? raw : raw.subarray(0, end)).toString('latin1');
    if (!names.has(name)) keep.push(entry);
  }
  const data = new Uint8Array(keep.length * MODVERSION_INFO_SIZE);
  keep.forEach((e, i) => data.set(e, i * MODVERSION_INFO_SIZE));
  sec.data = data;
  const sym = obj.symtab?.symbols.find((s) => s.section === sec && s.name === '____versions');
  if (sym) sym.size = BigInt(data.length);
}

/**
 * Edit `.modinfo` without moving any string (symbols point into it): a
 * dropped depends= module is overwritten with NULs, which the loader's
 * string walk skips; new import_ns= strings are appended at the end.
 */
function editModinfo(obj: ElfObject, plan: KlpPlan): void {
  const sec = obj.section('.modinfo');
  if (!(sec instanceof DataSection)) {
    throw new SutureError('invalid-input', `${plan.file} has no .modinfo section`, { hint: 'give the module kbuild linked (with modpost)' });
  }
  const data = new Uint8Array(sec.data);
  const text = Buffer.from(data).toString('latin1');
  const at = text.indexOf('depends=');
  if (plan.dependsDropped.length && at >= 0 && (at === 0 || data[at - 1] === 0)) {
    const end = text.indexOf('\0', at);
    const value = text.slice(at + 'depends='.length, end < 0 ? undefined : end);
    const drop = new Set(plan.dependsDropped);
    const kept = value.split(',').filter((m) => m && !drop.has(m)).join(',');
    const replacement = Buffer.from(`depends=${kept}`, 'latin1');
    data.fill(0, at, at + 'depends='.length + value.length);
    data.set(replacement, at);
  }
  const extra = plan.importNamespaces.map((ns) => `import_ns=${ns}\0`).join('');
  const out = new Uint8Array(data.length + extra.length);
  out.set(data, 0);
  out.set(Buffer.from(extra, 'latin1'), data.length);
  sec.data = out;
  // Sanity: still parseable, same keys plus the new ones.
  parseModinfo(out);
}
