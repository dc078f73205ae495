// SPDX-License-Identifier: GPL-2.0-only
/**
 * Check a livepatch module file the way the kernel will read it
 * (kernel/module/main.c, kernel/livepatch/core.c), from the bytes alone:
 * used on every module suture writes, before it is reported as built.
 */
import { ElfView, SHF_ALLOC, SHN_LIVEPATCH, SHN_UNDEF, STT_SECTION, parseModinfo, stType } from '../../elf/mod.js';
import { SutureError } from '../../util/errors.js';
import { KLP_RELA_FLAGS } from './plan.js';

const KLP_SYM = /^\.klp\.sym\.([^.]{1,55})\.([^,]{1,511}),(\d+)$/;
const KLP_RELA = /^\.klp\.rela\.([^.]{1,55})\./;

export interface LivepatchCheck {
  /** klp relocation sections: name, object, entries. */
  readonly sections: readonly { readonly name: string; readonly object: string; readonly entries: number }[];
  /** klp symbols: object, name, sympos. */
  readonly symbols: readonly { readonly object: string; readonly name: string; readonly sympos: number }[];
  /** Undefined symbols left for the module loader (exported by vmlinux). */
  readonly undefined: readonly string[];
}

/**
 * Every rule a livepatch module must meet; throws SutureError 'internal'
 * listing each broken rule (suture wrote the file, so a broken rule is a bug).
 * `exported(name)` says whether vmlinux exports a name.
 */
export function checkLivepatchModule(bytes: Uint8Array, file: string, exported: (name: string) => boolean): LivepatchCheck {
  const view = ElfView.parse(bytes, { file });
  const problems: string[] = [];
  const modinfo = view.findSection('.modinfo');
  if (!modinfo || !parseModinfo(view.data(modinfo)).some((e) => e.key === 'livepatch')) problems.push('.modinfo has no livepatch= entry');
  const symtabs = view.sections.filter((s) => s.type === 2);
  if (symtabs.length !== 1) problems.push(`${symtabs.length} symbol tables (a module has one)`);
  const symtab = symtabs[0]!;
  const syms = view.symbols(symtab);
  const symbols: { object: string; name: string; sympos: number }[] = [];
  const undef: string[] = [];
  for (const s of syms) {
    if (s.index === 0) continue;
    const m = KLP_SYM.exec(s.name);
    if (s.rawShndx === SHN_LIVEPATCH) {
      if (!m) problems.push(`symbol ${s.index} '${s.name}' is SHN_LIVEPATCH but not named .klp.sym.<object>.<name>,<sympos>`);
      else symbols.push({ object: m[1]!, name: m[2]!, sympos: Number(m[3]) });
    } else if (m) {
      problems.push(`symbol ${s.index} '${s.name}' is named as a klp symbol but its st_shndx is ${s.rawShndx}, not SHN_LIVEPATCH (0xff20)`);
    } else if (s.rawShndx === SHN_UNDEF && s.name !== '' && stType(s.info) !== STT_SECTION) {
      undef.push(s.name);
      if (!exported(s.name)) problems.push(`undefined symbol '${s.name}' is not exported by vmlinux: the loader cannot resolve it`);
    }
  }
  const sections: { name: string; object: string; entries: number }[] = [];
  for (const sec of view.sections) {
    if (sec.type !== 4 && sec.type !== 9) continue;
    const target = view.sections[sec.info];
    const isKlp = sec.name.startsWith('.klp.rela.');
    const rels = view.relocations(sec);
    if (isKlp) {
      const m = KLP_RELA.exec(sec.name);
      const object = m?.[1] ?? '?';
      if (!m) problems.push(`${sec.name}: not named .klp.rela.<object>.<section>`);
      if (sec.type !== 4) problems.push(`${sec.name}: not SHT_RELA`);
      if (sec.flags !== KLP_RELA_FLAGS) problems.push(`${sec.name}: flags 0x${sec.flags.toString(16)}, expected 0x${KLP_RELA_FLAGS.toString(16)}`);
      if (sec.link !== symtab.index) problems.push(`${sec.name}: sh_link ${sec.link} is not the symtab (${symtab.index})`);
      if (!target || (target.flags & SHF_ALLOC) === 0n) problems.push(`${sec.name}: sh_info ${sec.info} is not an allocated section`);
      else if (!sec.name.endsWith(`.${target.name}`) && sec.name !== `.klp.rela.${object}.${target.name}`) {
        problems.push(`${sec.name}: applies to ${target.name}, but its name says otherwise`);
      }
      for (const r of rels) {
        const s = syms[r.symbol]!;
        const sm = KLP_SYM.exec(s.name);
        if (s.rawShndx !== SHN_LIVEPATCH || !sm) problems.push(`${sec.name}: entry at 0x${r.offset.toString(16)} names '${s.name}', not a klp symbol`);
        // kernel/livepatch/core.c klp_resolve_symbols: a module's section may not name vmlinux symbols; a
        // vmlinux section is applied when the patch loads, when no module symbol is sure to be there.
        else if (object === 'vmlinux' ? sm[1] !== 'vmlinux' : sm[1] === 'vmlinux') {
          problems.push(`${sec.name}: entry at 0x${r.offset.toString(16)} names ${s.name}, ${object === 'vmlinux' ? 'a module symbol from the vmlinux section' : 'a vmlinux symbol from a module section (the kernel refuses it)'}`);
        }
      }
      sections.push({ name: sec.name, object, entries: rels.length });
    } else if (target && (target.flags & SHF_ALLOC) !== 0n) {
      for (const r of rels) {
        if (syms[r.symbol]?.rawShndx === SHN_LIVEPATCH) {
          problems.push(`${sec.name}: entry at 0x${r.offset.toString(16)} names klp symbol '${syms[r.symbol]!.name}' in an ordinary relocation section`);
        }
      }
    }
  }
  if (problems.length) {
    throw new SutureError('internal', `${file} breaks ${problems.length} livepatch module rule(s)`, {
      details: problems.join('\n'),
      hint: 'this is a bug in suture; please report it with the fix that produced it',
    });
  }
  return { sections, symbols, undefined: undef };
}
