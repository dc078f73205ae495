// SPDX-License-Identifier: GPL-2.0-only
/**
 * A livepatch module file (.ko) as the host sees it before loading it: the
 * module facts (name, vermagic, livepatch flag), suture's own modinfo keys,
 * and the patch's structure read from the file itself: the klp_patch, its
 * klp_objects and klp_funcs, and the `replace` flag that the 6.1 sysfs does
 * not show.
 *
 * Modinfo keys suture defines (written with MODULE_INFO; a tag must be a C
 * identifier, hence the underscores):
 *
 *   suture_effective_version=6.1.194-1   the kernel version the patched kernel is equivalent to,
 *                                         in the distribution's form (Debian: the linux-image
 *                                         package version); `suture uname` shows the highest
 *                                         one among enabled patches
 *   suture_cve=CVE-2024-1086              one entry per CVE (or several ids separated by , or space)
 *
 * and reads the standard `description` (MODULE_DESCRIPTION).
 */
import { createHash } from 'node:crypto';
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import {
  ElfView,
  SHF_ALLOC,
  SHF_EXECINSTR,
  SHN_LIVEPATCH,
  SHT_RELA,
  SHT_SYMTAB,
  STT_FUNC,
  STT_OBJECT,
  STT_SECTION,
  modinfoValue,
  type RelocationEntry,
  type SectionHeader,
  type SymbolEntry,
} from '../elf/mod.js';
import { moduleFileFromBytes, type ModuleFile } from '../kernel/module-file.js';
import { SutureError, fsError, isSutureError } from '../util/errors.js';

export const MODINFO_EFFECTIVE_VERSION = 'suture_effective_version';
export const MODINFO_CVE = 'suture_cve';
/** The GNU build ID (hex) of the vmlinux the patch was built for: it loads only into that build. */
export const MODINFO_BUILD_ID = 'suture_build_id';
/** No livepatch module is anywhere near this; a bigger file is refused before it is read. */
export const MAX_PATCH_FILE_BYTES = 64 * 1024 * 1024;
/** At most this many klp_objects or klp_funcs in one array (a bound for crafted files). */
const MAX_ARRAY_ENTRIES = 65_536;

export interface PatchFunction {
  /** klp_func.old_name */
  name: string;
  /** klp_func.old_sympos (0: the name is unique in its object). */
  sympos: number;
  /** The replacement's symbol in the patch module, if it has one. */
  newFunction: string | undefined;
}

export interface PatchObject {
  /** klp_object.name; NULL means vmlinux. */
  name: string;
  functions: PatchFunction[];
}

/** The klp_patch as the module defines it, read from its data and relocations. */
export interface PatchStructure {
  replace: boolean;
  objects: PatchObject[];
}

export interface PatchFile extends ModuleFile {
  /** The bytes that were read and validated: what is installed or staged for insmod, never the path again. */
  bytes: Buffer;
  sha256: string;
  /** modinfo suture_build_id (lower-case hex), if the patch is bound to one kernel build. */
  buildId: string | undefined;
  description: string | undefined;
  effectiveVersion: string | undefined;
  cves: string[];
  /** Undefined when the file's layout is not one this reader understands. */
  structure: PatchStructure | undefined;
  /** Objects named by klp relocation sections (.klp.rela.<obj>.<sec>). */
  klpRelocObjects: string[];
  /** The module carries an appended signature ("~Module signature appended~"). */
  signed: boolean;
}

const SIG_MAGIC = '~Module signature appended~\n';

/**
 * Read a file once, as a regular file of a bounded size (through one file
 * descriptor: what fstat checked is what is read). `opts.strict` also refuses
 * what a root-run loader must not trust: a symbolic link, a file owned by
 * another user than root (or the caller), or one that others can write.
 */
