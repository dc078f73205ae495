// SPDX-License-Identifier: GPL-2.0-only
/**
 * The first stage of `suture build --source fix.c`: the fix's text and its
 * SUTURE_* lines (directives.ts), the module's name and output file, each
 * checked against the kernel's limits before anything is compiled.
 */
import { readFileSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import { SutureError, fsError } from '../util/errors.js';
import { checkDirectives, scanDirectives, type Directive } from './directives.js';
import { checkModuleName } from './generate.js';
import { defaultModuleName } from './link.js';

export interface Fix {
  /** The author's file, absolute. */
  readonly source: string;
  /** Its name, as messages say it. */
  readonly label: string;
  readonly name: string;
  /** The .ko to write, absolute. */
  readonly output: string;
  /** Its SUTURE_* lines, as written. */
  readonly directives: readonly Directive[];
  /** The modules it patches (SUTURE_REPLACE_MODULE, callbacks of a module). */
  readonly targets: readonly string[];
}

/** The default module name for a fix file: livepatch_<stem> (link.ts). */
export function defaultSourceModuleName(source: string): string {
  return defaultModuleName(basename(source).replace(/\.[^.]*$/, ''));
}

/** Read and check a fix: its name, its output file, its SUTURE_* lines (a hint may name only a patched object). */
export function readFix(opts: { source: string; name?: string | undefined; output?: string | undefined }): Fix {
  const source = resolve(opts.source);
  let text: string;
  try {
    text = readFileSync(source, 'utf8');
  } catch (e) {
    throw fsError(e, 'reading the fix', opts.source);
  }
  const label = basename(source);
  const name = opts.name ?? (opts.output ? basename(opts.output).replace(/\.ko$/, '') : defaultSourceModuleName(source));
  checkModuleName(name, opts.name ? '--name' : 'module name');
  const output = resolve(opts.output ?? `${name}.ko`);
  if (!output.endsWith('.ko')) throw new SutureError('usage', `-o ${opts.output}: a kernel module file must end in .ko`);
  const directives = scanDirectives(text, label);
  checkDirectives(directives, label);
  const targets = [...new Set(directives.flatMap((d) => ((d.kind === 'replace' || d.kind === 'callback') && d.object !== 'vmlinux' ? [d.object] : [])))];
  for (const d of directives) {
    if ((d.kind === 'sympos' || d.kind === 'near') && d.object !== 'vmlinux' && !targets.includes(d.object)) {
      throw new SutureError('usage', `${d.where}: a hint for ${d.name} in ${d.object}, but the fix replaces no function of ${d.object}`, {
        hint: `a patch can use a module's symbols only for a module it patches: add SUTURE_REPLACE_MODULE(${d.object}, ...) or name vmlinux`,
      });
    }
  }
  return { source, label, name, output, directives, targets };
}
