// SPDX-License-Identifier: GPL-2.0-only
/**
 * The symbol sources of a fetched kernel workspace: its captured kallsyms,
 * the headers' Module.symvers, the symtabs of the modules asked for, and the
 * decompressed image (checked against the kallsyms: `linux_banner` in the
 * image must be the /proc/version the kernel printed when it was captured).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SutureError, fsError } from '../../util/errors.js';
import { moduleName, readModuleIndex, type ModuleIndex } from '../modules.js';
import type { KernelMetadata } from '../workspace.js';
import { KernelImage, McountTable, cachedImagePath } from './image.js';
import { VmlinuxSymbols } from './kallsyms.js';
import { ModuleSymbols } from './module-symbols.js';
import { checkObjectName, type SymbolSources } from './resolve.js';
import { Exports } from './symvers.js';

function readText(file: string, what: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    throw fsError(e, `reading ${what}`, file);
  }
}

const vmlinuxCache = new Map<string, VmlinuxSymbols>();
const exportsCache = new Map<string, Exports>();
const imageCache = new Map<string, { image: KernelImage; mcount: McountTable }>();

/** The vmlinux symbols captured at fetch time. */
export function workspaceVmlinux(meta: KernelMetadata): VmlinuxSymbols {
  let v = vmlinuxCache.get(meta.paths.kallsyms);
  if (!v) {
    v = VmlinuxSymbols.parse(readText(meta.paths.kallsyms, 'the kernel symbols'), meta.paths.kallsyms);
    vmlinuxCache.set(meta.paths.kallsyms, v);
  }
  return v;
}

/** Module.symvers of the headers. */
export function workspaceExports(meta: KernelMetadata): Exports {
  const file = join(meta.paths.headers, 'Module.symvers');
  let x = exportsCache.get(file);
  if (!x) {
    x = Exports.parse(readText(file, 'the kernel exports'), file);
    exportsCache.set(file, x);
  }
  return x;
}

/**
 * The decompressed image, with its ftrace call-site table, checked to be the
 * kernel whose kallsyms suture holds.
 */
export async function workspaceImage(meta: KernelMetadata, vmlinux = workspaceVmlinux(meta)): Promise<{ image: KernelImage; mcount: McountTable }> {
  const cached = imageCache.get(meta.paths.vmlinuz);
  if (cached) return cached;
  const image = await KernelImage.load(meta.paths.vmlinuz, cachedImagePath(meta.paths.symbols));
  const banner = vmlinux.first('linux_banner');
  const text = banner ? image.cString(banner.address) : undefined;
  if (text === undefined || !text.startsWith(meta.procVersion.trim())) {
    throw new SutureError('invalid-input', `${image.file} does not match the captured kallsyms: linux_banner reads ${JSON.stringify(text?.slice(0, 80))}, /proc/version was ${JSON.stringify(meta.procVersion.slice(0, 80))}`, {
      hint: `remove ${image.file} (suture decompresses it again), or fetch the kernel again`,
    });
  }
  const r = { image, mcount: McountTable.fromImage(image, vmlinux) };
  imageCache.set(meta.paths.vmlinuz, r);
  return r;
}

/** The symtab of one of the kernel's own modules. */
export function workspaceModule(meta: KernelMetadata, name: string, index: ModuleIndex = readModuleIndex(meta.paths.modules)): ModuleSymbols {
  const mod = moduleName(name);
  checkObjectName(mod, 'module');
  if (index.builtin.has(mod)) {
    throw new SutureError('usage', `${mod} is built into ${meta.name}, not a loadable module`, {
      hint: `its code is part of vmlinux: name object vmlinux for its functions`,
    });
  }
  const rel = index.files.get(mod);
  if (!rel) {
    const close = [...index.files.keys()].filter((n) => n.includes(mod) || mod.includes(n)).slice(0, 8);
    throw new SutureError('not-found', `${meta.name} has no module named ${mod}`, {
      hint: close.length ? `did you mean: ${close.join(', ')}` : `the modules are listed in ${join(meta.paths.modules, 'modules.dep')}`,
    });
  }
  const file = join(meta.paths.modules, rel);
  if (!existsSync(file)) throw new SutureError('not-found', `module ${mod}: ${file} is missing from the workspace`, { hint: 'fetch the kernel again' });
  return ModuleSymbols.read(mod, file);
}

/** Everything the resolver needs, with the symtabs of `modules` (names with '-' or '_'). */
export async function workspaceSymbolSources(meta: KernelMetadata, modules: readonly string[], opts: { image?: boolean } = {}): Promise<SymbolSources> {
  const vmlinux = workspaceVmlinux(meta);
  const exports = workspaceExports(meta);
  const map = new Map<string, ModuleSymbols>();
  if (modules.length) {
    const index = readModuleIndex(meta.paths.modules);
    for (const m of modules) map.set(moduleName(m), workspaceModule(meta, m, index));
  }
  const image = opts.image === false ? undefined : await workspaceImage(meta, vmlinux);
  return { vmlinux, exports, modules: map, image };
}
