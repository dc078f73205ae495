// SPDX-License-Identifier: GPL-2.0-only
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ChannelParser, type ChannelEvent } from '../../src/vm/protocol.js';

const M = '@@suture:0123456789abcdef@@';

function stream(binary: Buffer): Buffer {
  return Buffer.concat([
    Buffer.from(`boot noise\n${M} ready 250\n`),
    Buffer.from(`${M} begin cmd:0\n`),
    Buffer.from('6.1.0-56-amd64\n'),
    Buffer.from(`\n${M} end cmd:0 0 251 253\n`),
    Buffer.from(`${M} begin cmd:1\n`),
    binary,
    Buffer.from(`\n${M} end cmd:1 3 253 300\n`),
    Buffer.from(`${M} begin cmd:2\n`),
    Buffer.from('no newline at the end'),
    Buffer.from(`\n${M} end cmd:2 0 300 301\n`),
    Buffer.from(`${M} done\n`),
  ]);
}

function collect(events: ChannelEvent[]) {
  const out = new Map<string, Buffer>();
  const ends: Record<string, number> = {};
  const kinds: string[] = [];
  for (const e of events) {
    if (e.type === 'output') out.set(e.id, Buffer.concat([out.get(e.id) ?? Buffer.alloc(0), e.data]));
    else {
      kinds.push(e.type);
      if (e.type === 'end') ends[e.id] = e.status;
    }
  }
  return { out, ends, kinds };
}

describe('ChannelParser', () => {
  const binary = Buffer.concat([randomBytes(5000), Buffer.from(`\n${M.slice(0, 10)}`), randomBytes(100)]);
  const whole = stream(binary);

  it('push() of the whole stream gives each frame its exact output and status', () => {
    const { out, ends, kinds } = collect(new ChannelParser(M).push(whole));
    expect(kinds).toEqual(['ready', 'begin', 'end', 'begin', 'end', 'begin', 'end', 'done']);
    expect(out.get('cmd:0')!.toString()).toBe('6.1.0-56-amd64\n');
    expect(out.get('cmd:1')!.equals(binary)).toBe(true);
    expect(out.get('cmd:2')!.toString()).toBe('no newline at the end');
    expect(ends).toEqual({ 'cmd:0': 0, 'cmd:1': 3, 'cmd:2': 0 });
  });

  it('push() gives the same result whatever the chunk boundaries', () => {
    for (const size of [1, 2, 3, 7, 31, 64, 1000]) {
      const p = new ChannelParser(M);
      const events: ChannelEvent[] = [];
      for (let i = 0; i < whole.length; i += size) events.push(...p.push(whole.subarray(i, i + size)));
      const { out, ends } = collect(events);
      expect(out.get('cmd:1')!.equals(binary), `chunk size ${size}`).toBe(true);
      expect(out.get('cmd:2')!.toString()).toBe('no newline at the end');
      expect(ends).toEqual({ 'cmd:0': 0, 'cmd:1': 3, 'cmd:2': 0 });
    }
  });

  it('push() reports the open frame when the stream stops inside it', () => {
    const p = new ChannelParser(M);
    p.push(Buffer.from(`${M} ready 1\n${M} begin load:0\npartial`));
    expect(p.open).toBe('load:0');
  });
});
