// SPDX-License-Identifier: GPL-2.0-only
/**
 * Planning the klp conversion of a linked livepatch module (pure: reads the
 * ElfObject, changes nothing). After the final link, every reference to a
 * symbol that vmlinux does not export must become a klp relocation, which
 * the livepatch core applies once it has found the symbol through kallsyms
 * (Documentation/livepatch/module-elf-format.rst):
 *
 * - the undefined symbol is renamed `.klp.sym.<object>.<name>,<sympos>` and
 *   gets st_shndx = SHN_LIVEPATCH;
 * - exactly the relocation entries that use it move from `.rela<sec>` into
 *   `.klp.rela.<object>.<sec>` (SHT_RELA, SHF_ALLOC | SHF_INFO_LINK |
 *   SHF_RELA_LIVEPATCH, sh_link = the symtab, sh_info = <sec>);
 * - exported vmlinux symbols stay ordinary relocations, checked against the
 *   MODVERSIONS CRCs modpost wrote into `__versions`;
 * - `__versions` entries and `depends=` modules that only served symbols now
 *   resolved by livepatch are dropped; `import_ns=` is added for namespaced
 *   exports the module uses.
 *
 * Module objects get stricter rules: their relocations are applied when the
 * module loads, possibly long after this module's init, so they may only
 * patch plain code and data (not `__jump_table`, `__ex_table`, `.init*`,
 * `.data..ro_after_init`, ...). A `.klp.rela.<module>` section never names a
 * `.klp.sym.vmlinux.*` symbol: vmlinux symbols always get vmlinux sections.
 *
 * OTHER MODULES' EXPORTS. Patched module code often calls an export of a
 * module it depends on (nfsd's e_show calls sunrpc's cache_check). Two ways
 * to reach it, judged by what the kernel guarantees in both load orders:
 *
 * - An ordinary relocation: modpost writes `depends=sunrpc` and a CRC, and
 *   the module loader resolves the name when the *livepatch* loads. So
 *   sunrpc must be loaded before the livepatch on every host, even one that
 *   never loads nfsd (insmod/finit_module fail with "Unknown symbol"), and
 *   the livepatch then holds a reference on sunrpc: it cannot be unloaded
 *   while the patch is. It works in both orders only by loading and pinning
 *   a module the host may not want.
 * - A klp relocation in the patched module's own section
 *   (`.klp.rela.nfsd..text` naming `.klp.sym.sunrpc.cache_check,0`): the
 *   livepatch core resolves it through sunrpc's kallsyms when nfsd is
 *   patched, at klp_module_coming() if nfsd loads later, or when the patch
 *   is enabled if nfsd is already there (klp_apply_section_relocs; its own
 *   comment allows "the to-be-patched module or one of its module
 *   dependencies", exported symbols included). Whenever nfsd is loading or
 *   loaded, sunrpc is live: nfsd's own loader resolved cache_check from it
 *   and took a reference (ref_module refuses an exporter still COMING), so
 *   sunrpc cannot go before nfsd does. And the patched nfsd code runs only
 *   while nfsd is loaded: klp_module_going() unpatches the object before
 *   nfsd's memory goes. The address is valid exactly as long as the code
 *   that uses it can run, in either order, and nothing extra is loaded or
 *   pinned.
 *
 * suture takes the klp relocation, for exporters in the patched module's
 * modules.dep only (any other module may be absent when it loads, and its
 * load would be refused). The kernel checks no CRC for a klp symbol, so the
 * build checks it: the CRC the shipped patched module was linked against
 * (its `__versions`) must equal Module.symvers (kernel/symbols/module-exports.ts).
 */
import { kernelSympos } from './position.js';
import {
  DataSection,
  ElfObject,
  ElfSymbol,
  Relocation,
  RelocationSection,
  SHF_ALLOC,
  SHN_LIVEPATCH,
  SHN_UNDEF,
  STT_SECTION,
  parseModinfo,
  type Section,
} from '../../elf/mod.js';
import { SutureError } from '../../util/errors.js';

/** How one undefined symbol of the module is reached at run time. */
export type SymbolDisposition =
  | {
      readonly kind: 'exported';
      /** The CRC Module.symvers gives (checked against __versions when both exist). */
      readonly crc?: number | undefined;
      /** The export's namespace ('' or undefined when none). */
      readonly namespace?: string | undefined;
    }
  | {
      readonly kind: 'klp';
      /** vmlinux or a module name. */
      readonly object: string;
      /** The name as kallsyms knows it. */
      readonly name: string;
      readonly sympos: number;
      /** A module that exports it (then modpost listed it in depends= and __versions). */
      readonly exportedBy?: string | undefined;
      /**
       * The klp object whose `.klp.rela.<section>.*` sections carry its relocations, when it is
       * not `object`: the patched module whose code uses an export of a module it depends on
       * (nfsd's code calling sunrpc's cache_check: `.klp.rela.nfsd..text` naming
       * `.klp.sym.sunrpc.cache_check,0`). See OTHER MODULES' EXPORTS above.
       */
      readonly section?: string | undefined;
    };

