// SPDX-License-Identifier: GPL-2.0-only
/**
 * `suture build fix.patch` and `suture analyze`: a source patch against a
 * distro kernel becomes a livepatch module without a kernel build.
 *
 *   patch → translation units (kbuild says which object each lands in)
 *         → orig and patched compiles in overlays of the prepared tree
 *         → provenance (the orig build reproduces the shipped bytes)
 *         → diff (changed / new functions, refusals with reasons)
 *         → extract (only what changed, with its special-section entries)
 *         → klp module (generated klp structures, kbuild link, klp relocations)
 */
import { timedSteps } from './steps.js';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { sutureHeader } from './source.js';
import { ElfObject, ElfView, RelocationSection, STT_SECTION } from '../elf/mod.js';
import { workspaceBtf } from '../kernel/btf.js';
import { buildExternalModule } from '../kernel/kbuild.js';
import { KbuildObjects, type ObjectHome } from '../kernel/kbuild-objects.js';
import { moduleName, readModuleIndex } from '../kernel/modules.js';
import { SymbolResolutionError, dependencyExport, resolveSymbol, workspaceSymbolSources, type Candidate, type ResolvedSymbol, type SymbolSources } from '../kernel/symbols/mod.js';
import type { KernelMetadata } from '../kernel/workspace.js';
import { SutureError } from '../util/errors.js';
import { run } from '../util/exec.js';
import type { Reporter } from '../util/progress.js';
import { diffObjects, type ObjectDiff, type Refusal } from './diff/diff.js';
import { changedStructLayout, formatRefusals, moduleKeyRefusal } from './diff/rules.js';
import { carryUntraceable, type CarriedDiff } from './diff/carry.js';
import { extract } from './diff/extract.js';
import type { RuntimeConstSite } from './diff/runtime-const.js';
import { ObjectIndex } from './diff/object-index.js';
import { changedLayouts, parsePahole } from './diff/layouts.js';
import { compareWithShipped, staticBranchSites, type ProvenanceResult } from './diff/provenance.js';
import { CALLBACK_KINDS, checkModuleName, kbuildFile, klpModuleSource, type CallbackKind, type KlpObjectSpec } from './generate.js';
import { applyAuthorRecords, readAuthorRecords, type CallbackRecord } from './author-records.js';
import { defaultModuleName, freshBuildDir, linkLivepatch, symbolDispositions } from './link.js';
import { functionLines, touchedBy, touchedDefinitions } from './patch/function-lines.js';
import { stabilizeLines } from './patch/line-directives.js';
import { formatPatch, type FilePatch } from './patch/parse.js';
import { locateHunks } from './patch/located.js';
import { diskTree, loadPatches, readPatchInputs } from './patch/inputs.js';
import { DEFAULT_MAX_UNITS, findUnits, refuseFiles } from './units.js';
import { applyPatch, checkPatchApplies, compileBoth, makeBuildTrees, removeBuildTrees } from './tree.js';

export interface DiffBuildOptions {
  meta: KernelMetadata;
  home: string;
  reporter: Reporter;
  patches: readonly string[];
  /** Stop after the diff (suture analyze). */
  analyzeOnly?: boolean;
  name?: string;
  output?: string;
  cves?: readonly string[];
  description?: string;
  /** The kernel version the patched kernel is equivalent to (modinfo suture_effective_version; `suture uname` shows it). */
  effectiveVersion?: string;
  /** Build even when the orig build does not reproduce the shipped bytes. */
  skipProvenance?: boolean;
  /** Keep the build directory (overlays, objects, generated module). */
  keep?: boolean;
  /** Disassemble the first instruction that differs in each changed function. */
  showFirstChanged?: boolean;
  /** An atomic-replace (cumulative) patch. */
  replace?: boolean;
  /** Most units one patch may compile (a changed header reaches many); DEFAULT_MAX_UNITS otherwise. */
  maxUnits?: number;
  /** The strip level of every patch (-p N); found against the tree otherwise. */
  strip?: number;
}

