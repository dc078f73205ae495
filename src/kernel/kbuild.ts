// SPDX-License-Identifier: GPL-2.0-only
/** Building external modules against a kernel workspace's headers, with the kernel's own compiler. */
import { cpSync, existsSync, mkdirSync, readdirSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { SutureError } from '../util/errors.js';
import { buildrootToolchain, hostToolchain, type Toolchain } from './toolchain.js';
import type { KernelMetadata } from './workspace.js';

/**
 * Extra flags for every compile in a prepared tree: one section per function
 * and per data object, so changed functions can be told apart and extracted.
 * The tree is prepared with them too, so a later compile of a single object
 * rebuilds nothing else (kbuild rebuilds whatever was built with other flags).
 */
export const SECTION_KCFLAGS = '-ffunction-sections -fdata-sections';

/**
 * Kconfig probes the tools it finds (6.12: `rustc`, `bindgen` for
 * CONFIG_RUSTC_VERSION and RUST_IS_AVAILABLE). Debian's kernels record none
 * (CONFIG_RUSTC_VERSION=0), so every make in a tree names tools that are not
 * there: a Rust toolchain on the host (or none) changes nothing, and every
 * later make sees the same answers (a different one would re-run syncconfig
 * and rebuild the tree).
 */
export const PINNED_PROBES = ['RUSTC=suture-no-rustc', 'BINDGEN=suture-no-bindgen'];

/**
 * For compiling objects only (never for preparing a tree): no genksyms pass.
 * With CONFIG_MODVERSIONS kbuild preprocesses every unit that exports a
 * symbol a second time and parses it with genksyms, only to append the
 * symbol CRCs to the object's .cmd file (6.1 and 6.12 alike: the object
 * itself does not change; modpost reads the CRCs at a full build's link,
 * which suture never does: the patch module's CRCs come from Module.symvers).
 * The C code still sees CONFIG_MODVERSIONS from autoconf.h.
 */
export const OBJECT_ONLY_ARGS = ['CONFIG_MODVERSIONS='];

/** make arguments for building in a workspace's prepared source tree. */
export function treeMakeArgs(cc: string, release: string, jobs: number): string[] {
  return ['make', `-j${Math.max(1, jobs)}`, `CC=${cc}`, `HOSTCC=${cc}`, `KERNELRELEASE=${release}`, `KCFLAGS=${SECTION_KCFLAGS}`, ...PINNED_PROBES];
}

/** The toolchain recorded for a workspace at fetch time. */
export function toolchainFor(meta: KernelMetadata, home: string): Toolchain {
  return meta.compiler.via === 'buildroot'
    ? buildrootToolchain(meta.compiler.text, meta.compiler.buildroot!, home)
    : hostToolchain(meta.compiler.text);
}

export interface KbuildOptions {
  /** Extra make variables (NAME=value). */
  vars?: Record<string, string>;
  onLine?: (line: string) => void;
}

/**
 * `make -C <headers> M=<dir> modules` with the kernel's compiler. The module
 * sources (and their Kbuild file) are copied from srcDir into buildDir first,
 * so the source tree stays clean. Returns the .ko files built.
 */
export async function buildExternalModule(
  meta: KernelMetadata,
  home: string,
  srcDir: string,
  buildDir: string,
  opts: KbuildOptions = {},
): Promise<string[]> {
  mkdirSync(buildDir, { recursive: true });
  cpSync(srcDir, buildDir, { recursive: true });
  const tc = toolchainFor(meta, home);
  const cc = meta.compiler.command;
  const vars = Object.entries(opts.vars ?? {}).map(([k, v]) => `${k}=${v}`);
  const argv = ['make', `-j${Math.max(1, cpus().length)}`, '-C', meta.paths.headers, `M=${buildDir}`, `CC=${cc}`, `HOSTCC=${cc}`, ...vars, 'modules'];
  const r = await tc.run(argv, buildDir, { onLine: opts.onLine ? (l) => opts.onLine!(l) : undefined });
  if (r.code !== 0) {
    const log = (r.stdout + r.stderr).trim().split('\n');
    // The compiler's and the linker's own lines (ld says "multiple definition", "undefined reference" without "error").
    const errors = log.filter((l) => (/error|undefined!|multiple definition|undefined reference|relocation|\bld: /i.test(l) && !/^make(\[\d+\])?: \*\*\*/.test(l))).slice(0, 12);
    throw new SutureError('build', `building the module in ${buildDir} failed (make exit ${r.code})`, {
      details: (errors.length ? errors : log.slice(-15)).join('\n'),
    });
  }
  const kos = readdirSync(buildDir).filter((f) => f.endsWith('.ko')).map((f) => join(buildDir, f));
  if (!kos.length || !kos.every(existsSync)) throw new SutureError('build', `make succeeded but left no .ko in ${buildDir}`);
  return kos;
}
