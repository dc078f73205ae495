// SPDX-License-Identifier: GPL-2.0-only
/**
 * A real, signed Debian archive made on the spot: tiny .debs built with
 * dpkg-deb (control fields only, plus one file), indexed by apt-ftparchive,
 * InRelease signed by a throwaway gpg key. suture's own apt reads it through
 * a file: URI exactly as it reads the real archive.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Mirrors } from '../../src/kernel/apt.js';

export interface FixturePackage {
  package: string;
  version: string;
  source?: string;
  depends?: string;
  builtUsing?: string;
  /** Suites of the archive that list it (default: the release's main suite). */
  suites?: string[];
}

export interface FixtureArchive {
  dir: string;
  mirrors: Mirrors;
}

const sh = (cmd: string, args: string[], env?: NodeJS.ProcessEnv) =>
  execFileSync(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] }).toString();

/** Build one .deb from control fields into dir; returns its path. */
export function buildDeb(dir: string, p: FixturePackage): string {
  const root = mkdtempSync(join(tmpdir(), 'suture-deb-'));
  mkdirSync(join(root, 'DEBIAN'));
  mkdirSync(join(root, 'usr', 'share', 'doc', p.package), { recursive: true });
  writeFileSync(join(root, 'usr', 'share', 'doc', p.package, 'README'), `${p.package} ${p.version}: a suture test fixture\n`.repeat(50));
  const control = [
    `Package: ${p.package}`,
    `Version: ${p.version}`,
    'Architecture: amd64',
    'Maintainer: suture tests <tests@suture.invalid>',
    ...(p.source ? [`Source: ${p.source}`] : []),
    ...(p.depends ? [`Depends: ${p.depends}`] : []),
    ...(p.builtUsing ? [`Built-Using: ${p.builtUsing}`] : []),
    `Description: ${p.package} (test fixture)`,
    '',
  ].join('\n');
  writeFileSync(join(root, 'DEBIAN', 'control'), control);
  mkdirSync(dir, { recursive: true });
  const out = join(dir, `${p.package}_${p.version}_amd64.deb`);
  sh('dpkg-deb', ['--root-owner-group', '-Zxz', '--build', root, out]);
  return out;
}

/**
 * A main archive and a security archive with the four suites of `codename`,
 * holding the given packages, signed by a fresh key.
 */
export function makeArchive(codename: string, packages: FixturePackage[]): FixtureArchive {
  const dir = mkdtempSync(join(tmpdir(), 'suture-archive-'));
  const gnupg = join(dir, 'gnupg');
  mkdirSync(gnupg, { mode: 0o700 });
  const genv = { GNUPGHOME: gnupg };
  sh('gpg', ['--batch', '--quiet', '--pinentry-mode', 'loopback', '--passphrase', '', '--quick-gen-key', 'suture test archive <archive@suture.invalid>', 'ed25519', 'sign', 'never'], genv);
  const keyring = join(dir, 'archive-keyring.gpg');
  writeFileSync(keyring, execFileSync('gpg', ['--batch', '--export'], { env: { ...process.env, ...genv } }));

  const suites = [
    { archive: 'debian', suite: codename },
    { archive: 'debian', suite: `${codename}-updates` },
    { archive: 'debian', suite: `${codename}-backports` },
    { archive: 'debian-security', suite: `${codename}-security` },
  ];
  for (const { archive, suite } of suites) {
    const base = join(dir, archive);
    const pool = join(base, 'pool', suite);
    const bin = join(base, 'dists', suite, 'main', 'binary-amd64');
    mkdirSync(bin, { recursive: true });
    mkdirSync(pool, { recursive: true });
    for (const p of packages.filter((x) => (x.suites ?? [codename]).includes(suite))) buildDeb(pool, p);
    // apt-ftparchive writes paths as given: run it from the archive root.
    writeFileSync(join(bin, 'Packages'), execFileSync('apt-ftparchive', ['packages', join('pool', suite)], { cwd: base }));
    const release = execFileSync(
      'apt-ftparchive',
      ['-o', `APT::FTPArchive::Release::Suite=${suite}`, '-o', `APT::FTPArchive::Release::Codename=${suite}`, '-o', 'APT::FTPArchive::Release::Architectures=amd64', '-o', 'APT::FTPArchive::Release::Components=main', 'release', '.'],
      { cwd: join(base, 'dists', suite) },
    );
    writeFileSync(join(base, 'dists', suite, 'Release'), release);
    sh('gpg', ['--batch', '--yes', '--clearsign', '-o', join(base, 'dists', suite, 'InRelease'), join(base, 'dists', suite, 'Release')], genv);
  }
  return {
    dir,
    mirrors: { main: `file:${join(dir, 'debian')}`, security: `file:${join(dir, 'debian-security')}`, source: 'a test fixture', keyring },
  };
}