export interface UnitReport {
  unit: string;
  object: string;
  home: ObjectHome;
  /** The unit's verdicts after every stage (diff, notrace carry, the author's records). */
  diff: CarriedDiff;
}

export interface FunctionReport {
  object: string;
  unit: string;
  name: string;
  status: 'changed' | 'new';
  sympos?: number;
  reasons: string[];
  /** Patched through its callers: it has no ftrace call site of its own. */
  carriedOnly?: boolean;
  firstDifference?: number;
  /** The instructions at the first difference (with --show-first-changed), as objdump prints them. */
  firstChanged?: { orig?: string; patched?: string };
}

export interface DiffBuildResult {
  name: string;
  /** Each patch read, with the strip level used and why. */
  patches: { label: string; strip: number; why: string; files: string[] }[];
  output?: string;
  patchHash: string;
  units: UnitReport[];
  functions: FunctionReport[];
  provenance: ProvenanceResult[];
  references: { object: string; name: string; sympos: number; how: string; section?: string }[];
  /** Boot-time constants of carried code, now read from their variables (src/patchbuild/diff/runtime-const.ts). */
  runtimeConstants: (RuntimeConstSite & { unit: string })[];
  warnings: string[];
  timings: Record<string, number>;
  buildDir?: string;
}

const KLP_PREFIX = '.klp.sym.';

/** Headers a patch may include (include/ of this installation). */
const AUTHOR_HEADERS = ['suture.h', 'kpatch-macros.h', 'kpatch-syscall.h'];