export function readPatchBytes(path: string, opts: { strict?: boolean; what?: string } = {}): Buffer {
  const what = opts.what ?? 'reading a module';
  let fd: number;
  try {
    // O_NOFOLLOW: a symbolic link at the last component is refused (ELOOP) when strict.
    fd = openSync(path, opts.strict ? constants.O_RDONLY | constants.O_NOFOLLOW : 'r');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ELOOP') {
      throw new SutureError('invalid-input', `${path} is a symbolic link: suture loads only regular files it can trust`, {
        hint: 'remove the link and install the patch again (suture install PATCH.ko)',
      });
    }
    throw fsError(e, what, path);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new SutureError('invalid-input', `${path} is not a file`);
    if (st.size > MAX_PATCH_FILE_BYTES) {
      throw new SutureError('invalid-input', `${path} is ${st.size} bytes: larger than any livepatch module (${MAX_PATCH_FILE_BYTES} at most)`, {
        hint: 'give the .ko file that suture build produced',
      });
    }
    if (opts.strict) {
      const uid = process.getuid?.() ?? 0;
      if (st.uid !== 0 && st.uid !== uid) {
        throw new SutureError('invalid-input', `${path} is owned by uid ${st.uid}, not root: suture will not load it`, {
          hint: 'install the patch again as root (suture install PATCH.ko)',
        });
      }
      if ((st.mode & 0o022) !== 0) {
        throw new SutureError('invalid-input', `${path} is writable by ${st.mode & 0o002 ? 'every user' : 'its group'} (mode ${(st.mode & 0o7777).toString(8)}): suture will not load it`, {
          hint: 'install the patch again (suture install writes it with mode 0600)',
        });
      }
    }
    const bytes = Buffer.alloc(st.size);
    let off = 0;
    while (off < bytes.length) {
      const n = readSync(fd, bytes, off, bytes.length - off, off);
      if (n <= 0) break;
      off += n;
    }
    return off === bytes.length ? bytes : bytes.subarray(0, off);
  } catch (e) {
    if (isSutureError(e)) throw e;
    throw fsError(e, what, path);
  } finally {
    closeSync(fd);
  }
}

/** Read a module file once and everything suture knows how to read from it. */
export function readPatchFile(path: string, opts: { strict?: boolean } = {}): PatchFile {
  return parsePatchFile(readPatchBytes(path, opts), path);
}


/**
 * Everything suture reads from a livepatch module, from its bytes. Throws a
 * SutureError (invalid-input) for anything that is not a module; never
 * another error, whatever the bytes (fuzzed in test/livepatch/patch-file-fuzz.test.ts).
 */
export function parsePatchFile(bytes: Buffer, path: string): PatchFile {
  if (bytes.length > MAX_PATCH_FILE_BYTES) {
    throw new SutureError('invalid-input', `${path} is ${bytes.length} bytes: larger than any livepatch module (${MAX_PATCH_FILE_BYTES} at most)`);
  }
  const mod = moduleFileFromBytes(bytes, path);
  let view: ElfView;
  try {
    view = ElfView.parse(bytes, { file: path });
  } catch (e) {
    if (isSutureError(e) && e.kind === 'invalid-input') throw e;
    throw new SutureError('invalid-input', `${path} is not a usable ELF module: ${(e as Error).message}`, { cause: e });
  }
  const cves = mod.modinfo
    .filter((e) => e.key === MODINFO_CVE)
    .flatMap((e) => e.value.split(/[\s,]+/))
    .filter(Boolean);
  let structure: PatchStructure | undefined;
  try {
    structure = readPatchStructure(view);
  } catch {
    structure = undefined; // an unusual layout: the kernel will still tell at load time
  }
  let klpRelocObjects: string[] = [];
  try {
    klpRelocObjects = [
      ...new Set(
        view.sections
          .map((s) => /^\.klp\.rela\.([^.]+)\./.exec(s.name)?.[1])
          .filter((n): n is string => n !== undefined),
      ),
    ].sort();
  } catch {
    klpRelocObjects = [];
  }
  const buildId = modinfoValue(mod.modinfo, MODINFO_BUILD_ID)?.trim().toLowerCase() || undefined;
  return {
    ...mod,
    bytes,
    sha256: createHash('sha256').update(bytes).digest('hex'),
    buildId,
    description: modinfoValue(mod.modinfo, 'description'),
    effectiveVersion: modinfoValue(mod.modinfo, MODINFO_EFFECTIVE_VERSION)?.trim() || undefined,
    cves: [...new Set(cves)].sort(),
    structure,
    klpRelocObjects,
    signed: bytes.subarray(bytes.length - SIG_MAGIC.length).toString('latin1') === SIG_MAGIC,
  };
}

/** The objects a patch changes, from its structure or, failing that, from its klp relocations. */
export function patchObjectNames(p: PatchFile): string[] {
  if (p.structure) return p.structure.objects.map((o) => o.name);
  return p.klpRelocObjects;
}

// ---- reading klp_patch / klp_object / klp_func out of the module ----
//
// Layout facts (include/linux/livepatch.h, 5.1 and later, x86_64):
//   struct klp_patch  { struct module *mod; struct klp_object *objs; struct klp_state *states; bool replace; ... }
//   struct klp_object { const char *name; struct klp_func *funcs; struct klp_callbacks callbacks (4 pointers, a bool); ... }
//   struct klp_func   { const char *old_name; void *new_func; unsigned long old_sympos; ... }
// Both arrays end with an all-zero entry. Their element sizes depend on the kernel's
// configuration (they embed a kobject), so they are found from where the relocations fall.

