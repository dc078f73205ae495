// SPDX-License-Identifier: GPL-2.0-only
/** Reading a livepatch .ko before loading it: modinfo keys and the klp_patch structure. */
import { beforeAll, describe, expect, it } from 'vitest';
import { patchObjectNames, readPatchFile } from '../../src/livepatch/patch-file.js';
import { buildFakePatches } from './fake-kernel.js';

let ko: (n: string) => string;
beforeAll(() => {
  ko = buildFakePatches();
});

describe('readPatchFile', () => {
  it('reads suture_effective_version, every suture_cve (split and sorted) and the description', () => {
    const p = readPatchFile(ko('fake_patch'));
    expect(p.name).toBe('fake_patch');
    expect(p.livepatch).toBe(true);
    expect(p.effectiveVersion).toBe('6.1.194-1');
    expect(p.cves).toEqual(['CVE-0000-0010', 'CVE-0000-0011', 'CVE-0000-0012']);
    expect(p.description).toBe('fake livepatch for unit tests');
    expect(p.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(p.signed).toBe(false);
  });

  it('finds the klp_patch from its pointer to __this_module, and its objects and functions from the relocations', () => {
    const p = readPatchFile(ko('fake_patch'));
    expect(p.structure).toEqual({
      replace: false,
      objects: [
        {
          name: 'vmlinux',
          functions: [
            { name: 'cmdline_proc_show', sympos: 0, newFunction: 'new_cmdline_show' },
            { name: 'meminfo_proc_show', sympos: 2, newFunction: 'new_meminfo_show' },
          ],
        },
        { name: 'some_module', functions: [{ name: 'some_module_func', sympos: 0, newFunction: 'new_mod_func' }] },
      ],
    });
    expect(patchObjectNames(p)).toEqual(['vmlinux', 'some_module']);
  });

  it('reads the replace flag of a cumulative patch', () => {
    expect(readPatchFile(ko('fake_cumulative')).structure?.replace).toBe(true);
  });

  it('a module without livepatch=Y still reads; the flag says so', () => {
    expect(readPatchFile(ko('fake_plain')).livepatch).toBe(false);
  });

  it('a text file is refused as not a kernel module, naming it', () => {
    expect(() => readPatchFile(ko('garbage'))).toThrow(/garbage\.ko is not a kernel module/);
  });

  it('a missing file is named', () => {
    expect(() => readPatchFile('/nonexistent/fix.ko')).toThrow(/\/nonexistent\/fix\.ko does not exist/);
  });
});
