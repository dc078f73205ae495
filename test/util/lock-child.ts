// SPDX-License-Identifier: GPL-2.0-only
/**
 * A second process for the lock tests (run with tsx):
 *   lock-child.ts hold PATH MS              take, hold MS, release
 *   lock-child.ts exit PATH                 take, then process.exit(130) without releasing
 *   lock-child.ts loop PATH N MARKER        N times: wait for the lock, prove nobody else is inside (O_EXCL MARKER), release
 */
import { closeSync, openSync, unlinkSync } from 'node:fs';
import { Lock } from '../../src/util/lock.js';

const [mode, path, a, b] = process.argv.slice(2);
const lock = new Lock(path!, { what: 'the test', pollMs: 2 });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

if (mode === 'hold') {
  const h = lock.take(`hold ${a}`);
  process.stdout.write('taken\n');
  await sleep(Number(a));
  h.release();
} else if (mode === 'exit') {
  lock.take('exit');
  process.exit(130);
} else if (mode === 'loop') {
  for (let i = 0; i < Number(a); i++) {
    const h = await lock.wait(`loop ${i}`, { timeoutMs: 60_000 });
    const fd = openSync(b!, 'wx'); // throws EEXIST if another process is inside
    closeSync(fd);
    await sleep(Math.random() * 2);
    unlinkSync(b!);
    if (!h.release()) throw new Error('released a lock this process did not hold');
  }
  process.stdout.write('ok\n');
}
