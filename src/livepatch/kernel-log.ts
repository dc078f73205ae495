// SPDX-License-Identifier: GPL-2.0-only
/**
 * The kernel log, read from /dev/kmsg (one record per read: "prio,seq,usec,flags;text").
 * Used for the kernel's own words when it refuses a module, and for the
 * transition time it logs ("'<p>': starting patching transition" …
 * "'<p>': patching complete", kernel/livepatch/transition.c).
 */
import { closeSync, constants, openSync, readSync } from 'node:fs';
import { join } from 'node:path';

export interface KmsgRecord {
  seq: number;
  /** Microseconds since boot (the kernel's local clock). */
  usec: number;
  text: string;
}

/** Parse /dev/kmsg text: one record per line; continuation lines (" KEY=value") are skipped. */
export function parseKmsg(text: string): KmsgRecord[] {
  const out: KmsgRecord[] = [];
  for (const line of text.split('\n')) {
    const m = /^\d+,(\d+),(\d+),[^;]*;(.*)$/.exec(line);
    if (m) out.push({ seq: Number(m[1]), usec: Number(m[2]), text: m[3]! });
  }
  return out;
}

/** Every record still in the kernel's ring buffer (nothing if /dev/kmsg cannot be read). */
export function readKmsg(root = ''): KmsgRecord[] {
  const path = root ? join(root, '/dev/kmsg') : '/dev/kmsg';
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch {
    return [];
  }
  const buf = Buffer.alloc(16384);
  const parts: string[] = [];
  try {
    for (let i = 0; i < 100_000; i++) {
      let n: number;
      try {
        n = readSync(fd, buf, 0, buf.length, null);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'EPIPE') continue; // records were overwritten while reading: go on with the next
        break; // EAGAIN: no more records
      }
      if (n <= 0) break;
      parts.push(buf.toString('utf8', 0, n));
    }
  } finally {
    closeSync(fd);
  }
  return parseKmsg(parts.join('').replace(/([^\n])$/, '$1\n'));
}

/** Microseconds since boot now, on the same clock as kmsg records (close enough: /proc/uptime). */
export function uptimeUsec(uptimeText: string | undefined): number | undefined {
  const m = /^(\d+)\.(\d+)/.exec(uptimeText ?? '');
  if (!m) return undefined;
  return Number(m[1]) * 1e6 + Number(m[2]!.padEnd(6, '0').slice(0, 6));
}

/**
 * The kernel's own duration of the last transition of a patch, in ms:
 * "'<p>': starting patching transition" → "'<p>': patching complete"
 * (or the unpatching pair, or a reversal: starting patching, then unpatching complete).
 */
export function kernelTransitionTime(records: readonly KmsgRecord[], patch: string, direction: 'patching' | 'unpatching'): number | undefined {
  let start: number | undefined;
  let result: number | undefined;
  for (const r of records) {
    if (r.text.includes(`'${patch}': starting ${direction} transition`)) start = r.usec;
    else if (start !== undefined && /': (un)?patching complete$/.test(r.text) && r.text.includes(`'${patch}'`)) {
      result = Math.round(r.usec - start) / 1000;
      start = undefined;
    }
  }
  return result;
}

/** What the kernel said about a module since a point in time: its refusal reasons, livepatch lines. */
export function kernelSaysAbout(records: readonly KmsgRecord[], module: string, sinceUsec: number): string[] {
  return records
    .filter((r) => r.usec >= sinceUsec)
    .map((r) => r.text)
    .filter((t) => t.includes(module) || /livepatch|version magic|Unknown symbol|disagrees about version|module verification|lockdown/i.test(t))
    .filter((t) => !/tainting kernel|loading out-of-tree|module verification failed: signature and\/or required key missing/.test(t));
}

/** A kernel report (BUG, Oops, WARNING) that names a livepatch module or a function it patches. */
export interface OopsEvidence {
  patch: string;
  /** The report's first line and the line that names the patch. */
  lines: string[];
  usec: number;
}

const REPORT = /\b(BUG:|Oops|WARNING:|kernel BUG at|general protection fault|Kernel panic)/;

/**
 * Reports since `sinceUsec` that name one of `patches`: its module in a frame
 * (`func+0x1/0x2 [livepatch_x]`) or one of the functions it replaces
 * (`cmdline_proc_show+0x…`) in the report's lines (RIP, call trace), within
 * the 80 records after the report's first line. "Modules linked in" lists
 * every module, so it names nothing.
 */
export function oopsNaming(records: readonly KmsgRecord[], sinceUsec: number, patches: readonly { name: string; functions: readonly string[] }[]): OopsEvidence[] {
  const out: OopsEvidence[] = [];
  for (let i = 0; i < records.length; i++) {
    const r = records[i]!;
    if (r.usec < sinceUsec || !REPORT.test(r.text)) continue;
    const window = records.slice(i, i + 80).filter((x) => !/Modules linked in/.test(x.text));
    for (const p of patches) {
      const hit = window.find((x) => x.text.includes(`[${p.name}]`) || p.functions.some((f) => x.text.includes(`${f}+0x`)));
      if (hit && !out.some((o) => o.patch === p.name)) out.push({ patch: p.name, lines: [r.text, hit.text], usec: r.usec });
    }
  }
  return out;
}
