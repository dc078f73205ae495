// SPDX-License-Identifier: GPL-2.0-only
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { buildFixtures, readBytes, type Fixture } from './helpers.js';
import { mutate, rng, runCase } from './mutate.js';

const FIXTURES: Fixture[] = ['basic', 'basic-kernel', 'modinfo', 'comdat'];
const SEED = 0x5eed;
const CASES = 4000;

describe('fuzz', () => {
  let fx: ReturnType<typeof buildFixtures>;
  let inputs: Uint8Array[];
  beforeAll(() => {
    fx = buildFixtures(FIXTURES);
    inputs = FIXTURES.map((f) => readBytes(fx.path(f)));
  });
  afterAll(() => fx.cleanup());

  test(`ElfObject.parse()/writeElf() only ever throw ElfError on ${CASES} mutated objects (seed ${SEED})`, () => {
    const r = rng(SEED);
    const counts = { accepted: 0, rejected: 0 };
    const failures: string[] = [];
    for (let i = 0; i < CASES; i++) {
      const src = i % inputs.length;
      const m = mutate(inputs[src]!, r);
      try {
        counts[runCase(m.bytes)]++;
      } catch (e) {
        failures.push(`case ${i} (${FIXTURES[src]}.o, ${m.what}): ${(e as Error).stack ?? String(e)}`);
        if (failures.length >= 5) break;
      }
    }
    expect(failures).toEqual([]);
    // The mutations must exercise both paths.
    expect(counts.rejected).toBeGreaterThan(CASES / 10);
    expect(counts.accepted).toBeGreaterThan(CASES / 10);
  });
});