export async function buildFromPatch(opts: DiffBuildOptions): Promise<DiffBuildResult> {
  const { meta, home, reporter } = opts;
  const { step, warn, timings, warnings } = timedSteps(reporter);

  // 1. Read the patches; refuse what cannot be patched before compiling.
  // Patch files, quilt folders (series) and git format-patch mail; each one's strip level found against the tree.
  const texts = readPatchInputs(opts.patches);
  const loaded = loadPatches(texts, diskTree(meta.paths.source), opts.strip);
  const stated = loaded.flatMap((l) => l.files);
  refuseFiles(stated);
  const patchHash = createHash('sha256').update(texts.map((t) => t.text).join('\n')).digest('hex');
  // Named after the patch file, or its directory when the file has a generic name (fix.patch).
  const first = resolve(opts.patches[0]!);
  const stem = basename(first).replace(/\.(patch|diff)$/, '');
  const label = /^(fix|patch|diff|\d+)$/.test(stem) ? basename(resolve(first, '..')) : stem;
  const name = opts.name ?? defaultModuleName(label);
  checkModuleName(name, opts.name ? '--name' : 'module name (from the patch file; choose one with --name)');

  // The build directory goes when the build ends, whichever way (--keep keeps it); stale ones of the name too (link.ts).
  const buildRoot = freshBuildDir(home, name);
  try {
    return await stages();
  } finally {
    if (!opts.keep) rmSync(buildRoot, { recursive: true, force: true });
  }

  async function stages(): Promise<DiffBuildResult> {
    const combined = join(buildRoot, 'user.patch');
    // The patches as read (tree-relative names, a/ b/ prefixes): what GNU patch checks below with -p1.
    writeFileSync(combined, formatPatch(stated));

    const tree = meta.paths.source;
    // Every hunk at the lines GNU patch applies it (a patch for a nearby kernel applies with an offset); fuzz refused.
    const files = await step('apply-check', `Checking that ${texts.length === 1 ? `${texts[0]!.label} applies` : `${texts.length} patches apply`}`, async (update) => {
      for (const l of loaded) update(`${l.label}: -p${l.strip.level} (${l.strip.why})`);
      const what = texts.map((t) => t.label).join(' + ');
      const located = locateHunks(stated, await checkPatchApplies(tree, combined, what), what);
      const moved = located.flatMap((f, i) => f.hunks.flatMap((h, j) => (h.oldStart !== stated[i]!.hunks[j]!.oldStart ? [`${f.path}: hunk #${j + 1} applies at line ${h.oldStart} (${h.oldStart - stated[i]!.hunks[j]!.oldStart} lines from where it says)`] : [])));
      for (const m of moved) update(m);
      return located;
    });

    // 2. Which units, and where each one's object goes.
    const { units, viaHeader } = await step('units', 'Finding the translation units to compile', (update) =>
      findUnits(meta, files, opts.maxUnits ?? DEFAULT_MAX_UNITS, { update, warn }),
    );
    if (!units.length) {
      throw new SutureError('no-change', 'no functional change: the patch touches no source file built into this kernel or its modules', {
        hint: 'check that the patch is for this kernel, and that the changed files are built with its configuration',
      });
    }

    // 3. Compile orig and patched.
    const trees = makeBuildTrees(home, meta, `${basename(buildRoot)}/trees`);
    // suture.h, kpatch-macros.h and kpatch-syscall.h on the patched side's include path (the tree's include/),
    // for patches that `#include "kpatch-macros.h"`; the orig side never sees them.
    mkdirSync(join(trees.patched.upper, 'include'), { recursive: true });
    for (const h of AUTHOR_HEADERS) copyFileSync(join(dirname(sutureHeader()), h), join(trees.patched.upper, 'include', h));
    const layoutRefusals: Refusal[] = [];
    const keepFiles = new Map<string, { orig: Uint8Array; patched: Uint8Array; file: string }>();
    try {
      const stable = formatPatch(stabilizeLines(files));
      await step('apply', 'Applying the patch in the build overlay (line numbers kept stable)', () => applyPatch(trees, stable, 'the patch'));
      const compiled = await step('compile', `Compiling ${units.length} unit${units.length === 1 ? '' : 's'}, orig and patched side by side`, async (update) => {
        update(units.map((u) => u.object).join(' '));
        const c = await compileBoth(meta, home, trees, units.map((u) => u.object));
        if (c.seconds.orig === 0) update('orig objects from the workspace cache');
        return c;
      });
      for (const u of units) {
        keepFiles.set(u.unit, { orig: readFileSync(compiled.orig.get(u.object)!), patched: readFileSync(compiled.patched.get(u.object)!), file: compiled.patched.get(u.object)! });
      }
    } finally {
      if (!opts.keep) removeBuildTrees(trees);
    }

    // 4. Diff (struct layouts first: a changed layout makes every other verdict moot).
    await step('layouts', 'Comparing struct layouts (pahole over the debug info)', async () => {
      for (const u of units) {
        const f = keepFiles.get(u.unit)!;
        const layout = async (bytes: Uint8Array, side: string) => {
          const file = join(buildRoot, `${side}-${u.object.replace(/\//g, '_')}`);
          writeFileSync(file, bytes);
          const r = await run(['pahole', '--anon_include', file], { maxCapture: 64 << 20 });
          if (r.code !== 0) throw new SutureError('environment', `pahole could not read the debug info of ${u.object}`, { details: r.stderr.trim(), hint: 'install dwarves (scripts/setup.sh)' });
          return parsePahole(r.stdout);
        };
        const changed = changedLayouts(await layout(f.orig, 'orig'), await layout(f.patched, 'patched'));
        for (const c of changed) {
          layoutRefusals.push(changedStructLayout(u.unit, c.type, c.before, c.after));
        }
      }
    });
    const btf = await workspaceBtf(meta);
    const compared = await step('diff', 'Comparing orig and patched objects', () =>
      units.map((u) => {
        const f = keepFiles.get(u.unit)!;
        const diff = diffObjects(ElfObject.parse(f.orig, { file: `${u.object} (orig)` }), ElfObject.parse(f.patched, { file: `${u.object} (patched)` }), {
          unit: u.unit,
          structSize: (s) => btf.structSize(s),
        });
        return { ...u, diff };
      }),
    );

    // Each unit's objects, indexed once for the steps below (parsing an object is not free).
    const indexes = new Map<string, ObjectIndex>();
    const indexOf = (unit: string, side: 'orig' | 'patched'): ObjectIndex => {
      const key = `${side}:${unit}`;
      let idx = indexes.get(key);
      if (!idx) {
        idx = new ObjectIndex(ElfObject.parse(keepFiles.get(unit)![side]), unit);
        indexes.set(key, idx);
      }
      return idx;
    };

    // Functions ftrace cannot redirect: carried, their callers patched (diff/carry.ts); then what the author
    // wrote inside the patch: callbacks, kpatch's ignore/force directives (author-records.ts). Each a new diff.
    const callbacks = new Map<string, Partial<Record<CallbackKind, CallbackRecord>>>();
    const objectOf = (d: { home: ObjectHome }) => (d.home.kind === 'module' ? d.home.module : 'vmlinux');
    const diffs: UnitReport[] = compared.map((d) => {
      const object = objectOf(d);
      const carried = carryUntraceable(d.diff, indexOf(d.unit, 'orig'), indexOf(d.unit, 'patched'));
      const authored = applyAuthorRecords(carried, readAuthorRecords(indexOf(d.unit, 'patched'), d.unit), indexOf(d.unit, 'patched'), object);
      for (const w of authored.warnings) warn(w);
      for (const c of authored.callbacks) {
        const mine = callbacks.get(object) ?? {};
        const prev = mine[c.kind];
        if (prev) {
          throw new SutureError('usage', `two ${c.kind} callbacks for ${object}: ${prev.function} (${prev.unit}) and ${c.function} (${c.unit})`, {
            hint: `the kernel's klp_object has one callback of each kind: keep one and call the other from it`,
          });
        }
        callbacks.set(object, { ...mine, [c.kind]: c });
      }
      return { ...d, diff: authored.diff };
    });

    const refusals: Refusal[] = [...layoutRefusals, ...diffs.flatMap((d) => d.diff.refusals)];
    if (refusals.length) {
      throw new SutureError('unsupported-change', `the patch makes ${refusals.length === 1 ? 'a change' : `${refusals.length} changes`} a livepatch cannot carry`, {
        details: formatRefusals(refusals),
        hint: 'see Documentation/livepatch/shadow-vars.rst and callbacks.rst for what to do instead',
      });
    }
    const functions: FunctionReport[] = diffs.flatMap((d) =>
      d.diff.functions.map((f) => ({
        object: d.home.kind === 'module' ? d.home.module : 'vmlinux',
        unit: d.unit,
        name: f.name,
        status: f.status,
        reasons: [...f.reasons],
        ...(d.diff.carriedOnly.has(f.name) ? { carriedOnly: true } : {}),
        ...(f.firstDifference !== undefined ? { firstDifference: f.firstDifference } : {}),
      })),
    );
    // Say why a changed function the patch does not touch is in it: it inlines or reads what changed.
    const headerDefs = new Map<string, string[]>();
    for (const h of files.filter((x) => x.kind === 'header')) {
      try {
        headerDefs.set(h.path, touchedDefinitions(readFileSync(join(tree, h.path), 'utf8'), h));
      } catch {
        // a header the patch creates: nothing of it to name
      }
    }
    for (const f of functions) {
      if (f.status !== 'changed') continue;
      const fp = files.find((x) => x.path === f.unit);
      let text: string;
      try {
        text = readFileSync(join(tree, f.unit), 'utf8');
      } catch {
        continue;
      }
      const range = functionLines(text, f.name);
      const entry = /^__(?:x64|ia32)_(?:compat_)?sys_(\w+)$/.exec(f.name);
      const lifted = entry && functions.find((x) => x.unit === f.unit && x.status === 'new' && x.name === `__kpatch_do_sys_${entry[1]}`);
      if (!range && lifted) {
        f.reasons.push(`the entry of the ${entry![1]} syscall: KPATCH_SYSCALL_DEFINE (kpatch-syscall.h) moved its body into the new ${lifted.name}`);
      } else if (!range && entry && !f.reasons.some((r) => r.startsWith('calls '))) {
        f.reasons.push(`the entry of the ${entry[1]} syscall (${f.name.includes('compat') ? 'COMPAT_SYSCALL_DEFINE' : 'SYSCALL_DEFINE'} in ${f.unit}): its body is inlined into it`);
      }
      // A caller pulled in for a notrace function already says so.
      if (!range || (fp && touchedBy(fp, range)) || f.reasons.some((r) => r.startsWith('calls '))) continue;
      const body = text.split('\n').slice(range.first - 1, range.last).join('\n');
      // Through a changed header: name the inline or macro its text uses, when it does so directly.
      const used = (viaHeader.get(f.unit) ?? []).flatMap((h) => (headerDefs.get(h) ?? []).filter((n) => new RegExp(`\\b${n}\\b`).test(body)).map((n) => `${n} (${h})`));
      f.reasons.push(
        used.length
          ? `the patch does not touch its lines (${f.unit}:${range.first}-${range.last}): it uses ${used.join(', ')}, which the patch changes`
          : `the patch does not touch its lines (${f.unit}:${range.first}-${range.last}): it inlines or uses code that changed`,
      );
    }
    if (opts.showFirstChanged) {
      await step('first-changed', 'Disassembling the first difference of each changed function', async () => {
        for (const f of functions) {
          if (f.status !== 'changed' || f.firstDifference === undefined) continue;
          const u = units.find((x) => x.unit === f.unit)!;
          const at = async (side: 'orig' | 'patched') => instructionAt(join(buildRoot, `${side}-${u.object.replace(/\//g, '_')}`), f.name, f.firstDifference!);
          f.firstChanged = { orig: await at('orig'), patched: await at('patched') };
        }
      });
    }
    const patchedFns = functions.filter((f) => f.status === 'changed' && !f.carriedOnly);
    if (!patchedFns.length && !callbacks.size) {
      throw new SutureError('no-change', 'no functional change: the patch compiles to the same code in every unit it touches', {
        details: diffs.map((d) => `${d.unit}: ${d.diff.unchanged} functions compared, all equal`).join('\n'),
        hint: 'comments, line moves and changes the compiler folds away need no livepatch',
      });
    }

    // 5. Symbols: sympos of replaced functions, and what every reference resolves to.
    const modules = [...new Set(diffs.filter((d) => d.home.kind === 'module').map((d) => (d.home as { module: string }).module))];
    // The patched modules' dependencies too: their code may call those modules' exports (nfsd → sunrpc).
    const moduleIndex = modules.length ? readModuleIndex(meta.paths.modules) : undefined;
    const depsOf = new Map(modules.map((m) => [m, moduleIndex!.deps.get(moduleName(m)) ?? []]));
    const src: SymbolSources = await step('symbols', `Loading the symbols of ${meta.name}`, () =>
      workspaceSymbolSources(meta, [...new Set([...modules, ...[...depsOf.values()].flat()])]),
    );
    const anchorsOf = new Map<string, Candidate[]>();
    for (const d of diffs) {
      const o = indexOf(d.unit, 'orig');
      const anchors: Candidate[] = [];
      for (const fn of o.functions.keys()) {
        try {
          const r = resolveSymbol(src, { name: fn, objects: [objectOf(d)], role: 'replaced', anchors: [], usedBy: d.unit });
          if (r.copies === 1 && r.candidate) anchors.push(r.candidate);
        } catch {
          // inlined everywhere, or duplicated: not an anchor
        }
      }
      anchorsOf.set(d.unit, anchors);
    }
    const sympos = new Map<string, number>();
    const provenance: ProvenanceResult[] = [];
    await step('provenance', 'Checking the orig build against the shipped kernel', (update) => {
      for (const f of patchedFns) {
        const d = diffs.find((x) => x.unit === f.unit)!;
        const r = resolveSymbol(src, { name: f.name, objects: [f.object], role: 'replaced', anchors: anchorsOf.get(f.unit)!, usedBy: `${f.unit}: ${f.name}` });
        f.sympos = r.sympos;
        sympos.set(`${f.object}:${f.name}`, r.sympos);
        const o = indexOf(d.unit, 'orig');
        const fn = o.functions.get(f.name)!;
        let shipped: Uint8Array | undefined;
        if (r.candidate?.entry && src.image) shipped = src.image.image.read(r.candidate.entry.address, fn.size);
        else if (r.candidate?.symbol) shipped = moduleFunctionBytes(meta, f.object, f.name, fn.size);
        const p = compareWithShipped(o, fn, f.object, shipped, [], staticBranchSites(o, fn, (n) => btf.structSize(n)));
        provenance.push(p);
        update(`${f.name}: ${p.verdict}`);
      }
    });
    const bad = provenance.filter((p) => p.verdict === 'differs');
    if (bad.length && !opts.skipProvenance) {
      throw new SutureError('build', `the orig build does not reproduce the shipped kernel for ${bad.map((p) => p.function).join(', ')}`, {
        details: bad.map((p) => `${p.object}: ${p.function}: ${p.detail}`).join('\n'),
        hint: 'the source, its configuration or the compiler differ from what built this kernel; a patch built from it would be wrong (--skip-provenance builds anyway)',
      });
    }
    for (const p of bad) warn(`provenance skipped: ${p.object}: ${p.function}: ${p.detail}`);

    const result: DiffBuildResult = { name, patches: loaded.map((l) => ({ label: l.label, strip: l.strip.level, why: l.strip.why, files: l.files.map((f) => f.path) })), patchHash, units: diffs, functions, provenance, references: [], runtimeConstants: [], warnings, timings, ...(opts.keep ? { buildDir: buildRoot } : {}) };
    if (opts.analyzeOnly) return result;

    // 6. Extract what changed, unit by unit; name every outside reference.
    const moduleDir = join(buildRoot, 'module');
    mkdirSync(moduleDir, { recursive: true });
    const parts: string[] = [];
    const references = new Map<string, { object: string; name: string; sympos: number; how: string; section?: string }>();
    const klpObjects = new Map<string, KlpObjectSpec['funcs'][number][]>();
    const callbackSymbols = new Map<string, string>();
    const keyRefusals: Refusal[] = [];
    for (const object of callbacks.keys()) if (!klpObjects.has(object)) klpObjects.set(object, []);
    await step('extract', 'Extracting the changed functions and their special-section entries', () => {
      diffs.forEach((d, i) => {
        const object = objectOf(d);
        const mine = functions.filter((f) => f.unit === d.unit);
        if (!mine.length) return;
        const exportAs = new Map<string, string>();
        for (const f of mine.filter((x) => x.status === 'changed' && !x.carriedOnly)) {
          // The new version keeps the function's own name (stack traces and /proc/kallsyms show it),
          // made global for the klp structures; a name changed in two units gets the unit's number.
          const twice = functions.filter((x) => x.name === f.name && x.status === 'changed').length > 1;
          const symbol = twice ? `${f.name}.suture${i}` : f.name;
          exportAs.set(f.name, symbol);
          const list = klpObjects.get(object) ?? [];
          list.push({ oldName: f.name, newFunction: `__suture_new_${i}_${f.name.replace(/[^A-Za-z0-9_]/g, '_')}`, symbol, sympos: f.sympos ?? 0 });
          klpObjects.set(object, list);
        }
        for (const [kind, c] of Object.entries(callbacks.get(object) ?? {}) as [CallbackKind, CallbackRecord][]) {
          if (c.unit !== d.unit) continue;
          const symbol = `__suture_cb_${i}_${kind}_${c.function.replace(/[^A-Za-z0-9_]/g, '_')}`;
          exportAs.set(c.function, symbol);
          callbackSymbols.set(`${object} ${kind}`, symbol);
        }
        const x = extract(keepFiles.get(d.unit)!.patched, `${d.object} (patched)`, {
          functions: mine.map((f) => f.name),
          data: [...d.diff.newData, ...d.diff.changedConstants],
          exportAs,
          structSize: (s) => btf.structSize(s),
          externalName: ({ name: sym, local }) => {
            // New globals of another unit of this patch stay plain names: the module link resolves them.
            if (!local && diffs.some((o) => o.diff.newData.includes(sym) || o.diff.functions.some((f) => f.status === 'new' && f.name === sym))) return sym;
            const objects = object === 'vmlinux' ? ['vmlinux'] : [object, 'vmlinux'];
            let r: ResolvedSymbol;
            try {
              r = resolveSymbol(src, { name: sym, objects, role: 'referenced', anchors: anchorsOf.get(d.unit)!, usedBy: `${d.unit}` });
            } catch (e) {
              // An export of a module the patched module depends on: a klp relocation in the patched module's
              // own section (patchbuild/klp/plan.ts says why), named apart per patched module.
              const dep = object !== 'vmlinux' && !local && e instanceof SymbolResolutionError && e.kind === 'not-found'
                ? dependencyExport({ module: object, name: sym, usedBy: d.unit }, depsOf.get(object) ?? [], src.exports, src.modules.get(moduleName(object))?.versions() ?? new Map())
                : undefined;
              if (!dep) throw e;
              const x = resolveSymbol(src, { name: sym, objects: [dep.exporter], role: 'referenced', anchors: [], usedBy: `${d.unit}` });
              const link = `.suture.dep.${object}.${x.object}.${x.name},${x.sympos}`;
              references.set(link, { object: x.object, name: x.name, sympos: x.sympos, how: `exported by ${dep.exporter}, which ${object} depends on (CRC ${dep.crc})`, section: object });
              return link;
            }
            if (r.exported && !local) return sym;
            const klp = `${KLP_PREFIX}${r.object}.${r.name},${r.sympos}`;
            references.set(klp, { object: r.object, name: r.name, sympos: r.sympos, how: r.how });
            return klp;
          },
        });
        for (const c of x.runtimeConstants) {
          result.runtimeConstants.push({ unit: d.unit, ...c });
          warn(`${d.unit}: ${c.function} reads ${c.symbol} from memory where vmlinux's copy has it as an immediate written at boot (runtime constant)`);
        }
        // Jump labels and static calls on a key a module owns: refused (rules.ts moduleKeyRefusal).
        const partObj = ElfObject.parse(x.bytes, { file: `${d.object} (extracted)` });
        for (const sec of partObj.sections) {
          if (!(sec instanceof RelocationSection) || !sec.target || !/^(__jump_table|\.static_call_sites)$/.test(sec.target.name)) continue;
          for (const r of sec.relocations) {
            const ref = r.symbol ? references.get(r.symbol.name) : undefined;
            if (!ref || ref.object === 'vmlinux') continue;
            // The entry's code field (jump_entry: code, target, key; static_call_site: addr, key) names the function.
            const site = sec.relocations.find((c) => c.offset === r.offset - (sec.target!.name === '__jump_table' ? 8n : 4n))?.symbol;
            const siteName = !site ? '?' : site.type !== STT_SECTION ? site.name : typeof site.section !== 'number' ? site.section.name.replace(/^\.text\.(unlikely\.)?/, '') : '?';
            keyRefusals.push(moduleKeyRefusal(sec.target.name, ref.name, ref.object, d.unit, siteName));
          }
        }
        const part = `part${i}`;
        writeFileSync(join(moduleDir, `${part}.o_shipped`), x.bytes);
        // modpost reads each object's .cmd file (for srcversion); kbuild writes none for a shipped object.
        writeFileSync(join(moduleDir, `.${part}.o.cmd`), `cmd_${part}.o := cat ${part}.o_shipped > ${part}.o\n\nsource_${part}.o := ${part}.o_shipped\n\ndeps_${part}.o := \\\n  ${part}.o_shipped \\\n\n${part}.o: $(deps_${part}.o)\n\n$(deps_${part}.o):\n`);
        parts.push(part);
      });
    });
    if (keyRefusals.length) {
      throw new SutureError('unsupported-change', `the patch makes ${keyRefusals.length === 1 ? 'a change' : `${keyRefusals.length} changes`} a livepatch cannot carry`, {
        details: formatRefusals(keyRefusals),
        hint: 'see docs/patch-author-guide.md, "Jump labels and static calls"',
      });
    }
    result.references = [...references.values()];

    // 7. The module: generated klp structures + the extracted objects, linked by kbuild, then klp relocations.
    const output = resolve(opts.output ?? `${name}.ko`);
    await step('module', `Building ${basename(output)}`, async (update) => {
      const prelude = [
        '#include <linux/module.h>',
        `MODULE_INFO(suture_patch_sha256, "${patchHash}");`,
        `MODULE_INFO(suture_kernel, "${meta.release}");`,
        ...(src.image?.image.gnuBuildId() ? [`MODULE_INFO(suture_build_id, "${src.image.image.gnuBuildId()}");`] : []),
        ...(opts.cves ?? []).map((c) => `MODULE_INFO(suture_cve, "${c.replace(/"/g, '')}");`),
        ...(opts.effectiveVersion ? [`MODULE_INFO(suture_effective_version, "${opts.effectiveVersion.replace(/"/g, '')}");`] : []),
      ].join('\n');
      writeFileSync(
        join(moduleDir, 'klp.c'),
        klpModuleSource({
          name,
          objects: [...klpObjects].map(([object, funcs]) => ({
            object,
            funcs,
            callbacks: Object.fromEntries(CALLBACK_KINDS.flatMap((k) => (callbackSymbols.has(`${object} ${k}`) ? [[k, callbackSymbols.get(`${object} ${k}`)!]] : []))),
            // A module object whose code this patch reaches through klp relocations: clear them when it is unpatched (generate.ts).
            clearRelocations: object !== 'vmlinux' && [...references.values()].some((r) => (r.section ?? r.object) === object),
          })),
          prelude,
          declareNewFunctions: true,
          replace: opts.replace ?? false,
          description: opts.description ?? `livepatch from ${opts.patches.map((p) => basename(p)).join(', ')}`,
          origin: `from ${opts.patches.map((p) => basename(p)).join(', ')} for ${meta.name}`,
        }),
      );
      writeFileSync(join(moduleDir, 'Kbuild'), kbuildFile(name, { objects: ['klp', ...parts] }));
      update('kbuild, then klp relocations');
      await linkLivepatch({
        meta, home, sourceDir: moduleDir, buildDir: join(buildRoot, 'kbuild'), name, output, src,
        dispose: symbolDispositions(src, (sym) => {
          const ref = references.get(sym);
          if (ref) return { kind: 'klp', object: ref.object, name: ref.name, sympos: ref.sympos, section: ref.section };
          return sym.startsWith(KLP_PREFIX) ? 'leave' : undefined;
        }),
      });
    });
    result.output = output;
    return result;
  }
}

