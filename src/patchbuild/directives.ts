// SPDX-License-Identifier: GPL-2.0-only
/**
 * The SUTURE_* lines of a fix (include/suture.h): which functions it
 * replaces and which hints it gives for duplicated names. Read twice: from
 * the source text before anything is compiled (so refusals come first), and
 * from the compiled object's `.discard.suture` records (the truth, after the
 * preprocessor); the two must agree.
 */
import { SutureError } from '../util/errors.js';
import type { CallbackKind } from './generate.js';
import { checkObjectName, checkSymbolName } from '../kernel/symbols/mod.js';

export type Directive =
  | { readonly kind: 'replace'; readonly object: string; readonly oldName: string; readonly newFunction: string; readonly where: string }
  | { readonly kind: 'sympos'; readonly object: string; readonly name: string; readonly pos: number; readonly where: string }
  | { readonly kind: 'near'; readonly object: string; readonly name: string; readonly neighbour: string; readonly where: string }
  | { readonly kind: 'callback'; readonly callback: CallbackKind; readonly object: string; readonly fn: string; readonly where: string };

const MACROS: Readonly<Record<string, { kind: Directive['kind']; args: string[] }>> = {
  SUTURE_REPLACE: { kind: 'replace', args: ['old_name', 'new_function'] },
  SUTURE_REPLACE_MODULE: { kind: 'replace', args: ['module', 'old_name', 'new_function'] },
  SUTURE_SYMPOS: { kind: 'sympos', args: ['object', 'name', 'pos'] },
  SUTURE_SYMBOL_NEAR: { kind: 'near', args: ['object', 'name', 'neighbour'] },
  SUTURE_PRE_PATCH_CALLBACK: { kind: 'callback', args: ['object', 'function'] },
  SUTURE_POST_PATCH_CALLBACK: { kind: 'callback', args: ['object', 'function'] },
  SUTURE_PRE_UNPATCH_CALLBACK: { kind: 'callback', args: ['object', 'function'] },
  SUTURE_POST_UNPATCH_CALLBACK: { kind: 'callback', args: ['object', 'function'] },
};

/** Blank out comments and string/char literals, keeping every newline (so line numbers stay right). */
export function stripComments(text: string): string {
  let out = '';
  let i = 0;
  const n = text.length;
  while (i < n) {
    const c = text[i]!;
    const d = text[i + 1];
    if (c === '/' && d === '*') {
      const end = text.indexOf('*/', i + 2);
      const stop = end < 0 ? n : end + 2;
      out += text.slice(i, stop).replace(/[^\n]/g, ' ');
      i = stop;
    } else if (c === '/' && d === '/') {
      let stop = text.indexOf('\n', i);
      if (stop < 0) stop = n;
      out += ' '.repeat(stop - i);
      i = stop;
    } else if (c === '"' || c === "'") {
      let j = i + 1;
      while (j < n && text[j] !== c && text[j] !== '\n') j += text[j] === '\\' ? 2 : 1;
      // Keep the literal (macro arguments may be quoted names); it cannot hide a comment.
      out += text.slice(i, Math.min(j + 1, n));
      i = j + 1;
    } else {
      out += c;
      i++;
    }
  }
  return out;
}

/** Object names as the kernel spells them: vmlinux, or the module name with '-' as '_'. */
export function normalizeObject(name: string): string {
  return name === 'vmlinux' ? name : name.replace(/-/g, '_');
}

function unquote(s: string): string {
  const t = s.trim();
  return t.length >= 2 && t.startsWith('"') && t.endsWith('"') ? t.slice(1, -1) : t.replace(/\s+/g, '');
}

