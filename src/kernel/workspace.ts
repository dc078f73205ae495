// SPDX-License-Identifier: GPL-2.0-only
/**
 * The kernel workspace: everything suture holds for one target kernel, under
 * $SUTURE_HOME/kernels/<distro>-<release>/. A workspace is ready only once
 * kernel.json exists; it is written last, atomically.
 */
import { existsSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SutureError } from '../util/errors.js';
import type { PackageRole } from './packages.js';
import { formatKernelRef, type KernelRef } from './ref.js';

/** Bumped when a workspace needs a step redone (2: the tree is prepared with SECTION_KCFLAGS; 3: with PINNED_PROBES). */
export const WORKSPACE_SCHEMA = 3;

export interface WorkspacePaths {
  root: string;
  debs: string;
  /** The unpacked linux-image package (boot/, lib/modules/<release>/). */
  image: string;
  vmlinuz: string;
  config: string;
  /** lib/modules/<release> inside the unpacked image. */
  modules: string;
  /** The unpacked headers, headers-common and kbuild packages (usr/src/linux-headers-<release>). */
  headers: string;
  /** The prepared source tree. */
  source: string;
  symbols: string;
  kallsyms: string;
  steps: string;
  metadata: string;
}

export function workspacePaths(home: string, ref: KernelRef): WorkspacePaths {
  const root = join(home, 'kernels', `${ref.distro}-${ref.release}`);
  const image = join(root, 'image');
  const symbols = join(root, 'symbols');
  return {
    root,
    debs: join(root, 'debs'),
    image,
    vmlinuz: join(image, 'boot', `vmlinuz-${ref.release}`),
    config: join(image, 'boot', `config-${ref.release}`),
    modules: join(image, 'lib', 'modules', ref.release),
    headers: join(root, 'headers', 'usr', 'src', `linux-headers-${ref.release}`),
    source: join(root, 'source', `linux-source-${ref.series}`),
    symbols,
    kallsyms: join(symbols, 'kallsyms'),
    steps: join(root, '.steps'),
    metadata: join(root, 'kernel.json'),
  };
}

export interface PackageInfo {
  name: string;
  version: string;
  file: string;
  size: number;
  /** What the package is for in the workspace, and why this version was picked (absent in workspaces fetched before these were recorded). */
  role?: PackageRole;
  why?: string;
  /** Where it came from: downloaded, supplied with --debs, or this host's installed image (file is then that root). */
  origin?: 'archive' | 'debs' | 'installed';
}

export interface CompilerInfo {
  /** CONFIG_CC_VERSION_TEXT of the kernel. */
  text: string;
  /** The command that text names (gcc-12). */
  command: string;
  /** Where the matching compiler runs: the host's, or a build root suture made. */
  via: 'host' | 'buildroot';
  /** The build root directory, when via = buildroot. */
  buildroot?: string;
}

export interface KernelMetadata {
  schema: number;
  name: string;
  distro: 'debian';
  release: string;
  series: string;
  /** Debian package version of the image/headers (6.1.192-2). */
  packageVersion: string;
  /** Upstream kernel version from the source tree's Makefile (6.1.192). */
  upstreamVersion: string;
  /** /proc/version of the booted kernel. */
  procVersion: string;
  compiler: CompilerInfo;
  packages: PackageInfo[];
  paths: WorkspacePaths;
  symbols: { count: number; source: string };
  sizeBytes: number;
  fetchedAt: string;
  /** Seconds each fetch step took. */
  timings: Record<string, number>;
}

export type WorkspaceState =
  | { state: 'ready'; meta: KernelMetadata }
  | { state: 'incomplete'; paths: WorkspacePaths; stepsDone: string[] }
  | { state: 'absent'; paths: WorkspacePaths };

export function workspaceState(home: string, ref: KernelRef): WorkspaceState {
  const paths = workspacePaths(home, ref);
  if (existsSync(paths.metadata)) {
    try {
      return { state: 'ready', meta: readMetadata(paths.metadata) };
    } catch {
      // Written by another suture version, or damaged: a fetch redoes what is missing.
    }
  }
  if (existsSync(paths.root)) {
    const stepsDone = existsSync(paths.steps) ? readdirSync(paths.steps).filter((f) => !f.startsWith('.')) : [];
    return { state: 'incomplete', paths, stepsDone };
  }
  return { state: 'absent', paths };
}

export function readMetadata(file: string): KernelMetadata {
  let meta: KernelMetadata;
  try {
    meta = JSON.parse(readFileSync(file, 'utf8')) as KernelMetadata;
  } catch (e) {
    throw new SutureError('invalid-input', `${file} is not valid JSON: ${(e as Error).message}`, {
      hint: 'run `suture kernel fetch` again for this kernel to rebuild its metadata',
    });
  }
  if (meta.schema !== WORKSPACE_SCHEMA) {
    throw new SutureError('invalid-input', `${file} has schema ${meta.schema}, this suture reads ${WORKSPACE_SCHEMA}`, {
      hint: 'run `suture kernel fetch` again for this kernel',
    });
  }
  return meta;
}

export function writeMetadata(meta: KernelMetadata): void {
  const tmp = `${meta.paths.metadata}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(meta, null, 2)}\n`);
  renameSync(tmp, meta.paths.metadata);
}

/** All workspaces under $SUTURE_HOME, ready or not. */
export function listWorkspaces(home: string): { dir: string; name: string; meta?: KernelMetadata; error?: string }[] {
  const dir = join(home, 'kernels');
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((d) => !d.startsWith('.'))
    .sort()
    .map((d) => {
      const m = /^([a-z]+)-(.+)$/.exec(d);
      const name = m ? `${m[1]}:${m[2]}` : d;
      const metaFile = join(dir, d, 'kernel.json');
      if (!existsSync(metaFile)) return { dir: join(dir, d), name };
      try {
        return { dir: join(dir, d), name, meta: readMetadata(metaFile) };
      } catch (e) {
        return { dir: join(dir, d), name, error: (e as Error).message };
      }
    });
}

/** The ready workspace of a kernel, or a clear error saying how to get it. */
export function requireWorkspace(home: string, ref: KernelRef): KernelMetadata {
  const st = workspaceState(home, ref);
  if (st.state === 'ready') return st.meta;
  const name = formatKernelRef(ref);
  if (st.state === 'incomplete') {
    throw new SutureError('not-found', `${name} is only partly fetched (done: ${st.stepsDone.join(', ') || 'nothing'})`, {
      hint: `run: suture kernel fetch ${name}`,
    });
  }
  const cached = listWorkspaces(home)
    .filter((w) => w.meta)
    .map((w) => w.name);
  throw new SutureError('not-found', `${name} is not in the cache (${home})`, {
    hint: `run: suture kernel fetch ${name}${cached.length ? `; cached: ${cached.join(', ')}` : ''}`,
  });
}
