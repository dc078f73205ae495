// SPDX-License-Identifier: GPL-2.0-only
import { describe, expect, it } from 'vitest';
import { compilerCommand, compilerText, parseKconfig } from '../../src/kernel/config.js';

describe('parseKconfig', () => {
  const cfg = parseKconfig(
    [
      '# Automatically generated file; DO NOT EDIT.',
      'CONFIG_CC_VERSION_TEXT="gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0"',
      'CONFIG_LIVEPATCH=y',
      'CONFIG_EXT4_FS=m',
      '# CONFIG_X86_KERNEL_IBT is not set',
      'CONFIG_NR_CPUS=8192',
      'CONFIG_CMDLINE="a \\"quoted\\" word"',
    ].join('\n'),
  );
  it('parseKconfig() reads y, m, unset, numbers and quoted strings', () => {
    expect(cfg.get('CONFIG_LIVEPATCH')).toBe(true);
    expect(cfg.get('CONFIG_EXT4_FS')).toBe('m');
    expect(cfg.get('CONFIG_X86_KERNEL_IBT')).toBe(false);
    expect(cfg.get('CONFIG_NR_CPUS')).toBe('8192');
    expect(cfg.get('CONFIG_CMDLINE')).toBe('a "quoted" word');
  });
  it('compilerText() and compilerCommand() name the kernel compiler', () => {
    expect(compilerText(cfg)).toBe('gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0');
    expect(compilerCommand(compilerText(cfg)!)).toBe('gcc-12');
  });
});
