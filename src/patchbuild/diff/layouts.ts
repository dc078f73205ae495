// SPDX-License-Identifier: GPL-2.0-only
/**
 * Struct layouts of a compiled unit, from its DWARF as pahole prints it. A
 * livepatch runs against data the running kernel already holds: a struct whose
 * size or member offsets change between orig and patched (a new field, a
 * reordered member, a widened type) cannot be patched, however its functions
 * compare. The code alone does not always show it; the debug info does.
 */

/** struct name → its layout (members with offsets and sizes, and the total size), normalised. */
export function parsePahole(text: string): Map<string, string> {
  const out = new Map<string, string>();
  const lines = text.split('\n');
  let block: string[] | undefined;
  let head = '';
  for (const line of lines) {
    if (!block) {
      if (/^(struct|union|typedef struct|typedef union)\b.*\{\s*$/.test(line)) {
        block = [];
        head = line.replace(/\s*\{\s*$/, '').trim();
      }
      continue;
    }
    if (/^\}/.test(line)) {
      // `typedef struct { ... } Node;` names the block at its end.
      const tail = /^\}\s*([A-Za-z_]\w*)\s*;/.exec(line)?.[1];
      const name = head.startsWith('typedef') && tail ? `typedef ${tail}` : head;
      const layout = block
        .filter((l) => !/^\s*\/\*.*\*\/\s*$/.test(l) || /size:/.test(l))
        .map((l) => l.replace(/\s+/g, ' ').trim())
        .filter(Boolean)
        .join('\n');
      if (!out.has(name)) out.set(name, layout);
      block = undefined;
      continue;
    }
    block.push(line);
  }
  return out;
}

export interface LayoutChange {
  type: string;
  before: string;
  after: string;
}

/** Types present in both units whose layout differs. */
export function changedLayouts(orig: Map<string, string>, patched: Map<string, string>): LayoutChange[] {
  const out: LayoutChange[] = [];
  for (const [name, after] of patched) {
    const before = orig.get(name);
    if (before !== undefined && before !== after) {
      const size = (s: string) => /size: (\d+)/.exec(s)?.[1] ?? '?';
      out.push({ type: name, before: `${size(before)} bytes`, after: `${size(after)} bytes` });
    }
  }
  return out;
}
