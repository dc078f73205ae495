// SPDX-License-Identifier: GPL-2.0-only
/**
 * Identity round trip of every .ko under the given directories, side by side
 * with `objcopy IN OUT` on the same files in the same run.
 *
 *   npx tsx bench/elf-roundtrip.ts [--runs N] DIR...
 *   e.g. DIR = <unpacked linux-image>/lib/modules/6.1.0-56-amd64/kernel/{fs,net}
 *
 * For each run it measures
 *   - suture in memory: ElfObject.parse + writeElf on bytes already read,
 *   - suture with files: read the file, parse, write, write the output file,
 *   - objcopy: one `objcopy IN OUT` process per file (the same file I/O),
 * and prints MB/s per run, the medians, the ratio, and the largest module's
 * parse+write time. Exits 1 if any module does not come back byte-identical.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { ElfObject, writeElf } from '../src/elf/mod.js';
import { filesUnder, positiveInt } from './args.js';
import { median } from './stats.js';

function same(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.length), Buffer.from(b.buffer, b.byteOffset, b.length)) === 0;
}

const { values, positionals } = parseArgs({ args: process.argv.slice(2), options: { runs: { type: 'string' } }, allowPositionals: true });
if (positionals.length === 0) throw new Error('usage: elf-roundtrip.ts [--runs N] DIR...');
const args = { runs: positiveInt('runs', values.runs, 5), dirs: positionals };
const files = args.dirs.flatMap((d) => filesUnder(d, ['.ko']));
if (files.length === 0) throw new Error(`no .ko files under ${args.dirs.join(', ')}`);
const inputs = files.map((f) => new Uint8Array(readFileSync(f)));
const totalBytes = inputs.reduce((n, b) => n + b.length, 0);
const mb = totalBytes / 1e6;
const tmp = mkdtempSync(join(tmpdir(), 'suture-elf-bench-'));
const outFile = join(tmp, 'out.ko');

try {
  // Identity first (not timed).
  const different: string[] = [];
  inputs.forEach((b, i) => {
    if (!same(writeElf(ElfObject.parse(b, { file: files[i] })), b)) different.push(files[i]!);
  });
  let objcopyIdentical = 0;
  const objcopyVersion = spawnSync('objcopy', ['--version'], { encoding: 'utf8' }).stdout.split('\n')[0];

  console.log(`files: ${files.length} .ko under ${args.dirs.join(' ')}`);
  console.log(`size:  ${mb.toFixed(1)} MB total, ${(mb / files.length).toFixed(2)} MB average`);
  console.log(`identity: ${files.length - different.length}/${files.length} byte-identical after ElfObject.parse + writeElf`);
  for (const d of different.slice(0, 10)) console.log(`  DIFFERENT: ${d}`);
  console.log(`objcopy: ${objcopyVersion}`);
  console.log('');
  console.log('run   suture in-memory   suture with files   objcopy with files');

  const mem: number[] = [];
  const withFiles: number[] = [];
  const objcopy: number[] = [];
  for (let run = 1; run <= args.runs; run++) {
    let t0 = performance.now();
    for (let i = 0; i < inputs.length; i++) writeElf(ElfObject.parse(inputs[i]!));
    mem.push(mb / ((performance.now() - t0) / 1000));

    t0 = performance.now();
    for (const f of files) writeFileSync(outFile, writeElf(ElfObject.parse(new Uint8Array(readFileSync(f)))));
    withFiles.push(mb / ((performance.now() - t0) / 1000));

    t0 = performance.now();
    for (let i = 0; i < files.length; i++) {
      const r = spawnSync('objcopy', [files[i]!, outFile], { stdio: ['ignore', 'ignore', 'pipe'] });
      if (r.status !== 0) throw new Error(`objcopy ${files[i]} failed: ${r.stderr.toString()}`);
      if (run === 1 && same(new Uint8Array(readFileSync(outFile)), inputs[i]!)) objcopyIdentical++;
    }
    objcopy.push(mb / ((performance.now() - t0) / 1000));
    const col = (x: number): string => `${x.toFixed(1)} MB/s`.padStart(18);
    console.log(`${String(run).padEnd(4)}${col(mem.at(-1)!)} ${col(withFiles.at(-1)!)}  ${col(objcopy.at(-1)!)}`);
  }
  const col = (x: number): string => `${x.toFixed(1)} MB/s`.padStart(18);
  console.log(`${'med'.padEnd(4)}${col(median(mem))} ${col(median(withFiles))}  ${col(median(objcopy))}`);
  console.log('');
  console.log(`ratio (median MB/s): suture with files / objcopy = ${(median(withFiles) / median(objcopy)).toFixed(1)}x; suture in-memory / objcopy = ${(median(mem) / median(objcopy)).toFixed(1)}x`);
  console.log(`objcopy output byte-identical to its input: ${objcopyIdentical}/${files.length}`);

  // The largest module, parse and write timed separately.
  let big = 0;
  inputs.forEach((b, i) => {
    if (b.length > inputs[big]!.length) big = i;
  });
  const parseMs: number[] = [];
  const writeMs: number[] = [];
  const totalMs: number[] = [];
  for (let run = 0; run < Math.max(5, args.runs); run++) {
    const t0 = performance.now();
    const obj = ElfObject.parse(inputs[big]!);
    const t1 = performance.now();
    writeElf(obj);
    const t2 = performance.now();
    parseMs.push(t1 - t0);
    writeMs.push(t2 - t1);
    totalMs.push(t2 - t0);
  }
  const o0 = performance.now();
  const r = spawnSync('objcopy', [files[big]!, outFile]);
  const objMs = performance.now() - o0;
  if (r.status !== 0) throw new Error(`objcopy ${files[big]} failed`);
  console.log(
    `largest: ${basename(files[big]!)} ${(inputs[big]!.length / 1e6).toFixed(1)} MB: parse+write median ${median(totalMs).toFixed(1)} ms ` +
      `(parse ${median(parseMs).toFixed(1)} ms, write ${median(writeMs).toFixed(1)} ms); objcopy ${objMs.toFixed(1)} ms`,
  );
  if (different.length > 0) process.exitCode = 1;
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
