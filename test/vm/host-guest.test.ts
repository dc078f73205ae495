// SPDX-License-Identifier: GPL-2.0-only
/**
 * The guest side of `suture vm host`: the unit and its runner are valid, and a boot's run.sh,
 * run here by bash against a file instead of /dev/ttyS1, speaks the channel protocol that
 * the host's parser reads (the same frames as the initramfs guests).
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { GUEST_RUNNER, GUEST_UNIT, hostBootScript } from '../../src/vm/host-guest.js';
import { ChannelParser, type ChannelEvent } from '../../src/vm/protocol.js';

const dir = mkdtempSync(join(tmpdir(), 'suture-host-guest-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('host guest unit', () => {
  it('the runner and a boot script are valid bash', () => {
    for (const text of [GUEST_RUNNER, hostBootScript({ marker: "@@suture:a'b@@", commands: 2, powerOff: true })]) {
      const r = spawnSync('bash', ['-n'], { input: text, encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
    }
  });

  it('the unit starts after multi-user.target, is wanted by it and runs the runner', () => {
    expect(GUEST_UNIT).toMatch(/^After=multi-user\.target$/m);
    expect(GUEST_UNIT).toMatch(/^WantedBy=multi-user\.target$/m);
    expect(GUEST_UNIT).toMatch(/^ExecStart=\/usr\/local\/lib\/suture-vm\/guest$/m);
  });

  it('powers off through systemd only when asked', () => {
    expect(hostBootScript({ marker: 'M', commands: 0, powerOff: true })).toContain('systemctl --no-block poweroff');
    expect(hostBootScript({ marker: 'M', commands: 0, powerOff: false })).not.toContain('poweroff');
  });

  it('run.sh frames each command with its output and status, then dmesg, then done', () => {
    const payload = join(dir, 'payload');
    mkdirSync(join(payload, 'cmds'), { recursive: true });
    writeFileSync(join(payload, 'cmds', '0.sh'), 'echo hello; printf "\\000\\001binary"\n');
    writeFileSync(join(payload, 'cmds', '1.sh'), 'echo "files in $SUTURE_VM_FILES" >&2; exit 7\n');
    const chan = join(dir, 'channel');
    writeFileSync(chan, '');
    const marker = '@@suture:0123456789abcdef@@';
    const script = hostBootScript({ marker, commands: 2, powerOff: false, payloadDir: payload, channel: chan });
    const r = spawnSync('bash', ['-c', script], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const events: ChannelEvent[] = new ChannelParser(marker).push(readFileSync(chan));
    expect(events[0]?.type).toBe('ready');
    const out = (id: string) => Buffer.concat(events.flatMap((e) => (e.type === 'output' && e.id === id ? [e.data] : [])));
    const end = (id: string) => events.find((e): e is Extract<ChannelEvent, { type: 'end' }> => e.type === 'end' && e.id === id);
    expect(out('cmd:0')).toEqual(Buffer.from('hello\n\u0000\u0001binary'));
    expect(end('cmd:0')?.status).toBe(0);
    expect(out('cmd:1').toString()).toBe(`files in ${payload}/files\n`);
    expect(end('cmd:1')?.status).toBe(7);
    expect(end('dmesg')).toBeDefined();
    expect(events[events.length - 1]?.type).toBe('done');
  });
});
