// SPDX-License-Identifier: GPL-2.0-only
/**
 * The last stage of a patch build: the generated klp structures (klp.c, with
 * suture's MODULE_INFO lines) beside the extracted objects, linked by kbuild,
 * then every outside reference turned into a klp relocation (link.ts, shared
 * with `suture build --source`).
 */
import { replaceTakesSympos0And1Alike } from '../kernel/livepatch-source.js';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { KernelMetadata } from '../kernel/workspace.js';
import { KLP_PREFIX, type ExtractedPatch } from './extract-units.js';
import { CALLBACK_KINDS, kbuildFile, klpModuleSource } from './generate.js';
import { linkLivepatch, symbolDispositions } from './link.js';
import type { PatchSymbols } from './replaced.js';

/** What the module says about itself (modinfo suture_*; the bundle's manifest reads them). */
export interface PatchModuleInfo {
  readonly name: string;
  readonly patchSha256: string;
  /** GNU build ID of the target vmlinux, when the image has one. */
  readonly buildId?: string | undefined;
  readonly cves: readonly string[];
  /** The kernel version the patched kernel is equivalent to (`suture uname` shows it). */
  readonly effectiveVersion?: string | undefined;
  readonly replace: boolean;
  readonly description: string;
  /** Where it came from, for the generated file's header comment. */
  readonly origin: string;
  /** More modinfo lines (catch-up: each fix carried, each left out). */
  readonly extra?: readonly { readonly key: string; readonly value: string }[] | undefined;
}

const quoted = (s: string) => s.replace(/["\\\n]/g, ' ');

/** klp.c's lines above the generated structures: suture's MODULE_INFO. */
export function suturePrelude(meta: KernelMetadata, info: PatchModuleInfo): string {
  return [
    '#include <linux/module.h>',
    `MODULE_INFO(suture_patch_sha256, "${info.patchSha256}");`,
    `MODULE_INFO(suture_kernel, "${meta.release}");`,
    ...(info.buildId ? [`MODULE_INFO(suture_build_id, "${info.buildId}");`] : []),
    ...info.cves.map((c) => `MODULE_INFO(suture_cve, "${quoted(c)}");`),
    ...(info.effectiveVersion ? [`MODULE_INFO(suture_effective_version, "${quoted(info.effectiveVersion)}");`] : []),
    ...(info.extra ?? []).map((e) => `MODULE_INFO(${e.key}, "${quoted(e.value)}");`),
  ].join('\n');
}

/** Write klp.c and Kbuild into the extracted objects' directory, link, and write `output`. */
export async function linkPatchModule(
  req: { meta: KernelMetadata; home: string; buildRoot: string; moduleDir: string; output: string },
  extracted: ExtractedPatch,
  syms: PatchSymbols,
  info: PatchModuleInfo,
): Promise<void> {
  const { meta, moduleDir } = req;
  const references = [...extracted.references.values()];
  const objects = [...extracted.klpObjects].map(([object, funcs]) => ({
    object,
    funcs,
    callbacks: Object.fromEntries(CALLBACK_KINDS.flatMap((k) => (extracted.callbackSymbols.has(`${object} ${k}`) ? [[k, extracted.callbackSymbols.get(`${object} ${k}`)!]] : []))),
    // A module object whose code this patch reaches through klp relocations: clear them when it is unpatched (generate.ts).
    clearRelocations: object !== 'vmlinux' && references.some((r) => (r.section ?? r.object) === object),
  }));
  writeFileSync(
    join(moduleDir, 'klp.c'),
    klpModuleSource({ name: info.name, objects, prelude: suturePrelude(meta, info), declareNewFunctions: true, replace: info.replace, description: info.description, origin: info.origin, importNamespaces: extracted.namespaces, functionsAtPosition1: replaceTakesSympos0And1Alike(meta.paths.source) }),
  );
  writeFileSync(join(moduleDir, 'Kbuild'), kbuildFile(info.name, { objects: ['klp', ...extracted.parts] }));
  await linkLivepatch({
    meta,
    home: req.home,
    sourceDir: moduleDir,
    buildDir: join(req.buildRoot, 'kbuild'),
    name: info.name,
    output: req.output,
    src: syms.src,
    dispose: symbolDispositions(syms.src, (sym) => {
      const ref = extracted.references.get(sym);
      if (ref) return { kind: 'klp', object: ref.object, name: ref.name, sympos: ref.sympos, section: ref.section };
      return sym.startsWith(KLP_PREFIX) ? 'leave' : undefined;
    }),
  });
}
