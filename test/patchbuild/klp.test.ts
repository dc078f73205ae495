// SPDX-License-Identifier: GPL-2.0-only
/**
 * klp conversion on an object built from test/fixtures/source/unit-klp.c
 * (gcc, kernel code model), with readelf as the oracle: the klp relocation
 * sections (flags 0x100042, shown `AIo`), the SHN_LIVEPATCH symbols
 * (`OS [0xff20]`), exactly the right entries moved, __versions and .modinfo
 * edited, and the rules checkLivepatchModule enforces.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ElfObject, parseModinfo, writeElf, DataSection } from '../../src/elf/mod.js';
import { applyKlp, checkLivepatchModule, convertModuleFile, planKlp, readVersions, type SymbolDisposition } from '../../src/patchbuild/klp/mod.js';
import { SutureError } from '../../src/util/errors.js';
import { readelfDump, tool } from '../elf/helpers.js';

const FIXTURE = join(import.meta.dirname, '..', 'fixtures', 'source', 'unit-klp.c');

const DISPOSITIONS: Record<string, SymbolDisposition> = {
  printk_like: { kind: 'exported', crc: 0x11111111 },
  static_helper: { kind: 'klp', object: 'vmlinux', name: 'static_helper', sympos: 0 },
  hidden_var: { kind: 'klp', object: 'vmlinux', name: 'hidden_var', sympos: 2 },
  mod_static: { kind: 'klp', object: 'binfmt_x', name: 'mod_static', sympos: 0 },
  mod_exported: { kind: 'klp', object: 'binfmt_x', name: 'mod_exported', sympos: 0, exportedBy: 'binfmt_x' },
};
const dispose = (n: string) => DISPOSITIONS[n];
const exported = (n: string) => n === 'printk_like';

let dir: string;
const build = (name: string, extra: string[] = []) => {
  const o = join(dir, `${name}.o`);
  execFileSync('gcc', ['-c', '-O2', '-g', '-fno-pic', '-mcmodel=kernel', '-fno-asynchronous-unwind-tables', ...extra, '-o', o, FIXTURE]);
  return o;
};
const parse = (path: string) => {
  const b = readFileSync(path);
  return ElfObject.parse(new Uint8Array(b.buffer, b.byteOffset, b.byteLength), { file: path });
};

describe('klp conversion', () => {
  let input: string;
  let output: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'suture-klp-'));
    input = build('unit-klp');
    output = join(dir, 'unit-klp.ko');
    convertModuleFile(input, output, dispose, exported);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('plans one rename per unexported symbol and moves only their entries', () => {
    const plan = planKlp(parse(input), dispose);
    // A unique name is given as position 1 (klp/position.ts: the kernel's walk stops there); the plan keeps its sympos 0.
    expect(plan.renames.map((r) => r.to).sort()).toEqual([
      '.klp.sym.binfmt_x.mod_exported,1',
      '.klp.sym.binfmt_x.mod_static,1',
      '.klp.sym.vmlinux.hidden_var,2',
      '.klp.sym.vmlinux.static_helper,1',
    ]);
    expect(plan.renames.find((r) => r.name === 'static_helper')!.sympos).toBe(0);
    expect(plan.moves.map((m) => `${m.sectionName} ${m.relocations.length}`).sort()).toEqual([
      '.klp.rela.binfmt_x..data 1',
      '.klp.rela.binfmt_x..text 2',
      '.klp.rela.vmlinux..rodata 1',
      '.klp.rela.vmlinux..text 3',
    ]);
    expect(plan.exported).toEqual([{ name: 'printk_like', crc: 0x11111111 }]);
    expect(plan.versionsDropped).toEqual(['mod_exported']);
    expect(plan.dependsDropped).toEqual(['binfmt_x']);
  });

  it('readelf: klp sections are RELA, flags AIo (0x100042), linked to .symtab, applying to their section', () => {
    const d = readelfDump(output);
    const byName = new Map(d.sections.map((s) => [s.name, s]));
    const symtab = byName.get('.symtab')!.index;
    for (const [name, target] of [
      ['.klp.rela.vmlinux..text', '.text'],
      ['.klp.rela.binfmt_x..text', '.text'],
      ['.klp.rela.vmlinux..rodata', '.rodata'],
      ['.klp.rela.binfmt_x..data', '.data'],
    ] as const) {
      const s = byName.get(name);
      expect(s, name).toBeDefined();
      expect(s).toMatchObject({ type: 'RELA', flags: 'AIo', link: symtab, info: byName.get(target)!.index, entsize: 24 });
    }
    // The raw flag value, from the section header itself.
    const raw = tool('readelf', ['-W', '-S', '-t', output]);
    expect(raw).toMatch(/\.klp\.rela\.vmlinux\.\.text\n(?:.*\n)*?\s+\[0000000000100042\]: ALLOC, INFO LINK, OS \(0000000000100000\)/);
  });

  it('readelf: klp symbols are OS [0xff20]; the exported one stays undefined', () => {
    const syms = readelfDump(output).symtabs.get('.symtab')!;
    const klp = syms.filter((s) => s.name.startsWith('.klp.sym.'));
    expect(klp.map((s) => s.name).sort()).toEqual([
      '.klp.sym.binfmt_x.mod_exported,1',
      '.klp.sym.binfmt_x.mod_static,1',
      '.klp.sym.vmlinux.hidden_var,2',
      '.klp.sym.vmlinux.static_helper,1',
    ]);
    for (const s of klp) expect(s.ndx).toBe('OS [0xff20]');
    expect(syms.find((s) => s.name === 'printk_like')!.ndx).toBe('UND');
    expect(syms.some((s) => ['static_helper', 'hidden_var', 'mod_static', 'mod_exported'].includes(s.name))).toBe(false);
  });

  it('readelf: exactly the entries that use klp symbols moved; the rest stayed, at the same offsets', () => {
    const before = readelfDump(input).relocs;
    const after = readelfDump(output).relocs;
    const key = (r: { offset: bigint; type: string; addend: bigint }) => `${r.offset} ${r.type} ${r.addend}`;
    const klpNames = (n: string) => ['static_helper', 'hidden_var', 'mod_static', 'mod_exported'].includes(n);
    const moved = before.get('.rela.text')!.filter((r) => klpNames(r.symName));
    const kept = before.get('.rela.text')!.filter((r) => !klpNames(r.symName));
    expect(moved).toHaveLength(5);
    expect(after.get('.rela.text')!.map(key)).toEqual(kept.map(key));
    const klpText = [...after.get('.klp.rela.vmlinux..text')!, ...after.get('.klp.rela.binfmt_x..text')!];
    expect(klpText.map(key).sort()).toEqual(moved.map(key).sort());
    for (const r of after.get('.klp.rela.vmlinux..text')!) expect(r.symName).toMatch(/^\.klp\.sym\.vmlinux\./);
    for (const r of after.get('.klp.rela.binfmt_x..text')!) expect(r.symName).toMatch(/^\.klp\.sym\.binfmt_x\./);
    // .rela.rodata and .rela.data held only klp entries: removed, not left empty.
    expect(after.has('.rela.rodata')).toBe(false);
    expect(after.has('.rela.data')).toBe(false);
    // Debug info keeps its own relocations (the loader never applies them).
    expect(after.get('.rela.debug_info')!.length).toBe(before.get('.rela.debug_info')!.length);
  });

  it('__versions loses the module export; .modinfo drops it from depends= without moving a string', () => {
    const obj = parse(output);
    expect(readVersions(obj.section('__versions') as DataSection)).toEqual([
      { name: 'printk_like', crc: 0x11111111 },
      { name: 'module_layout', crc: 0x9060323f },
    ]);
    const info = parseModinfo((obj.section('.modinfo') as DataSection).data);
    expect(info).toEqual([
      { key: 'license', value: 'GPL' },
      { key: 'depends', value: 'other_mod' },
      { key: 'livepatch', value: 'Y' },
      { key: 'name', value: 'unit_klp' },
    ]);
    const orig = (parse(input).section('.modinfo') as DataSection).data;
    expect((obj.section('.modinfo') as DataSection).data.length).toBe(orig.length);
    expect(Buffer.from((obj.section('.modinfo') as DataSection).data).indexOf('livepatch=Y')).toBe(Buffer.from(orig).indexOf('livepatch=Y'));
  });

  it('the written module passes the livepatch checks and objdump reads it', () => {
    const c = checkLivepatchModule(readFileSync(output), output, exported);
    expect(c.undefined).toEqual(['printk_like']);
    expect(c.symbols).toContainEqual({ object: 'vmlinux', name: 'hidden_var', sympos: 2 });
    tool('objdump', ['-dr', output]);
  });

  it('klp symbols keep the index the undefined symbol had, and a re-read module writes back byte-identical', () => {
    const before = readelfDump(input).symtabs.get('.symtab')!;
    const after = readelfDump(output).symtabs.get('.symtab')!;
    for (const n of ['static_helper', 'hidden_var', 'mod_static', 'mod_exported']) {
      const b = before.find((s) => s.name === n)!;
      const a = after.find((s) => s.name.startsWith(`.klp.sym.`) && s.name.includes(`.${n},`))!;
      expect(a.num, n).toBe(b.num);
    }
    const bytes = readFileSync(output);
    expect(Buffer.from(writeElf(parse(output))).equals(bytes)).toBe(true);
  });

  it('refuses a module reference in a section that is read-only after init', () => {
    const bad = build('bad', ['-DBAD_SECTION']);
    expect(() => planKlp(parse(bad), dispose)).toThrow(/section '\.data\.\.ro_after_init' refers to mod_static of module binfmt_x/);
  });

  it('refuses an unresolved symbol, a second conversion, and a CRC that does not match', () => {
    expect(() => planKlp(parse(input), (n) => (n === 'hidden_var' ? undefined : dispose(n)))).toThrow(/refers to a symbol nothing resolved: hidden_var/);
    expect(() => planKlp(parse(output), dispose)).toThrow(/already has klp relocations/);
    try {
      planKlp(parse(input), (n) => (n === 'printk_like' ? { kind: 'exported', crc: 0x12 } : dispose(n)));
      expect.unreachable();
    } catch (e) {
      expect((e as SutureError).kind).toBe('build');
      expect((e as SutureError).details).toBe('printk_like: __versions has 0x11111111, Module.symvers 0x12');
    }
  });

  it('adds import_ns= for a namespaced export', () => {
    const obj = parse(input);
    const plan = planKlp(obj, (n) => (n === 'printk_like' ? { kind: 'exported', crc: 0x11111111, namespace: 'CRYPTO_INTERNAL' } : dispose(n)));
    applyKlp(obj, plan);
    const out = join(dir, 'ns.ko');
    writeFileSync(out, writeElf(obj));
    expect(parseModinfo((parse(out).section('.modinfo') as DataSection).data)).toContainEqual({ key: 'import_ns', value: 'CRYPTO_INTERNAL' });
  });

  it('an export of a module the patched module depends on: its klp symbol, in the patched module\'s section', () => {
    // mod_exported is exported by sunrpc_x, a module binfmt_x depends on: the relocation stays with binfmt_x.
    const dep = (n: string): SymbolDisposition | undefined =>
      n === 'mod_exported' ? { kind: 'klp', object: 'sunrpc_x', name: 'mod_exported', sympos: 0, exportedBy: 'sunrpc_x', section: 'binfmt_x' } : dispose(n);
    const out = join(dir, 'dep.ko');
    const conv = convertModuleFile(input, out, dep, exported);
    expect(conv.sections).toContain('.klp.rela.binfmt_x..text');
    expect(conv.sections.some((s) => s.startsWith('.klp.rela.sunrpc_x.'))).toBe(false);
    const r = tool('readelf', ['-W', '-r', out]);
    const sec = r.split('Relocation section ').find((b) => b.startsWith("'.klp.rela.binfmt_x..text'"))!;
    expect(sec).toContain('.klp.sym.sunrpc_x.mod_exported,1');
    expect(sec).toContain('.klp.sym.binfmt_x.mod_static,1');
    expect(conv.check.symbols).toContainEqual({ object: 'sunrpc_x', name: 'mod_exported', sympos: 1 }); // as written: position 1 for a unique name (klp/position.ts)
  });

  it('the check refuses a vmlinux symbol named from a module\'s section, as the kernel does', () => {
    const obj = parse(input);
    const wrong = (n: string): SymbolDisposition | undefined => (n === 'static_helper' ? { kind: 'klp', object: 'vmlinux', name: 'static_helper', sympos: 0, section: 'binfmt_x' } : dispose(n));
    applyKlp(obj, planKlp(obj, wrong));
    expect(() => checkLivepatchModule(writeElf(obj), 'x.ko', exported)).toThrow(/breaks \d+ livepatch module rule/);
  });

  it('the check catches a klp section that names another object\'s symbol', () => {
    const obj = parse(input);
    applyKlp(obj, planKlp(obj, dispose));
    const klp = obj.sections.find((s) => s.name === '.klp.rela.binfmt_x..text')!;
    klp.name = '.klp.rela.vmlinux..text';
    expect(() => checkLivepatchModule(writeElf(obj), 'x.ko', exported)).toThrow(/breaks \d+ livepatch module rule/);
  });
});