const PATCH_REPLACE_OFFSET = 24;
const OBJECT_POINTER_FIELDS = [0, 8, 16, 24, 32, 40];
const FUNC_POINTER_FIELDS = [0, 8];

interface Place {
  section: number;
  offset: number;
}

class Reader {
  readonly symbols: SymbolEntry[];
  /** Relocations by the section they apply to, sorted by offset; decoded when first asked for. */
  private readonly relocs = new Map<number, RelocationEntry[]>();
  /** RELA section index by the section it applies to (klp relocation sections left out). */
  private readonly relaFor = new Map<number, number>();

  constructor(readonly view: ElfView) {
    const symtab = view.sections.find((s) => s.type === SHT_SYMTAB);
    this.symbols = symtab ? view.symbols(symtab) : [];
    for (const s of view.sections) {
      if (s.type === SHT_RELA && !s.name.startsWith('.klp.rela.')) this.relaFor.set(s.info, s.index);
    }
  }

  /** Sections that hold allocated data and have relocations: where klp_patch and its arrays live (not .debug_*). */
  dataSectionsWithRelocations(): number[] {
    return [...this.relaFor.keys()].filter((i) => {
      const s = this.view.sections[i];
      return !!s && (s.flags & SHF_ALLOC) !== 0n && (s.flags & SHF_EXECINSTR) === 0n;
    });
  }

  private relocsOf(section: number): RelocationEntry[] {
    let list = this.relocs.get(section);
    if (!list) {
      const rela = this.relaFor.get(section);
      list = rela === undefined ? [] : this.view.relocations(rela).slice().sort((a, b) => Number(a.offset - b.offset));
      this.relocs.set(section, list);
    }
    return list;
  }

  relocsIn(section: number, from: number, to: number): RelocationEntry[] {
    return this.relocsOf(section).filter((r) => Number(r.offset) >= from && Number(r.offset) < to);
  }

  relocAt(section: number, offset: number): RelocationEntry | undefined {
    return this.relocsOf(section).find((r) => Number(r.offset) === offset);
  }

  /** Where a relocation points: a section and an offset in it. */
  target(r: RelocationEntry): Place | undefined {
    const sym = this.symbols[r.symbol];
    if (!sym || sym.shndx === 0 || sym.shndx >= this.view.sections.length) return undefined;
    return { section: sym.shndx, offset: Number(sym.value + r.addend) };
  }

  /**
   * The object symbol that starts exactly at a place (static arrays have one,
   * with their size), if it lies wholly inside its section: a symbol's size is
   * never trusted beyond the bytes that are there.
   */
  objectAt(p: Place): SymbolEntry | undefined {
    const sec = this.view.sections[p.section];
    if (!sec) return undefined;
    return this.symbols.find(
      (s) => (s.info & 0xf) === STT_OBJECT && s.shndx === p.section && Number(s.value) === p.offset && s.size > 0n && s.value + s.size <= sec.size,
    );
  }

  functionAt(p: Place): SymbolEntry | undefined {
    return this.symbols.find((s) => (s.info & 0xf) === STT_FUNC && s.shndx === p.section && Number(s.value) === p.offset);
  }

  cString(p: Place): string | undefined {
    const sec = this.view.sections[p.section];
    if (!sec) return undefined;
    const data = this.view.data(sec);
    if (p.offset < 0 || p.offset >= data.length) return undefined;
    const end = data.indexOf(0, p.offset);
    return Buffer.from(data.subarray(p.offset, end < 0 ? data.length : end)).toString('utf8');
  }

  u64(p: Place): bigint | undefined {
    const sec: SectionHeader | undefined = this.view.sections[p.section];
    if (!sec) return undefined;
    const data = this.view.data(sec);
    if (p.offset + 8 > data.length) return undefined;
    return Buffer.from(data.buffer, data.byteOffset, data.byteLength).readBigUInt64LE(p.offset);
  }

  byte(p: Place): number | undefined {
    const sec = this.view.sections[p.section];
    if (!sec) return undefined;
    return this.view.data(sec)[p.offset];
  }

  isData(section: number): boolean {
    const s = this.view.sections[section];
    return !!s && (s.flags & SHF_EXECINSTR) === 0n;
  }
}

/**
 * An array of `count` entries of `stride` bytes plus an all-zero terminator,
 * found from the relocations inside it: every relocation must fall on a
 * pointer field of an entry before the terminator, and every entry must have
 * its required pointers. Returns the unique (count, stride) that fits.
 */
