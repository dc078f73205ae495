// SPDX-License-Identifier: GPL-2.0-only
/**
 * The one error type of the ELF module. Every message names the file (when
 * known), the section (index and name when known) and the file offset in hex.
 */
import { SutureError, type ErrorKind } from '../util/errors.js';

/** Where in an ELF file a problem was found. All fields are optional. */
export interface ElfLocation {
  /** Path or label of the file, for messages. */
  file?: string | undefined;
  /** Section header index. */
  sectionIndex?: number | undefined;
  /** Section name, if it could be read. */
  sectionName?: string | undefined;
  /** Byte offset in the file. */
  offset?: number | bigint | undefined;
}

/** Format a number as 0x-prefixed hex. */
export function hex(n: number | bigint): string {
  return `0x${n.toString(16)}`;
}

/** Render a section reference the way messages use it: `section [3] '.rela.text'`. */
export function sectionLabel(index: number | undefined, name: string | undefined): string {
  if (index === undefined) return name === undefined ? 'section' : `section '${name}'`;
  return name === undefined || name === '' ? `section [${index}]` : `section [${index}] '${name}'`;
}

/**
 * A malformed or unsupported ELF file (kind 'invalid-input'), or a model
 * that cannot be written (kind 'internal' when it is a caller bug).
 *
 * @example
 * try { parseElf(bytes) } catch (e) { if (e instanceof ElfError) console.error(e.message) }
 */
export class ElfError extends SutureError {
  readonly location: ElfLocation;

  constructor(message: string, location: ElfLocation = {}, kind: ErrorKind = 'invalid-input') {
    super(kind, ElfError.format(message, location));
    this.name = 'ElfError';
    this.location = location;
  }

  private static format(message: string, loc: ElfLocation): string {
    const parts: string[] = [];
    if (loc.file !== undefined) parts.push(loc.file);
    if (loc.sectionIndex !== undefined || loc.sectionName !== undefined) {
      parts.push(sectionLabel(loc.sectionIndex, loc.sectionName));
    }
    if (loc.offset !== undefined) parts.push(`offset ${hex(loc.offset)}`);
    return parts.length === 0 ? message : `${parts.join(', ')}: ${message}`;
  }
}
