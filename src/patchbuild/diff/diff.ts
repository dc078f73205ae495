// SPDX-License-Identifier: GPL-2.0-only
/**
 * Diff one translation unit: the object compiled from the original source
 * against the object compiled from the patched source. Pure: objects in,
 * verdict out (changed and new functions, new data, refusals with reasons).
 */
import type { ElfObject } from '../../elf/mod.js';
import { Identities, referencedSymbol, unnumbered } from './identity.js';
import { ObjectIndex, bytesOf, sizeOf, type IndexedSymbol } from './object-index.js';
import { entrySize, specialEntries } from './special-entries.js';
import { changedData, changedInitOrExit, dataSizeChanged, isIgnoredSection, isInitOrExit, isReadOnly, isSpecialStatic, kthreadMainLoop, parentOfPiece, traceable, unsupportedSection, type Refusal } from './rules.js';

export type { Refusal } from './rules.js';
import { SPECIAL_SECTIONS, UNSUPPORTED_SECTIONS } from './special-sections.js';

/** The verdict on one function: a value (the stages after the diff make new ones, never edit it). */
export interface FunctionVerdict {
  readonly name: string;
  /** changed: exists in both and differs; new: only in the patched object. */
  readonly status: 'changed' | 'new';
  /** Why it is in the patch. */
  readonly reasons: readonly string[];
  /** Whether ftrace can redirect the original (a `call __fentry__` first). */
  readonly traceable: boolean;
  /** For a changed function: the first byte that differs (offset in the function), if the bytes differ. */
  readonly firstDifference?: number;
}

export interface ObjectDiff {
  /** The translation unit (source path). */
  readonly unit: string;
  readonly functions: readonly FunctionVerdict[];
  /** Data objects only in the patched object (carried by the patch). */
  readonly newData: readonly string[];
  /** Read-only data that changed (carried as a new copy; its readers are patched). */
  readonly changedConstants: readonly string[];
  readonly refusals: readonly Refusal[];
  /** Functions compared and found equal. */
  readonly unchanged: number;
}

type Building = { -readonly [K in keyof FunctionVerdict]: K extends 'reasons' ? string[] : FunctionVerdict[K] };

export interface DiffContext {
  unit: string;
  /** Entry size of a special section's struct, from the kernel's BTF. */
  structSize(name: string): number | undefined;
}

/** Correlate by exact name, then by name with gcc's numbering ignored when that is unique on both sides. */
function correlate(orig: Map<string, IndexedSymbol>, patched: Map<string, IndexedSymbol>): Map<string, string> {
  const twin = new Map<string, string>(); // patched name → orig name
  const byMangled = (m: Map<string, IndexedSymbol>) => {
    const r = new Map<string, string[]>();
    for (const n of m.keys()) r.set(unnumbered(n), [...(r.get(unnumbered(n)) ?? []), n]);
    return r;
  };
  for (const n of patched.keys()) if (orig.has(n)) twin.set(n, n);
  const om = byMangled(orig);
  const pm = byMangled(patched);
  for (const [m, names] of pm) {
    const o = om.get(m);
    if (names.length === 1 && o?.length === 1 && !twin.has(names[0]!) && ![...twin.values()].includes(o[0]!)) twin.set(names[0]!, o[0]!);
  }
  return twin;
}

/** Entries of compared special sections, grouped by the function they belong to. */
function specialEntriesByFunction(idx: ObjectIndex, ids: Identities, ctx: DiffContext): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const spec of SPECIAL_SECTIONS) {
    if (!spec.compare) continue;
    const sec = idx.obj.section(spec.name);
    if (!sec) continue;
    for (const e of specialEntries(idx, spec, entrySize(spec, (n) => ctx.structSize(n)))) {
      if (!e.owner) continue;
      const p = ids.rangePrint(sec, e.offset, e.size);
      const list = out.get(e.owner.name) ?? [];
      list.push(`${spec.name}:${p.bytes}:${p.relocs.join(',')}`);
      out.set(e.owner.name, list);
    }
  }
  return out;
}

