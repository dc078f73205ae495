// SPDX-License-Identifier: GPL-2.0-only
/**
 * On a host that runs the very kernel being fetched, its installed image
 * (`/boot/vmlinuz-<release>`, `/boot/config-<release>`,
 * `/lib/modules/<release>`) counts as the image package when the archive no
 * longer has it. Which source version built it comes from dpkg's record of
 * the installed package, else from `uname -v` ("Debian 6.1.192-2").
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '../util/exec.js';
import { parseControlRecords, type PackageRecord } from './apt.js';

/** The installed image of `release` under `root`, if this host runs that kernel and has its files. */
export async function installedImage(release: string, root = '/'): Promise<PackageRecord | undefined> {
  const running = readText(join(root, 'proc/sys/kernel/osrelease'));
  if (running !== release) return undefined;
  const files = [`boot/vmlinuz-${release}`, `boot/config-${release}`, `lib/modules/${release}/modules.order`];
  if (!files.every((f) => existsSync(join(root, f)))) return undefined;
  const pkg = `linux-image-${release}`;
  const r = await run(['dpkg-query', `--admindir=${join(root, 'var/lib/dpkg')}`, '-W', '-f', 'Version: ${Version}\nSource: ${Source}\nBuilt-Using: ${Built-Using}\n', pkg]);
  const f = r.code === 0 ? parseControlRecords(r.stdout)[0] : undefined;
  const unameVersion = /\bDebian (\S+)/.exec(readText(join(root, 'proc/sys/kernel/version')) ?? '')?.[1];
  const version = f?.get('Version') || unameVersion;
  if (!version) return undefined;
  return {
    package: pkg,
    version,
    source: f?.get('Source') || undefined,
    // Without dpkg's record, `uname -v` names the linux source version itself.
    builtUsing: f?.get('Built-Using') || (f ? undefined : `linux (= ${version})`),
    installedAt: root,
  };
}

function readText(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    return undefined;
  }
}
