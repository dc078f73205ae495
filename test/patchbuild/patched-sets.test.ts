// SPDX-License-Identifier: GPL-2.0-only
import { describe, expect, it, vi } from 'vitest';
import { compileProgress, PATCHED_SET_GRACE_MS, PATCHED_SETS_KEPT, patchedSetsToPrune } from '../../src/patchbuild/compile.js';

const H = 3600_000;
const now = 100 * 24 * H;

describe('patchedSetsToPrune: the cached sets of patched objects a workspace keeps', () => {
  it('keeps the most recently used and removes the rest once they are old', () => {
    const sets = ['a', 'b', 'c', 'd', 'e', 'f'].map((name, i) => ({ name, usedMs: now - (i + 1) * 24 * H }));
    expect(PATCHED_SETS_KEPT).toBe(4);
    // a..d are the four newest; e and f are older than the grace.
    expect(patchedSetsToPrune(sets, now).sort()).toEqual(['e', 'f']);
    // the order given does not matter
    expect(patchedSetsToPrune([...sets].reverse(), now).sort()).toEqual(['e', 'f']);
  });

  it('never removes a set used within the grace time, however many there are', () => {
    const busy = Array.from({ length: 9 }, (_, i) => ({ name: `s${i}`, usedMs: now - i * 60_000 }));
    expect(patchedSetsToPrune(busy, now)).toEqual([]);
    const edge = [...busy.slice(0, 4), { name: 'old', usedMs: now - PATCHED_SET_GRACE_MS - 1 }, { name: 'recent', usedMs: now - PATCHED_SET_GRACE_MS + 1 }];
    expect(patchedSetsToPrune(edge, now)).toEqual(['old']);
  });

  it('removes nothing while there are no more sets than it keeps', () => {
    expect(patchedSetsToPrune([{ name: 'x', usedMs: 0 }, { name: 'y', usedMs: 1 }], now)).toEqual([]);
    expect(patchedSetsToPrune([], now)).toEqual([]);
    expect(patchedSetsToPrune([{ name: 'x', usedMs: 0 }, { name: 'y', usedMs: 1 }], now, 1)).toEqual(['x']);
  });
});

describe('compileProgress: the compile stage counts its own targets', () => {
  it('ignores what kbuild compiles besides the targets, and a target printed twice', () => {
    // a clock that moves 2 s between looks, so every counted line is shown (the display is at most once a second)
    let t = 0;
    const now = vi.spyOn(performance, 'now').mockImplementation(() => (t += 2000));
    try {
      const lines: string[] = [];
      const onLine = compileProgress({ orig: ['fs/a.o', 'fs/b.o'], patched: ['fs/a.o'] }, (d) => lines.push(d));
      onLine('orig', '  CC      fs/a.o');
      onLine('orig', '  CC      lib/generated-helper.o'); // not a target
      onLine('orig', '  CC      fs/a.o'); // again
      onLine('patched', '  CC [M]  fs/a.o');
      onLine('orig', '  LD [M]  fs/b.ko'); // not a compile
      onLine('orig', '  CPP [M] fs/b.i'); // not this stage's target
      onLine('orig', '  CC [M]  fs/b.o');
      expect(lines).toEqual(['orig 1/2, patched 0/1', 'orig 1/2, patched 1/1', 'orig 2/2, patched 1/1']);
    } finally {
      now.mockRestore();
    }
  });
});
