// SPDX-License-Identifier: GPL-2.0-only
/**
 * Exports of other modules that a module's code may use: a function of nfsd
 * calls cache_check, exported by sunrpc. The kernel lets a livepatch reach
 * them from the patched module's klp relocation sections (see
 * patchbuild/klp/plan.ts for why that, and not an ordinary relocation): only for
 * an exporter the patched module depends on (modules.dep), which the kernel
 * keeps loaded for as long as the patched module is.
 *
 * Pure: the module index, Module.symvers and the patched module's
 * `__versions` are given by the caller.
 */
import { SutureError } from '../../util/errors.js';
import type { ExportedSymbol, Exports } from './symvers.js';

export interface DependencyExport {
  readonly name: string;
  /** The module that exports it (`sunrpc`). */
  readonly exporter: string;
  readonly export: ExportedSymbol;
  /** What was checked about the CRC: the patched module's own `__versions` against Module.symvers. */
  readonly crc: string;
}

/**
 * The export of `name` by a module `module` depends on, or undefined when no
 * module exports it. Refused (with the rule) when the exporter is not one of
 * `module`'s dependencies, or when the CRC `module` was linked against
 * differs from Module.symvers (the headers are not those of the shipped
 * modules).
 */
export function dependencyExport(
  req: { module: string; name: string; usedBy: string },
  deps: readonly string[],
  exports: Exports,
  linkedVersions: ReadonlyMap<string, number>,
): DependencyExport | undefined {
  const x = exports.get(req.name);
  if (!x || x.object === 'vmlinux' || x.object === req.module) return undefined;
  if (!deps.includes(x.object)) {
    throw new SutureError('unsupported-change', `${req.usedBy}: ${req.name} is exported by module ${x.object}, which ${req.module} does not depend on (modules.dep)`, {
      details: `${req.module} depends on: ${deps.join(', ') || 'no module'}`,
      hint: `${req.module} may be loaded while ${x.object} is not, and livepatch could not resolve ${req.name} then: call it through a pointer found at run time (symbol_get), or patch ${x.object} too`,
    });
  }
  const linked = linkedVersions.get(req.name);
  let crc: string;
  if (linked === undefined) {
    crc = linkedVersions.size ? `${req.module} does not import it yet; Module.symvers gives 0x${x.crc.toString(16).padStart(8, '0')}` : 'no MODVERSIONS';
  } else if (linked !== x.crc) {
    throw new SutureError('invalid-input', `${req.usedBy}: ${req.module}.ko was linked against ${req.name} with CRC 0x${linked.toString(16)}, but Module.symvers gives 0x${x.crc.toString(16)}`, {
      hint: 'the headers package does not match the shipped modules: fetch the kernel again',
    });
  } else {
    crc = `0x${linked.toString(16).padStart(8, '0')}, as ${req.module}.ko was linked against it`;
  }
  return { name: req.name, exporter: x.object, export: x, crc };
}
