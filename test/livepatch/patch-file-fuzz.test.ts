// SPDX-License-Identifier: GPL-2.0-only
/** A crafted .ko cannot hang suture or escape as an untyped error (bounded here; bench/patch-file-fuzz.ts runs 1M+). */
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { ElfView, SHT_SYMTAB } from '../../src/elf/mod.js';
import { parsePatchFile, readPatchFile } from '../../src/livepatch/patch-file.js';
import { buildFakePatches } from './fake-kernel.js';
import { fuzzPatchFiles } from './patch-fuzz.js';

let ko: (n: string) => string;
beforeAll(() => {
  ko = buildFakePatches();
});

/** The file with one symbol's st_size replaced. */
function withSymbolSize(file: string, name: string, size: bigint): Buffer {
  const b = readFileSync(file);
  const v = ElfView.parse(b);
  const symtab = v.sections.find((s) => s.type === SHT_SYMTAB)!;
  const sym = v.symbols(symtab).find((s) => s.name === name)!;
  b.writeBigUInt64LE(size, symtab.offset + sym.index * 24 + 16);
  return b;
}

describe('parsePatchFile under hostile input', () => {
  it('a klp_func array symbol whose st_size is 2^62 (past its section) is not trusted: read at once, no structure', () => {
    expect(readPatchFile(ko('fake_patch')).structure?.objects[0]?.functions.length).toBe(2);
    const t = performance.now();
    const p = parsePatchFile(withSymbolSize(ko('fake_patch'), 'vmlinux_funcs', 1n << 62n), 'crafted.ko');
    expect(performance.now() - t).toBeLessThan(1000);
    expect(p.structure).toBeUndefined();
  });

  it('a file bigger than any livepatch is refused before it is read', () => {
    expect(() => parsePatchFile(Buffer.alloc(64 * 1024 * 1024 + 1), 'huge.ko')).toThrow(/larger than any livepatch module/);
  });

  it('4000 seeded mutations of the fake livepatches: each a result or a SutureError, none slow', () => {
    const inputs = ['fake_patch', 'fake_cumulative', 'fake_bound'].map((n) => ({ name: n, bytes: new Uint8Array(readFileSync(ko(n))) }));
    const r = fuzzPatchFiles(inputs, 4000, 0x5eed, { maxCaseMs: 500 });
    expect(r.failures).toEqual([]);
    expect(r.rejected).toBeGreaterThan(400);
    expect(r.accepted).toBeGreaterThan(400);
    expect(r.structures).toBeGreaterThan(400);
  });
});
