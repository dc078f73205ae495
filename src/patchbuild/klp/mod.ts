// SPDX-License-Identifier: GPL-2.0-only
/**
 * klp conversion of a linked livepatch module: planKlp (pure, over the
 * ElfObject), applyKlp (edits the model), convertModuleFile (the one step
 * that reads and writes files), checkLivepatchModule (the rules a written
 * module must meet). Shared by every build mode: it is the last step before
 * signing.
 *
 * @example
 * convertModuleFile('out/fix.ko', 'fix.ko', (name) => resolved.get(name), (name) => exports.vmlinux(name) !== undefined);
 */
export { KLP_RELA_FLAGS, MODVERSION_INFO_SIZE, moduleRelocationAllowed, planKlp, readVersions, type KlpPlan, type KlpRelocationMove, type KlpSymbolRename, type SymbolDisposition, type VersionEntry } from './plan.js';
export { applyKlp, type KlpApplied } from './apply.js';
export { checkLivepatchModule, type LivepatchCheck } from './check.js';
export { convertModuleFile, type KlpConversion } from './convert.js';
