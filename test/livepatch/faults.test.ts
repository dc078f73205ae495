// SPDX-License-Identifier: GPL-2.0-only
/**
 * Host commands interrupted by a signal (the abort signal the CLI's handler
 * fires), work left pending for the next command, the lock taken by every
 * command that changes state, fixed tool paths, effective-version claims.
 */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { installPatch } from '../../src/livepatch/boot.js';
import { disablePatch, finishPending, forcePatch, loadPatch } from '../../src/livepatch/core.js';
import { effectiveVersion } from '../../src/livepatch/effective-version.js';
import { findTool } from '../../src/livepatch/loader.js';
import { buildFakePatches, fakeKernels } from './fake-kernel.js';

let ko: (n: string) => string;
beforeAll(() => {
  ko = buildFakePatches();
});
const kernel = fakeKernels();

const T = { timeoutMs: 60_000, revertOnTimeout: false };

describe('a signal in the middle of a host command', () => {
  it('load: the lock is released and the message says the patch is loaded and still in transition; the same command again watches it to the end', async () => {
    const k = kernel();
    const host = k.host();
    k.held.add('fake_patch');
    const ac = new AbortController();
    const run = loadPatch(host, ko('fake_patch'), { ...T, signal: ac.signal });
    await vi.waitFor(() => expect(k.insmods).toHaveLength(1));
    ac.abort('SIGTERM');
    const e = await run.catch((x) => x);
    expect(e).toMatchObject({ kind: 'interrupted' });
    expect(e.message).toBe('interrupted by SIGTERM: livepatch fake_patch is loaded and its patching transition is still running (the kernel goes on with it)');
    expect(e.hint).toBe(`watch it to the end: suture load ${ko('fake_patch')} (the same file resumes); or reverse it: suture disable fake_patch; suture status shows what holds it up`);
    expect(host.lock.holder()).toBeUndefined();
    expect(host.store.loadRecord('fake_patch')?.sha256).toMatch(/^[0-9a-f]{64}$/);
    // again: not "already loaded": it watches the transition it started
    setTimeout(() => k.release('fake_patch'), 50);
    const r = await loadPatch(host, ko('fake_patch'), T);
    expect(r.outcome).toBe('complete');
    expect(k.insmods).toHaveLength(1);
  });

  it('load --revert-on-timeout: reversed at once; the module is removed, or its removal is left pending and finished by the next command', async () => {
    const k = kernel();
    const host = k.host();
    k.held.add('fake_patch');
    const ac = new AbortController();
    const run = loadPatch(host, ko('fake_patch'), { ...T, revertOnTimeout: true, signal: ac.signal });
    await vi.waitFor(() => expect(k.insmods).toHaveLength(1));
    ac.abort('SIGINT');
    // the reversal is held too: the removal cannot be done before the command has to go
    const e = await run.catch((x) => x);
    expect(e.message).toBe('interrupted by SIGINT: the transition of fake_patch is being reversed (--revert-on-timeout); its module is removed by the next suture command once the kernel lets go');
    expect(host.store.pending()).toMatchObject([{ op: 'rmmod', module: 'fake_patch' }]);
    k.release('fake_patch');
    expect(await finishPending(host)).toEqual(['fake_patch']);
    expect(k.rmmods).toEqual(['fake_patch']);
    expect(host.store.pending()).toEqual([]);
  });

  it('load --revert-on-timeout when the reversal is quick: reversed and removed before it exits', async () => {
    const k = kernel();
    const host = k.host();
    k.held.add('fake_patch');
    const ac = new AbortController();
    const run = loadPatch(host, ko('fake_patch'), { ...T, revertOnTimeout: true, signal: ac.signal });
    await vi.waitFor(() => expect(k.insmods).toHaveLength(1));
    k.held.delete('fake_patch'); // the reversal completes at the kernel's next tick
    ac.abort('SIGTERM');
    const e = await run.catch((x) => x);
    expect(e.message).toBe('interrupted by SIGTERM: the transition of fake_patch was reversed and its module removed: the kernel runs the code it ran before');
    expect(k.rmmods).toEqual(['fake_patch']);
  });

  it('unload: the patch is disabled, the rmmod is left pending; a later command finishes it', async () => {
    const k = kernel();
    const host = k.host();
    await loadPatch(host, ko('fake_patch'), T);
    k.held.add('fake_patch');
    const ac = new AbortController();
    const run = disablePatch(host, 'fake_patch', { ...T, unload: true, signal: ac.signal });
    await vi.waitFor(() => expect(k.get('/sys/kernel/livepatch/fake_patch/transition')).toBe('1\n'));
    ac.abort('SIGTERM');
    const e = await run.catch((x) => x);
    // (the pretend kernel starts the unpatching transition a tick after the write: either moment may be the one interrupted)
    expect(e.message).toMatch(
      /^interrupted by SIGTERM: livepatch fake_patch is disabled and (its unpatching transition is still running \(the kernel goes on with it\); its module is removed by the next suture command once the kernel lets go|the kernel is still letting go of it; its module is still loaded)$/,
    );
    expect(host.store.pending()).toMatchObject([{ op: 'rmmod', module: 'fake_patch' }]);
    expect(host.lock.holder()).toBeUndefined();
    k.release('fake_patch');
    // the next state-changing command (here a load of another patch) removes it first
    await loadPatch(host, ko('fake_bound'), T);
    expect(k.rmmods).toEqual(['fake_patch']);
  });
});

