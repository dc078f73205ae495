// SPDX-License-Identifier: GPL-2.0-only
/**
 * Kernel symbols and sympos on small synthetic inputs: kallsyms text,
 * Module.symvers lines, a gcc-built stand-in for a module object (built with
 * the kernel's ftrace flags), and a hand-made image. The same code on the
 * real captured kallsyms is tested in symbols-workspace.vm.test.ts.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Exports,
  KernelImage,
  McountTable,
  ModuleSymbols,
  VmlinuxSymbols,
  candidatesOf,
  checkPatchable,
  codeReferences,
  objectOfPath,
  resolveSymbol,
  SymbolResolutionError,
  vmlinuxFtraceSite,
  type ModuleSymbol,
  type SymbolSources,
} from '../../src/kernel/symbols/mod.js';
import { SutureError } from '../../src/util/errors.js';

const FIXTURE = join(import.meta.dirname, '..', 'fixtures', 'source', 'unit-module.c');

// A small vmlinux: two files each with a static `show` and `helper`, one exported function,
// a duplicated static variable, init text and the region markers.
const KALLSYMS = [
  'ffffffff81000000 T _stext',
  'ffffffff81000100 t a_open',
  'ffffffff81000140 t show',
  'ffffffff81000180 t helper',
  'ffffffff810001c0 T a_public',
  'ffffffff81000200 t filler1',
  'ffffffff81000240 t filler2',
  'ffffffff81000280 t filler3',
  ...Array.from({ length: 200 }, (_, i) => `ffffffff81${(0x1000 + i * 0x40).toString(16).padStart(6, '0')} t pad${i}`),
  'ffffffff81010000 t b_open',
  'ffffffff81010040 t show',
  'ffffffff81010080 t helper',
  'ffffffff810100c0 T seq_printf',
  'ffffffff81020000 T _etext',
  'ffffffff82000000 D __start_rodata',
  'ffffffff82000100 D __end_rodata',
  'ffffffff82a00000 D _sdata',
  'ffffffff82a00010 d level',
  'ffffffff82a00020 d level',
  'ffffffff82a00030 D _edata',
  'ffffffff83079000 T _sinittext',
  'ffffffff83079010 t early_setup',
  'ffffffff830e7c04 T _einittext',
  'ffffffff83306000 t only_mod_line\t[somemod]',
].join('\n');

const SYMVERS = [
  '0x12345678\tseq_printf\tvmlinux\tEXPORT_SYMBOL\t',
  '0x0badcafe\tcrypto_thing\tvmlinux\tEXPORT_SYMBOL_GPL\tCRYPTO_INTERNAL',
  '0x00000001\tmod_export\tfs/some-mod\tEXPORT_SYMBOL_GPL\t',
].join('\n');

function sources(extra: Partial<SymbolSources> = {}): SymbolSources {
  return { vmlinux: VmlinuxSymbols.parse(KALLSYMS), exports: Exports.parse(SYMVERS), modules: new Map(), ...extra };
}

function modSym(index: number, name: string, fields: Partial<ModuleSymbol> = {}): ModuleSymbol {
  return { index, name, type: 2, bind: 0, shndx: 1, section: '.text', value: BigInt(index * 16), size: 16n, core: true, ...fields };
}

describe('kallsyms', () => {
  const v = VmlinuxSymbols.parse(KALLSYMS);

  it('keeps vmlinux lines in order and skips module lines', () => {
    expect(v.first('_stext')!.index).toBe(0);
    expect(v.has('only_mod_line')).toBe(false);
    expect(v.named('show').map((e) => e.address.toString(16))).toEqual(['ffffffff81000140', 'ffffffff81010040']);
  });

  it('sympos: 0 for a unique name, 1-based kallsyms rank for a duplicated one', () => {
    expect(v.sympos(v.first('a_open')!)).toBe(0);
    const [s1, s2] = v.named('show');
    expect([v.sympos(s1!), v.sympos(s2!)]).toEqual([1, 2]);
  });

  it('regions come from the linker boundary symbols', () => {
    expect(v.regionOf(v.first('a_open')!.address)).toBe('text');
    expect(v.regionOf(v.named('level')[0]!.address)).toBe('data');
    expect(v.regionOf(v.first('early_setup')!.address)).toBe('init-text');
    expect(v.nextAddress(v.first('a_open')!.address)).toBe(0xffffffff81000140n);
  });

  it('refuses a damaged file with its line, and a capture without addresses', () => {
    expect(() => VmlinuxSymbols.parse('ffffffff81000000 T _stext\nnot a line\n', 'ks')).toThrow(/ks:2: not a kallsyms line/);
    expect(() => VmlinuxSymbols.parse('0000000000000000 T _stext\n0000000000000000 t a\n', 'ks')).toThrow(/only zero addresses/);
  });
});

describe('Module.symvers', () => {
  it('reads name, CRC, object, export type and namespace', () => {
    const x = Exports.parse(SYMVERS);
    expect(x.vmlinux('seq_printf')).toMatchObject({ crc: 0x12345678, object: 'vmlinux', exportType: 'EXPORT_SYMBOL', namespace: '' });
    expect(x.get('crypto_thing')!.namespace).toBe('CRYPTO_INTERNAL');
    expect(x.get('mod_export')).toMatchObject({ object: 'some_mod', path: 'fs/some-mod' });
    expect(x.vmlinux('mod_export')).toBeUndefined();
    expect(objectOfPath('drivers/net/foo-bar')).toBe('foo_bar');
    expect(() => Exports.parse('0x1\tx\n', 'S')).toThrow(/S:1: not a Module.symvers line/);
  });
});

describe('resolveSymbol', () => {
  const req = { objects: ['vmlinux'], role: 'referenced' as const, usedBy: 'fix.c: my_fn' };

  it('a unique static is sympos 0; a vmlinux export is an ordinary relocation', () => {
    const src = sources();
    expect(resolveSymbol(src, { ...req, name: 'a_open', anchors: [] })).toMatchObject({ object: 'vmlinux', sympos: 0, how: 'unique' });
    const e = resolveSymbol(src, { ...req, name: 'seq_printf', anchors: [] });
    expect(e).toMatchObject({ object: 'vmlinux', sympos: 0, how: 'exported' });
    expect(e.exported!.crc).toBe(0x12345678);
  });

  it('a duplicated static next to the fix\'s other symbols resolves to that copy', () => {
    const src = sources();
    const a = candidatesOf(src, 'a_open', ['vmlinux']);
    const b = candidatesOf(src, 'b_open', ['vmlinux']);
    expect(resolveSymbol(src, { ...req, name: 'helper', anchors: a })).toMatchObject({ sympos: 1, how: 'adjacent' });
    expect(resolveSymbol(src, { ...req, name: 'helper', anchors: b })).toMatchObject({ sympos: 2, how: 'adjacent' });
  });

  it('without evidence it refuses, listing each copy with address and neighbours', () => {
    const src = sources();
    let err: SutureError | undefined;
    try {
      resolveSymbol(src, { ...req, name: 'show', anchors: [] });
    } catch (e) {
      err = e as SutureError;
    }
    expect(err?.kind).toBe('ambiguous');
    expect(err!.message).toBe("fix.c: my_fn: 'show' is ambiguous: 2 copies in vmlinux, and no other symbol of the same source file is used with it to tell them apart");
    expect(err!.details).toBe(
      [
        '#1 ffffffff81000140 t show  (after _stext, a_open; before helper, a_public)',
        '#2 ffffffff81010040 t show  (after pad199, b_open; before helper, seq_printf)',
      ].join('\n'),
    );
    expect(err!.hint).toBe('name the copy: its object and its number N above (0 when it is unique in that object), or a symbol of the same source file');
    expect(err).toBeInstanceOf(SymbolResolutionError);
    expect((err as SymbolResolutionError).candidates.map((c) => c.sympos)).toEqual([1, 2]);
  });

  it('data copies are not told apart by code anchors (different regions): ambiguous', () => {
    const src = sources();
    expect(() => resolveSymbol(src, { ...req, name: 'level', anchors: candidatesOf(src, 'a_open', ['vmlinux']) })).toThrow(/'level' is ambiguous/);
  });

  it('honours sympos and neighbour hints, and checks them', () => {
    const src = sources();
    const where = 'fix.c:7';
    expect(resolveSymbol(src, { ...req, name: 'level', anchors: [], hint: { kind: 'sympos', object: 'vmlinux', name: 'level', pos: 2, where } })).toMatchObject({ sympos: 2, how: 'hint' });
    expect(() => resolveSymbol(src, { ...req, name: 'level', anchors: [], hint: { kind: 'sympos', object: 'vmlinux', name: 'level', pos: 3, where } })).toThrow(
      'fix.c:7: sympos hint (vmlinux, level, 3): vmlinux has 2 copies of level',
    );
    expect(() => resolveSymbol(src, { ...req, name: 'level', anchors: [], hint: { kind: 'sympos', object: 'vmlinux', name: 'level', pos: 0, where } })).toThrow(/says the name is unique/);
    expect(resolveSymbol(src, { ...req, name: 'show', anchors: [], hint: { kind: 'near', object: 'vmlinux', name: 'show', neighbour: 'b_open', where } })).toMatchObject({ sympos: 2, how: 'adjacent' });
  });

  it('an unknown name is not-found, pointing at compiler clones and module exports', () => {
    const src = sources();
    expect(() => resolveSymbol(src, { ...req, name: 'nothing_here', anchors: [] })).toThrow("fix.c: my_fn: symbol 'nothing_here' is not in vmlinux of the target kernel");
    try {
      resolveSymbol(src, { ...req, name: 'mod_export', anchors: [] });
    } catch (e) {
      expect((e as SutureError).kind).toBe('not-found');
      expect((e as SutureError).hint).toContain('module some_mod exports it');
      expect((e as SymbolResolutionError).exportedBy).toBe('some_mod');
    }
    const clone = sources({ vmlinux: VmlinuxSymbols.parse(`${KALLSYMS}\nffffffff81010100 t frob.isra.0`) });
    try {
      resolveSymbol(clone, { ...req, name: 'frob', anchors: [] });
      expect.unreachable();
    } catch (e) {
      expect((e as SutureError).hint).toContain('frob.isra.0');
    }
    // Clones of every searched table, in table order, each once; a clone of a clone counts for both names.
    const mod = ModuleSymbols.fromList('binfmt_x', [modSym(1, 'frob.constprop.0'), modSym(2, 'frobnicate'), modSym(3, 'frob.constprop.0.cold'), modSym(4, 'frob.isra.0')]);
    const both = sources({ vmlinux: VmlinuxSymbols.parse(`${KALLSYMS}\nffffffff81010100 t frob.isra.0\nffffffff81010200 t frob.part.0`), modules: new Map([['binfmt_x', mod]]) });
    try {
      resolveSymbol(both, { ...req, name: 'frob', anchors: [] });
      expect.unreachable();
    } catch (e) {
      expect((e as SymbolResolutionError).clones).toEqual(['frob.isra.0', 'frob.part.0', 'frob.constprop.0', 'frob.constprop.0.cold']);
    }
    expect(mod.clonesOf('frob.constprop.0')).toEqual(['frob.constprop.0.cold']);
    expect(mod.clonesOf('frobnicate')).toEqual([]);
    expect(both.vmlinux.clonesOf('frob', 1)).toEqual(['frob.isra.0']);
  });

  it('a name in vmlinux and in a target module: the module copy when the fix\'s module code uses it', () => {
    const mod = ModuleSymbols.fromList('binfmt_x', [modSym(1, 'x_read'), modSym(2, 'helper'), modSym(3, 'level', { type: 1, section: '.data', shndx: 2 })]);
    const src = sources({ modules: new Map([['binfmt_x', mod]]) });
    const anchors = candidatesOf(src, 'x_read', ['binfmt_x']);
    const r = resolveSymbol(src, { ...req, objects: ['vmlinux', 'binfmt_x'], name: 'helper', anchors });
    expect(r).toMatchObject({ object: 'binfmt_x', sympos: 0, how: 'adjacent' });
    expect(() => resolveSymbol(src, { ...req, objects: ['vmlinux', 'binfmt_x'], name: 'helper', anchors: [] })).toThrow(/3 copies in vmlinux and binfmt_x/);
  });

  it('a module name duplicated only by an init-only copy is refused (its sympos changes after init)', () => {
    const mod = ModuleSymbols.fromList('m', [modSym(1, 'dup', { section: '.init.text', core: false }), modSym(2, 'dup'), modSym(3, 'user')]);
    const src = sources({ modules: new Map([['m', mod]]) });
    expect(() =>
      resolveSymbol(src, { ...req, objects: ['m'], name: 'dup', anchors: candidatesOf(src, 'user', ['m']) }),
    ).toThrow(/copy 2 while the module loads but copy 0 once its init has run/);
  });

  it('names over the kernel limit are refused as limit', () => {
    const long = 'f'.repeat(512);
    try {
      resolveSymbol(sources(), { ...req, name: long, anchors: [] });
      expect.unreachable();
    } catch (e) {
      expect((e as SutureError).kind).toBe('limit');
      expect((e as SutureError).message).toContain('is 512 characters; the kernel\'s limit is 511');
    }
  });
});

describe('module symbols from a gcc-built object (kernel ftrace flags)', () => {
  let dir: string;
  let mod: ModuleSymbols;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'suture-symbols-'));
    const o = join(dir, 'unit-module.o');
    execFileSync('gcc', ['-c', '-O2', '-fno-pic', '-mcmodel=kernel', '-pg', '-mfentry', '-mrecord-mcount', '-o', o, FIXTURE]);
    const b = readFileSync(o);
    mod = ModuleSymbols.fromBytes('unit_module', new Uint8Array(b.buffer, b.byteOffset, b.byteLength), o);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('lists defined symbols in symtab order with sections and core flags', () => {
    expect(mod.named('helper')[0]).toMatchObject({ section: '.text', type: 2, bind: 0, core: true });
    expect(mod.named('counter')[0]).toMatchObject({ bind: 1, type: 1 });
    expect(mod.has('__fentry__')).toBe(false); // undefined: not a module symbol
    expect(mod.sympos(mod.named('helper')[0]!)).toEqual({ loading: 0, live: 0 });
  });

  it('ftrace call sites: a call __fentry__ listed in __mcount_loc; none for notrace', () => {
    const src: SymbolSources = { ...sources(), modules: new Map([['unit_module', mod]]) };
    const [helper] = candidatesOf(src, 'helper', ['unit_module']);
    const [quiet] = candidatesOf(src, 'quiet', ['unit_module']);
    const [level] = candidatesOf(src, 'level', ['unit_module']);
    expect(mod.ftraceSite(helper!.symbol!)).toEqual({ fentryCall: true, mcountLoc: true });
    expect(checkPatchable(src, helper!).ok).toBe(true);
    expect(checkPatchable(src, quiet!)).toMatchObject({ ok: false, reason: expect.stringContaining('quiet in unit_module has no __fentry__ call site') });
    expect(checkPatchable(src, level!)).toMatchObject({ ok: false, reason: 'level is not a function (a variable)' });
  });

  it('code references: relocations (direct and section+addend) and assembler-resolved calls', () => {
    const refs = (n: string) => [...mod.referencesFrom(mod.named(n)[0]!)].map((s) => s.name).sort();
    expect(refs('show')).toEqual(['helper', 'names', 'quiet']);
    expect(refs('bump')).toEqual(['counter', 'level']);
  });
});

describe('image: ftrace sites and code references read from the bytes', () => {
  // One PT_LOAD segment at 0xffffffff81000000 holding three functions.
  const BASE = 0xffffffff81000000n;
  const code = new Uint8Array(0x300);
  // fentry at BASE+0x200
  code[0x200] = 0xc3;
  // a_open at +0x100: call __fentry__, then call helper#1 (at +0x180), ret
  const put32 = (at: number, v: number) => new DataView(code.buffer).setInt32(at, v, true);
  code[0x100] = 0xe8;
  put32(0x101, 0x200 - 0x105);
  code[0x105] = 0xe8;
  put32(0x106, 0x180 - 0x10a);
  code[0x10a] = 0xc3;
  // show at +0x140: NOP5 then mov level(%rip), %eax  (8b 05 disp32) pointing at the second `level`
  code.set([0x0f, 0x1f, 0x44, 0x00, 0x00], 0x140);
  code.set([0x8b, 0x05], 0x145);
  // helper at +0x180: no fentry
  code[0x180] = 0x55;
  const ks = VmlinuxSymbols.parse(
    [
      'ffffffff81000000 T _stext',
      'ffffffff81000100 t a_open',
      'ffffffff81000140 t show',
      'ffffffff81000180 t helper',
      'ffffffff81000200 T __fentry__',
      'ffffffff81000210 t helper',
      'ffffffff81000280 d level',
      'ffffffff81000290 d level',
      'ffffffff810002a0 d end_of_data',
      'ffffffff81000300 T _etext',
    ].join('\n'),
  );
  put32(0x147, 0x294 - 0x14b); // RIP-relative: inside the second `level`
  function elf(): Buffer {
    const b = Buffer.alloc(0x1000 + code.length);
    b.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1], 0);
    b.writeUInt16LE(2, 0x10);
    b.writeUInt16LE(62, 0x12);
    b.writeBigUInt64LE(64n, 0x20);
    b.writeUInt16LE(56, 0x36);
    b.writeUInt16LE(1, 0x38);
    b.writeUInt32LE(1, 64);
    b.writeBigUInt64LE(0x1000n, 64 + 8);
    b.writeBigUInt64LE(BASE, 64 + 16);
    b.writeBigUInt64LE(BigInt(code.length), 64 + 32);
    b.set(code, 0x1000);
    return b;
  }
  const image = KernelImage.fromBytes(elf(), 'synthetic');
  const mcount = new McountTable(BigUint64Array.of(BASE + 0x100n, BASE + 0x140n));

  it('a call __fentry__ or the NOP5 at the first byte, listed in __mcount_loc, is a patchable site', () => {
    expect(vmlinuxFtraceSite(image, ks, mcount, ks.first('a_open')!)).toMatchObject({ fentryCall: true, mcountLoc: true });
    expect(vmlinuxFtraceSite(image, ks, mcount, ks.first('show')!)).toMatchObject({ fentryCall: true, mcountLoc: true });
    expect(vmlinuxFtraceSite(image, ks, mcount, ks.named('helper')[0]!)).toMatchObject({ fentryCall: false, mcountLoc: false, firstBytes: '55 00 00 00 00' });
  });

  it('finds calls and RIP-relative operands to the right copy', () => {
    const helpers = ks.named('helper');
    const levels = ks.named('level');
    expect([...codeReferences(image, ks, ks.first('a_open')!, helpers)]).toEqual([helpers[0]]);
    expect([...codeReferences(image, ks, ks.first('show')!, levels)]).toEqual([levels[1]]);
    const src: SymbolSources = { vmlinux: ks, exports: Exports.parse(''), modules: new Map(), image: { image, mcount } };
    const anchors = candidatesOf(src, 'show', ['vmlinux']);
    expect(resolveSymbol(src, { name: 'level', objects: ['vmlinux'], role: 'referenced', anchors, usedBy: 'x' })).toMatchObject({
      sympos: 2,
      how: 'referenced',
      why: 'the original code of show (vmlinux) refers to this copy',
    });
  });
});
