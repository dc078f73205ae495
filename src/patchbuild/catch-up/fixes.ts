// SPDX-License-Identifier: GPL-2.0-only
/**
 * The two ways a catch-up learns its fixes:
 *
 *   tree      the running kernel's pristine source against a newer Debian
 *             release's (kernel/source-release.ts), changed files grouped
 *             into fixes (group.ts), matched to the changelog (match.ts);
 *   series    one patch file per fix, in order (git format-patch style),
 *             each fix's title and CVEs read from its mail header.
 *
 * Both end as the same list: each fix with its files (hunks located against
 * the prepared tree), its title, its CVEs and the basis it was formed on.
 */
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { SutureError, fsError } from '../../util/errors.js';
import { includersOf, treeIncludeGraph } from '../include-graph.js';
import { checkPatchApplies, patchedPaths } from '../overlay.js';
import { diskTree, loadPatches, type LoadedPatch } from '../patch/inputs.js';
import { formatPatch, type FilePatch } from '../patch/parse.js';
import { locateHunks } from '../patch/located.js';
import { entriesBetween, parseChangelog, type ChangelogEntry } from './changelog.js';
import { groupFixes } from './group.js';
import { matchChangelog } from './match.js';
import type { TreeChange } from './tree-diff.js';

export interface Fix {
  readonly id: string;
  /** The series file, or the fix's first file with a count of the others. */
  readonly label: string;
  /** The series' subject, or the changelog entries matched to it. */
  readonly title: string | undefined;
  readonly cves: readonly string[];
  readonly basis: readonly string[];
  readonly files: readonly FilePatch[];
  readonly changelog: readonly ChangelogEntry[];
}

export interface FormedFixes {
  readonly fixes: readonly Fix[];
  /** Changelog entries of the update no fix matches (tree mode). */
  readonly unmatched: readonly { entry: ChangelogEntry; why: string }[];
  /** Every entry of the update (tree mode). */
  readonly entries: readonly ChangelogEntry[];
}

/** A header past this many including .c files is judged alone, and refused for its reach. */
export const WIDE_HEADER = 64;

/** Tree mode: group the changes, read the changelog of the update, match them. */
export async function fixesFromTree(opts: {
  changes: readonly TreeChange[];
  /** The prepared tree of the running kernel (its include graph is cached in the workspace). */
  tree: string;
  graphCache: string;
  /** The pristine older tree (for a file's text before the change). */
  fromTree: string;
  changelogText: string;
  fromVersion: string;
  toVersion: string;
}): Promise<FormedFixes> {
  const files = opts.changes.flatMap((c) => (c.patch ? [c.patch] : []));
  const graph = await treeIncludeGraph(opts.tree, opts.graphCache);
  const formed = groupFixes(
    files,
    {
      includers: (h) => {
        const r = includersOf(graph, h);
        return { units: r.all, every: r.everyUnit };
      },
      wideHeader: WIDE_HEADER,
    },
    (p) => {
      try {
        return readFileSync(join(opts.fromTree, p), 'utf8');
      } catch {
        return undefined;
      }
    },
  );
  const entries = entriesBetween(parseChangelog(opts.changelogText), opts.fromVersion, opts.toVersion);
  const m = matchChangelog(formed, entries);
  const fixes = formed.map((f): Fix => {
    const matched = m.byFix.get(f.id) ?? [];
    return {
      id: f.id,
      label: f.files.length === 1 ? f.files[0]!.path : `${f.files[0]!.path} and ${f.files.length - 1} more`,
      title: matched.length ? matched.map((e) => e.title).join('; ') : undefined,
      cves: [...new Set(matched.flatMap((e) => e.cves))],
      basis: f.basis,
      files: f.files,
      changelog: matched,
    };
  });
  return { fixes, unmatched: m.unmatched, entries };
}

