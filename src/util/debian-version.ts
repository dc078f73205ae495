// SPDX-License-Identifier: GPL-2.0-only
/**
 * Debian's version ordering and package relations, as dpkg and apt read them.
 * Written here rather than taken from npm: the few packages that do this are
 * unmaintained or pull in a whole apt binding, and dpkg's algorithm is short
 * and fully specified (deb-version(7), deb-control(5)). Shared by the host
 * (effective versions) and the kernel fetch (picking packages by relation).
 */

/** Debian version ordering (dpkg's verrevcmp), for `[epoch:]upstream[-revision]`. */
export function compareVersions(a: string, b: string): number {
  const pa = splitVersion(a);
  const pb = splitVersion(b);
  if (pa.epoch !== pb.epoch) return pa.epoch < pb.epoch ? -1 : 1;
  return verrevcmp(pa.upstream, pb.upstream) || verrevcmp(pa.revision, pb.revision);
}

function splitVersion(v: string): { epoch: number; upstream: string; revision: string } {
  let rest = v.trim();
  let epoch = 0;
  const colon = rest.indexOf(':');
  if (colon > 0 && /^\d+$/.test(rest.slice(0, colon))) {
    epoch = Number(rest.slice(0, colon));
    rest = rest.slice(colon + 1);
  }
  const dash = rest.lastIndexOf('-');
  return dash < 0 ? { epoch, upstream: rest, revision: '' } : { epoch, upstream: rest.slice(0, dash), revision: rest.slice(dash + 1) };
}

const isDigit = (c: string) => c >= '0' && c <= '9';

/** dpkg's character order: '~' sorts before everything, even the end; letters before other characters. */
function order(c: string): number {
  if (c === '' || isDigit(c)) return 0;
  if (c === '~') return -1;
  if (/[A-Za-z]/.test(c)) return c.charCodeAt(0);
  return c.charCodeAt(0) + 256;
}

/** dpkg's verrevcmp: alternating runs of non-digits (by `order`) and digits (by value). */
function verrevcmp(a: string, b: string): number {
  let i = 0;
  let j = 0;
  const at = (s: string, k: number) => (k < s.length ? s[k]! : '');
  while (i < a.length || j < b.length) {
    let firstDiff = 0;
    while ((at(a, i) !== '' && !isDigit(at(a, i))) || (at(b, j) !== '' && !isDigit(at(b, j)))) {
      const ac = order(at(a, i));
      const bc = order(at(b, j));
      if (ac !== bc) return ac < bc ? -1 : 1;
      i++;
      j++;
    }
    while (at(a, i) === '0') i++;
    while (at(b, j) === '0') j++;
    while (isDigit(at(a, i)) && isDigit(at(b, j))) {
      if (!firstDiff) firstDiff = a.charCodeAt(i) - b.charCodeAt(j);
      i++;
      j++;
    }
    if (isDigit(at(a, i))) return 1;
    if (isDigit(at(b, j))) return -1;
    if (firstDiff) return firstDiff < 0 ? -1 : 1;
  }
  return 0;
}

/** A relation operator of deb-control(5). */
export type RelationOp = '<<' | '<=' | '=' | '>=' | '>>';

/** One package named in a relation field, with its version constraint if any. */
export interface Relation {
  package: string;
  op?: RelationOp;
  version?: string;
}

/**
 * A relation field (`Depends:`) as a list of alternative groups:
 * `a (>= 1), b | c` is `[[a >= 1], [b, c]]`. Architecture qualifiers
 * (`:any`) and restriction lists are dropped; they do not name versions.
 */
export function parseRelations(field: string | undefined): Relation[][] {
  if (!field) return [];
  return field
    .split(',')
    .map((group) =>
      group
        .split('|')
        .map((alt) => {
          const m = /^\s*([a-z0-9][a-z0-9+.-]*)(?::[a-z0-9-]+)?\s*(?:\(\s*(<<|<=|=|>=|>>|<|>)\s*([^)\s]+)\s*\))?/.exec(alt);
          if (!m) return undefined;
          // `<` and `>` are the obsolete spellings of `<=` and `>=` (deb-control(5)).
          const op = m[2] === '<' ? '<=' : m[2] === '>' ? '>=' : (m[2] as RelationOp | undefined);
          return { package: m[1]!, ...(op ? { op, version: m[3]! } : {}) };
        })
        .filter((r): r is Relation => r !== undefined),
    )
    .filter((g) => g.length > 0);
}

/** Does a version satisfy a relation's constraint? */
export function satisfies(version: string, rel: Relation): boolean {
  if (!rel.op || rel.version === undefined) return true;
  const c = compareVersions(version, rel.version);
  switch (rel.op) {
    case '<<': return c < 0;
    case '<=': return c <= 0;
    case '=': return c === 0;
    case '>=': return c >= 0;
    case '>>': return c > 0;
  }
}

export function formatRelation(rel: Relation): string {
  return rel.op ? `${rel.package} (${rel.op} ${rel.version})` : rel.package;
}

/** The newest of a list by Debian version order. */
export function newestVersion<T extends { version: string }>(items: readonly T[]): T | undefined {
  let best: T | undefined;
  for (const it of items) if (!best || compareVersions(it.version, best.version) > 0) best = it;
  return best;
}
