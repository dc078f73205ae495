// SPDX-License-Identifier: GPL-2.0-only
/**
 * A disk for the guest (`vm run --disk FILE`): a raw image with an ext4 file
 * system, attached as a virtio disk and mounted before the steps run. What
 * the guest writes there survives into the next `vm run` with the same file,
 * which is how state that must outlive a reboot is tested.
 */
import { closeSync, existsSync, openSync, statSync, ftruncateSync } from 'node:fs';
import { SutureError, fsError } from '../util/errors.js';
import { runChecked, which } from '../util/exec.js';

/** The kernel's own modules that the guest needs for the disk, in load order (dependencies come with them). */
export const DISK_KMODS = ['virtio_pci', 'virtio_blk', 'crc32c_generic', 'ext4'];

/** Use an existing image, or make an empty ext4 image of `sizeMiB` at `file`. Returns whether it was created. */
export async function ensureDiskImage(file: string, sizeMiB: number): Promise<boolean> {
  if (existsSync(file)) {
    if (!statSync(file).isFile()) throw new SutureError('invalid-input', `${file} is not a regular file (a disk image must be one)`);
    return false;
  }
  const mkfs = which('mke2fs', `${process.env.PATH ?? ''}:/usr/sbin:/sbin`);
  if (!mkfs) throw new SutureError('environment', 'mke2fs is not installed (needed to make the disk image)', { hint: 'install it: apt-get install e2fsprogs' });
  try {
    const fd = openSync(file, 'wx');
    ftruncateSync(fd, sizeMiB * 1024 * 1024);
    closeSync(fd);
  } catch (e) {
    throw fsError(e, 'creating the disk image', file);
  }
  await runChecked([mkfs, '-q', '-F', '-t', 'ext4', '-L', 'suture-vm', file], { what: 'mke2fs', kind: 'environment' });
  return true;
}
