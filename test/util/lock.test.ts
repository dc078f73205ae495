// SPDX-License-Identifier: GPL-2.0-only
/** The one lock module: atomic creation, owner checks, stale takeover, waiting, reentrancy, exit. */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Lock, processStartTime } from '../../src/util/lock.js';

const ROOT = resolve(import.meta.dirname, '../..');
const CHILD = join(import.meta.dirname, 'lock-child.ts');
const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null) c.kill('SIGKILL');
});

function dir(): string {
  return mkdtempSync(join(tmpdir(), 'suture-lock-'));
}

function child(args: string[]): ChildProcess {
  const c = spawn(process.execPath, ['--import', 'tsx', CHILD, ...args], { stdio: ['ignore', 'pipe', 'pipe'], cwd: ROOT });
  children.push(c);
  return c;
}

const exited = (c: ChildProcess) => new Promise<number | null>((r) => (c.exitCode !== null ? r(c.exitCode) : c.on('exit', (code) => r(code))));
const said = (c: ChildProcess, what: string) =>
  new Promise<void>((r) => {
    let buf = '';
    c.stdout!.on('data', (b: Buffer) => {
      buf += b.toString();
      if (buf.includes(what)) r();
    });
  });

/** The pid of a process that has exited (so nothing runs under it, for a while at least). */
function deadPid(): number {
  return spawnSync('sh', ['-c', 'echo $$'], { encoding: 'utf8' }).stdout.trim() as unknown as number;
}

const record = (o: object) => `${JSON.stringify({ since: 'T', command: 'old', token: 'x', ...o })}\n`;

describe('Lock', () => {
  it('the lock file is complete the moment it exists: pid, start time, boot, command, token', () => {
    const p = join(dir(), 'lock');
    const h = new Lock(p, { what: 'the test' }).take('load fix.ko');
    const o = JSON.parse(readFileSync(p, 'utf8'));
    expect(o).toMatchObject({ pid: process.pid, start: processStartTime(process.pid), command: 'load fix.ko' });
    expect(o.token).toMatch(/^[0-9a-f]{24}$/);
    expect(h.release()).toBe(true);
    expect(existsSync(p)).toBe(false);
    expect(readdirSync(join(p, '..'))).toEqual([]);
  });

  it('a live holder: take fails naming it; wait waits (saying so once) and fails after its bound', async () => {
    const p = join(dir(), 'lock');
    const c = child(['hold', p, '20000']);
    await said(c, 'taken');
    const lock = new Lock(p, { what: 'livepatch changes on this host' });
    expect(() => lock.take('unload x')).toThrow(
      new RegExp(`^another suture command holds the lock for livepatch changes on this host: hold 20000 \\(pid ${c.pid}, since \\S+\\)$`),
    );
    const told: unknown[] = [];
    const t0 = performance.now();
    await expect(lock.wait('boot', { timeoutMs: 300, onWait: (h) => told.push(h.owner?.pid) })).rejects.toMatchObject({ kind: 'conflict', message: /waited 0 s/ });
    expect(performance.now() - t0).toBeGreaterThanOrEqual(290);
    expect(told).toEqual([c.pid]);
  });

  it('wait takes the lock as soon as its holder releases it', async () => {
    const p = join(dir(), 'lock');
    const c = child(['hold', p, '400']);
    await said(c, 'taken');
    const h = await new Lock(p, { what: 'x', pollMs: 5 }).wait('boot', { timeoutMs: 20_000 });
    expect(await exited(c)).toBe(0);
    expect(h.held()).toBe(true);
    h.release();
  });

  it('a process that exits without releasing (process.exit, as on a signal) leaves no lock', async () => {
    const p = join(dir(), 'lock');
    expect(await exited(child(['exit', p]))).toBe(130);
    expect(existsSync(p)).toBe(false);
  });

  it.each([
    ['its process is gone', () => record({ pid: Number(deadPid()) })],
    ['its pid now belongs to another process (start time differs)', () => record({ pid: 1, start: '-1' })],
    ['it is from another boot', () => record({ pid: process.ppid, start: processStartTime(process.ppid), boot: 'another-boot' })],
    ['it is the old format with a dead pid', () => `${deadPid()} load x.ko\n`],
    ['it is damaged and older than a few seconds', () => ''],
  ])('a stale lock is taken over: %s', (_, content) => {
    const p = join(dir(), 'lock');
    writeFileSync(p, content());
    if (content() === '') spawnSync('touch', ['-d', '1 minute ago', p]);
    const h = new Lock(p, { what: 'x' }).take('load');
    expect(JSON.parse(readFileSync(p, 'utf8')).pid).toBe(process.pid);
    h.release();
  });

  it('an empty lock file just created (a writer of the old format) is not taken over', () => {
    const p = join(dir(), 'lock');
    writeFileSync(p, '');
    expect(() => new Lock(p, { what: 'x' }).take('load')).toThrow(/a process that is writing the lock/);
  });

  it('a live pid with its own start time is a live holder', () => {
    const p = join(dir(), 'lock');
    writeFileSync(p, record({ pid: process.ppid, start: processStartTime(process.ppid) }));
    expect(() => new Lock(p, { what: 'x' }).take('load')).toThrow(/holds the lock/);
  });

  it('release never removes a lock this process does not hold', () => {
    const p = join(dir(), 'lock');
    const h = new Lock(p, { what: 'x' }).take('load');
    // another process took it over meanwhile (e.g. it was judged stale)
    const theirs = record({ pid: process.ppid, start: processStartTime(process.ppid), token: 'theirs' });
    writeFileSync(p, theirs);
    expect(h.held()).toBe(false);
    expect(h.release()).toBe(false);
    expect(readFileSync(p, 'utf8')).toBe(theirs);
  });

  it('reentrant within a process: the inner release keeps the lock, the outer removes it', () => {
    const p = join(dir(), 'lock');
    const outer = new Lock(p, { what: 'x' }).take('boot');
    const inner = new Lock(p, { what: 'x' }).take('load');
    expect(inner.release()).toBe(false);
    expect(inner.release()).toBe(false);
    expect(existsSync(p)).toBe(true);
    expect(outer.release()).toBe(true);
    expect(existsSync(p)).toBe(false);
  });

  it('several processes racing for one stale lock, then for the lock 150 times: never two inside at once', async () => {
    const d = dir();
    const p = join(d, 'lock');
    writeFileSync(p, record({ pid: Number(deadPid()) }));
    const marker = join(d, 'inside');
    const cs = [0, 1, 2, 3, 4].map(() => child(['loop', p, '30', marker]));
    const errs: string[] = [];
    for (const c of cs) c.stderr!.on('data', (b: Buffer) => errs.push(b.toString()));
    const codes = await Promise.all(cs.map(exited));
    expect(errs.join('')).toBe('');
    expect(codes).toEqual([0, 0, 0, 0, 0]);
    expect(readdirSync(d)).toEqual([]);
  }, 120_000);
});
