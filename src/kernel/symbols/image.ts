// SPDX-License-Identifier: GPL-2.0-only
/**
 * The shipped kernel image's code, read where the kallsyms addresses point:
 * `vmlinuz` is a bzImage whose payload is the compressed vmlinux ELF
 * (stripped, but with its program headers), at the addresses of a nokaslr
 * boot. suture decompresses it once per workspace (to `symbols/vmlinux`)
 * and reads function bytes from it: to check that ftrace can patch a
 * function (a `call __fentry__` at its first byte, listed in
 * `__mcount_loc`), and to see which symbols a function's code refers to.
 */
import { ftraceSiteOffset, NOP5 } from '../../elf/mod.js';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { SutureError, fsError } from '../../util/errors.js';
import { requireTool, run } from '../../util/exec.js';
import { elfGnuBuildId } from '../build-id.js';
import { isTextType, type KallsymsEntry, type VmlinuxSymbols } from './kallsyms.js';

interface Segment {
  readonly vaddr: bigint;
  readonly offset: number;
  readonly filesz: number;
}

const XZ_MAGIC = Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]);
const GZIP_MAGIC = Buffer.from([0x1f, 0x8b, 0x08]);
const ZSTD_MAGIC = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);
const ELF_MAGIC = Buffer.from([0x7f, 0x45, 0x4c, 0x46]);


/**
 * The compressed payload of a bzImage, found by its setup header
 * (`payload_offset`/`payload_length`, boot protocol 2.08+), else by scanning
 * for a known magic the way scripts/extract-vmlinux does.
 */
function bzImagePayload(img: Buffer): Buffer | undefined {
  if (img.length > 0x250 && img.readUInt32LE(0x202) === 0x53726448 /* "HdrS" */ && img.readUInt16LE(0x206) >= 0x208) {
    const setupSects = img[0x1f1] || 4;
    const start = (setupSects + 1) * 512 + img.readUInt32LE(0x248);
    const len = img.readUInt32LE(0x24c);
    if (len > 0 && start + len <= img.length) return img.subarray(start, start + len);
  }
  for (const magic of [XZ_MAGIC, ZSTD_MAGIC, GZIP_MAGIC]) {
    const at = img.indexOf(magic);
    if (at >= 0) return img.subarray(at);
  }
  return undefined;
}

/**
 * Decompress the vmlinux ELF out of a bzImage into `out` (written atomically).
 * XZ (Debian 12) and zstd (Debian 13: CONFIG_KERNEL_ZSTD) payloads go through
 * `xz --single-stream` and `zstd`; gzip is decompressed in-process. The
 * kernel appends the decompressed size (4 bytes) after the stream.
 */
export async function extractVmlinux(vmlinuz: string, out: string): Promise<void> {
  let img: Buffer;
  try {
    img = readFileSync(vmlinuz);
  } catch (e) {
    throw fsError(e, 'reading the kernel image', vmlinuz);
  }
  mkdirSync(dirname(out), { recursive: true });
  const tmp = `${out}.tmp`;
  const payload = bzImagePayload(img);
  const starts = (m: Buffer) => payload !== undefined && payload.subarray(0, m.length).equals(m);
  const viaTool = async (name: 'xz' | 'zstd', data: Buffer, argv: string[]) => {
    requireTool(name);
    const packed = `${tmp}.${name === 'xz' ? 'xz' : 'zst'}`;
    writeFileSync(packed, data);
    const r = await run([name, ...argv, packed]);
    rmSync(packed, { force: true });
    if (r.code !== 0) {
      rmSync(tmp, { force: true });
      throw new SutureError('invalid-input', `decompressing the ${name} payload of ${vmlinuz} failed (${name} exit ${r.code})`, {
        details: r.stderr.trim(),
        hint: 'the image is damaged: run `suture kernel fetch` again for this kernel',
      });
    }
  };
  if (payload && starts(XZ_MAGIC)) {
    await viaTool('xz', payload, ['-d', '-k', '-f', '-q', '--single-stream']);
  } else if (payload && starts(ZSTD_MAGIC)) {
    await viaTool('zstd', payload.subarray(0, payload.length - 4), ['-d', '-f', '-q', '-o', tmp]);
  } else if (payload && starts(GZIP_MAGIC)) {
    writeFileSync(tmp, gunzipSync(payload, { finishFlush: 2 /* Z_SYNC_FLUSH: ignore the bytes after the stream */ }));
  } else {
    throw new SutureError('invalid-input', `${vmlinuz} has no XZ, zstd or gzip payload suture can decompress`, {
      hint: 'suture reads bzImages compressed with XZ (Debian 12), zstd (Debian 13) or gzip',
    });
  }
  const head = readFileSync(tmp).subarray(0, 4);
  if (!head.equals(ELF_MAGIC)) {
    rmSync(tmp, { force: true });
    throw new SutureError('invalid-input', `the payload of ${vmlinuz} is not an ELF file`, {
      hint: 'the image is damaged: run `suture kernel fetch` again for this kernel',
    });
  }
  renameSync(tmp, out);
}

