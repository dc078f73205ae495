// SPDX-License-Identifier: GPL-2.0-only
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { writeCpio } from '../../src/vm/cpio.js';

describe('writeCpio', () => {
  it('writeCpio() produces an archive GNU cpio lists and extracts with modes, contents and symlinks', () => {
    const big = Buffer.alloc(70_001, 7); // odd size: exercises the 4-byte padding
    const archive = writeCpio([
      { type: 'dir', path: 'bin' },
      { type: 'file', path: 'bin/tool', data: Buffer.from('#!/bin/sh\necho hi\n'), mode: 0o755 },
      { type: 'file', path: '/data/big', data: big },
      { type: 'symlink', path: 'bin/sh', target: 'tool' },
    ]);
    expect(archive.length % 4).toBe(0);
    const dir = mkdtempSync(join(tmpdir(), 'suture-cpio-'));
    const file = join(dir, 'a.cpio');
    writeFileSync(file, archive);
    const list = spawnSync('cpio', ['-t', '--quiet', '-F', file], { encoding: 'utf8' });
    expect(list.status).toBe(0);
    expect(list.stdout.trim().split('\n')).toEqual(['bin', 'bin/tool', 'data/big', 'bin/sh']);
    const out = join(dir, 'x');
    const ex = spawnSync('cpio', ['-i', '-d', '--quiet', '--no-absolute-filenames', '-F', file], { cwd: dir, encoding: 'utf8' });
    expect(ex.status, ex.stderr).toBe(0);
    expect(readFileSync(join(dir, 'bin/tool'), 'utf8')).toBe('#!/bin/sh\necho hi\n');
    expect(statSync(join(dir, 'bin/tool')).mode & 0o777).toBe(0o755);
    expect(readFileSync(join(dir, 'data/big')).equals(big)).toBe(true);
    expect(readlinkSync(join(dir, 'bin/sh'))).toBe('tool');
    void out;
  });

  it('writeCpio() is deterministic for the same entries', () => {
    const e = [{ type: 'file' as const, path: 'init', data: Buffer.from('x') }];
    expect(writeCpio(e).equals(writeCpio(e))).toBe(true);
  });
});
