// SPDX-License-Identifier: GPL-2.0-only
/**
 * A patch corpus (test/patches/<kernel>/*): each patch is built by
 * `suture build` from its fix.patch, or refused / found to change nothing as
 * its expect.json says. Every built module is then proven in one boot of the
 * real kernel: its check.sh must see the original behaviour, the patched
 * behaviour once loaded, and the original again after disable and rmmod.
 * One suite per kernel series (corpus.vm.test.ts, corpus-6.12.vm.test.ts).
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { DataSection, ElfObject, SHF_EXECINSTR, readModinfo } from '../../src/elf/mod.js';
import { ensureKernel } from './kernel.js';
import { suture, sutureJson } from './cli.js';

interface Expect {
  expect: 'built' | 'refused' | 'no-change';
  name?: string;
  changed?: string[];
  new?: string[];
  newData?: string[];
  carried?: string[];
  kmods?: string[];
  reason?: string;
  /** A name changed in more than one unit: the units, each with its own sympos. */
  sameName?: Record<string, string[]>;
  load?: 'self';
  /** Kernel log lines the entry causes on purpose (a pre-patch callback that refuses): not failures. */
  dmesg?: string[];
  /** Symbols reached through another module's export: name → the exporting module. */
  references?: Record<string, string>;
  /** `function:VARIABLE` of each runtime constant rewritten into a load (6.12: USER_PTR_MAX in uaccess code). */
  runtimeConstants?: string[];
}

/** runtime_const_ptr()'s placeholder immediate (arch/x86/include/asm/runtime-const.h), little-endian. */
const RUNTIME_CONST_PLACEHOLDER = Buffer.from('efcdab8967452301', 'hex');