/** The decompressed vmlinux: its loaded segments, read by virtual address. */
export class KernelImage {
  readonly file: string;
  readonly #bytes: Buffer;
  readonly #segments: Segment[];

  private constructor(file: string, bytes: Buffer, segments: Segment[]) {
    this.file = file;
    this.#bytes = bytes;
    this.#segments = segments;
  }

  /**
   * The image of a workspace: `vmlinux` is decompressed from `vmlinuz` the
   * first time (about 1.5 s for Debian 6.1) and kept next to the symbols.
   */
  static async load(vmlinuz: string, cached: string): Promise<KernelImage> {
    if (!existsSync(cached)) await extractVmlinux(vmlinuz, cached);
    return KernelImage.fromBytes(readFileSync(cached), cached);
  }

  /** Read the program headers of an x86_64 ELF64 executable. */
  static fromBytes(bytes: Buffer, file = 'vmlinux'): KernelImage {
    const bad = (what: string) =>
      new SutureError('invalid-input', `${file}: ${what}`, { hint: 'remove it; suture decompresses it again from vmlinuz' });
    if (bytes.length < 64 || !bytes.subarray(0, 4).equals(ELF_MAGIC)) throw bad('not an ELF file');
    if (bytes[4] !== 2 || bytes[5] !== 1 || bytes.readUInt16LE(0x12) !== 62) throw bad('not an x86_64 ELF64 little-endian file');
    const phoff = Number(bytes.readBigUInt64LE(0x20));
    const phentsize = bytes.readUInt16LE(0x36);
    const phnum = bytes.readUInt16LE(0x38);
    if (phoff + phnum * phentsize > bytes.length || phentsize < 56) throw bad('program headers lie outside the file');
    const segments: Segment[] = [];
    for (let i = 0; i < phnum; i++) {
      const at = phoff + i * phentsize;
      if (bytes.readUInt32LE(at) !== 1 /* PT_LOAD */) continue;
      const offset = Number(bytes.readBigUInt64LE(at + 8));
      const vaddr = bytes.readBigUInt64LE(at + 16);
      const filesz = Number(bytes.readBigUInt64LE(at + 32));
      if (offset + filesz > bytes.length) throw bad(`segment ${i} lies outside the file`);
      segments.push({ vaddr, offset, filesz });
    }
    if (segments.length === 0) throw bad('no loadable segments');
    return new KernelImage(file, bytes, segments);
  }

  /** The image's GNU build ID (lower-case hex), what /sys/kernel/notes shows on a host running this build. */
  gnuBuildId(): string | undefined {
    return elfGnuBuildId(this.#bytes);
  }

  /** `length` bytes at a virtual address, or undefined when they are not all in one loaded segment. */
  read(address: bigint, length: number): Uint8Array | undefined {
    for (const s of this.#segments) {
      if (address < s.vaddr) continue;
      const rel = address - s.vaddr;
      if (rel + BigInt(length) > BigInt(s.filesz)) continue;
      const at = s.offset + Number(rel);
      return this.#bytes.subarray(at, at + length);
    }
    return undefined;
  }

  /** The NUL-terminated string at an address (at most `max` bytes), or undefined. */
  cString(address: bigint, max = 512): string | undefined {
    for (let n = max; n > 0; n = n >> 1) {
      const b = this.read(address, n);
      if (!b) continue;
      const end = b.indexOf(0);
      return Buffer.from(end < 0 ? b : b.subarray(0, end)).toString('latin1');
    }
    return undefined;
  }
}

/** What the image says about a vmlinux function's ftrace call site. */
export interface FtraceSite {
  /** Its first instruction is `call __fentry__` (or the NOP5 that replaces it). */
  readonly fentryCall: boolean;
  /** `__mcount_loc` lists its address (ftrace will manage the site). */
  readonly mcountLoc: boolean;
  /** Its first bytes, hex, for messages. */
  readonly firstBytes: string;
}

/** The kernel's ftrace call-site table (`__start_mcount_loc` .. `__stop_mcount_loc`), sorted. */
export class McountTable {
  readonly #sites: BigUint64Array;