function build(macro: string, args: string[], where: string): Directive {
  const spec = MACROS[macro]!;
  if (args.length !== spec.args.length || args.some((a) => a.trim() === '')) {
    throw new SutureError('usage', `${where}: ${macro} takes (${spec.args.join(', ')}), got (${args.map((a) => a.trim()).join(', ')})`, {
      hint: 'see include/suture.h',
    });
  }
  const a = args.map(unquote);
  const obj = (s: string) => {
    const o = normalizeObject(s);
    checkObjectName(o, `${where}: ${macro}`);
    return o;
  };
  const sym = (s: string) => {
    checkSymbolName(s, `${where}: ${macro}`);
    if (!/^[A-Za-z_.$][A-Za-z0-9_.$]*$/.test(s)) {
      throw new SutureError('usage', `${where}: ${macro}: '${s}' is not a symbol name`, { hint: 'give the name as kallsyms lists it' });
    }
    return s;
  };
  switch (spec.kind) {
    case 'replace': {
      const [object, oldName, newFunction] = a.length === 3 ? (a as [string, string, string]) : (['vmlinux', a[0]!, a[1]!] as const);
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(newFunction)) {
        throw new SutureError('usage', `${where}: ${macro}: '${newFunction}' is not a C function name`, { hint: 'name the new function defined above this line' });
      }
      return { kind: 'replace', object: obj(object), oldName: sym(oldName), newFunction, where };
    }
    case 'sympos': {
      const pos = Number(a[2]);
      if (!/^\d+$/.test(a[2]!) || !Number.isSafeInteger(pos)) {
        throw new SutureError('usage', `${where}: SUTURE_SYMPOS: position '${a[2]}' is not a whole number`, {
          hint: '0 when the name is unique in the object, else the copy number in kallsyms order (1 is the first)',
        });
      }
      return { kind: 'sympos', object: obj(a[0]!), name: sym(a[1]!), pos, where };
    }
    case 'near':
      return { kind: 'near', object: obj(a[0]!), name: sym(a[1]!), neighbour: sym(a[2]!), where };
    case 'callback': {
      const callback = macro.replace(/^SUTURE_/, '').replace(/_CALLBACK$/, '').toLowerCase() as CallbackKind;
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(a[1]!)) {
        throw new SutureError('usage', `${where}: ${macro}: '${a[1]}' is not a C function name`, { hint: 'name the callback function defined above this line' });
      }
      return { kind: 'callback', callback, object: obj(a[0]!), fn: a[1]!, where };
    }
  }
}

/** Split macro arguments at top-level commas. */
function splitArgs(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = '';
  for (const c of s) {
    if (c === '(') depth++;
    else if (c === ')') depth--;
    if (c === ',' && depth === 0) {
      out.push(cur);
      cur = '';
    } else cur += c;
  }
  out.push(cur);
  return out;
}

/**
 * The SUTURE_* uses in a C source, with `file:line`. Lines of preprocessor
 * directives (`#define ...`) are not uses.
 */
export function scanDirectives(text: string, file: string): Directive[] {
  const clean = stripComments(text);
  const out: Directive[] = [];
  const re = /\b(SUTURE_REPLACE_MODULE|SUTURE_REPLACE|SUTURE_SYMPOS|SUTURE_SYMBOL_NEAR|SUTURE_(?:PRE|POST)_(?:UN)?PATCH_CALLBACK)\s*\(/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(clean)) !== null) {
    const lineStart = clean.lastIndexOf('\n', m.index) + 1;
    const line = clean.slice(0, m.index).split('\n').length;
    // Inside a preprocessor directive (possibly continued with backslashes): a definition, not a use.
    let l = lineStart;
    let inDirective = false;
    for (;;) {
      if (/^\s*#/.test(clean.slice(l, clean.indexOf('\n', l) < 0 ? undefined : clean.indexOf('\n', l)))) inDirective = true;
      if (l === 0) break;
      const prevEnd = l - 1;
      const prevStart = clean.lastIndexOf('\n', prevEnd - 1) + 1;
      if (!clean.slice(prevStart, prevEnd).trimEnd().endsWith('\\')) break;
      l = prevStart;
    }
    if (inDirective) continue;
    let depth = 1;
    let j = m.index + m[0].length;
    while (j < clean.length && depth > 0) {
      if (clean[j] === '(') depth++;
      else if (clean[j] === ')') depth--;
      j++;
    }
    const where = `${file}:${line}`;
    if (depth !== 0) throw new SutureError('usage', `${where}: ${m[1]}( is not closed`, { hint: 'see include/suture.h' });
    out.push(build(m[1]!, splitArgs(clean.slice(m.index + m[0].length, j - 1)), where));
    re.lastIndex = j;
  }
  return out;
}

