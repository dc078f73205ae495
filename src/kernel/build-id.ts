// SPDX-License-Identifier: GPL-2.0-only
/**
 * The GNU build ID of a kernel build (an `NT_GNU_BUILD_ID` note, owner "GNU",
 * type 3): what tells two builds of one release apart, when `uname -r` and
 * vermagic are equal. The host reads it from /sys/kernel/notes (the raw note
 * section of the running kernel); the build reads it from the PT_NOTE
 * segments of the fetched image's vmlinux. Pure functions on bytes: the host
 * side imports this file, so it imports nothing else.
 */

const NT_GNU_BUILD_ID = 3;

/** The GNU build ID in a buffer of ELF notes (4-byte aligned), as lower-case hex; undefined if there is none. */
export function gnuBuildIdFromNotes(notes: Uint8Array): string | undefined {
  const b = Buffer.from(notes.buffer, notes.byteOffset, notes.byteLength);
  const align4 = (n: number) => (n + 3) & ~3;
  let at = 0;
  while (at + 12 <= b.length) {
    const namesz = b.readUInt32LE(at);
    const descsz = b.readUInt32LE(at + 4);
    const type = b.readUInt32LE(at + 8);
    const nameAt = at + 12;
    const descAt = nameAt + align4(namesz);
    const next = descAt + align4(descsz);
    if (namesz > b.length || descsz > b.length || next > b.length) return undefined;
    const name = b.toString('latin1', nameAt, nameAt + namesz).replace(/\0+$/, '');
    if (name === 'GNU' && type === NT_GNU_BUILD_ID && descsz > 0) return b.toString('hex', descAt, descAt + descsz);
    if (next <= at) return undefined;
    at = next;
  }
  return undefined;
}

/** The GNU build ID of an ELF64 little-endian executable (vmlinux), from its PT_NOTE segments. */
export function elfGnuBuildId(elf: Uint8Array): string | undefined {
  const b = Buffer.from(elf.buffer, elf.byteOffset, elf.byteLength);
  if (b.length < 64 || b.readUInt32BE(0) !== 0x7f454c46 || b[4] !== 2 || b[5] !== 1) return undefined;
  const phoff = Number(b.readBigUInt64LE(0x20));
  const phentsize = b.readUInt16LE(0x36);
  const phnum = b.readUInt16LE(0x38);
  if (phentsize < 56 || phoff + phnum * phentsize > b.length) return undefined;
  for (let i = 0; i < phnum; i++) {
    const ph = phoff + i * phentsize;
    if (b.readUInt32LE(ph) !== 4 /* PT_NOTE */) continue;
    const offset = Number(b.readBigUInt64LE(ph + 8));
    const filesz = Number(b.readBigUInt64LE(ph + 32));
    if (offset + filesz > b.length) continue;
    const id = gnuBuildIdFromNotes(b.subarray(offset, offset + filesz));
    if (id) return id;
  }
  return undefined;
}
