// SPDX-License-Identifier: GPL-2.0-only
/**
 * Test helpers for the ELF engine: build the C fixtures at test time, run
 * readelf/objdump, and parse `readelf -W -S -s -r` into plain records.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const FIXTURES = resolve(import.meta.dirname, '../fixtures/elf');

export type Fixture = 'basic' | 'basic-kernel' | 'modinfo' | 'comdat' | 'many';

/** Build fixtures into a fresh temp dir; returns the dir and a cleanup function. */
export function buildFixtures(targets: Fixture[] = []): { dir: string; path: (f: Fixture) => string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'suture-elf-'));
  execFileSync('bash', [join(FIXTURES, 'build.sh'), dir, ...targets], { stdio: ['ignore', 'ignore', 'inherit'] });
  return {
    dir,
    path: (f) => join(dir, `${f}.o`),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

export function readBytes(path: string): Uint8Array {
  const b = readFileSync(path);
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

/** Run a binutils tool and return stdout (throws on a non-zero exit). */
export function tool(name: 'readelf' | 'objdump', args: string[]): string {
  return execFileSync(name, args, { encoding: 'latin1', maxBuffer: 1 << 30, env: { ...process.env, LC_ALL: 'C' } });
}

export interface ReadelfSection {
  index: number;
  name: string;
  type: string;
  addr: bigint;
  offset: number;
  size: number;
  entsize: number;
  flags: string;
  link: number;
  info: number;
  align: number;
}

export interface ReadelfSymbol {
  num: number;
  value: bigint;
  size: bigint;
  type: string;
  bind: string;
  vis: string;
  ndx: string;
  name: string;
}

export interface ReadelfReloc {
  offset: bigint;
  info: bigint;
  type: string;
  symValue: bigint | undefined;
  symName: string;
  addend: bigint;
}

export interface ReadelfDump {
  sections: ReadelfSection[];
  symtabs: Map<string, ReadelfSymbol[]>;
  relocs: Map<string, ReadelfReloc[]>;
}

/** Parse the output of `readelf -W -S -s -r`. */
export function parseReadelf(out: string): ReadelfDump {
  const sections: ReadelfSection[] = [];
  const symtabs = new Map<string, ReadelfSymbol[]>();
  const relocs = new Map<string, ReadelfReloc[]>();
  let mode: 'none' | 'sections' | 'symbols' | 'relocs' = 'none';
  let current: ReadelfSymbol[] | ReadelfReloc[] = [];
  const secRe =
    /^\s*\[\s*(\d+)\]\s(.{17})\s?(.*?)\s+([0-9a-f]{16})\s([0-9a-f]{6,})\s([0-9a-f]{6,})\s([0-9a-f]{2,})\s([A-Za-z]*)\s+(\d+)\s+(\d+)\s+(\d+)$/;
  for (const line of out.split('\n')) {
    let m: RegExpMatchArray | null;
    if (line.startsWith('Section Headers:')) {
      mode = 'sections';
      continue;
    }
    if ((m = line.match(/^Symbol table '(.*)' contains \d+ entr/))) {
      mode = 'symbols';
      current = [];
      symtabs.set(m[1]!, current as ReadelfSymbol[]);
      continue;
    }
    if ((m = line.match(/^Relocation section '(.*)' at offset 0x[0-9a-f]+ contains \d+ entr/))) {
      mode = 'relocs';
      current = [];
      relocs.set(m[1]!, current as ReadelfReloc[]);
      continue;
    }
    if (line.startsWith('Key to Flags') || line.trim() === '') {
      if (mode === 'sections') mode = 'none';
      continue;
    }
    if (mode === 'sections' && (m = line.match(secRe))) {
      sections.push({
        index: Number(m[1]),
        name: m[2]!.trimEnd(),
        type: m[3]!.trim(),
        addr: BigInt(`0x${m[4]}`),
        offset: parseInt(m[5]!, 16),
        size: parseInt(m[6]!, 16),
        entsize: parseInt(m[7]!, 16),
        flags: m[8]!,
        link: Number(m[9]),
        info: Number(m[10]),
        align: Number(m[11]),
      });
    } else if (mode === 'symbols' && (m = line.match(/^\s*(\d+): ([0-9a-f]{16})\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+(?: \[0x[0-9a-f]+\])?)\s?(.*)$/))) {
      (current as ReadelfSymbol[]).push({
        num: Number(m[1]),
        value: BigInt(`0x${m[2]}`),
        size: m[3]!.startsWith('0x') ? BigInt(m[3]!) : BigInt(m[3]!),
        type: m[4]!,
        bind: m[5]!,
        vis: m[6]!,
        ndx: m[7]!,
        name: m[8]!,
      });
    } else if (mode === 'relocs' && (m = line.match(/^([0-9a-f]{16})\s+([0-9a-f]{16})\s+(\S+)\s+(?:([0-9a-f]{16})\s+(.*?)\s+([+-])\s+([0-9a-f]+)|([+-]?[0-9a-f]+))?\s*$/))) {
      const addend =
        m[6] !== undefined ? (m[6] === '-' ? -1n : 1n) * BigInt(`0x${m[7]}`) : m[8] !== undefined ? BigInt(`0x${m[8]}`) : 0n;
      (current as ReadelfReloc[]).push({
        offset: BigInt(`0x${m[1]}`),
        info: BigInt(`0x${m[2]}`),
        type: m[3]!,
        symValue: m[4] === undefined ? undefined : BigInt(`0x${m[4]}`),
        symName: m[5] ?? '',
        addend,
      });
    }
  }
  return { sections, symtabs, relocs };
}

/** `readelf -W -S -s -r` of a file, parsed. */
export function readelfDump(path: string): ReadelfDump {
  return parseReadelf(tool('readelf', ['-W', '-S', '-s', '-r', path]));
}