const RECORD_MACRO: Readonly<Record<string, string>> = {
  replace: 'SUTURE_REPLACE_MODULE',
  sympos: 'SUTURE_SYMPOS',
  near: 'SUTURE_SYMBOL_NEAR',
};

/**
 * The records include/suture.h leaves in `.discard.suture`: NUL-terminated
 * strings `suture <kind> <args...>`.
 */
export function parseRecords(data: Uint8Array, file: string): Directive[] {
  const out: Directive[] = [];
  const text = Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('latin1');
  for (const rec of text.split('\0')) {
    if (rec === '') continue;
    const words = rec.split(' ');
    if (words[0] === 'suture' && words[1] === 'callback' && /^(pre|post)_(un)?patch$/.test(words[2] ?? '')) {
      out.push(build(`SUTURE_${words[2]!.toUpperCase()}_CALLBACK`, words.slice(3), `${file} (compiled)`));
      continue;
    }
    const macro = RECORD_MACRO[words[1] ?? ''];
    if (words[0] !== 'suture' || macro === undefined) {
      throw new SutureError('invalid-input', `${file}: .discard.suture holds a record suture does not know: ${JSON.stringify(rec.slice(0, 80))}`, {
        hint: 'use the suture.h that suture puts on the include path, not a copy',
      });
    }
    out.push(build(macro, words.slice(2), `${file} (compiled)`));
  }
  return out;
}

/** A key that identifies a directive regardless of where it was read. */
export function directiveKey(d: Directive): string {
  switch (d.kind) {
    case 'replace':
      return `replace ${d.object} ${d.oldName} ${d.newFunction}`;
    case 'sympos':
      return `sympos ${d.object} ${d.name} ${d.pos}`;
    case 'near':
      return `near ${d.object} ${d.name} ${d.neighbour}`;
    case 'callback':
      return `callback ${d.callback} ${d.object} ${d.fn}`;
  }
}

/**
 * Check the directives as a whole: each function replaced once, each hint
 * given once per (object, name), at least one replacement.
 */
export function checkDirectives(ds: readonly Directive[], file: string): void {
  const seen = new Map<string, string>();
  for (const d of ds) {
    const key = d.kind === 'replace' ? `replace ${d.object} ${d.oldName}` : d.kind === 'callback' ? `callback ${d.object} ${d.callback}` : `hint ${d.object} ${d.name}`;
    const prev = seen.get(key);
    if (prev !== undefined) {
      const what = d.kind === 'replace' ? `${d.object}'s ${d.oldName} is already replaced` : d.kind === 'callback' ? `${d.object} already has a ${d.callback} callback` : `a hint for ${d.name} in ${d.object} is already given`;
      throw new SutureError('usage', `${d.where}: ${what} at ${prev}`, {
        hint: d.kind === 'callback' ? "the kernel's klp_object has one callback of each kind: call the second from the first" : 'keep one line per function and per hint',
      });
    }
    seen.set(key, d.where);
  }
  if (!ds.some((d) => d.kind === 'replace' || d.kind === 'callback')) {
    throw new SutureError('usage', `${file} replaces no function: it has no SUTURE_REPLACE or SUTURE_REPLACE_MODULE line`, {
      hint: 'add #include <suture.h> and one line per replaced function, e.g. SUTURE_REPLACE(cmdline_proc_show, my_cmdline_proc_show);',
    });
  }
}
