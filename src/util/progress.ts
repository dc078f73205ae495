// SPDX-License-Identifier: GPL-2.0-only
/**
 * Progress for long steps. Library code reports through the Reporter
 * interface only; the CLI picks the implementation: a live line on a TTY,
 * plain lines otherwise, nothing in --json mode.
 */

export interface Reporter {
  /** Run one named step and report its start, end and duration. */
  step<T>(title: string, fn: (s: StepHandle) => Promise<T>): Promise<T>;
  /** A line of information that is not a step. */
  info(message: string): void;
  /** A warning the user should read. */
  warn(message: string): void;
}

export interface StepHandle {
  /** Replace the step's detail text (shown after the title). */
  update(detail: string): void;
  /** Mark the step as skipped (already done) with a reason. */
  skip(reason: string): void;
}

function fmtMs(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}

/** Reports nothing (for --json and library callers). */
export const silentReporter: Reporter = {
  step: (_t, fn) => fn({ update() {}, skip() {} }),
  info() {},
  warn() {},
};

/** Plain lines, one per event: for logs, CI and pipes. */
export function lineReporter(write: (s: string) => void): Reporter {
  return {
    async step(title, fn) {
      const t0 = performance.now();
      let skipped: string | undefined;
      let lastDetail = '';
      let lastAt = 0;
      write(`==> ${title}\n`);
      try {
        const r = await fn({
          update(d) {
            // Plain mode: a detail when it says something new, at most one every 2 s.
            const now = performance.now();
            if (d !== lastDetail && now - lastAt >= 2000) {
              lastDetail = d;
              lastAt = now;
              write(`    ${d}\n`);
            }
          },
          skip(reason) {
            skipped = reason;
          },
        });
        write(skipped ? `    skipped: ${skipped}\n` : `    done in ${fmtMs(performance.now() - t0)}\n`);
        return r;
      } catch (e) {
        write(`    failed after ${fmtMs(performance.now() - t0)}\n`);
        throw e;
      }
    },
    info: (m) => write(`${m}\n`),
    warn: (m) => write(`warning: ${m}\n`),
  };
}

const FRAMES = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

/** A live, redrawn line per step: for terminals. */
export function ttyReporter(stream: NodeJS.WriteStream): Reporter {
  const cols = () => Math.max(20, (stream.columns ?? 80) - 1);
  return {
    async step(title, fn) {
      const t0 = performance.now();
      let detail = '';
      let skipped: string | undefined;
      let frame = 0;
      const draw = () => {
        const line = `${FRAMES[frame++ % FRAMES.length]} ${title} ${fmtMs(performance.now() - t0)}${detail ? `  ${detail}` : ''}`;
        stream.write(`\r\x1b[2K${line.slice(0, cols())}`);
      };
      draw();
      const timer = setInterval(draw, 100);
      try {
        const r = await fn({
          update(d) {
            detail = d;
          },
          skip(reason) {
            skipped = reason;
          },
        });
        clearInterval(timer);
        stream.write(
          `\r\x1b[2K${skipped ? `- ${title} (${skipped})` : `✔ ${title} ${fmtMs(performance.now() - t0)}`}\n`,
        );
        return r;
      } catch (e) {
        clearInterval(timer);
        stream.write(`\r\x1b[2K✖ ${title} ${fmtMs(performance.now() - t0)}\n`);
        throw e;
      }
    },
    // Clear a live step line first; the step redraws itself below the message.
    info: (m) => stream.write(`\r\x1b[2K${m}\n`),
    warn: (m) => stream.write(`\r\x1b[2Kwarning: ${m}\n`),
  };
}
