// SPDX-License-Identifier: GPL-2.0-only
/**
 * What both build drivers (a patch: diff-build.ts; a fix.c: source.ts) share
 * at the two ends of the pipeline: the module's default name, the build
 * directory under $SUTURE_HOME/builds, and the last stage, the link: kbuild
 * links the generated klp structures with the code, then every reference
 * vmlinux does not export becomes a klp relocation (klp/).
 */
import { mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { buildExternalModule } from '../kernel/kbuild.js';
import { MODULE_NAME_MAX, resolveSymbol, type SymbolSources } from '../kernel/symbols/mod.js';
import type { KernelMetadata } from '../kernel/workspace.js';
import { SutureError } from '../util/errors.js';
import { convertModuleFile, type KlpConversion, type SymbolDisposition } from './klp/mod.js';

/** The default module name: livepatch_<label>, in the characters a module name may hold, within the kernel's limit. */
export function defaultModuleName(label: string): string {
  return `livepatch_${label.replace(/[^A-Za-z0-9_]/g, '_')}`.slice(0, MODULE_NAME_MAX);
}

/** Build directories of the same name older than this are removed when a new one is made. */
const STALE_BUILD_MS = 30 * 60 * 1000;

/**
 * A fresh build directory for `name` under $SUTURE_HOME/builds. Older ones of
 * the same name are removed once they are stale (a build of the same name
 * running at the same time keeps its directory).
 */
export function freshBuildDir(home: string, name: string): string {
  const root = join(home, 'builds');
  mkdirSync(root, { recursive: true });
  for (const d of readdirSync(root)) {
    if (!d.startsWith(`${name}-`) || !/^\d{8}T\d{6}-\d+$/.test(d.slice(name.length + 1))) continue;
    try {
      if (Date.now() - statSync(join(root, d)).mtimeMs > STALE_BUILD_MS) rmSync(join(root, d), { recursive: true, force: true });
    } catch {
      // removed by another build meanwhile
    }
  }
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, '');
  const dir = join(root, `${name}-${stamp}-${process.pid}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** vmlinux symbols the generated klp.c refers to (relocation clearing: text_poke under text_mutex, generate.ts). */
export const GENERATED_REFERENCES: readonly string[] = ['text_poke', 'text_poke_sync', 'text_mutex'];

/**
 * What each undefined symbol of the linked module becomes: what the driver
 * resolved (`known`), else a vmlinux export, else (for what the generated
 * code uses) a klp relocation to vmlinux's unique copy.
 */
export function symbolDispositions(src: SymbolSources, known: (sym: string) => SymbolDisposition | 'leave' | undefined): (sym: string) => SymbolDisposition | undefined {
  return (sym) => {
    const k = known(sym);
    if (k === 'leave') return undefined;
    if (k) return k;
    const e = src.exports.vmlinux(sym);
    if (e) return { kind: 'exported', crc: e.crc, namespace: e.namespace };
    if (GENERATED_REFERENCES.includes(sym)) {
      const r = resolveSymbol(src, { name: sym, objects: ['vmlinux'], role: 'referenced', anchors: [], usedBy: 'the generated klp structures' });
      return { kind: 'klp', object: 'vmlinux', name: r.name, sympos: r.sympos };
    }
    return undefined;
  };
}

export interface LinkRequest {
  readonly meta: KernelMetadata;
  readonly home: string;
  /** The module's sources: klp.c (generated), Kbuild, and the code. */
  readonly sourceDir: string;
  /** Where kbuild builds (a copy of sourceDir). */
  readonly buildDir: string;
  readonly name: string;
  readonly output: string;
  readonly dispose: (sym: string) => SymbolDisposition | undefined;
  readonly src: SymbolSources;
  readonly onLine?: (line: string) => void;
}

/**
 * The link stage: kbuild builds the module (KBUILD_MODPOST_WARN=1: modpost
 * accepts the names vmlinux does not export), then klp relocations are
 * written into `output`.
 */
export async function linkLivepatch(req: LinkRequest): Promise<KlpConversion> {
  const kos = await buildExternalModule(req.meta, req.home, req.sourceDir, req.buildDir, { vars: { KBUILD_MODPOST_WARN: '1' }, onLine: req.onLine });
  const linked = kos.find((k) => basename(k) === `${req.name}.ko`);
  if (!linked) throw new SutureError('build', `kbuild built ${kos.map((k) => basename(k)).join(', ')}, not ${req.name}.ko`, { hint: `the build directory is ${req.buildDir}` });
  mkdirSync(dirname(req.output), { recursive: true });
  return convertModuleFile(linked, req.output, req.dispose, (n) => req.src.exports.vmlinux(n) !== undefined);
}
