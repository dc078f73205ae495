// SPDX-License-Identifier: GPL-2.0-only
/**
 * Debian's kernel changelog (changelog.Debian of linux-source-<series>), read
 * as the list of fixes an update claims: every `* item` and every `- item`
 * under "New upstream stable update:", with its CVE ids, the architectures a
 * `[x86]`-style tag restricts it to, and the Debian version it came with.
 * Pure: text in, entries out.
 */
import { compareVersions } from '../../util/debian-version.js';

export interface ChangelogEntry {
  /** The Debian version whose changelog block lists it: 6.1.192-1. */
  readonly version: string;
  /** The entry as written, joined to one line, without CVE ids, bug closures or the arch tag: "nfsd: fix nfsd_file leak on ...". */
  readonly title: string;
  readonly cves: readonly string[];
  /** Architectures of a leading tag (`[arm64]`, `[arm*]`, `[x86]`); empty: every architecture. */
  readonly arches: readonly string[];
  /** The upstream stable ChangeLog it was listed under, when it was (ChangeLog-6.1.191). */
  readonly stable?: string;
}

const HEADER = /^(\S+) \(([^)]+)\) [^;]*;/;
const CVE = /CVE-\d{4}-\d{4,}/g;

/** Every entry of every version block, newest block first (the file's order). */
export function parseChangelog(text: string): ChangelogEntry[] {
  const out: ChangelogEntry[] = [];
  let version: string | undefined;
  let stable: string | undefined;
  let inStable = false;
  let cur: { lines: string[]; stable?: string | undefined } | undefined;
  const flush = () => {
    if (cur && version) {
      const entry = makeEntry(version, cur.lines.join(' '), cur.stable);
      if (entry) out.push(entry);
    }
    cur = undefined;
  };
  for (const raw of text.split('\n')) {
    const line = raw.replace(/\s+$/, '');
    const h = HEADER.exec(line);
    if (h) {
      flush();
      version = h[2];
      inStable = false;
      stable = undefined;
      continue;
    }
    if (/^ -- /.test(line) || line === '' || /^ {2}\[ .* \]$/.test(line)) {
      flush();
      if (/^ -- /.test(line)) inStable = false;
      continue;
    }
    const star = /^ {2}\* (.*)$/.exec(line);
    if (star) {
      flush();
      inStable = /^New upstream (stable )?(update|release)/i.test(star[1]!);
      stable = undefined;
      if (!inStable) cur = { lines: [star[1]!] };
      continue;
    }
    const dash = /^ {4}- (.*)$/.exec(line);
    if (dash) {
      flush();
      cur = { lines: [dash[1]!], stable: inStable ? stable : undefined };
      continue;
    }
    const cont = /^ {4,}(\S.*)$/.exec(line);
    if (cont) {
      const url = /^https?:\S*ChangeLog-([\d.]+)\s*$/.exec(cont[1]!);
      if (inStable && url) {
        flush();
        stable = `ChangeLog-${url[1]}`;
        continue;
      }
      if (cur) cur.lines.push(cont[1]!);
    }
  }
  flush();
  return out;
}

function makeEntry(version: string, text: string, stable: string | undefined): ChangelogEntry | undefined {
  const cves = [...new Set(text.match(CVE) ?? [])];
  let title = text
    .replace(/\((?:[^()]*\bCVE-\d{4}-\d+[^()]*)\)/g, '')
    .replace(/\(Closes: [^)]*\)/gi, '')
    .replace(/\s+/g, ' ')
    .trim();
  const tag = /^\[([^\]]+)\]\s*/.exec(title);
  const arches = tag ? tag[1]!.split(/[,\s]+/).filter(Boolean) : [];
  if (tag) title = title.slice(tag[0].length);
  if (!title) return undefined;
  return { version, title, cves, arches, ...(stable ? { stable } : {}) };
}

/** The entries an update from `from` (exclusive) to `to` (inclusive) brings. */
export function entriesBetween(entries: readonly ChangelogEntry[], from: string, to: string): ChangelogEntry[] {
  return entries.filter((e) => compareVersions(e.version, from) > 0 && compareVersions(e.version, to) <= 0);
}

/** Whether an entry's arch tag leaves amd64 out ([arm64], [arm*], [ppc64el], [rt] is a flavour, not an arch). */
export function otherArchOnly(e: ChangelogEntry, arch = 'amd64'): boolean {
  if (!e.arches.length) return false;
  const mine = new Set([arch, 'x86', 'amd64', 'i386', 'x86_64']);
  return e.arches.every((a) => !mine.has(a) && a !== 'rt');
}

/** The subsystem prefix of a title ("nfsd", "io_uring/poll", "net: sched") as words to look for in paths. */
export function titleKeys(title: string): { prefixes: string[]; words: string[] } {
  const colon = title.lastIndexOf(': ');
  const head = colon > 0 ? title.slice(0, colon) : '';
  const prefixes = head
    .split(/:\s*/)
    .flatMap((p) => p.split('/'))
    .map((p) => p.trim().toLowerCase())
    .filter((p) => p && p.length > 1);
  const words = [...new Set((title.slice(colon + 2).match(/[A-Za-z_][A-Za-z0-9_]{3,}/g) ?? []).filter((w) => w.includes('_') || /[a-z][A-Z]/.test(w) || /\(\)$/.test(w)))];
  return { prefixes, words };
}