export interface KlpSymbolRename {
  readonly symbol: ElfSymbol;
  readonly from: string;
  readonly to: string;
  readonly object: string;
  readonly name: string;
  readonly sympos: number;
  /** Relocation entries (in allocated sections) that use it. */
  readonly uses: number;
}

export interface KlpRelocationMove {
  /** The ordinary relocation section the entries leave. */
  readonly from: RelocationSection;
  /** The section they apply to. */
  readonly target: Section;
  readonly object: string;
  /** `.klp.rela.<object>.<target name>` */
  readonly sectionName: string;
  readonly relocations: readonly Relocation[];
}

export interface VersionEntry {
  readonly name: string;
  readonly crc: number;
}

export interface KlpPlan {
  readonly file: string;
  readonly renames: readonly KlpSymbolRename[];
  readonly moves: readonly KlpRelocationMove[];
  /** Undefined symbols left as ordinary relocations (exported by vmlinux), with the CRC modpost recorded. */
  readonly exported: readonly { readonly name: string; readonly crc: number | undefined }[];
  /** __versions as modpost wrote it, and the entries to drop. */
  readonly versions: readonly VersionEntry[];
  readonly versionsDropped: readonly string[];
  /** depends= modules to drop, and import_ns= namespaces to add. */
  readonly dependsDropped: readonly string[];
  readonly importNamespaces: readonly string[];
}

/** The livepatch section flags: SHF_ALLOC | SHF_INFO_LINK | SHF_RELA_LIVEPATCH = 0x100042. */
export const KLP_RELA_FLAGS = 0x100042n;

/** Size of one `struct modversion_info` on 64-bit: an unsigned long CRC and a 56-byte name. */
export const MODVERSION_INFO_SIZE = 64;

/** Read `__versions` (struct modversion_info[]). */
export function readVersions(sec: DataSection | undefined): VersionEntry[] {
  if (!sec) return [];
  const d = sec.data;
  const out: VersionEntry[] = [];
  for (let at = 0; at + MODVERSION_INFO_SIZE <= d.length; at += MODVERSION_INFO_SIZE) {
    const crc = new DataView(d.buffer, d.byteOffset + at, 8).getUint32(0, true);
    const nameBytes = d.subarray(at + 8, at + MODVERSION_INFO_SIZE);
    const end = nameBytes.indexOf(0);
    out.push({ name: Buffer.from(end < 0 ? nameBytes : nameBytes.subarray(0, end)).toString('latin1'), crc });
  }
  return out;
}

/**
 * Sections a module object's klp relocation may patch. The module's
 * relocations are applied whenever the target module loads, after this
 * module's init: only code and ordinary data are still writable and still
 * unprocessed then.
 */
export function moduleRelocationAllowed(target: Section): boolean {
  const n = target.name;
  if (n === '.data..ro_after_init' || n.startsWith('.init') || n.startsWith('.exit')) return false;
  return /^\.(text|rodata|data)(\.|$)/.test(n);
}

function klpSymbolName(object: string, name: string, sympos: number): string {
  return `.klp.sym.${object}.${name},${kernelSympos(sympos)}`;
}

/**
 * Plan the conversion. `dispose` says, for each undefined symbol name, how it
 * is reached; a name it does not know is an error naming the symbol and the
 * file (every reference must be resolved before a module is written).
 */