/** The mail header of a format-patch file: its subject (without [PATCH n/m]) and every CVE id above the diff. */
export function seriesHeader(text: string): { title: string | undefined; cves: string[] } {
  const cut = text.search(/^(diff --git |--- |Index: )/m);
  const head = cut >= 0 ? text.slice(0, cut) : text;
  const subj = /^Subject:\s*(.*(?:\n[ \t]+.*)*)/m.exec(head);
  // Without [PATCH n/m], and without an architecture tag ([powerpc*] pseries/iommu: ...), as the changelog's titles are read.
  const title = subj ? subj[1]!.replace(/\n[ \t]+/g, ' ').replace(/^\[[^\]]*PATCH[^\]]*\]\s*/i, '').replace(/^\[[^\]]+\]\s*/, '').trim() : undefined;
  return { title: title || undefined, cves: [...new Set(head.match(/CVE-\d{4}-\d{4,}/g) ?? [])] };
}

/** The patch files of a series directory, in order (a `series` file if there is one, else *.patch and *.diff by name). */
export function seriesFiles(dir: string): string[] {
  let st;
  try {
    st = statSync(dir);
  } catch (e) {
    throw fsError(e, 'reading the series', dir);
  }
  if (!st.isDirectory()) throw new SutureError('usage', `--series ${dir}: not a directory`, { hint: 'give a directory of patch files, one per fix (git format-patch writes them so)' });
  const names = readdirSync(dir);
  let files: string[];
  if (names.includes('series')) {
    files = readFileSync(join(dir, 'series'), 'utf8')
      .split('\n')
      .map((l) => l.replace(/#.*/, '').trim().split(/\s+/)[0] ?? '')
      .filter(Boolean);
  } else {
    files = names.filter((n) => /\.(patch|diff)$/.test(n)).sort();
  }
  if (!files.length) {
    throw new SutureError('usage', `--series ${dir} holds no patch file`, { hint: 'put one patch per fix there (NNNN-title.patch, as git format-patch writes), or a `series` file listing them' });
  }
  return files.map((f) => join(dir, f));
}

/**
 * Series mode (the files seriesFiles listed): each file one fix, every hunk located against the prepared
 * tree with the fixes before it applied. A fix that does not apply is named
 * with its file and hunk; nothing is built then.
 */
export async function fixesFromSeries(paths: readonly string[], tree: string, buildRoot: string): Promise<FormedFixes> {
  const inputs = paths.map((p) => {
    let text: string;
    try {
      text = readFileSync(p, 'utf8');
    } catch (e) {
      throw fsError(e, 'reading a series file', p);
    }
    return { file: p, label: basename(p), text };
  });
  const loaded = loadPatches(inputs, diskTree(tree));
  const located = await locateInOrder(loaded, tree, buildRoot);
  let at = 0;
  const fixes = loaded.map((l, i): Fix => {
    const files = located.slice(at, at + l.files.length);
    at += l.files.length;
    const h = seriesHeader(inputs[i]!.text);
    return { id: l.label, label: l.label, title: h.title, cves: h.cves, basis: [`${l.label}: one file of the series, one fix`], files, changelog: [] };
  });
  return { fixes, unmatched: [], entries: [] };
}

/** Locate all patches at once; when they do not apply, find the first series file that fails and name it. */
async function locateInOrder(loaded: readonly LoadedPatch[], tree: string, buildRoot: string): Promise<FilePatch[]> {
  const stated = loaded.flatMap((l) => l.files);
  const tryApply = async (upTo: number) => {
    const files = loaded.slice(0, upTo).flatMap((l) => l.files);
    const file = join(buildRoot, `series-${upTo}.patch`);
    writeFileSync(file, formatPatch(files));
    return { files, output: await checkPatchApplies(tree, file, loaded.slice(0, upTo).map((l) => l.label).join(' + '), patchedPaths(files)) };
  };
  try {
    const all = await tryApply(loaded.length);
    return locateHunks(stated, all.output, 'the series');
  } catch (e) {
    if (!(e instanceof SutureError)) throw e;
    for (let i = 1; i <= loaded.length; i++) {
      try {
        await tryApply(i);
      } catch (err) {
        if (!(err instanceof SutureError)) throw err;
        throw new SutureError(err.kind, `${loaded[i - 1]!.label} does not apply after the ${i - 1} fix${i === 2 ? '' : 'es'} before it: ${err.message}`, {
          details: err.details,
          hint: `refresh ${loaded[i - 1]!.label} against the kernel's source (and the series before it), or drop it from the series`,
        });
      }
    }
    throw e;
  }
}
