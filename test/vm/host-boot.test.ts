// SPDX-License-Identifier: GPL-2.0-only
/** How `vm host` judges a boot against what it was meant to do (--expect-crash). */
import { describe, expect, it } from 'vitest';
import { bootOk, judgeBoot } from '../../src/vm/host.js';
import type { VmResult } from '../../src/vm/run.js';

const result = (outcome: VmResult['outcome'], reason?: string): VmResult => ({
  outcome, reason, accel: 'tcg', bootMs: 1, totalMs: 2, kmods: [], loads: [], commands: [], dmesg: [], livepatchLog: [], consoleTail: [],
});

describe('judgeBoot', () => {
  it('a plain boot is judged by its outcome', () => {
    expect(bootOk(judgeBoot({ commands: [] }, result('ok')))).toBe(true);
    expect(bootOk(judgeBoot({ commands: [] }, result('crash', 'guest kernel panic')))).toBe(false);
  });

  it('a boot meant to crash is fine when it crashes, and fails when it powers off or hangs', () => {
    const crashed = judgeBoot({ commands: [], expectCrash: true }, result('crash', 'guest kernel panic'));
    expect(crashed).toMatchObject({ outcome: 'crash', expectedCrash: true });
    expect(bootOk(crashed)).toBe(true);
    const clean = judgeBoot({ commands: [], expectCrash: true }, result('ok'));
    expect(clean.outcome).toBe('boot-failure');
    expect(clean.reason).toContain('expected to crash');
    expect(bootOk(clean)).toBe(false);
    expect(bootOk(judgeBoot({ commands: [], expectCrash: true }, result('timeout', 'hung')))).toBe(false);
  });
});
