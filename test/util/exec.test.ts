// SPDX-License-Identifier: GPL-2.0-only
/** run(): a process stopped through an AbortSignal, whether the signal fires during the run or before it starts. */
import { describe, expect, it } from 'vitest';
import { run } from '../../src/util/exec.js';

describe('run() with an AbortSignal', () => {
  it('aborted while it runs: the process is stopped (SIGTERM), not waited for', async () => {
    const stop = new AbortController();
    setTimeout(() => stop.abort(), 100);
    const r = await run(['/bin/sleep', '30'], { signal: stop.signal });
    expect(r.signal).toBe('SIGTERM');
    expect(r.durationMs).toBeLessThan(10_000);
  });

  it('aborted before it starts (the caller gave up meanwhile): stopped at once, never run to its end', async () => {
    const stop = new AbortController();
    stop.abort();
    const r = await run(['/bin/sleep', '30'], { signal: stop.signal });
    expect(r.signal).toBe('SIGTERM');
    expect(r.durationMs).toBeLessThan(10_000);
  });

  it('a signal never aborted changes nothing', async () => {
    const r = await run(['/bin/sh', '-c', 'echo hi'], { signal: new AbortController().signal });
    expect(r).toMatchObject({ code: 0, signal: null, stdout: 'hi\n' });
  });
});
