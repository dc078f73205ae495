// SPDX-License-Identifier: GPL-2.0-only
/**
 * Which Debian packages make up a kernel workspace, picked the way Debian
 * relates them, never by assuming one version for all five:
 *
 * - `linux-headers-<release>`: the newest version the archive has;
 * - the `linux` source version S it was built from (its `Source:` field);
 * - `linux-image-<release>`: the one built from S (`Built-Using: linux (= S)`
 *   for a signed image, its own version for an unsigned one);
 * - `linux-headers-<abi>-common` and `linux-kbuild-*`: by the relations the
 *   headers package writes (`(= V)` exact; `(>= V)` the newest that satisfies
 *   it: the archive keeps only the newest `linux-kbuild-6.1`, and Debian
 *   promises with `>=` that it serves older headers);
 * - `linux-source-<series>` at S exactly: the tree must be the kernel's own
 *   source (provenance checks that), and no relation names it.
 *
 * Pure planning: it asks `show` for package records and decides.
 */
import { SutureError } from '../util/errors.js';
import { compareVersions, formatRelation, newestVersion, parseRelations, satisfies, type Relation } from '../util/debian-version.js';
import type { PackageRecord } from './apt.js';
import { formatKernelRef, type KernelRef } from './ref.js';

export type PackageRole = 'image' | 'headers' | 'common' | 'kbuild' | 'source';
export const PACKAGE_ROLES: readonly PackageRole[] = ['image', 'headers', 'common', 'kbuild', 'source'];

/** A package picked for a role, with the reason it was picked (kept in kernel.json, shown by `kernel info`). */
export interface PlannedPackage extends PackageRecord {
  role: PackageRole;
  why: string;
}

export type PackagePlan = Record<PackageRole, PlannedPackage>;

/** What the planner needs of an archive: every version of a package it has (empty when none). */
export type ShowPackage = (pkg: string) => Promise<PackageRecord[]>;

/** The `linux` source version a binary package was built from. */
export function sourceVersionOf(rec: PackageRecord): string {
  // `Source: linux (6.1.192-2)` when the binary version differs, plain `Source: linux` when it does not.
  const m = /^\s*\S+\s*\(([^)]+)\)/.exec(rec.source ?? '');
  return m ? m[1]!.trim() : rec.version;
}

/** `Built-Using: linux (= S)` of a signed image, if it names one. */
function builtFromLinux(rec: PackageRecord): string | undefined {
  for (const group of parseRelations(rec.builtUsing)) {
    const r = group.find((x) => x.package === 'linux' && x.op === '=');
    if (r) return r.version;
  }
  return undefined;
}

/**
 * Pick the package a relation names: exact for `=`, the newest satisfying
 * version otherwise. Errors name the relation, what the archive has, and what
 * to do.
 */
export async function pickByRelation(show: ShowPackage, rel: Relation, role: PackageRole, origin: string): Promise<PlannedPackage> {
  const all = await show(rel.package);
  const ok = all.filter((r) => satisfies(r.version, rel));
  const best = newestVersion(ok);
  if (!best) {
    const have = [...new Set(all.map((r) => r.version))].sort(compareVersions);
    throw new SutureError(
      'archive',
      `${formatRelation(rel)}, which ${origin} depends on, is not in the archive${have.length ? ` (it has ${have.join(', ')})` : ` (no version of ${rel.package} at all)`}`,
      { hint: missingHint(rel.package, rel.op === '=' || rel.op === undefined ? rel.version : undefined) },
    );
  }
  const why = rel.op
    ? rel.op === '='
      ? `${origin} depends on ${formatRelation(rel)}`
      : `the newest version satisfying ${origin}'s ${formatRelation(rel)}${ok.length > 1 ? ` (of ${ok.length})` : ''}`
    : `${origin} depends on ${rel.package}; the newest version`;
  return { ...best, role, why };
}

/** What a user can do when a package version is gone from the archive. */
export function missingHint(pkg: string, version?: string): string {
  const file = version ? `${pkg}_${version.replace(/:/g, '%3a')}_amd64.deb` : `${pkg}_*_amd64.deb`;
  return `put ${file} in a folder (a host's /var/cache/apt/archives, or a download from a snapshot of the archive) and pass it with --debs DIR, or fetch a newer release of this series`;
}

