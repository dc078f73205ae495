// SPDX-License-Identifier: GPL-2.0-only
/**
 * suture's own apt: its sources list, package lists and download cache live
 * under $SUTURE_HOME/apt. The host's apt sources are read (to learn which
 * mirror this machine uses) but never edited.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SutureError, fsError } from '../util/errors.js';
import { run, runChecked } from '../util/exec.js';
import type { DebianCodename } from './ref.js';

/** The suites that carry a Debian release's kernels, and which archive each comes from. */
export function suitesOf(codename: DebianCodename): { suite: string; archive: 'main' | 'security' }[] {
  return [
    { suite: codename, archive: 'main' },
    { suite: `${codename}-updates`, archive: 'main' },
    { suite: `${codename}-backports`, archive: 'main' },
    { suite: `${codename}-security`, archive: 'security' },
  ];
}

export interface Mirrors {
  /** Base URI of the Debian archive (the directory holding dists/ and pool/). */
  main: string;
  /** Base URI of the Debian security archive. */
  security: string;
  /** Where these were learned from, for messages. */
  source: string;
  /** The keyring that signs them (SUTURE_DEBIAN_KEYRING for a private mirror; Debian's own keyring by default). */
  keyring?: string;
}

const KEYRING = '/usr/share/keyrings/debian-archive-keyring.gpg';

/**
 * Find the Debian mirrors: SUTURE_DEBIAN_MIRROR / SUTURE_DEBIAN_SECURITY_MIRROR
 * if set, else the URIs of the host's own Debian apt sources.
 */
export function findMirrors(env: NodeJS.ProcessEnv = process.env, etc = '/etc/apt'): Mirrors {
  let main = env.SUTURE_DEBIAN_MIRROR;
  let security = env.SUTURE_DEBIAN_SECURITY_MIRROR;
  let source = 'SUTURE_DEBIAN_MIRROR / SUTURE_DEBIAN_SECURITY_MIRROR';
  if (!main || !security) {
    const uris = hostAptUris(etc);
    main ??= uris.find((u) => /\/debian\/?$/.test(u));
    security ??= uris.find((u) => /\/debian-security\/?$/.test(u));
    source = `the host's apt sources in ${etc}`;
  }
  if (!main) {
    throw new SutureError('environment', `no Debian archive mirror is configured (looked at ${source})`, {
      hint: 'set SUTURE_DEBIAN_MIRROR to a Debian mirror URI (the directory holding dists/ and pool/)',
    });
  }
  // A mirror of the main archive usually sits beside debian-security.
  security ??= main.replace(/\/debian\/?$/, '/debian-security');
  return { main: main.replace(/\/$/, ''), security: security.replace(/\/$/, ''), source, ...(env.SUTURE_DEBIAN_KEYRING ? { keyring: env.SUTURE_DEBIAN_KEYRING } : {}) };
}

/** All URIs named by the host's apt sources (one-line and deb822 formats). */
export function hostAptUris(etc = '/etc/apt'): string[] {
  const files: string[] = [];
  if (existsSync(join(etc, 'sources.list'))) files.push(join(etc, 'sources.list'));
  const dir = join(etc, 'sources.list.d');
  if (existsSync(dir)) {
    for (const f of readdirSync(dir).sort()) {
      if (f.endsWith('.list') || f.endsWith('.sources')) files.push(join(dir, f));
    }
  }
  const uris: string[] = [];
  for (const f of files) {
    const text = readFileSync(f, 'utf8');
    for (const line of text.split('\n')) {
      const t = line.trim();
      const oneLine = /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)/.exec(t);
      if (oneLine) uris.push(oneLine[1]!);
      const deb822 = /^URIs:\s*(.+)$/i.exec(t);
      if (deb822) uris.push(...deb822[1]!.split(/\s+/));
    }
  }
  return uris;
}

export interface Apt {
  root: string;
  codename: DebianCodename;
  /** Refresh the package lists if they are older than maxAgeMs (or missing). */
  update(maxAgeMs?: number): Promise<void>;
  /** `apt-cache show` records of a package, all versions. Empty when the archive does not have it. */
  show(pkg: string): Promise<PackageRecord[]>;
  /** Names of all packages starting with a prefix. */
  names(prefix: string): Promise<string[]>;
  /** Download `pkg=version` into dir; returns the .deb path. */
  download(pkg: string, version: string, dir: string): Promise<string>;
}

export interface PackageRecord {
  package: string;
  version: string;
  source?: string;
  size?: number;
  filename?: string;
  depends?: string;
  /** `Built-Using:` (a signed image names the `linux` source version it was built from). */
  builtUsing?: string;
  /** The archive's SHA256 of the .deb. */
  sha256?: string;
  /** A .deb the user supplied (`kernel fetch --debs`): used as it is, never downloaded. */
  localFile?: string;
  /** Not a .deb: the image as installed on this host, under this root (src/kernel/installed.ts). */
  installedAt?: string;
}

/**
 * suture's apt for one Debian release, under `root` (one root per release:
 * bookworm's and trixie's lists never mix). `mirrors.local` adds a `file:`
 * repository (tests use a fixture archive made with apt-ftparchive).
 */