export function planKlp(obj: ElfObject, dispose: (name: string) => SymbolDisposition | undefined): KlpPlan {
  const file = obj.file ?? 'module';
  const symtab = obj.symtab;
  if (!symtab) throw new SutureError('invalid-input', `${file} has no symbol table`, { hint: 'give the module kbuild linked, before any strip' });
  if (obj.sections.some((s) => s.name.startsWith('.klp.rela.')) || symtab.symbols.some((s) => s.section === SHN_LIVEPATCH)) {
    throw new SutureError('invalid-input', `${file} already has klp relocations or livepatch symbols`, {
      hint: 'convert the module kbuild linked, once; a converted module must not be converted again',
    });
  }
  const undefinedSyms = symtab.symbols.filter((s) => s.section === SHN_UNDEF && s.name !== '' && s.type !== STT_SECTION);
  const disp = new Map<ElfSymbol, SymbolDisposition>();
  const missing: string[] = [];
  for (const s of undefinedSyms) {
    const d = dispose(s.name);
    if (d === undefined) missing.push(s.name);
    else disp.set(s, d);
  }
  if (missing.length) {
    throw new SutureError('not-found', `${file} refers to ${missing.length === 1 ? 'a symbol' : 'symbols'} nothing resolved: ${missing.join(', ')}`, {
      hint: 'every undefined symbol must be exported by vmlinux or resolved to (object, name, sympos) before the conversion',
    });
  }

  // Relocation entries that use each klp symbol, per relocation section.
  const klpSyms = new Set([...disp].filter(([, d]) => d.kind === 'klp').map(([s]) => s));
  const moves: KlpRelocationMove[] = [];
  const uses = new Map<ElfSymbol, number>();
  for (const sec of obj.sections) {
    if (!(sec instanceof RelocationSection) || sec.symtab !== symtab) continue;
    const target = sec.target;
    if (target === null || (target.flags & SHF_ALLOC) === 0n) continue; // debug info: the loader never applies it
    const byObject = new Map<string, Relocation[]>();
    for (const r of sec.relocations) {
      if (r.symbol === null || !klpSyms.has(r.symbol)) continue;
      const d = disp.get(r.symbol)! as Extract<SymbolDisposition, { kind: 'klp' }>;
      if (!sec.isRela) {
        throw new SutureError('invalid-input', `${file}: ${sec} is SHT_REL; livepatch relocations must be SHT_RELA`, { hint: 'x86_64 modules use RELA: was this built for x86_64?' });
      }
      const owner = d.section ?? d.object;
      if (owner !== 'vmlinux' && !moduleRelocationAllowed(target)) {
        throw new SutureError(
          'invalid-input',
          `${file}: section ${target} refers to ${d.name} of module ${d.object}; livepatch applies a module's relocations when that module loads, after this module's init, so they may only patch code and plain data, not ${target.name}`,
          { hint: `reach ${d.name} from a function instead (static keys of a module: use static_key_enabled())` },
        );
      }
      let list = byObject.get(owner);
      if (!list) byObject.set(owner, (list = []));
      list.push(r);
      uses.set(r.symbol, (uses.get(r.symbol) ?? 0) + 1);
    }
    for (const [object, relocations] of byObject) {
      moves.push({ from: sec, target, object, sectionName: `.klp.rela.${object}.${target.name}`, relocations });
    }
  }
  const renames: KlpSymbolRename[] = [];
  for (const s of klpSyms) {
    const d = disp.get(s)! as Extract<SymbolDisposition, { kind: 'klp' }>;
    renames.push({ symbol: s, from: s.name, to: klpSymbolName(d.object, d.name, d.sympos), object: d.object, name: d.name, sympos: d.sympos, uses: uses.get(s) ?? 0 });
  }

  // MODVERSIONS: modpost wrote a CRC for every exported symbol it resolved.
  const versionsSec = obj.section('__versions');
  const versions = readVersions(versionsSec instanceof DataSection ? versionsSec : undefined);
  const crcOf = new Map(versions.map((v) => [v.name, v.crc]));
  const exported: { name: string; crc: number | undefined }[] = [];
  const bad: string[] = [];
  for (const [s, d] of disp) {
    if (d.kind !== 'exported') continue;
    const got = crcOf.get(s.name);
    exported.push({ name: s.name, crc: got });
    if (versionsSec === undefined) continue;
    if (got === undefined) bad.push(`${s.name}: no CRC in __versions`);
    else if (d.crc !== undefined && d.crc !== got) bad.push(`${s.name}: __versions has 0x${got.toString(16)}, Module.symvers 0x${d.crc.toString(16)}`);
  }
  if (bad.length) {
    throw new SutureError('build', `${file}: the MODVERSIONS CRCs modpost wrote do not match the kernel's exports`, {
      details: bad.join('\n'),
      hint: 'the module was not built against this kernel\'s Module.symvers: rebuild it',
    });
  }
  const klpNames = new Set(renames.map((r) => r.from));
  const versionsDropped = versions.filter((v) => klpNames.has(v.name)).map((v) => v.name);

  // depends=: modules listed only because they export symbols that are now klp symbols.
  const modinfo = obj.section('.modinfo');
  const info = modinfo instanceof DataSection ? parseModinfo(modinfo.data) : [];
  const depends = (info.find((e) => e.key === 'depends')?.value ?? '').split(',').filter(Boolean);
  const klpExporters = new Set<string>();
  for (const [, d] of disp) if (d.kind === 'klp' && d.exportedBy) klpExporters.add(d.exportedBy.replace(/-/g, '_'));
  const dependsDropped = depends.filter((m) => klpExporters.has(m.replace(/-/g, '_')));
  const haveNs = new Set(info.filter((e) => e.key === 'import_ns').map((e) => e.value));
  const importNamespaces = [...new Set([...disp.values()].flatMap((d) => (d.kind === 'exported' && d.namespace ? [d.namespace] : [])))].filter(
    (ns) => !haveNs.has(ns),
  );

  return { file, renames, moves, exported, versions, versionsDropped, dependsDropped, importNamespaces };
}