/** The bytes of a function in the shipped module file (for provenance of module code). */
function moduleFunctionBytes(meta: KernelMetadata, module: string, fn: string, size: number): Uint8Array | undefined {
  const index = readModuleIndex(meta.paths.modules);
  const rel = index.files.get(moduleName(module));
  if (!rel) return undefined;
  const file = join(meta.paths.modules, rel);
  if (!existsSync(file)) return undefined;
  const view = ElfView.parse(readFileSync(file), { file });
  const symtab = view.findSection('.symtab');
  if (!symtab) return undefined;
  const sym = view.symbols(symtab).find((s) => s.name === fn && (s.info & 0xf) === 2);
  if (!sym) return undefined;
  const sec = view.sections[sym.shndx];
  if (!sec) return undefined;
  return view.data(sec).subarray(Number(sym.value), Number(sym.value) + size);
}


/** The instruction of a function (in its own section, as -ffunction-sections puts it) that covers an offset. */
async function instructionAt(file: string, fn: string, offset: number): Promise<string | undefined> {
  const r = await run(['objdump', '-d', '--no-show-raw-insn', `--disassemble=${fn}`, file], { maxCapture: 4 << 20 });
  if (r.code !== 0) return undefined;
  let best: string | undefined;
  for (const line of r.stdout.split('\n')) {
    const m = /^\s*([0-9a-f]+):\s+(.*)$/.exec(line);
    if (!m) continue;
    if (parseInt(m[1]!, 16) <= offset) best = `+0x${m[1]}: ${m[2]!.replace(/\s+/g, ' ').trim()}`;
    else break;
  }
  return best;
}
