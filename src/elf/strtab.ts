// SPDX-License-Identifier: GPL-2.0-only
/**
 * Builds the content of one string table during layout. It either starts
 * from the table's input bytes (keeping every existing offset and appending
 * only names that are not there yet) or from a single NUL (fresh layout).
 */
import { ElfError } from './errors.js';
import type { NameOrigin, StringTableSection } from './model.js';

export class StringTableBuilder {
  readonly table: StringTableSection;
  /** True when the input bytes are kept and names are appended after them. */
  readonly keepOriginal: boolean;
  private readonly base: Uint8Array;
  private baseText: string | undefined;
  private readonly added = new Map<string, number>();
  private readonly addedParts: string[] = [];
  private size: number;

  constructor(table: StringTableSection, keepOriginal: boolean) {
    this.table = table;
    this.keepOriginal = keepOriginal;
    this.base = this.keepOriginal ? table.original : Uint8Array.of(0);
    this.size = this.base.length;
    if (!this.keepOriginal) this.added.set('', 0);
  }

  /**
   * The offset of `name` in the table. A name whose origin is this table and
   * that is unchanged keeps its input offset.
   */
  offsetOf(name: string, origin: NameOrigin | null, owner: { toString(): string }): number {
    if (this.keepOriginal) {
      if (origin !== null && origin.table === this.table && origin.name === name) return origin.offset;
      if (name === '' && this.base.length > 0 && this.base[0] === 0) return 0;
    }
    const known = this.added.get(name);
    if (known !== undefined) return known;
    if (this.keepOriginal) {
      // A name already present (as a whole string or as the tail of one) is shared.
      this.baseText ??= Buffer.from(this.base.buffer, this.base.byteOffset, this.base.byteLength).toString('latin1');
      const at = this.baseText.indexOf(`${name}\0`);
      if (at >= 0) {
        this.added.set(name, at);
        return at;
      }
    }
    checkName(name, owner);
    const offset = this.size;
    this.added.set(name, offset);
    this.addedParts.push(name);
    this.size += name.length + 1;
    return offset;
  }

  /** The finished table. Call after every offsetOf(). */
  bytes(): Uint8Array {
    if (this.addedParts.length === 0) return this.base;
    const out = new Uint8Array(this.size);
    out.set(this.base, 0);
    const tail = Buffer.from(this.addedParts.join('\0') + '\0', 'latin1');
    out.set(tail, this.base.length);
    return out;
  }

  get length(): number {
    return this.size;
  }
}

function checkName(name: string, owner: { toString(): string }): void {
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c === 0 || c > 0xff) {
      throw new ElfError(
        `the name of ${String(owner)} contains ${c === 0 ? 'a NUL' : `the character U+${c.toString(16)}`}, which a string table cannot hold (names are byte strings)`,
        {},
        'internal',
      );
    }
  }
}
