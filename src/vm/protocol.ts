// SPDX-License-Identifier: GPL-2.0-only
/**
 * Host side of the guest channel. The guest writes, on its second serial port:
 *
 *   <marker> ready <cs>\n
 *   <marker> begin <id>\n  <raw output bytes>  \n<marker> end <id> <rc> <t0cs> <t1cs>\n
 *   <marker> done\n
 *
 * where <marker> carries a random nonce, so output bytes (even binary) do not
 * collide with it, and cs are centiseconds of guest uptime. The parser is
 * incremental and pure: feed it chunks, it returns events.
 */

export type ChannelEvent =
  | { type: 'ready'; uptimeCs: number }
  | { type: 'begin'; id: string }
  | { type: 'output'; id: string; data: Buffer }
  | { type: 'end'; id: string; status: number; startCs: number; endCs: number }
  | { type: 'done' };

export class ChannelParser {
  private buf: Buffer = Buffer.alloc(0);
  private current: string | undefined;
  private readonly lineMarker: Buffer;
  private readonly endMarker: Buffer;

  constructor(readonly marker: string) {
    this.lineMarker = Buffer.from(`${marker} `);
    this.endMarker = Buffer.from(`\n${marker} end `);
  }

  /** The frame whose output is being received, if any. */
  get open(): string | undefined {
    return this.current;
  }

  push(chunk: Buffer): ChannelEvent[] {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const events: ChannelEvent[] = [];
    for (;;) {
      if (this.current !== undefined) {
        const i = this.buf.indexOf(this.endMarker);
        if (i < 0) {
          // Emit all but a tail that could be the start of the end marker.
          const keep = Math.min(this.buf.length, this.endMarker.length - 1);
          const emit = this.buf.length - keep;
          if (emit > 0) {
            events.push({ type: 'output', id: this.current, data: Buffer.from(this.buf.subarray(0, emit)) });
            this.buf = this.buf.subarray(emit);
          }
          return events;
        }
        const nl = this.buf.indexOf(0x0a, i + this.endMarker.length);
        if (nl < 0) {
          if (i > 0) {
            events.push({ type: 'output', id: this.current, data: Buffer.from(this.buf.subarray(0, i)) });
            this.buf = this.buf.subarray(i);
          }
          return events;
        }
        if (i > 0) events.push({ type: 'output', id: this.current, data: Buffer.from(this.buf.subarray(0, i)) });
        const fields = this.buf.subarray(i + this.endMarker.length, nl).toString('latin1').trim().split(/\s+/);
        const [id, rc, t0, t1] = fields;
        events.push({
          type: 'end',
          id: id ?? this.current,
          status: Number(rc),
          startCs: Number(t0),
          endCs: Number(t1),
        });
        this.current = undefined;
        this.buf = this.buf.subarray(nl + 1);
        continue;
      }
      const i = this.buf.indexOf(this.lineMarker);
      if (i < 0) {
        // Drop noise, keep a possible partial marker.
        this.buf = this.buf.subarray(Math.max(0, this.buf.length - this.lineMarker.length));
        return events;
      }
      const nl = this.buf.indexOf(0x0a, i);
      if (nl < 0) {
        this.buf = this.buf.subarray(i);
        return events;
      }
      const words = this.buf.subarray(i + this.lineMarker.length, nl).toString('latin1').trim().split(/\s+/);
      this.buf = this.buf.subarray(nl + 1);
      switch (words[0]) {
        case 'ready':
          events.push({ type: 'ready', uptimeCs: Number(words[1]) });
          break;
        case 'begin':
          this.current = words[1] ?? '?';
          events.push({ type: 'begin', id: this.current });
          break;
        case 'done':
          events.push({ type: 'done' });
          break;
        default:
          break; // unknown line: ignore (forward compatible)
      }
    }
  }
}