/** Functions of an object that reference a symbol (by name) from their code. */
function referencesTo(idx: ObjectIndex, target: string): string[] {
  const out: string[] = [];
  for (const f of idx.functions.values()) {
    const refs = idx.relocationsIn(f.section, f.offset, Math.max(f.size, 1));
    const hit = refs.some((r) => {
      const s = r.symbol;
      if (!s) return false;
      if (s.name === target) return true;
      if (typeof s.section === 'number' || s.name) return false;
      return referencedSymbol(idx, s.section, Number(s.value), r)?.sym.name === target;
    });
    if (hit) out.push(f.name);
  }
  return out;
}

/** What starts a kernel thread on a function (kthread_run() and kthread_create() expand to these). */
const KTHREAD_CREATORS = new Set(['kthread_create_on_node', 'kthread_create_on_cpu', '__kthread_create_on_node']);

/**
 * The function of the unit that starts a kernel thread running `name`: one that takes `name`'s address
 * (a reference that is not a call or jump to it) and calls a kthread creator.
 */
function threadStarter(idx: ObjectIndex, name: string): { starter: string; creator: string } | undefined {
  if (parentOfPiece(name)) return undefined; // a .cold or .part piece is entered from its parent, never started
  for (const g of idx.functions.values()) {
    if (g.name === name) continue;
    const rels = idx.relocationsIn(g.section, g.offset, Math.max(g.size, 1));
    const creator = rels.map((r) => r.symbol?.name).find((n): n is string => !!n && KTHREAD_CREATORS.has(n));
    if (!creator) continue;
    const code = bytesOf(g.section);
    const takesAddress = rels.some((r) => {
      const s = r.symbol;
      if (!s) return false;
      const target = s.name === name ? name : typeof s.section !== 'number' ? referencedSymbol(idx, s.section, Number(s.value), r)?.sym.name : undefined;
      if (target !== name) return false;
      const at = Number(r.offset);
      const op = code[at - 1]!;
      // call/jmp rel32 and jcc rel32 (0f 8x) go to it; only an address handed over starts a thread.
      return op !== 0xe8 && op !== 0xe9 && !(code[at - 2] === 0x0f && op >= 0x80 && op <= 0x8f);
    });
    if (takesAddress) return { starter: g.name, creator };
  }
  return undefined;
}

