// SPDX-License-Identifier: GPL-2.0-only
/** Special-section entry sizes read from the shipped 6.1 kernel's own BTF. */
import { describe, expect, it } from 'vitest';
import { workspaceBtf } from '../../src/kernel/btf.js';
import { ensureKernel } from '../helpers/kernel.js';

describe('workspaceBtf', () => {
  it('workspaceBtf() gives the entry sizes of the special sections of Debian 6.1', async () => {
    const btf = await workspaceBtf(await ensureKernel());
    // Sizes as pahole prints them for this kernel (struct bug_entry is 12 bytes with relative pointers, etc.).
    expect({
      bug_entry: btf.structSize('bug_entry'),
      jump_entry: btf.structSize('jump_entry'),
      alt_instr: btf.structSize('alt_instr'),
      exception_table_entry: btf.structSize('exception_table_entry'),
      static_call_site: btf.structSize('static_call_site'),
      orc_entry: btf.structSize('orc_entry'),
      paravirt_patch_site: btf.structSize('paravirt_patch_site'),
    }).toEqual({ bug_entry: 12, jump_entry: 16, alt_instr: 12, exception_table_entry: 12, static_call_site: 8, orc_entry: 6, paravirt_patch_site: 16 });
    expect(btf.structSize('no_such_struct_anywhere')).toBeUndefined();
  });
});
