// SPDX-License-Identifier: GPL-2.0-only
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { moduleName, readModuleIndex, resolveModules } from '../../src/kernel/modules.js';

// The shape of Debian 6.1's modules.dep for ext4 (deps listed so the last loads first).
const dir = mkdtempSync(join(tmpdir(), 'suture-modules-'));
writeFileSync(
  join(dir, 'modules.dep'),
  [
    'kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko',
    'kernel/lib/crc16.ko:',
    'kernel/fs/mbcache.ko:',
    'kernel/fs/jbd2/jbd2.ko:',
    'kernel/drivers/block/virtio_blk.ko:',
    'kernel/fs/binfmt_misc.ko:',
  ].join('\n'),
);
writeFileSync(join(dir, 'modules.builtin'), 'kernel/fs/proc/proc.ko\nkernel/drivers/tty/serial/8250/8250.ko\n');
const index = readModuleIndex(dir);

describe('resolveModules', () => {
  it('resolveModules() puts dependencies first and loads each module once', () => {
    const { loads } = resolveModules(index, dir, ['ext4', 'jbd2', 'binfmt-misc']);
    expect(loads.map((l) => l.name)).toEqual(['crc16', 'mbcache', 'jbd2', 'ext4', 'binfmt_misc']);
    expect(loads[3]!.path).toBe(join(dir, 'kernel/fs/ext4/ext4.ko'));
  });
  it('resolveModules() reports built-in modules instead of loading them', () => {
    expect(resolveModules(index, dir, ['8250'])).toEqual({ loads: [], builtin: ['8250'] });
  });
  it('resolveModules() rejects an unknown name and suggests close ones', () => {
    expect(() => resolveModules(index, dir, ['ext'])).toThrow(/no module named ext/);
    try {
      resolveModules(index, dir, ['ext']);
    } catch (e) {
      expect((e as { hint: string }).hint).toContain('ext4');
    }
  });
  it('resolveModules() suggests names a typo away', () => {
    try {
      resolveModules(index, dir, ['ext5']);
    } catch (e) {
      expect((e as { hint: string }).hint).toBe('did you mean: ext4');
      return;
    }
    throw new Error('ext5 was accepted');
  });
  it('moduleName() treats - and _ alike and strips compression suffixes', () => {
    expect(moduleName('kernel/fs/binfmt-misc.ko.xz')).toBe('binfmt_misc');
  });
});

describe('resolveModules: soft dependencies (modules.softdep, as Debian 13 ships them)', () => {
  const d = mkdtempSync(join(tmpdir(), 'suture-modules-soft-'));
  writeFileSync(
    join(d, 'modules.dep'),
    [
      'kernel/fs/btrfs/btrfs.ko: kernel/crypto/xor.ko kernel/lib/libcrc32c.ko',
      'kernel/crypto/xor.ko:',
      'kernel/lib/libcrc32c.ko:',
      'kernel/arch/x86/crypto/crc32c-intel.ko:',
      'kernel/crypto/crc32c_generic.ko:',
      'kernel/fs/ext4/ext4.ko: kernel/fs/jbd2/jbd2.ko',
      'kernel/fs/jbd2/jbd2.ko:',
    ].join('\n'),
  );
  writeFileSync(
    join(d, 'modules.softdep'),
    '# Soft dependencies extracted from modules themselves.\nsoftdep btrfs pre: crypto-crc32c\nsoftdep libcrc32c pre: crc32c\nsoftdep ext4 pre: crypto-crc32c\n',
  );
  writeFileSync(
    join(d, 'modules.alias'),
    'alias crypto-crc32c crc32c_intel\nalias crc32c crc32c_intel\nalias crypto-crc32c crc32c_generic\nalias crc32c crc32c_generic\nalias pci:v00008086d* e1000e\n',
  );
  it('loads what a softdep names first, taking the generic implementation of an alias', () => {
    const { loads } = resolveModules(readModuleIndex(d), d, ['btrfs']);
    expect(loads.map((l) => l.name)).toEqual(['crc32c_generic', 'xor', 'libcrc32c', 'btrfs']);
  });
  it('a softdep that is built in needs nothing loaded', () => {
    writeFileSync(join(d, 'modules.builtin'), 'kernel/crypto/crc32c_generic.ko\n');
    const { loads } = resolveModules(readModuleIndex(d), d, ['ext4']);
    expect(loads.map((l) => l.name)).toEqual(['jbd2', 'ext4']);
  });
});
