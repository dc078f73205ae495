// SPDX-License-Identifier: GPL-2.0-only
/**
 * Kernel symbols and livepatch `sympos`: vmlinux symbols from the captured
 * kallsyms (kallsyms.ts), exports from Module.symvers (symvers.ts), module
 * symtabs (module-symbols.ts), the shipped image's code (image.ts), and the
 * resolver that turns a name into (object, name, sympos) or a refusal
 * (resolve.ts). workspace-symbols.ts loads them from a fetched workspace.
 *
 * @example
 * const src = await workspaceSymbolSources(meta, ['binfmt_misc']);
 * const r = resolveSymbol(src, { name: 'enabled', objects: ['vmlinux', 'binfmt_misc'], role: 'referenced', anchors: [], usedBy: 'fix.c' });
 * // { object: 'binfmt_misc', name: 'enabled', sympos: 0, how: 'unique', ... }
 */
export { VmlinuxSymbols, isLocalType, isTextType, type KallsymsEntry, type VmlinuxRegion } from './kallsyms.js';
export { Exports, objectOfPath, type ExportedSymbol } from './symvers.js';
export { ModuleSymbols, type ModuleSymbol, type ModuleSympos } from './module-symbols.js';
export { KernelImage, McountTable, codeReferences, extractVmlinux, vmlinuxFtraceSite, cachedImagePath, type FtraceSite } from './image.js';
export {
  ADJACENT_MAX,
  ADJACENT_RATIO,
  KSYM_NAME_MAX,
  MODULE_NAME_MAX,
  candidatesOf,
  checkObjectName,
  checkPatchable,
  checkSymbolName,
  describeCandidate,
  pickByUnit,
  resolveSymbol,
  SymbolResolutionError,
  type Candidate,
  type Patchability,
  type ResolveRequest,
  type ResolvedHow,
  type ResolvedSymbol,
  type SymbolHint,
  type SymbolSources,
} from './resolve.js';
export { dependencyExport, type DependencyExport } from './module-exports.js';
export { workspaceExports, workspaceImage, workspaceModule, workspaceSymbolSources, workspaceVmlinux } from './workspace-symbols.js';
