// SPDX-License-Identifier: GPL-2.0-only
/**
 * Package resolution against a real apt: a signed fixture archive (tiny .debs,
 * apt-ftparchive indexes) read by suture's own apt configuration, as the real
 * archive is. The cases the archive produces by moving on: an exact version
 * gone but a >= satisfied, a required = missing, --debs filling the gap, and
 * --debs pointing at the wrong files.
 */
import { copyFileSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { openApt } from '../../src/kernel/apt.js';
import { checkLocalDeb, mergedShow, readDebsDir } from '../../src/kernel/local-debs.js';
import { planPackages } from '../../src/kernel/packages.js';
import { parseKernelRef } from '../../src/kernel/ref.js';
import { SutureError } from '../../src/util/errors.js';
import { buildDeb, makeArchive, type FixturePackage } from './fixture-archive.js';

const H = 'linux-headers-6.1.0-56-amd64';
const COMMON = { package: 'linux-headers-6.1.0-56-common', version: '6.1.192-2', source: 'linux' };
/** bookworm as it stood on 2026-12-01: 6.1.192-3 (ABI 57) replaced linux-kbuild-6.1 6.1.192-2. */
const TODAY: FixturePackage[] = [
  { package: H, version: '6.1.192-2', source: 'linux', depends: 'linux-headers-6.1.0-56-common (= 6.1.192-2), linux-kbuild-6.1 (>= 6.1.192-2), linux-compiler-gcc-12-x86', suites: ['bookworm-security'] },
  { package: 'linux-image-6.1.0-56-amd64', version: '6.1.192-2', source: 'linux-signed-amd64 (6.1.192+2)', builtUsing: 'linux (= 6.1.192-2)', suites: ['bookworm-security'] },
  { ...COMMON, suites: ['bookworm-security'] },
  { package: 'linux-kbuild-6.1', version: '6.1.176-1', source: 'linux' },
  { package: 'linux-kbuild-6.1', version: '6.1.192-3', source: 'linux', suites: ['bookworm-security'] },
  { package: 'linux-source-6.1', version: '6.1.176-1', source: 'linux' },
  { package: 'linux-source-6.1', version: '6.1.192-2', source: 'linux', suites: ['bookworm-security'] },
  { package: 'linux-source-6.1', version: '6.1.192-3', source: 'linux', suites: ['bookworm-security'] },
];
const ref = parseKernelRef('debian:6.1.0-56-amd64');
const never = async (): Promise<never> => {
  throw new SutureError('not-found', 'not in the fixture archive');
};

async function aptFor(packages: FixturePackage[]) {
  const a = makeArchive('bookworm', packages);
  const apt = openApt(join(mkdtempSync(join(tmpdir(), 'suture-apt-')), 'bookworm'), a.mirrors, 'bookworm');
  await apt.update();
  return apt;
}

async function refusal(p: Promise<unknown>): Promise<SutureError> {
  const e = await p.then(() => undefined, (err: unknown) => err);
  expect(e).toBeInstanceOf(SutureError);
  return e as SutureError;
}

describe('packages from a real apt over a fixture archive', () => {
  let today: Awaited<ReturnType<typeof aptFor>>;
  let noCommon: Awaited<ReturnType<typeof aptFor>>;
  beforeAll(async () => {
    today = await aptFor(TODAY);
    noCommon = await aptFor(TODAY.filter((p) => p.package !== COMMON.package));
  }, 60_000);

  it('an exact kbuild gone, the headers\' >= satisfied by the newer one; downloads what it picked', async () => {
    const plan = await planPackages((p) => today.show(p), ref, never);
    expect(plan.kbuild.version).toBe('6.1.192-3');
    expect(plan.source.version).toBe('6.1.192-2');
    expect(plan.common.version).toBe('6.1.192-2');
    expect(plan.kbuild.sha256).toMatch(/^[0-9a-f]{64}$/);
    const got = await today.download('linux-kbuild-6.1', '6.1.192-3', mkdtempSync(join(tmpdir(), 'suture-dl-')));
    expect(got).toMatch(/linux-kbuild-6.1_6.1.192-3_amd64.deb$/);
  });

  it('a required = missing: names the relation, the package that requires it, and --debs', async () => {
    const e = await refusal(planPackages((p) => noCommon.show(p), ref, never));
    expect(e.kind).toBe('archive');
    expect(e.message).toBe(
      'linux-headers-6.1.0-56-common (= 6.1.192-2), which linux-headers-6.1.0-56-amd64 6.1.192-2 depends on, is not in the archive (no version of linux-headers-6.1.0-56-common at all)',
    );
    expect(e.hint).toContain('--debs');
    expect(e.hint).toContain('linux-headers-6.1.0-56-common_6.1.192-2_amd64.deb');
  });

  it('--debs fills the gap, and the supplied file is checked whole', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'suture-debs-'));
    const file = buildDeb(dir, COMMON);
    writeFileSync(join(dir, 'notes.txt'), 'not a package');
    const local = await readDebsDir(dir);
    const plan = await planPackages(mergedShow(noCommon, local), ref, never);
    expect(plan.common.localFile).toBe(file);
    expect(plan.kbuild.localFile).toBeUndefined();
    await checkLocalDeb({ ...plan.common, localFile: file });
  });

  it('a supplied file of the archive\'s version but other bytes is refused by its SHA256', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'suture-debs-'));
    // Same package and version as the archive's, built again: other bytes (timestamps, key-less rebuild).
    const file = buildDeb(dir, { package: 'linux-kbuild-6.1', version: '6.1.192-3', source: 'linux', depends: 'libc6' });
    const plan = await planPackages(mergedShow(today, await readDebsDir(dir)), ref, never);
    expect(plan.kbuild.localFile).toBe(file);
    const e = await refusal(checkLocalDeb({ ...plan.kbuild, localFile: file }, plan.kbuild.sha256));
    expect(e.message).toContain(`${file} is not the archive's linux-kbuild-6.1 6.1.192-3`);
  });

  it('--debs with another version only: still the missing relation, listing what the folder had', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'suture-debs-'));
    buildDeb(dir, { ...COMMON, version: '6.1.192-1' });
    const e = await refusal(planPackages(mergedShow(noCommon, await readDebsDir(dir)), ref, never));
    expect(e.message).toContain('(it has 6.1.192-1)');
  });

  it('--debs with a truncated .deb: refused by name before use', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'suture-debs-'));
    const file = buildDeb(dir, COMMON);
    truncateSync(file, Math.floor(readFileSync(file).length * 0.7));
    let e: SutureError;
    try {
      const local = await readDebsDir(dir);
      e = await refusal(checkLocalDeb(local[0]!));
    } catch (err) {
      e = err as SutureError; // dpkg-deb may already fail on the control member
    }
    expect(e).toBeInstanceOf(SutureError);
    expect(e.kind).toBe('invalid-input');
    expect(e.message).toContain(file);
  });

  it('--debs with a file that is not a .deb, a folder without kernel packages, a missing folder', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'suture-debs-'));
    writeFileSync(join(dir, 'linux-headers-6.1.0-56-common_6.1.192-2_all.deb'), 'this is not an ar archive\n');
    const e1 = await refusal(readDebsDir(dir));
    expect(e1.kind).toBe('invalid-input');
    expect(e1.message).toMatch(/linux-headers-6.1.0-56-common_6.1.192-2_all.deb is not a Debian package/);

    const other = mkdtempSync(join(tmpdir(), 'suture-debs-'));
    copyFileSync(buildDeb(mkdtempSync(join(tmpdir(), 'x-')), { package: 'hello', version: '1' }), join(other, 'hello_1_amd64.deb'));
    const e2 = await refusal(readDebsDir(other));
    expect(e2.message).toContain('holds no kernel .deb files');
    expect(e2.message).toContain('it has 1 other .deb files');

    const e3 = await refusal(readDebsDir(join(dir, 'nope')));
    expect(e3.kind).toBe('not-found');
  });

  it('a mirror without the backports suite: the error names the suite', async () => {
    const a = makeArchive('bookworm', TODAY);
    rmSync(join(a.dir, 'debian', 'dists', 'bookworm-backports'), { recursive: true });
    const apt = openApt(join(mkdtempSync(join(tmpdir(), 'suture-apt-')), 'bookworm'), a.mirrors, 'bookworm');
    const e = await refusal(apt.update());
    expect(e.kind).toBe('archive');
    expect(e.message).toMatch(/^could not refresh the package lists of bookworm-backports from file:/);
  });
});
