// SPDX-License-Identifier: GPL-2.0-only
/** Every refusal made before the kernel is touched: one line, the right kind. */
import { beforeAll, describe, expect, it } from 'vitest';
import { readPatchFile, type PatchFile } from '../../src/livepatch/patch-file.js';
import { checkLoad, gatherFacts, loadNotes, type HostFacts } from '../../src/livepatch/validate.js';
import { SutureError } from '../../src/util/errors.js';
import { buildFakePatches, FakeKernel } from './fake-kernel.js';

let ko: (n: string) => string;
let patch: PatchFile;
beforeAll(() => {
  ko = buildFakePatches();
  patch = readPatchFile(ko('fake_patch'));
});

function facts(over: Partial<HostFacts> = {}): HostFacts {
  return {
    release: '6.1.0-56-amd64',
    reference: undefined,
    livepatchAvailable: true,
    livepatchDir: '/sys/kernel/livepatch',
    ftraceEnabled: true,
    loadedModules: new Set(),
    patches: [],
    lockdown: 'none',
    isRoot: true,
    buildId: 'eb4fbcd037e7253717950bf2b93bd5566f47c56f',
    kernelVersion: '6.1.192-2',
    ...over,
  };
}

function refusal(p: PatchFile, h: HostFacts): SutureError {
  try {
    checkLoad(p, h);
  } catch (e) {
    return e as SutureError;
  }
  throw new Error('expected a refusal');
}

describe('checkLoad', () => {
  it('accepts a livepatch for this kernel on a ready host', () => {
    expect(() => checkLoad(patch, facts())).not.toThrow();
  });

  it('refuses a module that is not a livepatch (invalid-input)', () => {
    const e = refusal(readPatchFile(ko('fake_plain')), facts());
    expect(e.kind).toBe('invalid-input');
    expect(e.message).toMatch(/fake_plain\.ko is not a livepatch module \(its \.modinfo has no livepatch=Y\)$/);
  });

  it('refuses a patch built for another release (wrong-kernel), naming both', () => {
    const e = refusal(readPatchFile(ko('fake_other_kernel')), facts());
    expect(e.kind).toBe('wrong-kernel');
    expect(e.message).toMatch(/fake_other_kernel\.ko was built for kernel 6\.1\.0-55-amd64, but this kernel is 6\.1\.0-56-amd64$/);
  });

  it("refuses a vermagic that differs from the kernel's own modules'", () => {
    const e = refusal(patch, facts({ reference: { file: '/lib/modules/x/kernel/fs/binfmt_misc.ko', vermagic: '6.1.0-56-amd64 SMP mod_unload modversions ' } }));
    expect(e.kind).toBe('wrong-kernel');
    expect(e.message).toContain("has vermagic '6.1.0-56-amd64 SMP preempt mod_unload modversions ', but this kernel's modules have '6.1.0-56-amd64 SMP mod_unload modversions '");
  });

  it.each([
    [{ isRoot: false }, 'environment', /needs root/],
    [{ livepatchAvailable: false }, 'environment', /livepatch is not available: \/sys\/kernel\/livepatch does not exist/],
    [{ ftraceEnabled: false }, 'environment', /ftrace is disabled \(kernel\.ftrace_enabled = 0\)/],
    [{ lockdown: 'integrity' }, 'environment', /the kernel is locked down \(integrity\) and .*fake_patch\.ko is not signed/],
    [{ loadedModules: new Set(['fake_patch']) }, 'conflict', /module fake_patch is already loaded \(no longer an active livepatch/],
  ] as [Partial<HostFacts>, string, RegExp][])('refuses on a host with %j', (over, kind, re) => {
    const e = refusal(patch, facts(over));
    expect(e.kind).toBe(kind);
    expect(e.message).toMatch(re);
  });

  it('refuses a patch that is already loaded, and any load while another transition runs', () => {
    const loaded = facts({ patches: [{ name: 'fake_patch', enabled: true, transition: false, objects: [] }], loadedModules: new Set(['fake_patch']) });
    expect(refusal(patch, loaded).message).toBe('livepatch fake_patch is already loaded (enabled)');
    const busy = facts({ patches: [{ name: 'other', enabled: true, transition: true, objects: [] }] });
    const e = refusal(patch, busy);
    expect(e.kind).toBe('conflict');
    expect(e.message).toBe('livepatch other is in transition; the kernel runs one transition at a time');
  });

  it('the file is judged before the host: a garbage answer does not depend on root', () => {
    expect(refusal(readPatchFile(ko('fake_plain')), facts({ isRoot: false, livepatchAvailable: false })).kind).toBe('invalid-input');
  });
});

describe('loadNotes', () => {
  it('says when a target module is not loaded yet, and what a cumulative patch replaces', () => {
    expect(loadNotes(patch, facts())).toEqual(['module some_module is not loaded: the kernel patches it when it loads']);
    const cumulative = readPatchFile(ko('fake_cumulative'));
    const h = facts({ loadedModules: new Set(['some_module']), patches: [{ name: 'old', enabled: true, transition: false, objects: [] }] });
    expect(loadNotes(cumulative, h)).toEqual(['cumulative patch: it replaces old']);
  });
});

describe('gatherFacts', () => {
  it('reads the host through the root prefix', () => {
    const k = new FakeKernel();
    k.put('/proc/sys/kernel/ftrace_enabled', '0\n');
    k.put('/sys/kernel/security/lockdown', 'none [integrity] confidentiality\n');
    const f = gatherFacts(k.fs, { isRoot: true });
    expect(f).toMatchObject({ release: '6.1.0-56-amd64', livepatchAvailable: true, ftraceEnabled: false, lockdown: 'integrity', reference: undefined });
    expect(f.livepatchDir).toBe(`${k.root}/sys/kernel/livepatch`);
  });
});

describe('the kernel build (GNU build ID) and the effective-version claim', () => {
  it('a patch bound to another build of the same release is refused before insmod (wrong-kernel); the same build loads', () => {
    const other = refusal(readPatchFile(ko('fake_rebuild')), facts());
    expect(other).toMatchObject({ kind: 'wrong-kernel' });
    expect(other.message).toBe(
      `${ko('fake_rebuild')} was built for the kernel build with GNU build ID 00112233445566778899aabbccddeeff00112233, but the running 6.1.0-56-amd64 is build eb4fbcd037e7253717950bf2b93bd5566f47c56f (/sys/kernel/notes): another build of the same release`,
    );
    expect(() => checkLoad(readPatchFile(ko('fake_bound')), facts())).not.toThrow();
    // the host cannot read its build ID: loaded on release and vermagic, with a note that says so
    expect(loadNotes(readPatchFile(ko('fake_bound')), facts({ buildId: undefined }))[0]).toMatch(/build ID cannot be read \(\/sys\/kernel\/notes\)/);
  });

  it('gatherFacts reads the build ID from /sys/kernel/notes', () => {
    const k = new FakeKernel({ buildId: 'abcdef0123' });
    expect(gatherFacts(k.fs).buildId).toBe('abcdef0123');
  });

  it('a claim that is not a version of the series the patch is built for is refused', () => {
    const e = refusal(readPatchFile(ko('fake_claim')), facts());
    expect(e).toMatchObject({ kind: 'invalid-input' });
    expect(e.message).toBe(
      `${ko('fake_claim')} claims (modinfo suture_effective_version) to make the kernel version "6.12.5-1", which is not a version of the 6.1 series it is built for`,
    );
  });
});
