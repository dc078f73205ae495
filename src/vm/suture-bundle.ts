// SPDX-License-Identifier: GPL-2.0-only
/**
 * suture itself, carried into the guest (`vm run --with-suture`): the node
 * binary with the shared libraries it needs (ldd's answer, placed at the same
 * paths, plus the ELF interpreter), and the app: the esbuild bundle of the
 * CLI (dist/bundle/: every npm package the host commands use is inside it),
 * bin/, libexec/ and package.json. Not node_modules: the only packages the
 * bundle loads at run time are the fleet server's native database drivers,
 * which no guest runs (better-sqlite3 alone is 28 MB of initramfs). A wrapper
 * /usr/bin/suture runs it, so guest scripts call `suture load ...` as an
 * operator would on a host.
 */
import { existsSync, readFileSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { SutureError } from '../util/errors.js';
import { runChecked } from '../util/exec.js';
import type { CpioEntry } from './cpio.js';

/** Where the app lives in the guest. */
export const GUEST_APP = '/opt/suture';

export interface BundleSource {
  /** The repository (or installed package) root: where package.json is. */
  appRoot: string;
  /** The node binary to carry (default: the one running suture). */
  node?: string;
}

/** `libfoo.so.1 => /lib/x86_64-linux-gnu/libfoo.so.1 (0x…)` and `/lib64/ld-linux-x86-64.so.2 (0x…)` → paths. */
export function parseLdd(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const arrow = /=>\s+(\/\S+)\s+\(0x[0-9a-f]+\)/.exec(line);
    if (arrow) {
      out.push(arrow[1]!);
      continue;
    }
    const direct = /^\s*(\/\S+)\s+\(0x[0-9a-f]+\)/.exec(line);
    if (direct) out.push(direct[1]!);
    if (/=>\s+not found/.test(line)) throw new SutureError('environment', `a library node needs is missing: ${line.trim()}`);
  }
  return [...new Set(out)];
}

function addTree(entries: CpioEntry[], dirs: Set<string>, src: string, dest: string, skip: (name: string) => boolean): void {
  const walk = (s: string, d: string) => {
    ensureDir(entries, dirs, d);
    for (const e of readdirSync(s, { withFileTypes: true })) {
      if (skip(e.name)) continue;
      const sp = join(s, e.name);
      const dp = `${d}/${e.name}`;
      if (e.isDirectory()) walk(sp, dp);
      else if (e.isFile()) entries.push({ type: 'file', path: dp, data: readFileSync(sp), mode: statSync(sp).mode & 0o777 });
      else if (e.isSymbolicLink()) {
        const real = realpathSync(sp);
        if (statSync(real).isFile()) entries.push({ type: 'file', path: dp, data: readFileSync(real), mode: statSync(real).mode & 0o777 });
      }
    }
  };
  walk(src, dest);
}

/** Add a directory and its parents once (cpio wants parents first). */
function ensureDir(entries: CpioEntry[], dirs: Set<string>, path: string): void {
  const parts = path.replace(/^\/+/, '').split('/').filter(Boolean);
  let cur = '';
  for (const p of parts) {
    cur = cur ? `${cur}/${p}` : p;
    if (!dirs.has(cur)) {
      dirs.add(cur);
      entries.push({ type: 'dir', path: cur });
    }
  }
}

export interface SutureBundle {
  entries: CpioEntry[];
  /** Bytes of file data carried. */
  bytes: number;
  /** The libraries found for node (host paths). */
  libraries: string[];
}

/**
 * The cpio entries that put suture into the guest. `existingDirs` holds the
 * directories the initramfs already has (they are not repeated).
 */
export async function sutureBundle(src: BundleSource, existingDirs: Iterable<string> = []): Promise<SutureBundle> {
  const appRoot = src.appRoot;
  const node = src.node ?? process.execPath;
  for (const need of ['package.json', 'dist/bundle/main.js', 'bin/suture.js']) {
    if (!existsSync(join(appRoot, need))) {
      throw new SutureError('environment', `${join(appRoot, need)} does not exist: suture is not built`, { hint: 'run npm run build' });
    }
  }
  const ldd = await runChecked(['ldd', node], { what: `ldd ${node}`, kind: 'environment' });
  const libraries = parseLdd(ldd.stdout);
  const dirs = new Set<string>([...existingDirs].map((d) => d.replace(/^\/+/, '')));
  const entries: CpioEntry[] = [];
  // Each library at the path ldd printed (the dynamic loader finds them there: it is the host's own
  // search path), with the bytes of the file it resolves to.
  for (const lib of libraries) {
    ensureDir(entries, dirs, dirname(lib));
    entries.push({ type: 'file', path: lib, data: readFileSync(realpathSync(lib)), mode: 0o755 });
  }
  ensureDir(entries, dirs, `${GUEST_APP}/bin`);
  entries.push({ type: 'file', path: `${GUEST_APP}/node`, data: readFileSync(node), mode: 0o755 });
  entries.push({ type: 'file', path: `${GUEST_APP}/package.json`, data: readFileSync(join(appRoot, 'package.json')) });
  entries.push({ type: 'file', path: `${GUEST_APP}/bin/suture.js`, data: readFileSync(join(appRoot, 'bin/suture.js')), mode: 0o755 });
  addTree(entries, dirs, join(appRoot, 'dist', 'bundle'), `${GUEST_APP}/dist/bundle`, (n) => n.endsWith('.map'));
  if (existsSync(join(appRoot, 'libexec'))) addTree(entries, dirs, join(appRoot, 'libexec'), `${GUEST_APP}/libexec`, () => false);
  ensureDir(entries, dirs, 'usr/bin');
  entries.push({
    type: 'file',
    path: 'usr/bin/suture',
    data: Buffer.from(`#!/bin/sh\nexec ${GUEST_APP}/node ${GUEST_APP}/bin/suture.js "$@"\n`),
    mode: 0o755,
  });
  const bytes = entries.reduce((n, e) => n + (e.type === 'file' ? e.data.length : 0), 0);
  return { entries, bytes, libraries };
}
