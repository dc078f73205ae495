// SPDX-License-Identifier: GPL-2.0-only
/**
 * x86 runtime constants in carried code (6.10+, arch/x86/include/asm/runtime-const.h).
 *
 * vmlinux code compiled for runtime_const_ptr(USER_PTR_MAX) loads a
 * placeholder immediate, `movabs $0x0123456789abcdef, %reg`, and lists the
 * immediate in `runtime_ptr_USER_PTR_MAX`; runtime_const_init() writes the
 * real value over it once, at boot, in vmlinux only. A copy of such a function
 * in a livepatch module would keep the placeholder: valid_user_address() would
 * then accept every address below 0x0123456789abcdef, kernel addresses
 * included. Module code is compiled the other way (`runtime_const_ptr(sym)` is
 * plain `sym`: a load of the variable), so the carried copy is rewritten to do
 * exactly that: the 10-byte `movabs $imm64, %reg` becomes the 7-byte
 * `mov sym(%rip), %reg` plus a 3-byte NOP, with a PC32 relocation to `sym`.
 * Same length, same register, no flags or stack touched: ORC and every other
 * table stay valid. The variable holds the value the boot wrote everywhere
 * else, and never changes after boot.
 *
 * `runtime_shift_*` sites (`shrl $imm8, %reg`, d_hash_shift) have no such
 * same-length form (a shift by a memory operand needs %cl), so a carried
 * function with one is refused, naming it.
 */
import { DataSection, ElfObject, SHF_INFO_LINK, ElfSymbol, Relocation, RelocationSection, SHN_UNDEF, STB_GLOBAL, STT_NOTYPE, R_X86_64_PC32, type Section } from '../../elf/mod.js';
import { SutureError } from '../../util/errors.js';
import type { ObjectIndex } from './object-index.js';
import { specialEntries } from './special-entries.js';
import { RUNTIME_CONST_SECTIONS } from './special-sections.js';

export interface RuntimeConstSite {
  function: string;
  /** The constant's variable (USER_PTR_MAX). */
  symbol: string;
  /** Offset of the rewritten instruction in its section. */
  offset: number;
}

/** `mov imm64, %reg` with REX.W: 48/49 B8+r. Returns the register number (0-15), or undefined. */
function movabsRegister(code: Uint8Array, at: number): number | undefined {
  const rex = code[at];
  const op = code[at + 1];
  if ((rex !== 0x48 && rex !== 0x49) || op === undefined || op < 0xb8 || op > 0xbf) return undefined;
  return (op - 0xb8) | (rex === 0x49 ? 8 : 0);
}

/**
 * Rewrite every runtime-constant site of the carried text sections (`keep`)
 * into a load of its variable, before the object is cut down. Throws for a
 * shift site or an instruction of an unknown shape.
 */
export function rewriteRuntimeConstants(obj: ElfObject, idx: ObjectIndex, keep: ReadonlySet<Section>, file: string): RuntimeConstSite[] {
  const out: RuntimeConstSite[] = [];
  const symbols = new Map<string, ElfSymbol>();
  const symbolFor = (name: string): ElfSymbol => {
    let s = symbols.get(name) ?? obj.symtab!.symbols.find((x) => x.name === name && x.isUndefined);
    if (!s) {
      s = new ElfSymbol(name, { bind: STB_GLOBAL, type: STT_NOTYPE, section: SHN_UNDEF });
      obj.symtab!.symbols.push(s);
    }
    symbols.set(name, s);
    return s;
  };
  for (const sec of obj.sections) {
    const row = RUNTIME_CONST_SECTIONS.find((r) => r.match.test(sec.name));
    if (!row) continue;
    const variable = row.match.exec(sec.name)![1]!;
    for (const e of specialEntries(idx, { name: sec.name, width: 4, compare: false, feature: row.feature }, 4)) {
      if (!e.site || !keep.has(e.site.section)) continue;
      const fn = e.owner?.name ?? e.site.section.name;
      if (row.kind === 'shift') {
        throw new SutureError('unsupported-change', `${file}: ${fn} uses the boot-time constant ${variable} (${sec.name}): the kernel writes it into vmlinux's code at boot only, and a shift has no form that reads it from memory in place`, {
          hint: `keep ${fn} out of the patch (change its callers), or compute with ${variable} read as a variable in new code`,
        });
      }
      const text = e.site.section;
      if (!(text instanceof DataSection)) continue;
      // The entry points at the immediate; the opcode is the 2 bytes before it.
      const at = e.site.offset - 2;
      const reg = at >= 0 ? movabsRegister(text.data, at) : undefined;
      if (reg === undefined) {
        const bytes = Buffer.from(text.data.subarray(Math.max(0, at), at + 10)).toString('hex');
        throw new SutureError('internal', `${file}: ${fn}+${at}: a ${sec.name} site is not a movabs (${bytes})`);
      }
      // mov disp32(%rip), %reg: REX.W (+R for r8-r15), 8B, ModRM 00 reg 101; then nopl (%rax).
      const insn = [reg >= 8 ? 0x4c : 0x48, 0x8b, 0x05 | ((reg & 7) << 3), 0, 0, 0, 0, 0x0f, 0x1f, 0x00];
      text.data.set(insn, at);
      let rs = obj.relocationsFor(text)[0];
      if (!rs) {
        rs = obj.addSection(new RelocationSection(`.rela${text.name}`, obj.symtab!, text), text);
        rs.flags = SHF_INFO_LINK;
      }
      rs.relocations.push(new Relocation(BigInt(at + 3), R_X86_64_PC32, symbolFor(variable), -4n));
      out.push({ function: fn, symbol: variable, offset: at });
    }
  }
  return out;
}
