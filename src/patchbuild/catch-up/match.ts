// SPDX-License-Identifier: GPL-2.0-only
/**
 * Fixes matched to the changelog's entries, where the names allow: an
 * entry's subsystem prefixes ("nfsd:", "HID: sony:") against the words of a
 * fix's paths (fs/nfsd/nfs4state.c, drivers/hid/hid-sony.c), and the
 * identifiers of its title (coalesce_t2, mballoc) against the fix's paths,
 * hunk headers and changed lines. An entry goes to the fix it matches best;
 * a tie, or no match, leaves it unmatched, and its CVEs are listed as not
 * covered by any fix. Pure.
 */
import type { FilePatch } from '../patch/parse.js';
import { otherArchOnly, titleKeys, type ChangelogEntry } from './changelog.js';

export interface MatchInput {
  readonly id: string;
  readonly files: readonly FilePatch[];
}

export interface Matching {
  /** Fix id → the entries matched to it. */
  readonly byFix: ReadonlyMap<string, ChangelogEntry[]>;
  /** Entries no fix matches (with why, when it is clear). */
  readonly unmatched: readonly { entry: ChangelogEntry; why: string }[];
}

/** A path's words: each component whole (io_uring, hid-sony) and split at punctuation (hid, sony). */
function pathWords(path: string): Set<string> {
  const p = path.toLowerCase().replace(/\.[chS]$/, '');
  return new Set([...p.split('/'), ...p.split(/[^a-z0-9]+/)].filter(Boolean));
}

/** Prefixes that name no subsystem of their own ("clocksource/drivers/timer-sun4i:"). */
const GENERIC = new Set(['drivers', 'driver', 'fs', 'kernel', 'include', 'lib', 'arch', 'misc', 'core', 'linux', 'common']);

function normal(w: string): string {
  return w.toLowerCase().replace(/[^a-z0-9]+/g, '');
}

interface Prepared {
  readonly pw: ReadonlySet<string>;
  readonly pathText: string;
  readonly text: string;
}

function prepare(fix: MatchInput): Prepared {
  return {
    pw: new Set(fix.files.flatMap((f) => [...pathWords(f.path)].map(normal))),
    pathText: fix.files.map((f) => f.path.toLowerCase()).join(' '),
    text: fix.files.flatMap((f) => f.hunks.flatMap((h) => h.lines)).join('\n'),
  };
}

/** What an entry's title offers for matching, computed once per entry (the matching is entries × fixes). */
interface EntryKeys {
  /** Its subsystem prefixes that name a subsystem: each with its normal form, its words' normal forms and its path form. */
  readonly prefixes: readonly { readonly normal: string; readonly words: readonly string[]; readonly path: string }[];
  /** Identifiers of the title, as whole-word patterns. */
  readonly words: readonly RegExp[];
  /** Plain words of the title, normalised (to compare with path words). */
  readonly plain: readonly string[];
}

function entryKeys(entry: ChangelogEntry): EntryKeys {
  const { prefixes: all, words } = titleKeys(entry.title);
  return {
    prefixes: all.filter((p) => !GENERIC.has(p)).map((p) => ({ normal: normal(p), words: p.split(/\s+/).map(normal), path: `/${p.replace(/\s+/g, '')}` })),
    words: words.map((w) => new RegExp(`\\b${w.replace(/\(\)$/, '')}\\b`)),
    plain: (entry.title.slice(entry.title.lastIndexOf(': ') + 2).match(/[A-Za-z][A-Za-z0-9_]{3,}/g) ?? []).map(normal),
  };
}

function score(k: EntryKeys, { pw, pathText, text }: Prepared): number {
  const prefixHits = k.prefixes.filter((p) => pw.has(p.normal) || p.words.every((x) => pw.has(x)) || pathText.includes(p.path)).length;
  if (!prefixHits) return 0;
  const wordHits = k.words.filter((w) => w.test(text)).length;
  // Plain words of the title that are path words (mballoc → fs/ext4/mballoc.c).
  const plain = k.plain.filter((w) => pw.has(w)).length;
  // Part of the prefixes alone ("net:" of "net: sched:") is no match without a word of the title in the change.
  if (prefixHits < k.prefixes.length && !wordHits && !plain) return 0;
  return prefixHits * 10 + (prefixHits === k.prefixes.length ? 5 : 0) + wordHits * 20 + plain * 3;
}

/** How well an entry names a fix: 0 for not at all. */
export function matchScore(entry: ChangelogEntry, fix: MatchInput): number {
  return score(entryKeys(entry), prepare(fix));
}

export function matchChangelog(fixes: readonly MatchInput[], entries: readonly ChangelogEntry[]): Matching {
  const byFix = new Map<string, ChangelogEntry[]>();
  const unmatched: { entry: ChangelogEntry; why: string }[] = [];
  const prepared = fixes.map((f) => ({ f, p: prepare(f) }));
  for (const e of entries) {
    const keys = entryKeys(e);
    const scored = prepared.map(({ f, p }) => ({ f, s: score(keys, p) })).filter((x) => x.s > 0).sort((a, b) => b.s - a.s);
    if (!scored.length) {
      unmatched.push({ entry: e, why: otherArchOnly(e) ? `for ${e.arches.join(', ')} only` : 'no changed file carries its subsystem' });
      continue;
    }
    if (scored.length > 1 && scored[0]!.s === scored[1]!.s) {
      unmatched.push({ entry: e, why: `the names match ${scored.filter((x) => x.s === scored[0]!.s).length} fixes equally (${scored.slice(0, 3).map((x) => x.f.id).join(', ')})` });
      continue;
    }
    const id = scored[0]!.f.id;
    byFix.set(id, [...(byFix.get(id) ?? []), e]);
  }
  return { byFix, unmatched };
}
