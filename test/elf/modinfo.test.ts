// SPDX-License-Identifier: GPL-2.0-only
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ElfError, modinfoValue, parseModinfo, readModinfo } from '../../src/elf/mod.js';
import { buildFixtures, readBytes } from './helpers.js';

const enc = new TextEncoder();

describe('modinfo', () => {
  let fx: ReturnType<typeof buildFixtures>;
  beforeAll(() => {
    fx = buildFixtures(['modinfo', 'basic']);
  });
  afterAll(() => fx.cleanup());

  test('parseModinfo() splits NUL-separated key=value strings and skips padding', () => {
    expect(parseModinfo(enc.encode('license=GPL\0\0\0name=foo\0depends=\0'))).toEqual([
      { key: 'license', value: 'GPL' },
      { key: 'name', value: 'foo' },
      { key: 'depends', value: '' },
    ]);
  });

  test('parseModinfo() keeps "=" inside values, tolerates a missing final NUL and keys without "="', () => {
    expect(parseModinfo(enc.encode('description=a = b\0flag\0x=y'))).toEqual([
      { key: 'description', value: 'a = b' },
      { key: 'flag', value: '' },
      { key: 'x', value: 'y' },
    ]);
    expect(parseModinfo(new Uint8Array(0))).toEqual([]);
  });

  test('readModinfo() reads .modinfo of a compiled object, UTF-8 and repeated keys included', () => {
    const info = readModinfo(readBytes(fx.path('modinfo')));
    expect(info.map((e) => e.key).sort()).toEqual(
      ['alias', 'alias', 'author', 'description', 'license', 'livepatch', 'vermagic'].sort(),
    );
    expect(modinfoValue(info, 'license')).toBe('GPL');
    expect(modinfoValue(info, 'livepatch')).toBe('Y');
    expect(modinfoValue(info, 'author')).toBe('Zoë Example <zoe@example.org>');
    expect(modinfoValue(info, 'description')).toBe('fixture with a = inside = the value');
    expect(modinfoValue(info, 'vermagic')).toBe('6.1.0-56-amd64 SMP preempt mod_unload modversions ');
    expect(info.filter((e) => e.key === 'alias').map((e) => e.value).sort()).toEqual(['char-major-10-42', 'fs-fixture']);
  });

  test('readModinfo() returns [] for an object without .modinfo', () => {
    expect(readModinfo(readBytes(fx.path('basic')))).toEqual([]);
  });

  test('readModinfo() rejects non-ELF bytes with an ElfError naming the file', () => {
    const bad = enc.encode('#!/bin/sh\necho this is not a module\n'.repeat(4));
    expect(() => readModinfo(bad, 'x.ko')).toThrow(ElfError);
    expect(() => readModinfo(bad, 'x.ko')).toThrow(/x\.ko, offset 0x0: not an ELF file/);
  });
});
