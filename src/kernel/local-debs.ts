// SPDX-License-Identifier: GPL-2.0-only
/**
 * `kernel fetch --debs DIR`: packages the user supplies (a host's
 * /var/cache/apt/archives, a download from a snapshot of the archive). They
 * are offered to the planner beside the archive's, and win over the archive
 * for the same package and version (no download). A file that is not a
 * readable Debian package is refused by name before anything is fetched; a
 * picked one is checked whole (every member decompressed) before it is used,
 * and, where the archive has the same version, against the archive's SHA256.
 */
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { SutureError } from '../util/errors.js';
import { run } from '../util/exec.js';
import { parseControlRecords, type Apt, type PackageRecord } from './apt.js';
import type { ShowPackage } from './packages.js';

/** A package record read from a .deb file in a --debs folder. */
export interface LocalDeb extends PackageRecord {
  localFile: string;
}

/** Only kernel packages matter here; the rest of a host's apt cache is passed over. */
const KERNEL_PACKAGE = /^linux-(image|headers|kbuild|source)-/;

/** Read the control fields of every kernel .deb in dir. */
export async function readDebsDir(dir: string): Promise<LocalDeb[]> {
  const abs = resolve(dir);
  if (!existsSync(abs) || !statSync(abs).isDirectory()) {
    throw new SutureError('not-found', `--debs ${dir}: no such folder`, { hint: 'give a folder holding .deb files, e.g. /var/cache/apt/archives' });
  }
  const files = readdirSync(abs)
    .filter((f) => f.endsWith('.deb'))
    .sort();
  const kernelFiles = files.filter((f) => KERNEL_PACKAGE.test(f));
  if (kernelFiles.length === 0) {
    throw new SutureError('not-found', `--debs ${dir} holds no kernel .deb files (linux-image-*, linux-headers-*, linux-kbuild-*, linux-source-*)${files.length ? `; it has ${files.length} other .deb files` : ''}`, {
      hint: 'put the kernel\'s packages there, named as apt names them (linux-headers-6.1.0-56-common_6.1.192-2_all.deb)',
    });
  }
  const out: LocalDeb[] = [];
  for (const f of kernelFiles) {
    const file = join(abs, f);
    const r = await run(['dpkg-deb', '--field', file, 'Package', 'Version', 'Source', 'Depends', 'Built-Using', 'Architecture']);
    const fields = r.code === 0 ? parseControlRecords(r.stdout)[0] : undefined;
    if (!fields?.get('Package') || !fields.get('Version')) {
      throw new SutureError('invalid-input', `${file} is not a Debian package (${(r.stderr.trim().split('\n')[0] ?? '') || 'no Package/Version fields'})`, {
        hint: 'remove it from the --debs folder, or download it again',
      });
    }
    out.push({
      package: fields.get('Package')!,
      version: fields.get('Version')!,
      source: fields.get('Source'),
      depends: fields.get('Depends'),
      builtUsing: fields.get('Built-Using'),
      size: statSync(file).size,
      localFile: file,
    });
  }
  return out;
}

/** SHA256 of a file, streamed (linux-source is about 140 MB). */
export function sha256File(file: string): Promise<string> {
  return new Promise((res, rej) => {
    const h = createHash('sha256');
    createReadStream(file)
      .on('data', (d) => h.update(d))
      .on('error', rej)
      .on('end', () => res(h.digest('hex')));
  });
}

/**
 * Check a supplied .deb before it is used: every member decompresses (a
 * truncated download fails here, not halfway through unpacking), and where the
 * archive knows the same version, the bytes are the archive's.
 */
export async function checkLocalDeb(deb: LocalDeb, archiveSha256?: string): Promise<void> {
  const r = await run(['dpkg-deb', '--contents', deb.localFile], { maxCapture: 64 * 1024 });
  if (r.code !== 0) {
    throw new SutureError('invalid-input', `${deb.localFile} (${deb.package} ${deb.version}) is damaged: ${r.stderr.trim().split('\n').pop() ?? `dpkg-deb exit ${r.code}`}`, {
      hint: 'the file is probably truncated: download it again',
    });
  }
  if (archiveSha256) {
    const got = await sha256File(deb.localFile);
    if (got !== archiveSha256) {
      throw new SutureError('invalid-input', `${deb.localFile} is not the archive's ${deb.package} ${deb.version} (sha256 ${got.slice(0, 16)}…, the archive says ${archiveSha256.slice(0, 16)}…)`, {
        hint: 'remove it from the --debs folder: suture would then download the archive\'s copy',
      });
    }
  }
}

/** Archive records and supplied .debs as one view: a supplied file wins for its version, keeping the archive's SHA256 to check it by. */
export function mergedShow(apt: Pick<Apt, 'show'>, local: readonly LocalDeb[]): ShowPackage {
  return async (pkg) => {
    const archive = await apt.show(pkg);
    const mine = local.filter((d) => d.package === pkg);
    const merged = mine.map((d) => ({ ...d, sha256: archive.find((a) => a.version === d.version)?.sha256 }));
    return [...merged, ...archive.filter((a) => !mine.some((d) => d.version === a.version))];
  };
}
