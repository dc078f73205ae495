// SPDX-License-Identifier: GPL-2.0-only
/** Picking a kernel's packages by the relations Debian wrote (records as the archive had them on 2026-12-01). */
import { describe, expect, it } from 'vitest';
import type { PackageRecord } from '../../src/kernel/apt.js';
import { planPackages, type ShowPackage } from '../../src/kernel/packages.js';
import { parseKernelRef } from '../../src/kernel/ref.js';
import { SutureError } from '../../src/util/errors.js';

/** The bookworm archive after 6.1.192-3 (ABI 6.1.0-57) replaced linux-kbuild-6.1 6.1.192-2. */
const ARCHIVE: PackageRecord[] = [
  {
    package: 'linux-headers-6.1.0-56-amd64',
    version: '6.1.192-2',
    source: 'linux',
    depends: 'linux-headers-6.1.0-56-common (= 6.1.192-2), linux-kbuild-6.1 (>= 6.1.192-2), linux-compiler-gcc-12-x86',
  },
  {
    package: 'linux-image-6.1.0-56-amd64',
    version: '6.1.192-2',
    source: 'linux-signed-amd64 (6.1.192+2)',
    builtUsing: 'linux (= 6.1.192-2)',
    depends: 'kmod, linux-base (>= 4.3~), initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool',
  },
  { package: 'linux-image-6.1.0-56-amd64-unsigned', version: '6.1.192-2', source: 'linux' },
  { package: 'linux-headers-6.1.0-56-common', version: '6.1.192-2', source: 'linux' },
  { package: 'linux-kbuild-6.1', version: '6.1.176-1', source: 'linux' },
  { package: 'linux-kbuild-6.1', version: '6.1.192-3', source: 'linux' },
  { package: 'linux-source-6.1', version: '6.1.192-3', source: 'linux' },
  { package: 'linux-source-6.1', version: '6.1.192-2', source: 'linux' },
  { package: 'linux-source-6.1', version: '6.1.176-1', source: 'linux' },
];

function archive(records: PackageRecord[]): ShowPackage {
  return async (pkg) => records.filter((r) => r.package === pkg);
}
const ref = parseKernelRef('debian:6.1.0-56-amd64');
const unknown = async (): Promise<never> => {
  throw new SutureError('not-found', 'unknown release');
};

async function refusal(p: Promise<unknown>): Promise<SutureError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(SutureError);
  return e as SutureError;
}

describe('planPackages', () => {
  it('takes the newest kbuild satisfying the headers\' >= when the exact one is gone, and the exact source', async () => {
    const plan = await planPackages(archive(ARCHIVE), ref, unknown);
    expect(Object.fromEntries(Object.entries(plan).map(([k, v]) => [k, `${v.package} ${v.version}`]))).toEqual({
      image: 'linux-image-6.1.0-56-amd64 6.1.192-2',
      headers: 'linux-headers-6.1.0-56-amd64 6.1.192-2',
      common: 'linux-headers-6.1.0-56-common 6.1.192-2',
      kbuild: 'linux-kbuild-6.1 6.1.192-3',
      source: 'linux-source-6.1 6.1.192-2',
    });
    expect(plan.kbuild.why).toContain('linux-kbuild-6.1 (>= 6.1.192-2)');
    expect(plan.common.why).toContain('linux-headers-6.1.0-56-common (= 6.1.192-2)');
    expect(plan.image.why).toContain('Built-Using: linux (= 6.1.192-2)');
  });

  it('refuses a missing = relation, naming the relation, what the archive has, and what to do', async () => {
    const e = await refusal(planPackages(archive(ARCHIVE.filter((r) => r.package !== 'linux-headers-6.1.0-56-common')), ref, unknown));
    expect(e.kind).toBe('archive');
    expect(e.message).toContain('linux-headers-6.1.0-56-common (= 6.1.192-2), which linux-headers-6.1.0-56-amd64 6.1.192-2 depends on');
    expect(e.hint).toContain('linux-headers-6.1.0-56-common_6.1.192-2_amd64.deb');
  });

  it('refuses a >= that no version satisfies, listing the versions there are', async () => {
    const old = ARCHIVE.filter((r) => !(r.package === 'linux-kbuild-6.1' && r.version === '6.1.192-3'));
    const e = await refusal(planPackages(archive(old), ref, unknown));
    expect(e.message).toContain('linux-kbuild-6.1 (>= 6.1.192-2)');
    expect(e.message).toContain('it has 6.1.176-1');
  });

  it('never takes another source version than the kernel\'s', async () => {
    const e = await refusal(planPackages(archive(ARCHIVE.filter((r) => !(r.package === 'linux-source-6.1' && r.version === '6.1.192-2'))), ref, unknown));
    expect(e.message).toMatch(/^linux-source-6.1 6.1.192-2 \(the source debian:6.1.0-56-amd64 was built from\) is not in the archive \(it has 6.1.176-1, 6.1.192-3\)/);
  });

  it('asks the caller what to say about a release the archive does not know', async () => {
    const e = await refusal(planPackages(archive([]), parseKernelRef('debian:6.1.0-99-amd64'), unknown));
    expect(e.message).toBe('unknown release');
  });
});
