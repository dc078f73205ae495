// SPDX-License-Identifier: GPL-2.0-only
/**
 * A small read-only view of an ELF64 x86_64 *executable* (ET_EXEC/ET_DYN):
 * section headers by name and program headers, to read bytes at a virtual
 * address. The object model (ElfView/ElfObject) is for relocatable objects;
 * this is for looking into linked images.
 */
import { ElfError, hex } from './errors.js';

export interface ExecSection {
  index: number;
  name: string;
  type: number;
  flags: bigint;
  addr: bigint;
  offset: number;
  size: number;
}

export interface ExecSegment {
  type: number;
  offset: number;
  vaddr: bigint;
  filesz: number;
  memsz: number;
  flags: number;
}

const PT_LOAD = 1;

export class ExecView {
  readonly sections: ExecSection[] = [];
  readonly segments: ExecSegment[] = [];
  private readonly dv: DataView;

  private constructor(readonly bytes: Uint8Array, readonly file: string | undefined) {
    this.dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  static parse(bytes: Uint8Array, file?: string): ExecView {
    const v = new ExecView(bytes, file);
    v.read();
    return v;
  }

  private fail(message: string, offset?: number): never {
    throw new ElfError(message, { file: this.file, offset });
  }

  private need(offset: number, size: number, what: string): void {
    if (offset < 0 || size < 0 || offset + size > this.bytes.length) {
      this.fail(`${what} (${size} bytes) lies outside the file of ${this.bytes.length} bytes`, offset);
    }
  }

  private read(): void {
    const b = this.bytes;
    this.need(0, 64, 'the ELF header');
    if (b[0] !== 0x7f || b[1] !== 0x45 || b[2] !== 0x4c || b[3] !== 0x46) this.fail('not an ELF file (bad magic)', 0);
    if (b[4] !== 2 || b[5] !== 1) this.fail('not a little-endian ELF64 file', 4);
    const type = this.dv.getUint16(16, true);
    if (type !== 2 && type !== 3) this.fail(`not an executable (e_type ${type})`, 16);
    if (this.dv.getUint16(18, true) !== 62) this.fail(`not an x86_64 file (e_machine ${this.dv.getUint16(18, true)})`, 18);
    const phoff = Number(this.dv.getBigUint64(32, true));
    const shoff = Number(this.dv.getBigUint64(40, true));
    const phentsize = this.dv.getUint16(54, true);
    const phnum = this.dv.getUint16(56, true);
    const shentsize = this.dv.getUint16(58, true);
    const shnum = this.dv.getUint16(60, true);
    const shstrndx = this.dv.getUint16(62, true);
    if (phnum) {
      if (phentsize < 56) this.fail(`program header entries of ${phentsize} bytes are too small`, 54);
      this.need(phoff, phnum * phentsize, 'the program header table');
      for (let i = 0; i < phnum; i++) {
        const o = phoff + i * phentsize;
        this.segments.push({
          type: this.dv.getUint32(o, true),
          flags: this.dv.getUint32(o + 4, true),
          offset: Number(this.dv.getBigUint64(o + 8, true)),
          vaddr: this.dv.getBigUint64(o + 16, true),
          filesz: Number(this.dv.getBigUint64(o + 32, true)),
          memsz: Number(this.dv.getBigUint64(o + 40, true)),
        });
      }
    }
    if (shnum && shoff) {
      if (shentsize < 64) this.fail(`section header entries of ${shentsize} bytes are too small`, 58);
      this.need(shoff, shnum * shentsize, 'the section header table');
      const raw = [];
      for (let i = 0; i < shnum; i++) {
        const o = shoff + i * shentsize;
        raw.push({
          nameOff: this.dv.getUint32(o, true),
          type: this.dv.getUint32(o + 4, true),
          flags: this.dv.getBigUint64(o + 8, true),
          addr: this.dv.getBigUint64(o + 16, true),
          offset: Number(this.dv.getBigUint64(o + 24, true)),
          size: Number(this.dv.getBigUint64(o + 32, true)),
        });
      }
      const strtab = raw[shstrndx];
      if (!strtab) this.fail(`e_shstrndx ${shstrndx} is not a section`, 62);
      if (strtab.type !== 8) this.need(strtab.offset, strtab.size, 'the section name table');
      raw.forEach((s, index) => {
        let end = strtab.offset + s.nameOff;
        while (end < strtab.offset + strtab.size && b[end] !== 0) end++;
        const name = Buffer.from(b.subarray(strtab.offset + s.nameOff, end)).toString('latin1');
        if (s.type !== 8 /* NOBITS */) this.need(s.offset, s.size, `section [${index}] '${name}'`);
        this.sections.push({ index, name, type: s.type, flags: s.flags, addr: s.addr, offset: s.offset, size: s.size });
      });
    }
  }

  section(name: string): ExecSection | undefined {
    return this.sections.find((s) => s.name === name);
  }

  sectionData(s: ExecSection): Uint8Array {
    return this.bytes.subarray(s.offset, s.offset + s.size);
  }

  /** The file bytes at a virtual address (inside one PT_LOAD segment's file image). */
  bytesAt(addr: bigint, size: number): Uint8Array {
    for (const seg of this.segments) {
      if (seg.type !== PT_LOAD) continue;
      if (addr >= seg.vaddr && addr + BigInt(size) <= seg.vaddr + BigInt(seg.filesz)) {
        const off = seg.offset + Number(addr - seg.vaddr);
        return this.bytes.subarray(off, off + size);
      }
    }
    throw new ElfError(`no loaded segment holds ${size} bytes at address ${hex(addr)}`, { file: this.file });
  }
}
