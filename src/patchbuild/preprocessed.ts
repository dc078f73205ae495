// SPDX-License-Identifier: GPL-2.0-only
/**
 * Whether a unit reached only through changed headers can compile to
 * different code, decided from its preprocessed text (kbuild's `%.i`) on both
 * sides, before anything is compiled. A catch-up reaches a thousand units
 * through headers and most of them compile to the same bytes: the header's
 * change is in a static inline function, a prototype or a struct the unit
 * never uses. Preprocessing costs a fifth of compiling, so settling those
 * units here saves most of their compile.
 *
 * The rule is deliberately narrow; anything it cannot read is "compile it":
 *
 * - the two texts, without line markers, are the same: the same code;
 * - else the text is cut into top-level chunks (a function definition ends at
 *   its closing brace, everything else at the `;` at depth 0) and the chunks
 *   present on one side only are the change. Each must be a `static` function
 *   definition, a function declaration, or a `struct`/`union` definition
 *   without declarators, none with an attribute that keeps it alive
 *   (`used`, `constructor`, `alias`, ...); the unchanged chunks must come in
 *   the same order on both sides; and no unchanged chunk may name what a
 *   changed one defines (as a whole word anywhere, strings and asm included).
 *   Then the changed declarations are unused by the unit: gcc emits no code for
 *   an unused static function, a prototype nobody calls or a struct nobody
 *   names, and the unit compiles to what it compiled to before.
 *
 * Nothing here parses C fully (no library does it from Node for the kernel's
 * GNU C); the few shapes above are recognised on tokens, and a shape that is
 * not recognised is never settled.
 */

export type Settled = { same: true; why: string } | { same: false; why: string };

const TOKEN = /"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*'|[A-Za-z_$][\w$]*|\d[\w.]*(?:[eEpP][+-][\w.]*)?|\S/g;

/** The tokens of a piece of C (preprocessed: no comments, no directives but line markers, which go). */
export function preprocessedTokens(text: string): string[] {
  return withoutLineMarkers(text).match(TOKEN) ?? [];
}