export function openApt(root: string, mirrors: Mirrors, codename: DebianCodename): Apt {
  const dirs = {
    lists: join(root, 'lists'),
    cache: join(root, 'cache'),
    archives: join(root, 'cache', 'archives'),
    parts: join(root, 'sources.list.d'),
    prefs: join(root, 'preferences.d'),
  };
  const sourcesList = join(root, 'sources.list');
  const status = join(root, 'status');
  try {
    for (const d of [root, dirs.lists, join(dirs.lists, 'partial'), dirs.archives, join(dirs.archives, 'partial'), dirs.parts, dirs.prefs]) {
      mkdirSync(d, { recursive: true });
    }
    const keyring = mirrors.keyring ?? KEYRING;
    const signedBy = existsSync(keyring) ? ` [signed-by=${keyring}]` : '';
    const lines = suitesOf(codename).map(
      (s) => `deb${signedBy} ${s.archive === 'main' ? mirrors.main : mirrors.security} ${s.suite} main`,
    );
    writeFileSync(sourcesList, `# written by suture; the host's apt sources are not used or changed\n${lines.join('\n')}\n`);
    if (!existsSync(status)) writeFileSync(status, '');
  } catch (e) {
    throw fsError(e, 'preparing suture\'s apt directory', root);
  }
  const opts = [
    '-o', `Dir::Etc::SourceList=${sourcesList}`,
    '-o', `Dir::Etc::SourceParts=${dirs.parts}`,
    '-o', `Dir::Etc::PreferencesParts=${dirs.prefs}`,
    '-o', `Dir::State::Lists=${dirs.lists}`,
    '-o', `Dir::State::status=${status}`,
    '-o', `Dir::Cache=${dirs.cache}`,
    '-o', `Dir::Cache::archives=${dirs.archives}`,
    '-o', 'Dir::Cache::pkgcache=',
    '-o', 'Dir::Cache::srcpkgcache=',
    '-o', 'APT::Architecture=amd64',
    '-o', 'APT::Architectures=amd64',
    '-o', 'Acquire::Languages=none',
    '-o', 'Debug::NoLocking=true',
    ...(process.getuid?.() === 0 ? ['-o', 'APT::Sandbox::User=root'] : []),
  ];
  const stamp = join(root, 'lists', '.suture-updated');
  return {
    root,
    codename,
    async update(maxAgeMs = 6 * 3600_000) {
      if (existsSync(stamp) && Date.now() - statSync(stamp).mtimeMs < maxAgeMs) return;
      const r = await run(['apt-get', ...opts, '-q', 'update'], { timeoutMs: 15 * 60_000 });
      const failed = /^(E:|Err:)/m.test(r.stdout + r.stderr);
      if (r.code !== 0 || failed) {
        const text = r.stdout + r.stderr;
        const suites = suitesOf(codename)
          .map((x) => x.suite)
          .filter((suite) => new RegExp(`^(?:Err:\\S*|E:|W:).*\\s${suite}(?:/|\\s)`, 'm').test(text));
        throw new SutureError('archive', `could not refresh the package lists${suites.length ? ` of ${suites.join(', ')}` : ''} from ${mirrors.main} and ${mirrors.security}`, {
          hint: `check the network and that the mirrors (learned from ${mirrors.source}) carry ${suites.length ? suites.join(', ') : suitesOf(codename).map((x) => x.suite).join(', ')}`,
          details: (r.stderr || r.stdout).trim().split('\n').slice(-10).join('\n'),
        });
      }
      writeFileSync(stamp, new Date().toISOString());
    },
    async show(pkg) {
      const r = await run(['apt-cache', ...opts, 'show', '--all-versions', pkg]);
      if (r.code !== 0) return [];
      return parseControlRecords(r.stdout).map((f) => ({
        package: f.get('Package') ?? pkg,
        version: f.get('Version') ?? '',
        source: f.get('Source'),
        size: f.has('Size') ? Number(f.get('Size')) : undefined,
        filename: f.get('Filename'),
        depends: f.get('Depends'),
        builtUsing: f.get('Built-Using'),
        sha256: f.get('SHA256'),
      }));
    },
    async names(prefix) {
      const r = await run(['apt-cache', ...opts, 'pkgnames', prefix]);
      return r.stdout.split('\n').filter(Boolean).sort();
    },
    async download(pkg, version, dir) {
      mkdirSync(dir, { recursive: true });
      await runChecked(['apt-get', ...opts, '-q', 'download', `${pkg}=${version}`], {
        cwd: dir,
        kind: 'archive',
        what: `downloading ${pkg} ${version}`,
        timeoutMs: 60 * 60_000,
      });
      const file = readdirSync(dir).find((f) => f.startsWith(`${pkg}_`) && f.endsWith('.deb'));
      if (!file) throw new SutureError('archive', `apt-get download ${pkg}=${version} left no .deb in ${dir}`);
      return join(dir, file);
    },
  };
}

/** Parse RFC822-style control records (apt-cache show output, Packages files). */
export function parseControlRecords(text: string): Map<string, string>[] {
  const out: Map<string, string>[] = [];
  for (const block of text.split(/\n\s*\n/)) {
    const fields = new Map<string, string>();
    let last: string | undefined;
    for (const line of block.split('\n')) {
      if (/^\s/.test(line) && last) fields.set(last, `${fields.get(last)}\n${line.trim()}`);
      else {
        const m = /^([\w-]+):\s*(.*)$/.exec(line);
        if (m) {
          last = m[1]!;
          fields.set(last, m[2]!);
        }
      }
    }
    if (fields.size) out.push(fields);
  }
  return out;
}
