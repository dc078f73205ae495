// SPDX-License-Identifier: GPL-2.0-only
/**
 * Round trip over real Debian kernel modules: a deterministic sample of the
 * .ko files under kernel/fs and kernel/net of the reference kernel must
 * write back byte-identical, and readelf must agree with the model on a few.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ElfObject, layout, modinfoValue, readModinfo, writeElf } from '../../src/elf/mod.js';
import { ensureKernel } from '../helpers/kernel.js';
import { buildFixtures, compareWithReadelf, tool } from './helpers.js';

const SAMPLE = 300;
const READELF_CHECKS = 6;

function walk(dir: string, out: string[]): string[] {
  for (const e of readdirSync(dir).sort()) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (p.endsWith('.ko')) out.push(p);
  }
  return out;
}

/** Every k-th module of the sorted list, so the sample is the same on every run. */
function sample(all: string[], n: number): string[] {
  if (all.length <= n) return all;
  const step = all.length / n;
  return Array.from({ length: n }, (_, i) => all[Math.floor(i * step)]!);
}

describe('Debian kernel modules', () => {
  let modules: string[] = [];
  let release = '';
  let tmp = '';
  let sourceDir = '';
  beforeAll(async () => {
    const { modulesDir, paths } = await ensureKernel();
    sourceDir = paths.source;
    release = basename(modulesDir);
    const all = [...walk(join(modulesDir, 'kernel', 'fs'), []), ...walk(join(modulesDir, 'kernel', 'net'), [])];
    modules = sample(all, SAMPLE);
    tmp = mkdtempSync(join(tmpdir(), 'suture-elf-ko-'));
  });
  afterAll(() => {
    if (tmp !== '') rmSync(tmp, { recursive: true, force: true });
  });

  test(`writeElf() of ${SAMPLE} sampled fs/ and net/ modules is byte-identical`, () => {
    expect(modules.length).toBeGreaterThanOrEqual(Math.min(SAMPLE, 200));
    const different: string[] = [];
    for (const path of modules) {
      const bytes = new Uint8Array(readFileSync(path));
      const out = writeElf(ElfObject.parse(bytes, { file: path }));
      if (out.length !== bytes.length || Buffer.compare(Buffer.from(out), Buffer.from(bytes)) !== 0) different.push(path);
    }
    expect(different).toEqual([]);
  });

  test('readModinfo() of sampled modules gives their name and the kernel release in vermagic', () => {
    for (const path of modules) {
      const info = readModinfo(new Uint8Array(readFileSync(path)), path);
      expect(modinfoValue(info, 'name'), path).toBe(basename(path, '.ko').replaceAll('-', '_'));
      expect(modinfoValue(info, 'vermagic')?.split(' ')[0], path).toBe(release);
    }
  });

  test(`writeElf() output agrees with readelf -W -S -s -r on ${READELF_CHECKS} modules, including the largest`, () => {
    const bySize = [...modules].sort((a, b) => statSync(b).size - statSync(a).size);
    const picks = [bySize[0]!, ...sample(modules, READELF_CHECKS - 1)];
    for (const path of picks) {
      const obj = ElfObject.parse(new Uint8Array(readFileSync(path)), { file: path });
      const l = layout(obj);
      expect(compareWithReadelf(obj, l, writeElf(obj, l), tmp, basename(path, '.ko')), path).toEqual([]);
    }
  });

  test('writeElf() in fresh mode gives modules that readelf agrees with and that read back identically', () => {
    for (const path of sample(modules, 4)) {
      const obj = ElfObject.parse(new Uint8Array(readFileSync(path)), { file: path });
      obj.trailer = new Uint8Array(0); // the signature is meaningless after a re-layout
      const l = layout(obj, { mode: 'fresh' });
      const out = writeElf(obj, l);
      expect(compareWithReadelf(obj, l, out, tmp, `${basename(path, '.ko')}-fresh`), path).toEqual([]);
      expect(Buffer.compare(Buffer.from(writeElf(ElfObject.parse(out))), Buffer.from(out)), path).toBe(0);
    }
  });

  test('writeElf() of an object annotated by the kernel\'s objtool (rewritten through libelf) is byte-identical', () => {
    const objtool = join(sourceDir, 'tools', 'objtool', 'objtool');
    expect(existsSync(objtool), `${objtool} (built by modules_prepare)`).toBe(true);
    const fx = buildFixtures(['basic-kernel']);
    try {
      const path = join(fx.dir, 'objtool.o');
      copyFileSync(fx.path('basic-kernel'), path);
      const r = spawnSync(objtool, ['--orc', '--mcount', '--static-call', path], { encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
      expect(tool('readelf', ['-W', '-S', path])).toMatch(/\.orc_unwind_ip/);
      const bytes = new Uint8Array(readFileSync(path));
      const obj = ElfObject.parse(bytes, { file: path });
      const l = layout(obj);
      const out = writeElf(obj, l);
      expect(Buffer.compare(Buffer.from(out), Buffer.from(bytes))).toBe(0);
      expect(compareWithReadelf(obj, l, out, fx.dir, 'objtool')).toEqual([]);
    } finally {
      fx.cleanup();
    }
  });
});
