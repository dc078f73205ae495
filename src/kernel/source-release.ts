// SPDX-License-Identifier: GPL-2.0-only
/**
 * A Debian kernel source release, pristine: the `linux-source-<series>`
 * package of one version, its tarball extracted (Debian's patches applied, as
 * Debian ships it) and its `changelog.Debian`, cached once per version under
 * $SUTURE_HOME/sources/. Catch-up compares two of these; unlike a kernel
 * workspace, nothing here is prepared or built, so both sides are exactly
 * what the archive holds.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { SutureError, fsError } from '../util/errors.js';
import { runChecked } from '../util/exec.js';
import { Lock } from '../util/lock.js';
import type { Reporter } from '../util/progress.js';
import type { Apt } from './apt.js';
import { compareVersions } from '../util/debian-version.js';
import type { KernelRef } from './ref.js';

export interface SourceRelease {
  /** linux-source-6.1 */
  package: string;
  /** 6.1.192-3 */
  version: string;
  /** The extracted tree (its top directory, with the Makefile). */
  tree: string;
  /** changelog.Debian, uncompressed. */
  changelog: string;
}

/**
 * What tells one extraction of a release from another (its ready marker, with the time it was extracted):
 * what is derived from the tree and kept is keyed by it.
 */
export function sourceReleaseStamp(r: SourceRelease): string {
  return readFileSync(join(dirname(dirname(r.tree)), 'source.json'), 'utf8');
}

/** Where one version is kept. */
export function sourceReleaseDir(home: string, pkg: string, version: string): string {
  return join(home, 'sources', `${pkg}_${version.replace(/:/g, '%3a')}`);
}

/**
 * The source version a kernel release was built from, by the archive: the
 * version of its `linux-headers-<release>` package (built from `linux`).
 */
export async function sourceVersionOfRelease(apt: Apt, ref: KernelRef): Promise<string> {
  const pkg = `linux-headers-${ref.release}`;
  const recs = (await apt.show(pkg)).filter((r) => !r.source || r.source.split(' ')[0] === 'linux');
  if (!recs.length) {
    throw new SutureError('archive', `the archive has no ${pkg}: ${ref.release} is not a Debian ${ref.codename} kernel it carries`, {
      hint: 'name a release the archive has (`apt-cache policy linux-headers-<release>`), or refresh the lists with `suture kernel fetch --refresh`',
    });
  }
  return recs.map((r) => r.version).sort(compareVersions).at(-1)!;
}

/**
 * The pristine source of `pkg` at `version`: from `deb` when given (a kernel
 * workspace already holds its own linux-source package), downloaded otherwise.
 * Extracted once; a second call returns the cache.
 */
export async function fetchSourceRelease(opts: {
  home: string;
  pkg: string;
  version: string;
  apt?: Apt;
  deb?: string;
  reporter: Reporter;
}): Promise<SourceRelease> {
  const { home, pkg, version, reporter } = opts;
  const dir = sourceReleaseDir(home, pkg, version);
  const ready = join(dir, 'source.json');
  const series = pkg.replace(/^linux-source-/, '');
  const result: SourceRelease = { package: pkg, version, tree: join(dir, 'tree', `linux-source-${series}`), changelog: join(dir, 'changelog.Debian') };
  if (existsSync(ready)) return result;
  mkdirSync(join(home, 'sources'), { recursive: true });
  const lock = new Lock(join(home, 'sources', `.${pkg}_${version}.lock`), { what: `the cached source ${pkg} ${version}` }).take(`suture catch-up (${pkg} ${version})`);
  try {
    if (existsSync(ready)) return result;
    await reporter.step(`Extracting ${pkg} ${version} (pristine, for the comparison)`, async (s) => {
      rmSync(dir, { recursive: true, force: true });
      mkdirSync(dir, { recursive: true });
      let deb = opts.deb;
      if (!deb) {
        if (!opts.apt) throw new SutureError('internal', `no .deb and no archive for ${pkg} ${version}`);
        const recs = await opts.apt.show(pkg);
        if (!recs.some((r) => r.version === version)) {
          throw new SutureError('archive', `the archive has no ${pkg} ${version} (it has ${recs.map((r) => r.version).join(', ') || 'none'})`, {
            hint: 'the source of that kernel is gone from the archive: give the patches with --series instead',
          });
        }
        s.update(`downloading ${pkg} ${version}`);
        deb = await opts.apt.download(pkg, version, join(dir, 'deb'));
      }
      const unpacked = join(dir, 'deb-tree');
      s.update('unpacking the package');
      await runChecked(['dpkg-deb', '-x', deb, unpacked], { kind: 'environment', what: 'dpkg-deb' });
      const srcDir = join(unpacked, 'usr', 'src');
      const tarball = readdirSync(srcDir).find((f) => /^linux-source-.*\.tar\.(xz|gz|bz2|zst)$/.test(f));
      if (!tarball) throw new SutureError('archive', `${deb} carries no linux-source tarball in /usr/src`);
      const cl = join(unpacked, 'usr', 'share', 'doc', pkg, 'changelog.Debian.gz');
      try {
        writeFileSync(result.changelog, gunzipSync(readFileSync(cl)));
      } catch (e) {
        throw fsError(e, `reading Debian's changelog of ${pkg} ${version}`, cl);
      }
      s.update(`extracting ${tarball}`);
      const tmpTree = join(dir, 'tree.tmp');
      mkdirSync(tmpTree, { recursive: true });
      await runChecked(['tar', '-I', 'xz -T0', '-xf', join(srcDir, tarball), '-C', tmpTree], { kind: 'environment', what: 'extracting the kernel source' });
      renameSync(tmpTree, join(dir, 'tree'));
      rmSync(unpacked, { recursive: true, force: true });
      rmSync(join(dir, 'deb'), { recursive: true, force: true });
      if (!existsSync(join(result.tree, 'Makefile'))) throw new SutureError('archive', `${tarball} did not unpack to ${result.tree}`);
      writeFileSync(ready, JSON.stringify({ package: pkg, version, extractedAt: new Date().toISOString() }, null, 2) + '\n');
    });
    return result;
  } finally {
    lock.release();
  }
}
