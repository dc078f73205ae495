// SPDX-License-Identifier: GPL-2.0-only
/** Build the C module fixtures of test/fixtures/modules against a fetched kernel. */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildExternalModule } from '../../src/kernel/kbuild.js';
import type { KernelMetadata } from '../../src/kernel/workspace.js';
import { sutureHome } from '../../src/util/paths.js';
import { FIXTURES } from './kernel.js';

/** Build test/fixtures/modules/<name> and return the path of <name>.ko. */
export async function buildFixtureModule(meta: KernelMetadata, name: string): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), `suture-fixture-${name}-`));
  const kos = await buildExternalModule(meta, sutureHome(), join(FIXTURES, 'modules', name), dir);
  const ko = kos.find((k) => k.endsWith(`/${name}.ko`));
  if (!ko) throw new Error(`building ${name} gave ${kos.join(', ')}`);
  return ko;
}
