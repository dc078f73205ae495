// SPDX-License-Identifier: GPL-2.0-only
/**
 * A kernel whose packages the archive no longer has, fetched whole from what
 * the user supplies: `--debs DIR` (the headers, kbuild and source packages)
 * and the image as installed on a host that runs that very kernel (a root
 * with /boot, /lib/modules, /proc/sys/kernel and dpkg's status, made from the
 * reference kernel's own files). The archive is a signed fixture with none of
 * the kernel's packages. Every step runs for real: unpack, prepare, boot for
 * kallsyms. Then the same with a damaged --debs file: refused by name, and
 * nothing is left in the cache.
 */
import { copyFileSync, existsSync, linkSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fetchKernel } from '../../src/kernel/fetch.js';
import { installedImage } from '../../src/kernel/installed.js';
import { parseKernelRef } from '../../src/kernel/ref.js';
import { SutureError } from '../../src/util/errors.js';
import { sutureHome } from '../../src/util/paths.js';
import { lineReporter } from '../../src/util/progress.js';
import { ensureKernel, REFERENCE_KERNEL } from '../helpers/kernel.js';
import { makeArchive } from './fixture-archive.js';

// On the same filesystem as the warm cache, so packages can be hard-linked.
const home = mkdtempSync(join(sutureHome(), '..', 'suture-local-test-'));
const scratch = mkdtempSync(join(tmpdir(), 'suture-local-'));
afterAll(() => {
  rmSync(home, { recursive: true, force: true });
  rmSync(scratch, { recursive: true, force: true });
});

const ref = parseKernelRef(REFERENCE_KERNEL);
let debs: string;
let hostRoot: string;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  const warm = await ensureKernel();
  // --debs: every package but the image.
  debs = join(scratch, 'debs');
  mkdirSync(debs);
  for (const p of warm.packages) if (!p.name.startsWith('linux-image-')) linkSync(p.file, join(debs, p.file.split('/').pop()!));
  // The host: it runs the kernel, and has its image installed (dpkg knows it).
  hostRoot = join(scratch, 'host');
  mkdirSync(join(hostRoot, 'proc/sys/kernel'), { recursive: true });
  writeFileSync(join(hostRoot, 'proc/sys/kernel/osrelease'), `${ref.release}\n`);
  writeFileSync(join(hostRoot, 'proc/sys/kernel/version'), `#1 SMP PREEMPT_DYNAMIC Debian ${warm.packageVersion} (2026-11-16)\n`);
  mkdirSync(join(hostRoot, 'boot'));
  for (const f of [`vmlinuz-${ref.release}`, `config-${ref.release}`]) copyFileSync(join(warm.paths.image, 'boot', f), join(hostRoot, 'boot', f));
  mkdirSync(join(hostRoot, 'lib/modules'), { recursive: true });
  symlinkSync(warm.paths.modules, join(hostRoot, 'lib/modules', ref.release));
  mkdirSync(join(hostRoot, 'var/lib/dpkg'), { recursive: true });
  writeFileSync(
    join(hostRoot, 'var/lib/dpkg/status'),
    `Package: linux-image-${ref.release}\nStatus: install ok installed\nVersion: ${warm.packageVersion}\nArchitecture: amd64\nSource: linux-signed-amd64 (6.1.192+2)\nBuilt-Using: linux (= ${warm.packageVersion})\nDescription: Linux for 64-bit PCs (signed)\n`,
  );
  // An archive that has none of the kernel's packages any more.
  const archive = makeArchive('bookworm', []);
  env = { ...process.env, SUTURE_DEBIAN_MIRROR: archive.mirrors.main, SUTURE_DEBIAN_SECURITY_MIRROR: archive.mirrors.security, SUTURE_DEBIAN_KEYRING: archive.mirrors.keyring };
}, 1_800_000);

/** fetchKernel with the fixture archive's mirrors in the environment it reads them from. */
async function fetchWith(opts: { home: string; debs: string; hostRoot?: string }) {
  const saved = { ...process.env };
  Object.assign(process.env, env);
  try {
    return await fetchKernel(ref, { ...opts, reporter: lineReporter(() => {}) });
  } finally {
    for (const k of ['SUTURE_DEBIAN_MIRROR', 'SUTURE_DEBIAN_SECURITY_MIRROR', 'SUTURE_DEBIAN_KEYRING']) {
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
  }
}

describe('kernel fetch from supplied packages and the installed image', () => {
  it('reads the installed image as dpkg recorded it', async () => {
    const rec = await installedImage(ref.release, hostRoot);
    expect(rec).toMatchObject({ package: `linux-image-${ref.release}`, version: '6.1.192-2', builtUsing: 'linux (= 6.1.192-2)', installedAt: hostRoot });
    expect(await installedImage('6.1.0-99-amd64', hostRoot)).toBeUndefined();
  });

  it('a damaged --debs file is refused by name and leaves nothing in the cache', async () => {
    const bad = join(scratch, 'bad-debs');
    mkdirSync(bad);
    for (const f of readdirSync(debs)) copyFileSync(join(debs, f), join(bad, f));
    const kbuild = readdirSync(bad).find((f) => f.startsWith('linux-kbuild-'))!;
    truncateSync(join(bad, kbuild), Math.floor(readFileSync(join(bad, kbuild)).length / 2));
    const e = await fetchWith({ home, debs: bad, hostRoot }).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(e).toBeInstanceOf(SutureError);
    expect((e as SutureError).message).toContain(join(bad, kbuild));
    expect(existsSync(join(home, 'kernels', `debian-${ref.release}`))).toBe(false);
  });

  it('fetches the whole workspace: packages from --debs, the image from the host, each pick recorded', async () => {
    const r = await fetchWith({ home, debs, hostRoot });
    expect(r.cached).toBe(false);
    const by = Object.fromEntries(r.meta.packages.map((p) => [p.role, p]));
    expect(by.image).toMatchObject({ origin: 'installed', version: '6.1.192-2' });
    expect(by.image!.why).toContain(`this host runs ${ref.release}`);
    expect(by.headers).toMatchObject({ origin: 'debs', version: '6.1.192-2' });
    expect(by.kbuild).toMatchObject({ origin: 'debs', version: '6.1.192-3' });
    expect(by.source).toMatchObject({ origin: 'debs', version: '6.1.192-2' });
    expect(r.meta.symbols.count).toBeGreaterThan(90_000);
    expect(existsSync(r.meta.paths.vmlinuz)).toBe(true);
    expect(existsSync(join(r.meta.paths.modules, 'modules.dep'))).toBe(true);
  });
});
