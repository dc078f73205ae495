// SPDX-License-Identifier: GPL-2.0-only
/** The build pipelines' steps: each one reported as it runs, timed for --json and bench/. */
import type { Reporter } from '../util/progress.js';

/** Each step's duration in milliseconds, by its key: the one unit of time of a build's result (--json: `timingsMs` of a patch build, `timings` of --source). */
export type Timings = Record<string, number>;

export interface TimedSteps {
  /** Run one step under a title; its duration lands in `timings[key]` (ms). */
  step<T>(key: string, title: string, fn: (update: (detail: string) => void) => Promise<T> | T): Promise<T>;
  /** A warning shown now and kept for the result. */
  warn(message: string): void;
  readonly timings: Timings;
  readonly warnings: string[];
}

export function timedSteps(reporter: Reporter): TimedSteps {
  const timings: Timings = {};
  const warnings: string[] = [];
  return {
    timings,
    warnings,
    async step(key, title, fn) {
      const t0 = performance.now();
      try {
        return await reporter.step(title, async (s) => fn((d) => s.update(d)));
      } finally {
        timings[key] = Math.round(performance.now() - t0);
      }
    },
    warn(m) {
      warnings.push(m);
      reporter.warn(m);
    },
  };
}
