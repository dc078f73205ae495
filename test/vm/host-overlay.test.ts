// SPDX-License-Identifier: GPL-2.0-only
/** Kept disks of `suture vm host`: qcow2 overlays made with qemu-img, checked against their image before a boot. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ensureOverlay } from '../../src/vm/host.js';
import type { HostImage } from '../../src/vm/host-image.js';

const noQemuImg = spawnSync('sh', ['-c', 'command -v qemu-img']).status !== 0;
const dir = mkdtempSync(join(tmpdir(), 'suture-overlay-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function fakeImage(name: string): HostImage {
  const root = join(dir, `${name}.img`);
  spawnSync('truncate', ['-s', '16M', root]);
  return { schema: 1, suite: 'bookworm', release: '6.1.0-56-amd64', dir, root, initrd: '', kernelPackage: { name: '', version: '', file: '' }, nodeVersion: '', mirror: '', madeAt: 'then', timings: {} };
}

describe.skipIf(noQemuImg)('kept disks', () => {
  const a = fakeImage('a');
  const b = fakeImage('b');
  const disk = join(dir, 'kept.qcow2');

  it('a new file becomes a qcow2 overlay backed by the image; the same file is accepted again', async () => {
    expect(await ensureOverlay(disk, a)).toBe(true);
    const info = JSON.parse(spawnSync('qemu-img', ['info', '--output=json', disk], { encoding: 'utf8' }).stdout) as Record<string, string>;
    expect(info.format).toBe('qcow2');
    expect(info['backing-filename']).toBe(a.root);
    expect(await ensureOverlay(disk, a)).toBe(false);
  });

  it('a disk of another image is refused, naming both', async () => {
    await expect(ensureOverlay(disk, b)).rejects.toThrow(`${disk} is a kept disk of another image (${a.root}), not of ${b.root}`);
  });

  it('a disk kept over an image that was made again since is refused', async () => {
    expect(await ensureOverlay(disk, { ...a, madeAt: 'then' })).toBe(false);
    await expect(ensureOverlay(disk, { ...a, madeAt: 'now' })).rejects.toThrow(`${disk} was kept over the image made at `);
  });

  it('a file that is not an overlay is refused', async () => {
    const junk = join(dir, 'junk.qcow2');
    writeFileSync(junk, 'not a disk');
    await expect(ensureOverlay(junk, a)).rejects.toMatchObject({ kind: 'invalid-input' });
    await expect(ensureOverlay(dir, a)).rejects.toThrow('is not a regular file');
  });
});
