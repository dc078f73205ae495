// SPDX-License-Identifier: GPL-2.0-only
/**
 * Module.symvers: every exported symbol of the kernel build, one per line,
 * tab-separated: `<crc> <name> <module> <export type> [<namespace>]`. The
 * module column is `vmlinux` or the module's path without `.ko`
 * (`fs/binfmt_misc`); its basename, with '-' as '_', is the module's name.
 */
import { SutureError } from '../../util/errors.js';

export interface ExportedSymbol {
  readonly name: string;
  /** The MODVERSIONS CRC (0 when the kernel has no MODVERSIONS). */
  readonly crc: number;
  /** 'vmlinux' or a module name (`binfmt_misc`). */
  readonly object: string;
  /** The module column as written (`vmlinux`, `fs/binfmt_misc`). */
  readonly path: string;
  /** EXPORT_SYMBOL, EXPORT_SYMBOL_GPL, ... */
  readonly exportType: string;
  /** The symbol namespace ('' when none). */
  readonly namespace: string;
}

export class Exports {
  readonly #byName = new Map<string, ExportedSymbol>();

  constructor(symbols: Iterable<ExportedSymbol>) {
    for (const s of symbols) this.#byName.set(s.name, s);
  }

  /** Parse the text of Module.symvers; a malformed line is an error naming file and line. */
  static parse(text: string, file = 'Module.symvers'): Exports {
    const out: ExportedSymbol[] = [];
    let lineNo = 0;
    for (const line of text.split('\n')) {
      lineNo++;
      if (line.trim() === '') continue;
      const f = line.split('\t');
      const crc = /^0x[0-9a-fA-F]{1,8}$/.test(f[0] ?? '') ? Number(f[0]) : NaN;
      if (f.length < 4 || Number.isNaN(crc) || !f[1] || !f[2] || !f[3]) {
        throw new SutureError('invalid-input', `${file}:${lineNo}: not a Module.symvers line: ${JSON.stringify(line.slice(0, 120))}`, {
          hint: 'the headers package is damaged: run `suture kernel fetch` again for this kernel',
        });
      }
      out.push({ name: f[1], crc, object: objectOfPath(f[2]), path: f[2], exportType: f[3], namespace: f[4] ?? '' });
    }
    return new Exports(out);
  }

  get(name: string): ExportedSymbol | undefined {
    return this.#byName.get(name);
  }

  /** The export of `name` by vmlinux, if vmlinux exports it. */
  vmlinux(name: string): ExportedSymbol | undefined {
    const e = this.#byName.get(name);
    return e?.object === 'vmlinux' ? e : undefined;
  }

  get size(): number {
    return this.#byName.size;
  }
}

/** `fs/binfmt_misc` → `binfmt_misc`; `vmlinux` stays. */
export function objectOfPath(path: string): string {
  if (path === 'vmlinux') return path;
  return path.split('/').pop()!.replace(/\.ko$/, '').replace(/-/g, '_');
}
