// SPDX-License-Identifier: GPL-2.0-only
/**
 * The last stage of `suture build --source`: the klp structures generated
 * from the SUTURE_* lines beside a copy of fix.c, linked by kbuild, then every
 * reference vmlinux does not export turned into a klp relocation (link.ts,
 * shared with the patch build).
 */
import { replaceTakesSympos0And1Alike } from '../kernel/livepatch-source.js';
import type { ResolvedSymbol, SymbolSources } from '../kernel/symbols/mod.js';
import type { KernelMetadata } from '../kernel/workspace.js';
import type { FixSources } from './fix-probe.js';
import type { Fix } from './fix-read.js';
import type { ReplacedSymbol } from './fix-symbols.js';
import { klpModuleSource, type CallbackKind, type KlpFuncSpec, type KlpObjectSpec } from './generate.js';
import type { KlpConversion } from './klp/mod.js';
import { GENERATED_REFERENCES, linkLivepatch, symbolDispositions } from './link.js';

/** The klp_objects of a fix: its replaced functions and callbacks, by object. */
export function fixObjects(fix: Fix, replaced: readonly ReplacedSymbol[]): KlpObjectSpec[] {
  const byObject = new Map<string, { funcs: KlpFuncSpec[]; callbacks: Partial<Record<CallbackKind, string>> }>();
  const of = (object: string) => {
    let o = byObject.get(object);
    if (!o) byObject.set(object, (o = { funcs: [], callbacks: {} }));
    return o;
  };
  for (const { d, r } of replaced) of(d.object).funcs.push({ oldName: d.oldName, newFunction: d.newFunction, sympos: r.sympos });
  // Callbacks (SUTURE_*_CALLBACK): fix.c is included above the generated structures, so they are called by name.
  for (const d of fix.directives) if (d.kind === 'callback') of(d.object).callbacks[d.callback] = d.fn;
  return [...byObject].map(([object, o]) => ({
    object,
    funcs: o.funcs,
    ...(Object.keys(o.callbacks).length ? { callbacks: o.callbacks } : {}),
    // Module objects reached through klp relocations clear them when unpatched (generate.ts RELOCATION_CLEARING).
    ...(object !== 'vmlinux' ? { clearRelocations: true } : {}),
  }));
}

/** Generate the module's source in `srcDir`, link it in `outDir` (kbuild's lines to `update`), write `fix.output`. */
export async function linkFix(
  req: { meta: KernelMetadata; home: string; fix: Fix; sources: FixSources; srcDir: string; outDir: string; replace: boolean },
  replaced: readonly ReplacedSymbol[],
  src: SymbolSources,
  resolved: ReadonlyMap<string, ResolvedSymbol>,
  say: { update(line: string): void; warn(message: string): void },
): Promise<KlpConversion> {
  const { fix } = req;
  req.sources.write(
    req.srcDir,
    klpModuleSource({
      name: fix.name,
      objects: fixObjects(fix, replaced),
      prelude: req.sources.prelude,
      replace: req.replace,
      description: `livepatch built by suture from ${fix.label}`,
      origin: `from ${fix.label} for ${req.meta.name}`,
      functionsAtPosition1: replaceTakesSympos0And1Alike(req.meta.paths.source),
    }),
  );
  const dispose = symbolDispositions(src, (n) => {
    const r = resolved.get(n);
    if (!r) return undefined;
    return r.exported
      ? { kind: 'exported', crc: r.exported.crc, namespace: r.exported.namespace }
      : { kind: 'klp', object: r.object, name: r.name, sympos: r.sympos, exportedBy: src.exports.get(n)?.object === r.object ? r.object : undefined };
  });
  return linkLivepatch({
    meta: req.meta,
    home: req.home,
    sourceDir: req.srcDir,
    buildDir: req.outDir,
    name: fix.name,
    output: fix.output,
    dispose,
    src,
    onLine: (l) => {
      say.update(l.trim());
      const m = /modpost: "([^"]+)" \[.*\] undefined!/.exec(l);
      if (m && !resolved.has(m[1]!) && !GENERATED_REFERENCES.includes(m[1]!)) say.warn(`modpost: ${m[1]} is undefined and was not in ${fix.label}'s object`);
    },
  });
}
