// SPDX-License-Identifier: GPL-2.0-only
import { describe, expect, it } from 'vitest';
import { findCrash, kernelTransitionMs, livepatchLines } from '../../src/vm/console.js';

// Lines as the Debian 6.1 kernel prints them (captured from guests of that kernel).
const panic = [
  '[   10.216905] sysrq: Trigger a crash',
  '[   10.217418] Kernel panic - not syncing: sysrq triggered crash',
  '[   10.218036] CPU: 0 PID: 71 Comm: sh Tainted: G            E      6.1.0-56-amd64 #1  Debian 6.1.192-2',
];
const oops = [
  '[   12.000001] BUG: kernel NULL pointer dereference, address: 0000000000000000',
  '[   12.000002] #PF: supervisor write access in kernel mode',
  '[   12.000003] Oops: 0002 [#1] PREEMPT SMP NOPTI',
  '[   12.000010] Kernel panic - not syncing: Fatal exception',
];

describe('findCrash', () => {
  it('findCrash() names a panic', () => {
    expect(findCrash(panic)).toEqual({ kind: 'panic', line: 'Kernel panic - not syncing: sysrq triggered crash' });
  });
  it('findCrash() reports the first sign of an oops, not the panic that follows it', () => {
    expect(findCrash(oops)?.kind).toBe('bug');
    expect(findCrash(oops.slice(2))?.kind).toBe('oops');
  });
  it('findCrash() finds nothing in a clean boot log', () => {
    expect(findCrash(['[    0.000000] Linux version 6.1.0-56-amd64', '[    1.0] Run /init as init process'])).toBeUndefined();
  });
});

describe('kernelTransitionMs', () => {
  const dmesg = [
    '[    9.101000] livepatch_cmdline: tainting kernel with TAINT_LIVEPATCH',
    "[    9.102000] livepatch: enabling patch 'livepatch_cmdline'",
    "[    9.103000] livepatch: 'livepatch_cmdline': starting patching transition",
    "[    9.113705] livepatch: 'livepatch_cmdline': patching complete",
    '[    9.200000] random: crng init done',
  ];
  it('kernelTransitionMs() measures from starting to complete', () => {
    expect(kernelTransitionMs(dmesg, 'livepatch_cmdline')).toBe(10.705);
    expect(kernelTransitionMs(dmesg, 'other')).toBeUndefined();
  });
  it('livepatchLines() keeps only the livepatch lines', () => {
    expect(livepatchLines(dmesg)).toHaveLength(4);
  });
});