describe('the lock', () => {
  it('install and force take it (a live holder is named; install waits up to its bound)', async () => {
    const k = kernel();
    const host = k.host();
    const lockPath = join(k.root, '/run/suture/lock');
    mkdirSync(join(lockPath, '..'), { recursive: true });
    // another live process holds it (our parent: alive, with its own start time)
    const { processStartTime } = await import('../../src/util/lock.js');
    writeFileSync(lockPath, JSON.stringify({ pid: process.ppid, start: processStartTime(process.ppid), command: 'load other.ko', since: 'T', token: 'theirs' }));
    const waits: string[] = [];
    const t = installPatch(host, ko('fake_patch'), (h) => waits.push(h.owner!.command));
    await vi.waitFor(() => expect(waits).toEqual(['load other.ko']));
    expect(existsSync(join(host.store.stateDir, 'kernels'))).toBe(false);
    writeFileSync(lockPath, JSON.stringify({ pid: 999_999_999, command: 'dead', since: 'T', token: 'dead' }));
    await t;
    expect(host.store.installed('6.1.0-56-amd64').map((p) => p.name)).toEqual(['fake_patch']);
  });

  it('the lock is the kernel\'s: SUTURE_RUN_DIR does not move it', () => {
    const k = kernel();
    const a = k.host(mkdtempSync(join(tmpdir(), 'suture-a-')));
    const b = k.host(mkdtempSync(join(tmpdir(), 'suture-b-')));
    expect(a.store.runDir).not.toBe(b.store.runDir);
    expect(a.lock.path).toBe(b.lock.path);
    const h = a.lock.take('load x');
    expect(b.lock.holder()?.owner?.command).toBe('load x');
    h.release();
  });

  it('force when nobody holds the lock takes it, and releases it', async () => {
    const k = kernel();
    const host = k.host();
    k.held.add('fake_patch');
    await loadPatch(host, ko('fake_patch'), { timeoutMs: 50, revertOnTimeout: false });
    const r = await forcePatch(host, 'fake_patch');
    expect(r.completed).toBe(true);
    expect(host.lock.holder()).toBeUndefined();
  });
});

describe('insmod and rmmod come from fixed system paths, never $PATH', () => {
  it('a hostile insmod first on PATH is not used', () => {
    const evil = mkdtempSync(join(tmpdir(), 'suture-evil-'));
    writeFileSync(join(evil, 'insmod'), '#!/bin/sh\necho pwned\n');
    chmodSync(join(evil, 'insmod'), 0o755);
    const old = process.env.PATH;
    process.env.PATH = `${evil}:${old}`;
    try {
      const dir = mkdtempSync(join(tmpdir(), 'suture-sbin-'));
      writeFileSync(join(dir, 'insmod'), '#!/bin/sh\n');
      chmodSync(join(dir, 'insmod'), 0o755);
      expect(findTool('insmod', [dir])).toBe(join(dir, 'insmod'));
      expect(() => findTool('insmod', [mkdtempSync(join(tmpdir(), 'suture-none-'))])).toThrow(/insmod is not installed \(not found in /);
      const found = (() => {
        try {
          return findTool('insmod');
        } catch {
          return undefined;
        }
      })();
      expect(found === undefined || !found.startsWith(evil)).toBe(true);
    } finally {
      process.env.PATH = old;
    }
  });
});

describe('effective version claims', () => {
  it('a claim outside the running series is ignored, and listed as such', () => {
    const e = effectiveVersion('#1 SMP PREEMPT_DYNAMIC Debian 6.1.192-2 (2026-11-16)', [
      { patch: 'a', version: '6.1.194-1', source: 'modinfo suture_effective_version of /x/a.ko' },
      { patch: 'evil', version: '6.12.99-1' },
      { patch: 'junk', version: 'banana' },
    ]);
    expect(e).toMatchObject({ effective: '6.1.194-1', from: 'a' });
    expect(e.ignored.map((d) => d.patch)).toEqual(['evil', 'junk']);
  });
});