/** Build every patch of test/patches/<dir> for `kernel`, then prove the built ones in one boot. */
export function corpusSuite(kernel: string, corpusDir: string, effectiveVersion: string): void {
  const CORPUS = join(import.meta.dirname, '..', 'patches', corpusDir);
  const cases = readdirSync(CORPUS)
    .filter((d) => existsSync(join(CORPUS, d, 'fix.patch')))
    .sort()
    .map((d) => ({ dir: d, exp: JSON.parse(readFileSync(join(CORPUS, d, 'expect.json'), 'utf8')) as Expect }));
  const out = mkdtempSync(join(tmpdir(), 'suture-corpus-'));
  const built = new Map<string, { ko: string; exp: Expect }>();

  beforeAll(async () => {
    await ensureKernel(kernel);
  });

  describe(`corpus ${corpusDir}: suture build`, () => {
    it.each(cases.map((c) => [c.dir, c.exp] as const))('%s', (dir, exp) => {
      const patch = join(CORPUS, dir, 'fix.patch');
      if (exp.expect === 'built') {
        const ko = join(out, `${exp.name}.ko`);
        const { status, json, stderr } = sutureJson(['build', '--kernel', kernel, patch, '--name', exp.name!, '-o', ko, '--cve', 'CVE-2099-0001', '--show-first-changed', '--effective-version', effectiveVersion]);
        expect(status, `${stderr}\n${JSON.stringify(json, null, 1)}`).toBe(0);
        const fns = json.functions as { name: string; object: string; unit: string; sympos?: number; status: string; carriedOnly?: boolean; reasons: string[] }[];
        // Exactly these functions, each set as the entry lists it (an absent list: none).
        const names = (keep: (f: (typeof fns)[number]) => boolean) => [...new Set(fns.filter(keep).map((f) => f.name))].sort();
        expect(names((x) => x.status === 'changed' && !x.carriedOnly), 'changed').toEqual([...(exp.changed ?? [])].sort());
        expect(names((x) => x.status === 'new'), 'new').toEqual([...(exp.new ?? [])].sort());
        expect(names((x) => x.carriedOnly === true), 'carried').toEqual([...(exp.carried ?? [])].sort());
        expect(json.units.flatMap((u: { newData: string[] }) => u.newData).sort(), 'new data').toEqual([...(exp.newData ?? [])].sort());
        if (exp.reason) expect(fns.flatMap((f) => f.reasons).join('\n')).toContain(exp.reason);
        // Another module's export (nfsd → sunrpc): a klp symbol of the exporter, in the patched module's section.
        for (const [sym, exporter] of Object.entries(exp.references ?? {})) {
          expect((json.references as { name: string; object: string; section?: string }[]).find((r) => r.name === sym), `${sym} through ${exporter}`).toMatchObject({ object: exporter, section: fns[0]!.object });
        }
        for (const [name, units] of Object.entries(exp.sameName ?? {})) {
          const same = fns.filter((f) => f.name === name && f.status === 'changed');
          expect(same.map((f) => f.unit).sort()).toEqual(units);
          expect(new Set(same.map((f) => f.sympos)).size, `${name}: one sympos per copy`).toBe(units.length);
        }
        // --show-first-changed: the instruction where the code first differs, as objdump prints it.
        for (const f of fns as { status: string; firstDifference?: number; firstChanged?: { patched?: string } }[]) {
          if (f.status === 'changed' && f.firstDifference !== undefined) expect(f.firstChanged?.patched).toMatch(/^\+0x[0-9a-f]+: \S/);
        }
        for (const p of json.provenance) expect(p.verdict, `${p.function}: ${p.detail}`).toBe('equal');
        // Boot-time constants: rewritten into loads of their variables, no placeholder left in any code of the module.
        const rc = (json.runtimeConstants as { function: string; symbol: string }[]).map((c) => `${c.function}:${c.symbol}`).sort();
        expect(rc).toEqual([...(exp.runtimeConstants ?? [])].sort());
        const mod = ElfObject.parse(readFileSync(ko), { file: ko });
        for (const sec of mod.sections) {
          if (sec instanceof DataSection && sec.flags & SHF_EXECINSTR) expect(Buffer.from(sec.data).indexOf(RUNTIME_CONST_PLACEHOLDER), `${sec.name} holds 0x0123456789abcdef`).toBe(-1);
        }
        // modinfo carries what the host side reads: CVEs, the effective version, the kernel, the patch's hash.
        const info = readModinfo(readFileSync(ko));
        expect(info.filter((e) => e.key === 'suture_cve').map((e) => e.value)).toEqual(['CVE-2099-0001']);
        expect(info.find((e) => e.key === 'suture_effective_version')?.value).toBe(effectiveVersion);
        expect(info.find((e) => e.key === 'suture_kernel')?.value).toBe(kernel.replace(/^debian:/, ''));
        expect(info.find((e) => e.key === 'suture_patch_sha256')?.value).toMatch(/^[0-9a-f]{64}$/);
        expect(info.find((e) => e.key === 'livepatch')?.value).toBe('Y');
        built.set(dir, { ko, exp });
      } else {
        const r = suture(['build', '--kernel', kernel, patch, '-o', join(out, 'never.ko')]);
        expect(r.status, r.stderr).toBe(exp.expect === 'refused' ? 18 : 19);
        if (exp.expect === 'no-change') expect(r.stderr).toContain('no functional change');
        else expect(r.stderr).toContain(exp.reason!);
        expect(existsSync(join(out, 'never.ko'))).toBe(false);
      }
    });
  });

  describe(`corpus ${corpusDir}: the built modules in the real kernel`, () => {
    it('every module shows original → patched → original, in one boot', () => {
      // Every entry expected to build did (a failed build fails its own test above, and this one too).
      expect([...built.keys()].sort()).toEqual(cases.filter((c) => c.exp.expect === 'built').map((c) => c.dir));
      const mods = [...built.values()];
      const kmods = [...new Set(mods.flatMap((m) => m.exp.kmods ?? []))];
      const lines = ['set -u', 'fail=0'];
      for (const [dir, { ko, exp }] of built) {
        const check = readFileSync(join(CORPUS, dir, 'check.sh'), 'utf8');
        const fn = `check_${exp.name}`;
        lines.push(`${fn}() {\n${check}\n}`);
        const mod = `/modules/${ko.split('/').pop()}`;
        const lp = `/sys/kernel/livepatch/${exp.name}`;
        if (exp.load === 'self') {
          lines.push(`if ( ${fn} self-load ${mod} ); then echo "PASS ${dir} self-check"; else echo "FAIL ${dir} self-check"; fail=1; fi`);
        } else {
          lines.push(`if ( ${fn} original ); then echo "PASS ${dir} original"; else echo "FAIL ${dir} original"; fail=1; fi`);
          lines.push(`insmod ${mod} || { echo "FAIL ${dir} insmod"; fail=1; }`);
          // The guest harness's own output pipe has a cat sleeping in vfs_read: a line now and then wakes
          // it so that a patch of vfs_read (12-xacct-header-inline) does not wait for the kernel's signals.
          lines.push(`i=0; while [ "$(cat ${lp}/transition 2>/dev/null)" != 0 ] && [ $i -lt 3000 ]; do sleep 0.01; i=$((i+1)); [ $((i % 50)) = 0 ] && echo "(${dir}: patching)"; done`);
          lines.push(`if ( ${fn} patched ); then echo "PASS ${dir} patched"; else echo "FAIL ${dir} patched"; fail=1; fi`);
        }
        lines.push(`echo 0 > ${lp}/enabled; i=0; while [ -d ${lp} ] && [ $i -lt 3000 ]; do sleep 0.01; i=$((i+1)); [ $((i % 50)) = 0 ] && echo "(${dir}: unpatching)"; done`);
        lines.push(`rmmod ${exp.name} && echo "PASS ${dir} unloaded" || { echo "FAIL ${dir} unload"; fail=1; }`);
        if (exp.load !== 'self') lines.push(`if ( ${fn} original ); then echo "PASS ${dir} original again"; else echo "FAIL ${dir} original again"; fail=1; fi`);
      }
      lines.push('exit $fail');
      const script = join(out, 'corpus.sh');
      writeFileSync(script, `${lines.join('\n')}\n`);
      const args = ['vm', 'run', '--kernel', kernel, '--timeout', '900', '--script', script];
      for (const k of kmods) args.push('--kmod', k);
      for (const m of mods) args.push('--module', m.ko);
      const { status, json } = sutureJson(args, { timeoutMs: 1_000_000 });
      const output = json.commands?.[0]?.output ?? '';
      expect(output, JSON.stringify({ reason: json.reason, console: json.consoleTail, lp: json.livepatchLog }, null, 1)).not.toMatch(/^FAIL/m);
      expect(status, output).toBe(0);
      for (const dir of built.keys()) expect(output).toMatch(new RegExp(`^PASS ${dir} (patched|self-check)$`, 'm'));
      // No oops, no livepatch complaints.
      const expected = mods.flatMap((m) => m.exp.dmesg ?? []);
      expect(json.dmesg.filter((l: string) => !expected.some((e) => l.includes(e))).join('\n')).not.toMatch(/Oops|BUG:|unable to|failed to/);
    });
  });
}
