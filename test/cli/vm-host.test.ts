// SPDX-License-Identifier: GPL-2.0-only
/** `suture vm host` refuses what it cannot boot before it makes an image or starts QEMU (no VM here). */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { suture } from '../helpers/cli.js';

const home = mkdtempSync(join(tmpdir(), 'suture-home-'));
const env = { ...process.env, SUTURE_HOME: home };
afterAll(() => rmSync(home, { recursive: true, force: true }));

describe('vm host refusals', () => {
  it('a kernel that is not in the cache: exit 10, with the fetch command', () => {
    const r = suture(['vm', 'host', '--kernel', 'debian:6.1.0-56-amd64', '--exec', 'true'], { env });
    expect(r.status).toBe(10);
    expect(r.stderr).toContain('debian:6.1.0-56-amd64 is not in the cache');
    expect(r.stderr).toContain('suture kernel fetch debian:6.1.0-56-amd64');
  });

  it('a release suture has no image for, a missing --file or --script, a directory as --keep-disk: usage (exit 2)', () => {
    const bad: [string[], string][] = [
      [['--release', 'bullseye'], "option '--release <codename>' argument 'bullseye' is invalid"],
      [['--file', join(home, 'nope.deb')], 'nope.deb: no such file'],
      [['--script', join(home, 'nope.sh')], 'nope.sh does not exist'],
      [['--keep-disk', home], `--keep-disk ${home} is a directory; name a file`],
    ];
    for (const [args, says] of bad) {
      const r = suture(['vm', 'host', '--kernel', 'debian:6.1.0-56-amd64', ...args], { env });
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr).toContain(says);
    }
  });
});
