// SPDX-License-Identifier: GPL-2.0-only
/** install / uninstall / boot and the crash-loop guard, across pretend reboots (the VM tests use real ones). */
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { bootPatches, installPatch, uninstallPatch } from '../../src/livepatch/boot.js';
import { StateStore, writeDurable } from '../../src/livepatch/state.js';
import { listPatches } from '../../src/livepatch/status.js';
import { buildFakePatches, FakeKernel } from './fake-kernel.js';

let ko: (n: string) => string;
let k: FakeKernel;
beforeAll(() => {
  ko = buildFakePatches();
});
afterEach(() => k?.stop());

describe('install / uninstall', () => {
  it('keeps the file per release in install order; a cumulative patch supersedes the others', () => {
    k = new FakeKernel();
    const state = mkdtempSync(join(tmpdir(), 'suture-state-'));
    const host = k.host(state);
    const a = installPatch(host, ko('fake_patch'));
    expect(a).toMatchObject({ release: '6.1.0-56-amd64', updated: false, otherKernel: false });
    expect(a.path).toBe(join(state, 'kernels/6.1.0-56-amd64/fake_patch.ko'));
    expect(readFileSync(a.path)).toEqual(readFileSync(ko('fake_patch')));
    const other = installPatch(host, ko('fake_other_kernel'));
    expect(other).toMatchObject({ release: '6.1.0-55-amd64', otherKernel: true });
    expect(installPatch(host, ko('fake_patch')).updated).toBe(true);
    expect(host.store.installed('6.1.0-56-amd64').map((p) => p.name)).toEqual(['fake_patch']);
    const c = installPatch(host, ko('fake_cumulative'));
    expect(c.superseded.map((s) => s.name)).toEqual(['fake_patch']);
    expect(existsSync(a.path)).toBe(false);
    expect(host.store.installed('6.1.0-56-amd64').map((p) => p.name)).toEqual(['fake_cumulative']);
    expect(host.store.releases()).toEqual(['6.1.0-55-amd64', '6.1.0-56-amd64']);
    expect(uninstallPatch(host, 'fake_cumulative').release).toBe('6.1.0-56-amd64');
    expect(host.store.installed('6.1.0-56-amd64')).toEqual([]);
    expect(() => uninstallPatch(host, 'fake_cumulative')).toThrow('no patch named fake_cumulative is installed for 6.1.0-56-amd64');
  });

  it('refuses to install what is not a livepatch', () => {
    k = new FakeKernel();
    expect(() => installPatch(k.host(), ko('fake_plain'))).toThrow(/is not a livepatch module/);
    expect(() => installPatch(k.host(), ko('garbage'))).toThrow(/is not a kernel module/);
  });
});

describe('boot', () => {
  it('loads the installed patches in order, marks the boot done, and does it again after a reboot', async () => {
    k = new FakeKernel({ bootId: 'b1' });
    k.start();
    const state = mkdtempSync(join(tmpdir(), 'suture-state-'));
    const host = k.host(state);
    installPatch(host, ko('fake_patch'));
    const r1 = await bootPatches(host, { timeoutMs: 5000 });
    expect(r1.items.map((i) => [i.name, i.outcome])).toEqual([['fake_patch', 'loaded']]);
    expect(host.store.bootRecord()).toMatchObject({ bootId: 'b1', phase: 'done', patches: ['fake_patch'], failed: [] });
    // a second run in the same boot is harmless
    const again = await bootPatches(host, { timeoutMs: 5000 });
    expect(again.items.map((i) => i.outcome)).toEqual(['already-loaded']);
    k.reboot('b2');
    k.start();
    const r2 = await bootPatches(k.host(state), { timeoutMs: 5000 });
    expect(r2.items.map((i) => i.outcome)).toEqual(['loaded']);
    expect(listPatches(k.host(state)).map((p) => p.name)).toEqual(['fake_patch']);
  });

  it('a boot that started loading and never finished trips the guard: the next boots load nothing until it is cleared', async () => {
    k = new FakeKernel({ bootId: 'b1' });
    k.start();
    const state = mkdtempSync(join(tmpdir(), 'suture-state-'));
    const host = k.host(state);
    installPatch(host, ko('fake_patch'));
    // boot b1 crashed while loading: its record says "loading"
    writeDurable(join(state, 'boot.json'), JSON.stringify({ bootId: 'b1', release: '6.1.0-56-amd64', phase: 'loading', startedAt: 'T1', patches: ['fake_patch'] }));
    k.reboot('b2');
    k.start();
    await expect(bootPatches(k.host(state), { timeoutMs: 5000 })).rejects.toMatchObject({
      kind: 'crash-loop',
      message: 'crash-loop guard: the boot of T1 (boot id b1) started loading fake_patch and never finished, so suture boot loads nothing',
    });
    expect(k.insmods).toEqual([]);
    expect(new StateStore(state, join(state, 'run')).guard()).toMatchObject({ bootId: 'b2', previous: { bootId: 'b1' } });
    // still tripped in the next boot
    k.reboot('b3');
    k.start();
    await expect(bootPatches(k.host(state), { timeoutMs: 5000 })).rejects.toMatchObject({ kind: 'crash-loop' });
    expect(k.insmods).toEqual([]);
    // cleared: loads again
    expect(k.host(state).store.clearGuard()?.previous.bootId).toBe('b1');
    const r = await bootPatches(k.host(state), { timeoutMs: 5000 });
    expect(r.items.map((i) => i.outcome)).toEqual(['loaded']);
  });

  it('a patch that fails does not stop the others; the boot is still marked done', async () => {
    k = new FakeKernel({ bootId: 'b1' });
    k.start();
    const state = mkdtempSync(join(tmpdir(), 'suture-state-'));
    const host = k.host(state);
    installPatch(host, ko('fake_patch'));
    k.refuse.set('fake_patch', 'fake_patch: Unknown symbol foo (err -2)');
    const r = await bootPatches(host, { timeoutMs: 5000 });
    expect(r.items[0]).toMatchObject({ name: 'fake_patch', outcome: 'failed', error: { kind: 'kernel-refused' } });
    expect(r.firstError?.kind).toBe('kernel-refused');
    expect(host.store.bootRecord()?.phase).toBe('done');
  });
});

describe('state store', () => {
  it('the lock refuses a second holder that is alive and takes over a dead one', () => {
    const state = mkdtempSync(join(tmpdir(), 'suture-state-'));
    const s = new StateStore(state, join(state, 'run'));
    const unlock = s.lock('load a.ko');
    // our own pid holds it: a second lock by another live process is refused
    writeDurable(join(state, 'run', 'lock'), `1 load other.ko\n`);
    expect(() => s.lock('load b.ko')).toThrow('another suture command is changing livepatches: load other.ko (pid 1)');
    writeDurable(join(state, 'run', 'lock'), `999999999 load dead.ko\n`);
    const again = s.lock('load c.ko');
    expect(readFileSync(join(state, 'run', 'lock'), 'utf8')).toBe(`${process.pid} load c.ko\n`);
    again();
    unlock();
  });

  it('damaged state is named, with what to do', () => {
    const state = mkdtempSync(join(tmpdir(), 'suture-state-'));
    writeDurable(join(state, 'boot.json'), '{not json');
    expect(() => new StateStore(state, state).bootRecord()).toThrow(`${join(state, 'boot.json')} is damaged (not JSON)`);
  });
});
