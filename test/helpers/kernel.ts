// SPDX-License-Identifier: GPL-2.0-only
/**
 * The reference kernel for tests that need a real one. The first test that
 * asks fetches it (cold: downloads and prepares it, a few minutes); later tests
 * and later runs reuse $SUTURE_HOME.
 */
import { join } from 'node:path';
import { fetchKernel } from '../../src/kernel/fetch.js';
import { parseKernelRef } from '../../src/kernel/ref.js';
import type { KernelMetadata } from '../../src/kernel/workspace.js';
import { sutureHome } from '../../src/util/paths.js';
import { lineReporter } from '../../src/util/progress.js';

export const REFERENCE_KERNEL = 'debian:6.1.0-56-amd64';
/** Debian 13's kernel for the 6.12 tests: in trixie's point release and trixie-security, so the archive keeps it longest. */
export const TRIXIE_KERNEL = 'debian:6.12.117+deb13-amd64';
/** Debian 12's backported 6.12 (bookworm-backports and bookworm-security), built with bookworm's gcc-12. */
export const BACKPORTS_KERNEL = 'debian:6.12.117+deb12-amd64';

const cache = new Map<string, Promise<KernelMetadata & { modulesDir: string }>>();

export function ensureKernel(name = REFERENCE_KERNEL): Promise<KernelMetadata & { modulesDir: string }> {
  let p = cache.get(name);
  if (!p) {
    p = fetchKernel(parseKernelRef(name), {
      home: sutureHome(),
      reporter: lineReporter((s) => process.stderr.write(`[fetch ${name}] ${s}`)),
    }).then((r) => ({ ...r.meta, modulesDir: r.meta.paths.modules }));
    cache.set(name, p);
  }
  return p;
}

export const FIXTURES = join(import.meta.dirname, '..', 'fixtures');
