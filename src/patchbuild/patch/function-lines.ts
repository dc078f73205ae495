// SPDX-License-Identifier: GPL-2.0-only
/**
 * Where a function's definition sits in a C file, found in the text: its
 * name at the start of a definition, then to the matching closing brace.
 * Used to say why a function changed: a function whose lines the patch does
 * not touch changed because it inlines (or reads) something that did.
 */
import type { FilePatch } from './parse.js';

/** The 1-based line range of a function definition, or undefined when it is not written in this file (a macro made it). */
export function functionLines(text: string, name: string): { first: number; last: number } | undefined {
  const lines = text.split('\n');
  const base = name.replace(/\.(cold|part\.\d+|constprop\.\d+|isra\.\d+)(\.\d+)?$/, '');
  const re = new RegExp(`^[A-Za-z_].*\\b${base.replace(/[$]/g, '\\$&')}\\s*\\(|^${base}\\s*\\(`);
  for (let i = 0; i < lines.length; i++) {
    if (!re.test(lines[i]!) || /;\s*$/.test(lines[i]!)) continue;
    // The body starts at the first '{' at or after the name; it ends at the matching '}'.
    let depth = 0;
    let opened = false;
    for (let j = i; j < lines.length; j++) {
      for (const c of lines[j]!) {
        if (c === '{') {
          depth++;
          opened = true;
        } else if (c === '}') depth--;
      }
      if (!opened && /;\s*$/.test(lines[j]!)) break; // a declaration, not a definition
      if (opened && depth === 0) return { first: i + 1, last: j + 1 };
    }
  }
  return undefined;
}

/** Whether any hunk of the file's patch touches lines [first, last] of the original file. */
export function touchedBy(f: FilePatch, range: { first: number; last: number }): boolean {
  return f.hunks.some((h) => {
    let line = h.oldStart;
    for (const l of h.lines) {
      if (l[0] === '-' && line >= range.first && line <= range.last) return true;
      if (l[0] === '+' && line >= range.first && line <= range.last + 1) return true;
      if (l[0] === ' ' || l[0] === '-') line++;
    }
    return false;
  });
}

/**
 * The functions and function-like macros of a file whose definitions the
 * patch touches (names only): for a changed header, the inlines and macros
 * that make its includers change.
 */
export function touchedDefinitions(text: string, f: FilePatch): string[] {
  const lines = text.split('\n');
  const names = new Set<string>();
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const macro = /^#\s*define\s+([A-Za-z_]\w*)/.exec(line);
    if (macro) {
      let last = i;
      while (last < lines.length - 1 && /\\\s*$/.test(lines[last]!)) last++;
      if (touchedBy(f, { first: i + 1, last: last + 1 })) names.add(macro[1]!);
      i = last;
      continue;
    }
    const fn = /^[A-Za-z_][^=;]*?\b([A-Za-z_]\w*)\s*\(/.exec(line);
    if (!fn || /^(if|for|while|switch|return|sizeof)$/.test(fn[1]!)) continue;
    const range = functionLines(lines.slice(i).join('\n'), fn[1]!);
    if (!range || range.first !== 1) continue;
    if (touchedBy(f, { first: i + 1, last: i + range.last })) names.add(fn[1]!);
    i += range.last - 1;
  }
  return [...names];
}