function withoutLineMarkers(text: string): string {
  return text.replace(/^#\s*(?:\d+|line)\b.*$/gm, '');
}

/** Line markers and blank lines go (gcc writes blank lines instead of a marker when code moves by a few lines). */
function withoutMarkersOrBlankLines(text: string): string {
  return text.replace(/^(?:#\s*(?:\d+|line)\b[^\n]*|[ \t\r\f\v]*)(?:\n|$)/gm, '');
}

/**
 * Top-level chunks of preprocessed text, without line markers and blank
 * lines (the lines themselves come out as written): a chunk whose first
 * top-level `{` follows a `)` (a function definition) ends at its closing
 * `}`, anything else at `;` (depth 0). One pass over the characters, nothing
 * tokenized: a unit's text is megabytes. A chunk cut wrongly is only ever a
 * shape shapeOf() does not recognise, so it is compiled.
 */
export function topLevelChunks(text: string): string[] {
  const t = withoutMarkersOrBlankLines(text);
  const out: string[] = [];
  const n = t.length;
  let start = 0;
  let depth = 0;
  let fn = false; // the chunk's first top-level '{' follows a ')'
  let braced = false;
  let i = 0;
  while (i < n) {
    const c = t.charCodeAt(i);
    if (c === 34 || c === 39) {
      // a string or character literal: nothing inside counts
      i++;
      while (i < n) {
        const d = t.charCodeAt(i);
        if (d === 92) i += 2;
        else if (d === c || d === 10) {
          i++;
          break;
        } else i++;
      }
      continue;
    }
    if (c === 40 || c === 91 || c === 123) {
      if (c === 123 && depth === 0 && !braced) {
        braced = true;
        let j = i - 1;
        while (j >= start && (t.charCodeAt(j) === 32 || t.charCodeAt(j) === 10 || t.charCodeAt(j) === 9)) j--;
        fn = j >= start && t.charCodeAt(j) === 41;
      }
      depth++;
    } else if (c === 41 || c === 93 || c === 125) depth--;
    i++;
    if (depth !== 0) continue;
    if (c === 59 || (c === 125 && fn)) {
      out.push(t.slice(start, i).trim());
      start = i;
      fn = braced = false;
    }
  }
  const last = t.slice(start).trim();
  if (last) out.push(last);
  return out;
}

/** The chunk without its GNU attribute and asm-label groups (`__attribute__((...))`, `__asm__("x")`). */
function withoutAttributes(chunk: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < chunk.length; i++) {
    const t = chunk[i]!;
    if ((t === '__attribute__' || t === '__attribute' || t === '__asm__' || t === 'asm' || t === '__asm') && chunk[i + 1] === '(') {
      let depth = 0;
      let j = i + 1;
      for (; j < chunk.length; j++) {
        if (chunk[j] === '(') depth++;
        else if (chunk[j] === ')' && --depth === 0) break;
      }
      i = j;
      continue;
    }
    out.push(t);
  }
  return out;
}

const OPEN = new Set(['(', '[', '{']);
const CLOSE = new Set([')', ']', '}']);
const IDENT = /^[A-Za-z_$][\w$]*$/;
/** Words that make a chunk something other than a plain function or struct. */
const NOT_PLAIN = new Set(['typedef', 'enum', '=', '_Static_assert', '__extension__']);

interface Shape {
  kind: 'static function' | 'function declaration' | 'struct';
  name: string;
}

/**
 * `[specifiers] NAME ( params ) { body }` or `[specifiers] NAME ( params ) ;`:
 * the specifiers identifiers and `*` only, the first `(` right after NAME.
 */
function functionShape(chunk: readonly string[]): { name: string; definition: boolean; specifiers: string[] } | undefined {
  const c = withoutAttributes(chunk);
  const open = c.indexOf('(');
  if (open < 1) return undefined;
  const name = c[open - 1]!;
  if (!IDENT.test(name)) return undefined;
  const specifiers = c.slice(0, open - 1);
  if (!specifiers.every((s) => IDENT.test(s) || s === '*')) return undefined;
  if (specifiers.some((s) => NOT_PLAIN.has(s)) || ['struct', 'union'].includes(specifiers.at(-1) ?? '')) return undefined;
  let depth = 0;
  let close = open;
  for (; close < c.length; close++) {
    if (c[close] === '(') depth++;
    else if (c[close] === ')' && --depth === 0) break;
  }
  const rest = c.slice(close + 1);
  if (rest.length === 1 && rest[0] === ';') return { name, definition: false, specifiers };
  if (rest[0] !== '{') return undefined;
  // One body, ending the chunk: `f() { ... } g() { ... }` is not one function.
  depth = 0;
  for (let i = 0; i < rest.length; i++) {
    if (OPEN.has(rest[i]!)) depth++;
    else if (CLOSE.has(rest[i]!) && --depth === 0) return i === rest.length - 1 ? { name, definition: true, specifiers } : undefined;
  }
  return undefined;
}

/** Attributes that keep an otherwise unused function or object in the object file. */
const KEEPS = /\b(?:__)?(?:used|constructor|destructor|alias|externally_visible|retain|no_reorder)(?:__)?\b/;

function shapeOf(chunk: readonly string[]): Shape | undefined {
  const text = chunk.join(' ');
  if (KEEPS.test(text)) return undefined;
  const f = functionShape(chunk);
  if (f) {
    if (!f.definition) return f.specifiers.includes('static') || f.specifiers.includes('extern') || !f.specifiers.includes('inline') ? { kind: 'function declaration', name: f.name } : undefined;
    return f.specifiers.includes('static') ? { kind: 'static function', name: f.name } : undefined;
  }
  const c = withoutAttributes(chunk);
  // struct TAG { ... } ;
  if ((c[0] === 'struct' || c[0] === 'union') && IDENT.test(c[1] ?? '') && c[2] === '{' && c.at(-1) === ';' && c.at(-2) === '}') {
    let depth = 0;
    for (let i = 2; i < c.length - 1; i++) {
      if (OPEN.has(c[i]!)) depth++;
      else if (CLOSE.has(c[i]!)) depth--;
      if (depth === 0 && i !== c.length - 2) return undefined; // declarators after the body
    }
    return { kind: 'struct', name: c[1]! };
  }
  return undefined;
}

/** Settle a unit from its two preprocessed texts (see the file comment for the rule). */
export function settleByPreprocessed(orig: string, patched: string): Settled {
  const ca = topLevelChunks(orig);
  const cb = topLevelChunks(patched);
  if (ca.length === cb.length && ca.every((c, i) => c === cb[i])) return { same: true, why: 'preprocessed text identical' };
  const ka = new Set(ca);
  const kb = new Set(cb);
  const changed = [...ca.filter((c) => !kb.has(c)), ...cb.filter((c) => !ka.has(c))];
  const names = new Set<string>();
  const kinds = new Set<string>();
  for (const c of changed) {
    const s = shapeOf(c.match(TOKEN) ?? []);
    if (!s) return { same: false, why: `a change the unit may use: ${c.slice(0, 120)}` };
    names.add(s.name);
    kinds.add(s.kind);
  }
  const keptA = ca.filter((c) => kb.has(c));
  const keptB = cb.filter((c) => ka.has(c));
  if (keptA.length !== keptB.length || keptA.some((k, i) => k !== keptB[i])) return { same: false, why: 'unchanged declarations in another order' };
  const kept = keptA.join('\n');
  for (const n of names) {
    if (new RegExp(`(?<![\\w$])${n.replace(/\$/g, '\\$')}(?![\\w$])`).test(kept)) return { same: false, why: `it uses ${n}, which changed` };
  }
  return { same: true, why: `changed ${[...kinds].sort().join(', ')} it never uses (${[...names].sort().slice(0, 4).join(', ')}${names.size > 4 ? ', ...' : ''})` };
}