/** The relation in a package's Depends whose package name matches, or undefined. */
function dependsOn(rec: PackageRecord, match: (pkg: string) => boolean): Relation | undefined {
  for (const group of parseRelations(rec.depends)) {
    const r = group.find((x) => match(x.package));
    if (r) return r;
  }
  return undefined;
}

/**
 * Resolve the five packages of a kernel release. `notInArchive` is called
 * when the release itself is unknown; `installed` is this host's installed
 * image of the release, used when no image package built from the kernel's
 * source is available.
 */
export async function planPackages(
  show: ShowPackage,
  ref: KernelRef,
  notInArchive: () => Promise<never>,
  installed?: PackageRecord,
): Promise<PackagePlan> {
  const name = formatKernelRef(ref);
  const headersAll = await show(`linux-headers-${ref.release}`);
  const headersRec = newestVersion(headersAll);
  const images = [...(await show(`linux-image-${ref.release}`)), ...(await show(`linux-image-${ref.release}-unsigned`))];
  if (!headersRec || (images.length === 0 && !installed)) return notInArchive();
  const s = sourceVersionOf(headersRec);
  const headers: PlannedPackage = {
    ...headersRec,
    role: 'headers',
    why: headersAll.length > 1 ? `the newest of ${headersAll.length} versions of ${headersRec.package}` : `the only version of ${headersRec.package}`,
  };

  const builtFrom = (r: PackageRecord) => builtFromLinux(r) ?? sourceVersionOf(r);
  const built = images.filter((r) => builtFrom(r) === s);
  const imageRec = newestVersion(built.filter((r) => !r.package.endsWith('-unsigned'))) ?? newestVersion(built);
  let image: PlannedPackage;
  if (imageRec) {
    image = {
      ...imageRec,
      role: 'image',
      why: builtFromLinux(imageRec) ? `Built-Using: linux (= ${s}), the source of the headers` : `built from linux ${s}, the source of the headers`,
    };
  } else if (installed && builtFrom(installed) === s) {
    image = { ...installed, role: 'image', why: `this host runs ${ref.release}: its installed /boot and /lib/modules (built from linux ${s}) stand in for the package` };
  } else {
    const have = [...images, ...(installed ? [installed] : [])]
      .map((r) => `${r.package} ${r.version}${r.installedAt ? ' (installed)' : ''} (built from linux ${builtFrom(r)})`)
      .join(', ');
    throw new SutureError('archive', `no image of ${name} built from linux ${s} (the source of its headers ${headers.version}) is in the archive; it has ${have}`, {
      hint: missingHint(`linux-image-${ref.release}`, headers.version),
    });
  }

  const origin = `${headers.package} ${headers.version}`;
  const commonRel = dependsOn(headers, (p) => p.startsWith('linux-headers-') && p.endsWith('-common'));
  const kbuildRel = dependsOn(headers, (p) => p.startsWith('linux-kbuild-'));
  // Every Debian headers package so far names both; an archive that does not is read the old way: one version for all.
  const common = await pickByRelation(show, commonRel ?? { package: `linux-headers-${ref.abi}-common`, op: '=', version: headers.version }, 'common', origin);
  const kbuild = await pickByRelation(show, kbuildRel ?? { package: `linux-kbuild-${ref.series}`, op: '=', version: headers.version }, 'kbuild', origin);

  const sourcePkg = `linux-source-${ref.series}`;
  const sources = await show(sourcePkg);
  const sourceRec = sources.find((r) => r.version === s);
  if (!sourceRec) {
    const have = [...new Set(sources.map((r) => r.version))].sort(compareVersions);
    throw new SutureError(
      'archive',
      `${sourcePkg} ${s} (the source ${name} was built from) is not in the archive${have.length ? ` (it has ${have.join(', ')})` : ''}`,
      { hint: missingHint(sourcePkg, s) },
    );
  }
  const source: PlannedPackage = { ...sourceRec, role: 'source', why: `linux ${s}: the source the image and headers were built from` };
  return { image, headers, common, kbuild, source };
}