function solveArray(relOffsets: number[], size: number, allowed: number[], required: number[]): { count: number; stride: number } | undefined {
  const fits: { count: number; stride: number }[] = [];
  const at = new Set(relOffsets);
  for (let count = 1; (count + 1) * 8 <= size && count <= MAX_ARRAY_ENTRIES; count++) {
    if (size % (count + 1) !== 0) continue;
    const stride = size / (count + 1);
    if (stride % 8 !== 0 || stride < 16) continue;
    const ok =
      relOffsets.every((o) => Math.floor(o / stride) < count && allowed.includes(o % stride)) &&
      relOffsets.length >= count * required.length &&
      Array.from({ length: count }, (_, i) => required.every((k) => at.has(i * stride + k))).every(Boolean);
    if (ok) fits.push({ count, stride });
  }
  return fits.length === 1 ? fits[0] : undefined;
}

/** Read the klp_patch structure of a livepatch module; undefined when there is none to find. */
export function readPatchStructure(view: ElfView): PatchStructure | undefined {
  const r = new Reader(view);
  const thisModule = r.symbols.filter((s) => s.name === '__this_module').map((s) => s.index);
  if (!thisModule.length) return undefined;
  for (const section of r.dataSectionsWithRelocations()) {
    for (const rel of r.relocsIn(section, 0, Number.MAX_SAFE_INTEGER)) {
      if (!thisModule.includes(rel.symbol) || rel.addend !== 0n) continue;
      const patch = r.objectAt({ section, offset: Number(rel.offset) });
      if (!patch) continue;
      const objs = parseObjects(r, { section, offset: Number(rel.offset) });
      if (!objs) continue;
      const replace = r.byte({ section, offset: Number(rel.offset) + PATCH_REPLACE_OFFSET });
      return { replace: replace === 1, objects: objs };
    }
  }
  return undefined;
}

function parseObjects(r: Reader, patch: Place): PatchObject[] | undefined {
  const objsRel = r.relocAt(patch.section, patch.offset + 8);
  const objsAt = objsRel && r.target(objsRel);
  if (!objsAt || !r.isData(objsAt.section)) return undefined;
  const arr = r.objectAt(objsAt);
  if (!arr) return undefined;
  const size = Number(arr.size);
  const rels = r.relocsIn(objsAt.section, objsAt.offset, objsAt.offset + size);
  const shape = solveArray(
    rels.map((x) => Number(x.offset) - objsAt.offset),
    size,
    OBJECT_POINTER_FIELDS,
    [8],
  );
  if (!shape) return undefined;
  const out: PatchObject[] = [];
  for (let i = 0; i < shape.count; i++) {
    const base = objsAt.offset + i * shape.stride;
    const nameRel = r.relocAt(objsAt.section, base);
    const nameAt = nameRel && r.target(nameRel);
    const name = nameAt ? r.cString(nameAt) : 'vmlinux';
    const funcsRel = r.relocAt(objsAt.section, base + 8);
    const funcsAt = funcsRel && r.target(funcsRel);
    if (!name || !funcsAt) return undefined;
    const functions = parseFunctions(r, funcsAt);
    if (!functions) return undefined;
    out.push({ name, functions });
  }
  return out;
}

function parseFunctions(r: Reader, at: Place): PatchFunction[] | undefined {
  const arr = r.objectAt(at);
  if (!arr) return undefined;
  const size = Number(arr.size);
  const rels = r.relocsIn(at.section, at.offset, at.offset + size);
  const shape = solveArray(
    rels.map((x) => Number(x.offset) - at.offset),
    size,
    FUNC_POINTER_FIELDS,
    [0, 8],
  );
  if (!shape) return undefined;
  const out: PatchFunction[] = [];
  for (let i = 0; i < shape.count; i++) {
    const base = at.offset + i * shape.stride;
    const oldRel = r.relocAt(at.section, base)!;
    const oldAt = r.target(oldRel);
    const name = oldAt && r.cString(oldAt);
    if (!name) return undefined;
    const newRel = r.relocAt(at.section, base + 8)!;
    const newAt = r.target(newRel);
    const newSym = r.symbols[newRel.symbol];
    const newFunction =
      newSym && (newSym.info & 0xf) !== STT_SECTION ? newSym.name : newAt ? r.functionAt(newAt)?.name : undefined;
    const sympos = r.u64({ section: at.section, offset: base + 16 }) ?? 0n;
    out.push({ name, sympos: Number(sympos), newFunction });
  }
  return out;
}

/** True when a symbol is a klp symbol (resolved by the livepatch core at load time). */
export function isKlpSymbol(s: SymbolEntry): boolean {
  return s.rawShndx === SHN_LIVEPATCH || s.name.startsWith('.klp.sym.');
}