  constructor(sites: BigUint64Array) {
    this.#sites = sites.slice().sort();
  }

  static fromImage(image: KernelImage, syms: VmlinuxSymbols): McountTable {
    const start = syms.first('__start_mcount_loc')?.address;
    const stop = syms.first('__stop_mcount_loc')?.address;
    if (start === undefined || stop === undefined || stop < start) {
      throw new SutureError('invalid-input', 'kallsyms has no __start_mcount_loc/__stop_mcount_loc: cannot tell which functions ftrace can patch', {
        hint: 'the kernel must be built with CONFIG_DYNAMIC_FTRACE (livepatch needs it)',
      });
    }
    const n = Number(stop - start);
    const bytes = image.read(start, n);
    if (!bytes) throw new SutureError('invalid-input', `${image.file}: the __mcount_loc table (${n} bytes) is not in the image`);
    const copy = new Uint8Array(bytes);
    return new McountTable(new BigUint64Array(copy.buffer, 0, n / 8));
  }

  get size(): number {
    return this.#sites.length;
  }

  has(address: bigint): boolean {
    const a = this.#sites;
    let lo = 0;
    let hi = a.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const v = a[mid]!;
      if (v === address) return true;
      if (v < address) lo = mid + 1;
      else hi = mid - 1;
    }
    return false;
  }
}

/** Read a vmlinux function's call site from the image. */
export function vmlinuxFtraceSite(image: KernelImage, syms: VmlinuxSymbols, mcount: McountTable, fn: KallsymsEntry): FtraceSite {
  const b = image.read(fn.address, 9);
  const fentry = syms.first('__fentry__')?.address;
  let fentryCall = false;
  // Behind endbr64 in an IBT kernel (6.12), at the first byte otherwise.
  const at = b ? ftraceSiteOffset(b, 0) : 0;
  if (b) {
    if (b[at] === 0xe8 && fentry !== undefined) {
      const rel = BigInt(Buffer.from(b).readInt32LE(at + 1));
      fentryCall = fn.address + BigInt(at + 5) + rel === fentry;
    } else if (NOP5.every((x, i) => b[at + i] === x)) {
      fentryCall = true;
    }
  }
  return {
    fentryCall,
    mcountLoc: mcount.has(fn.address + BigInt(at)),
    firstBytes: b ? Buffer.from(b.subarray(0, at + 5)).toString('hex').replace(/(..)(?!$)/g, '$1 ') : '(not in the image)',
  };
}

/** Longest function body scanned for references (larger functions are cut here). */
const MAX_SCAN = 256 * 1024;

/**
 * Which of `candidates` the code of function `fn` refers to: a call or jump
 * (rel32 to a candidate's first byte), a RIP-relative operand or an absolute
 * 32-bit sign-extended address pointing into a candidate (to its first byte
 * for code, anywhere inside it for data). Every 4-byte window of the body is
 * tried as a displacement, with the instruction ending 0, 1, 2 or 4 bytes after
 * it (an immediate operand). A random match needs 32 bits to agree with an
 * address, so a hit is strong evidence.
 */
export function codeReferences(image: KernelImage, syms: VmlinuxSymbols, fn: KallsymsEntry, candidates: readonly KallsymsEntry[]): Set<KallsymsEntry> {
  const out = new Set<KallsymsEntry>();
  if (!isTextType(fn.type)) return out;
  const next = syms.nextAddress(fn.address);
  if (next === undefined) return out;
  const len = Number(next - fn.address > BigInt(MAX_SCAN) ? BigInt(MAX_SCAN) : next - fn.address);
  const body = image.read(fn.address, len);
  if (!body || len < 5) return out;
  const ranges = candidates.map((c) => {
    const end = isTextType(c.type) ? c.address + 1n : (syms.nextAddress(c.address) ?? c.address + 1n);
    return { c, start: c.address, end };
  });
  const hit = (t: bigint) => {
    for (const r of ranges) if (t >= r.start && t < r.end) out.add(r.c);
  };
  const buf = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  for (let i = 1; i + 4 <= len; i++) {
    const disp = BigInt(buf.readInt32LE(i));
    const after = fn.address + BigInt(i + 4);
    for (const imm of [0n, 1n, 2n, 4n]) hit(after + imm + disp);
    hit(BigInt.asUintN(64, disp)); // absolute, sign-extended (mov $sym, %reg; R_X86_64_32S)
  }
  return out;
}

/** `symbols/vmlinux` of a workspace's symbols directory. */
export function cachedImagePath(symbolsDir: string): string {
  return join(symbolsDir, 'vmlinux');
}
