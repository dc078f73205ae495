// SPDX-License-Identifier: GPL-2.0-only
/**
 * One guest session: QEMU runs until the guest powers off, the time limit
 * passes, or (under KVM) the guest stays silent; meanwhile the console and
 * the channel are followed and every step's begin, output and end is
 * recorded and streamed as events. What happened is returned as a record;
 * outcome.ts says what it means.
 */
import { closeSync, openSync, readSync, writeFileSync } from 'node:fs';
import { run } from '../util/exec.js';
import { ChannelParser } from './protocol.js';
import type { Accel } from './qemu.js';
import type { VmEvent } from './run.js';

const CONSOLE_KEEP = 400;

/** If KVM prints nothing for this long, it is the hanging kind: fall back to TCG. */
export const KVM_FIRST_OUTPUT_MS = 20_000;

/**
 * Follows a file that QEMU appends to. QEMU's file chardev never blocks the
 * guest's UART, which a socket chardev does (bulk output is about twice as
 * fast through a file under TCG), so guest output goes to files that are
 * polled here.
 */
class FileFollower {
  private fd: number;
  private pos = 0;
  private readonly buf = Buffer.alloc(1 << 20);
  constructor(path: string, private readonly onData: (b: Buffer) => void) {
    writeFileSync(path, '');
    this.fd = openSync(path, 'r');
  }
  poll(): void {
    for (;;) {
      const n = readSync(this.fd, this.buf, 0, this.buf.length, this.pos);
      if (n <= 0) return;
      this.pos += n;
      this.onData(Buffer.from(this.buf.subarray(0, n)));
    }
  }
  close(): void {
    this.poll();
    closeSync(this.fd);
  }
}

export interface SessionRequest {
  readonly argv: readonly string[];
  readonly accel: Accel;
  readonly consoleFile: string;
  readonly channelFile: string;
  readonly marker: string;
  readonly labels: ReadonlyMap<string, string>;
  readonly timeoutMs: number;
  /** When the run started (performance.now()), for the boot time. */
  readonly t0: number;
  readonly emit: (e: VmEvent) => void;
  /** Stops the guest (QEMU killed) when aborted: a run nobody needs any more. */
  readonly signal?: AbortSignal | undefined;
}

/** What a session saw. */
export interface Session {
  readonly consoleLines: readonly string[];
  readonly outputs: ReadonlyMap<string, readonly Buffer[]>;
  readonly ends: ReadonlyMap<string, { status: number; durationMs: number }>;
  /** When the guest's init reported ready (ms from t0), null when it never did. */
  readonly bootMs: number | null;
  /** The guest's init reported all steps done. */
  readonly done: boolean;
  /** The step begun and not ended when the session stopped. */
  readonly running: string | undefined;
  readonly timedOut: boolean;
  /** Under KVM: nothing came within KVM_FIRST_OUTPUT_MS. */
  readonly kvmSilent: boolean;
  readonly sawAnything: boolean;
  readonly qemu: { code: number | null; stderr: string };
}

export async function runSession(req: SessionRequest): Promise<Session> {
  const { emit } = req;
  const consoleLines: string[] = [];
  let consolePending = '';
  let sawAnything = false;
  emit({ type: 'booting', accel: req.accel });

  const outputs = new Map<string, Buffer[]>();
  const ends = new Map<string, { status: number; durationMs: number }>();
  let bootMs: number | null = null;
  let done = false;
  let running: string | undefined;
  const parser = new ChannelParser(req.marker);

  const abort = new AbortController();
  let timedOut = false;
  let kvmSilent = false;
  const timer = setTimeout(() => {
    timedOut = true;
    abort.abort();
  }, req.timeoutMs);
  const silentTimer =
    req.accel === 'kvm'
      ? setTimeout(() => {
          if (!sawAnything) {
            kvmSilent = true;
            abort.abort();
          }
        }, KVM_FIRST_OUTPUT_MS)
      : undefined;

  const con = new FileFollower(req.consoleFile, (b: Buffer) => {
    sawAnything = true;
    consolePending += b.toString('utf8');
    let i: number;
    while ((i = consolePending.indexOf('\n')) >= 0) {
      const line = consolePending.slice(0, i).replace(/\r$/, '');
      consolePending = consolePending.slice(i + 1);
      consoleLines.push(line);
      if (consoleLines.length > CONSOLE_KEEP * 4) consoleLines.splice(0, consoleLines.length - CONSOLE_KEEP * 2);
      emit({ type: 'console', line });
    }
  });
  const chan = new FileFollower(req.channelFile, (b: Buffer) => {
    sawAnything = true;
    for (const ev of parser.push(b)) {
      switch (ev.type) {
        case 'ready':
          bootMs = performance.now() - req.t0;
          emit({ type: 'ready', bootMs });
          break;
        case 'begin':
          running = ev.id;
          outputs.set(ev.id, []);
          emit({ type: 'step-start', id: ev.id, label: req.labels.get(ev.id) ?? ev.id });
          break;
        case 'output':
          outputs.get(ev.id)?.push(ev.data);
          emit({ type: 'output', id: ev.id, data: ev.data });
          break;
        case 'end': {
          const durationMs = (ev.endCs - ev.startCs) * 10;
          ends.set(ev.id, { status: ev.status, durationMs });
          running = undefined;
          emit({ type: 'step-end', id: ev.id, status: ev.status, durationMs });
          break;
        }
        case 'done':
          done = true;
          break;
      }
    }
  });
  const cancel = () => abort.abort();
  if (req.signal?.aborted) abort.abort();
  req.signal?.addEventListener('abort', cancel, { once: true });
  const poller = setInterval(() => {
    con.poll();
    chan.poll();
  }, 20);

  let q;
  try {
    q = await run([...req.argv], { signal: abort.signal, maxCapture: 64 * 1024 });
  } finally {
    clearTimeout(timer);
    if (silentTimer) clearTimeout(silentTimer);
    clearInterval(poller);
    req.signal?.removeEventListener('abort', cancel);
    con.close();
    chan.close();
  }
  if (consolePending) consoleLines.push(consolePending);
  return { consoleLines, outputs, ends, bootMs, done, running, timedOut, kvmSilent, sawAnything, qemu: { code: q.code, stderr: q.stderr } };
}