export function diffObjects(orig: ElfObject, patched: ElfObject, ctx: DiffContext): ObjectDiff {
  const o = new ObjectIndex(orig, `${ctx.unit} (orig)`);
  const p = new ObjectIndex(patched, `${ctx.unit} (patched)`);
  const oid = new Identities(o);
  const pid = new Identities(p);
  const refusals: Refusal[] = [];
  const verdicts = new Map<string, Building>();

  // Functions.
  const ftwin = correlate(o.functions, p.functions);
  const oSpecial = specialEntriesByFunction(o, oid, ctx);
  const pSpecial = specialEntriesByFunction(p, pid, ctx);
  let unchanged = 0;
  for (const [name, pf] of p.functions) {
    if (isIgnoredSection(pf.section)) continue;
    const origName = ftwin.get(name);
    if (!origName) {
      verdicts.set(name, { name, status: 'new', reasons: ['new function'], traceable: true });
      continue;
    }
    const of = o.functions.get(origName)!;
    const a = oid.rangePrint(of.section, of.offset, of.size);
    const b = pid.rangePrint(pf.section, pf.offset, pf.size);
    const reasons: string[] = [];
    let firstDifference: number | undefined;
    if (a.bytes !== b.bytes) {
      reasons.push(of.size === pf.size ? 'code differs' : `code differs (${of.size} → ${pf.size} bytes)`);
      const ab = bytesOf(of.section).subarray(of.offset, of.offset + of.size);
      const bb = bytesOf(pf.section).subarray(pf.offset, pf.offset + pf.size);
      firstDifference = 0;
      while (firstDifference < Math.min(ab.length, bb.length) && ab[firstDifference] === bb[firstDifference]) firstDifference++;
    } else if (a.relocs.join('\n') !== b.relocs.join('\n')) {
      const diff = b.relocs.find((r, i) => r !== a.relocs[i]) ?? a.relocs.find((r, i) => r !== b.relocs[i]);
      reasons.push(`references differ (${diff?.split(':').slice(2).join(':')})`);
    }
    if ((oSpecial.get(origName) ?? []).join('\n') !== (pSpecial.get(name) ?? []).join('\n')) {
      reasons.push('its special-section entries differ (e.g. a WARN flag or a jump label)');
    }
    if (!reasons.length) {
      unchanged++;
      continue;
    }
    verdicts.set(name, { name, status: 'changed', reasons, traceable: traceable(o, of), firstDifference });
    if (isInitOrExit(of.section)) refusals.push(changedInitOrExit(ctx.unit, name, of.section.name));
    const thread = threadStarter(o, origName);
    if (thread) refusals.push(kthreadMainLoop(ctx.unit, name, thread.starter, thread.creator));
  }

  // Pieces (foo.cold, foo.part.0) have no ftrace call: their parent carries the change.
  for (const v of [...verdicts.values()]) {
    const parent = parentOfPiece(v.name);
    if (v.status === 'changed' && parent && p.functions.has(parent) && !verdicts.has(parent)) {
      verdicts.set(parent, { name: parent, status: 'changed', reasons: [`its piece ${v.name} changed`], traceable: true });
    }
  }

  // Data.
  const dtwin = correlate(
    new Map([...o.data].filter(([n, s]) => !isSpecialStatic(n) && !isIgnoredSection(s.section))),
    new Map([...p.data].filter(([n, s]) => !isSpecialStatic(n) && !isIgnoredSection(s.section))),
  );
  const newData: string[] = [];
  const changedConstants: string[] = [];
  for (const [name, pd] of p.data) {
    if (isIgnoredSection(pd.section) || isSpecialStatic(name)) continue;
    const origName = dtwin.get(name);
    if (!origName) {
      newData.push(name);
      continue;
    }
    const od = o.data.get(origName)!;
    if (od.size !== pd.size) {
      refusals.push(dataSizeChanged(ctx.unit, name, od.size, pd.size));
      continue;
    }
    const a = oid.rangePrint(od.section, od.offset, od.size);
    const b = pid.rangePrint(pd.section, pd.offset, pd.size);
    if (a.bytes === b.bytes && a.relocs.join('\n') === b.relocs.join('\n')) continue;
    if (isReadOnly(pd)) {
      changedConstants.push(name);
      for (const reader of referencesTo(p, name)) {
        const v = verdicts.get(reader);
        if (v) v.reasons.push(`reads changed constant ${name}`);
        else if (ftwin.has(reader)) {
          const of = o.functions.get(ftwin.get(reader)!)!;
          verdicts.set(reader, { name: reader, status: 'changed', reasons: [`reads changed constant ${name}`], traceable: traceable(o, of) });
        }
      }
      continue;
    }
    refusals.push(changedData(ctx.unit, name, od.section.name));
  }

  // Changed sections a livepatch cannot carry.
  for (const sec of patched.sections) {
    const rule = UNSUPPORTED_SECTIONS.find((u) => u.match.test(sec.name));
    if (!rule || /^\.rela/.test(sec.name)) continue;
    const before = orig.section(sec.name);
    const same = before && Buffer.from(bytesOf(before)).equals(Buffer.from(bytesOf(sec))) && sizeOf(before) === sizeOf(sec);
    if (same) continue;
    if (isInitOrExit(sec) && [...verdicts.values()].some((v) => v.status === 'changed' && refusals.some((r) => r.symbol === v.name))) continue;
    if (!before && isInitOrExit(sec)) continue; // new init code of its own is never run by a livepatch
    refusals.push(unsupportedSection(ctx.unit, sec.name, rule));
  }

  return {
    unit: ctx.unit,
    functions: [...verdicts.values()].sort((a, b) => a.name.localeCompare(b.name)),
    newData,
    changedConstants,
    refusals,
    unchanged,
  };
}

