// SPDX-License-Identifier: GPL-2.0-only
/**
 * install / uninstall / boot and the crash-loop guard, across pretend reboots
 * (the VM tests use real ones), with the faults of a sysadmin's worst day
 * injected: a signal while loading, an error, a full disk, damaged state
 * files, a hostile installed file.
 */
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { bootPatches, installPatch, settleWindow, uninstallPatch } from '../../src/livepatch/boot.js';
import { StateStore, stateIo, writeDurable } from '../../src/livepatch/records.js';
import { hostStatus, listPatches } from '../../src/livepatch/status.js';
import { buildFakePatches, FakeKernel } from './fake-kernel.js';

let ko: (n: string) => string;
let k: FakeKernel;
beforeAll(() => {
  ko = buildFakePatches();
});
afterEach(() => {
  k?.stop();
  vi.restoreAllMocks();
});

const newState = () => mkdtempSync(join(tmpdir(), 'suture-state-'));
const B = { timeoutMs: 5000, windowSec: 0 };
const enospc = () => Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });

describe('install / uninstall', () => {
  it('keeps the file per release in install order; a cumulative patch supersedes the others', async () => {
    k = new FakeKernel();
    const state = newState();
    const host = k.host(state);
    const a = await installPatch(host, ko('fake_patch'));
    expect(a).toMatchObject({ release: '6.1.0-56-amd64', updated: false, otherKernel: false });
    expect(a.path).toBe(join(state, 'kernels/6.1.0-56-amd64/fake_patch.ko'));
    expect(readFileSync(a.path)).toEqual(readFileSync(ko('fake_patch')));
    const other = await installPatch(host, ko('fake_other_kernel'));
    expect(other).toMatchObject({ release: '6.1.0-55-amd64', otherKernel: true });
    expect((await installPatch(host, ko('fake_patch'))).updated).toBe(true);
    expect(host.store.installed('6.1.0-56-amd64').map((p) => p.name)).toEqual(['fake_patch']);
    const c = await installPatch(host, ko('fake_cumulative'));
    expect(c.superseded.map((s) => s.name)).toEqual(['fake_patch']);
    expect(existsSync(a.path)).toBe(false);
    expect(host.store.installed('6.1.0-56-amd64').map((p) => p.name)).toEqual(['fake_cumulative']);
    expect(host.store.releases()).toEqual(['6.1.0-55-amd64', '6.1.0-56-amd64']);
    expect((await uninstallPatch(host, 'fake_cumulative')).release).toBe('6.1.0-56-amd64');
    expect(host.store.installed('6.1.0-56-amd64')).toEqual([]);
    await expect(uninstallPatch(host, 'fake_cumulative')).rejects.toThrow('no patch named fake_cumulative is installed for 6.1.0-56-amd64');
  });

  it('refuses to install what is not a livepatch', async () => {
    k = new FakeKernel();
    await expect(installPatch(k.host(), ko('fake_plain'))).rejects.toThrow(/is not a livepatch module/);
    await expect(installPatch(k.host(), ko('garbage'))).rejects.toThrow(/is not a kernel module/);
  });

  it('writes the bytes it validated, mode 0600, whatever the source mode (never a copy of a 0666 file)', async () => {
    k = new FakeKernel();
    const src = join(mkdtempSync(join(tmpdir(), 'suture-src-')), 'fake_patch.ko');
    writeFileSync(src, readFileSync(ko('fake_patch')));
    chmodSync(src, 0o666);
    const r = await installPatch(k.host(newState()), src);
    expect(statSync(r.path).mode & 0o777).toBe(0o600);
    expect(r.entry.sha256).toMatch(/^[0-9a-f]{64}$/);
  });
});

describe('boot', () => {
  it('loads the installed patches in order, marks the boot complete, and does it again after a reboot', async () => {
    k = new FakeKernel({ bootId: 'b1' });
    k.start();
    const state = newState();
    const host = k.host(state);
    await installPatch(host, ko('fake_patch'));
    const r1 = await bootPatches(host, B);
    expect(r1.items.map((i) => [i.name, i.outcome])).toEqual([['fake_patch', 'loaded']]);
    expect(host.store.bootRecord()).toMatchObject({ bootId: 'b1', end: 'complete', patches: ['fake_patch'], failed: [] });
    expect(existsSync(host.store.armedPath)).toBe(false);
    // insmod loaded a private staged copy, not the installed path
    expect(k.insmods[0]).toMatch(new RegExp(`^${join(state, 'run', 'staging')}/fake_patch-\\w+/fake_patch\\.ko$`));
    expect(existsSync(k.insmods[0]!)).toBe(false);
    const again = await bootPatches(host, B);
    expect(again.items.map((i) => i.outcome)).toEqual(['already-loaded']);
    k.reboot('b2');
    k.start();
    const r2 = await bootPatches(k.host(state), B);
    expect(r2.items.map((i) => i.outcome)).toEqual(['loaded']);
    expect(listPatches(k.host(state)).map((p) => p.name)).toEqual(['fake_patch']);
  });

  it('a boot that died while loading trips the guard against the patch it was loading; the others still load', async () => {
    k = new FakeKernel({ bootId: 'b1' });
    const state = newState();
    const host = k.host(state);
    await installPatch(host, ko('fake_patch'));
    await installPatch(host, ko('fake_bound'));
    // boot b1 died while loading fake_bound (loading.json armed with current = fake_bound)
    host.store.arm({ bootId: 'b1', release: '6.1.0-56-amd64', startedAt: 'T1', patches: ['fake_patch', 'fake_bound'], current: 'fake_bound', loaded: ['fake_patch'] });
    k.reboot('b2');
    k.start();
    const r = await bootPatches(k.host(state), B);
    expect(r.items.map((i) => [i.name, i.outcome])).toEqual([
      ['fake_patch', 'loaded'],
      ['fake_bound', 'blamed'],
    ]);
    expect(r.firstError).toMatchObject({
      kind: 'crash-loop',
      message:
        'crash-loop guard: the boot of T1 (boot id b1) died while loading fake_patch, fake_bound; blamed: fake_bound (it was being loaded when the machine died), so suture boot does not load fake_bound',
    });
    expect(k.host(state).store.guard()).toMatchObject({ bootId: 'b2', blame: 'fake_bound', when: 'loading' });
    // still blamed in the next boot, until cleared
    k.reboot('b3');
    k.start();
    expect((await bootPatches(k.host(state), B)).items.map((i) => i.outcome)).toEqual(['loaded', 'blamed']);
    expect(k.host(state).store.clearGuard().guard?.blame).toBe('fake_bound');
    k.reboot('b4');
    k.start();
    expect((await bootPatches(k.host(state), B)).items.map((i) => i.outcome)).toEqual(['loaded', 'loaded']);
  });

  it('a crash inside the guard window with two patches loaded bisects over boots: a surviving half is cleared, a crashing half is kept', async () => {
    k = new FakeKernel({ bootId: 'b1' });
    k.start();
    const state = newState();
    await installPatch(k.host(state), ko('fake_patch'));
    await installPatch(k.host(state), ko('fake_bound'));
    k.setUptime(10);
    const r = await bootPatches(k.host(state), { timeoutMs: 5000, windowSec: 300 });
    expect(r.windowUntil).toBe(310);
    expect(k.host(state).store.armed()).toMatchObject({ bootId: 'b1', loaded: ['fake_patch', 'fake_bound'], window: { untilUptime: 310 } });
    expect(hostStatus(k.host(state)).boot.armed?.window?.seconds).toBe(300);
    // the window is still open a minute later
    k.setUptime(70);
    expect(settleWindow(k.host(state))).toBe('open');
    // the machine dies at 70 s: nothing names a patch, so both are suspects; this boot tries the first half
    k.reboot('b2');
    k.start();
    k.setUptime(5);
    const r2 = await bootPatches(k.host(state), { timeoutMs: 5000, windowSec: 300 });
    expect(r2.items.map((i) => i.outcome)).toEqual(['loaded', 'held-back']);
    expect(r2.firstError?.message).toMatch(
      /died while inside the guard window after loading fake_patch, fake_bound; no kernel report named a patch; bisecting over boots: of the suspects fake_patch, fake_bound, this boot loads fake_patch and holds back fake_bound$/,
    );
    expect(k.host(state).store.guard()).toMatchObject({ when: 'window', suspects: ['fake_patch', 'fake_bound'] });
    // b2 lives through its window: fake_patch is cleared, fake_bound is the one left: blamed
    k.setUptime(400);
    expect(settleWindow(k.host(state))).toBe('settled');
    expect(k.host(state).store.guard()).toMatchObject({ blame: 'fake_bound' });
    expect(k.host(state).store.guard()?.suspects).toBeUndefined();
    k.reboot('b3');
    k.start();
    expect((await bootPatches(k.host(state), B)).items.map((i) => i.outcome)).toEqual(['loaded', 'blamed']);

    // the other way: the trial half crashes too, so it is the one blamed
    k.host(state).store.clearGuard();
    k.reboot('c1');
    k.start();
    k.setUptime(5);
    await bootPatches(k.host(state), { timeoutMs: 5000, windowSec: 300 });
    k.reboot('c2');
    k.start();
    await bootPatches(k.host(state), { timeoutMs: 5000, windowSec: 300 });
    expect(k.host(state).store.armed()).toMatchObject({ trial: ['fake_patch'] });
    k.reboot('c3'); // dies inside c2's window
    k.start();
    const r3 = await bootPatches(k.host(state), B);
    expect(r3.items.map((i) => i.outcome)).toEqual(['blamed', 'loaded']);
    expect(k.host(state).store.guard()).toMatchObject({ blame: 'fake_patch', when: 'window' });
  });

  it('a clean shutdown inside the window blames nothing; a window that ends with the machine up settles on its own', async () => {
    k = new FakeKernel({ bootId: 'b3' });
    k.start();
    const state = newState();
    await installPatch(k.host(state), ko('fake_patch'));
    await installPatch(k.host(state), ko('fake_bound'));
    k.setUptime(5);
    await bootPatches(k.host(state), { timeoutMs: 5000, windowSec: 300 });
    expect(settleWindow(k.host(state), { force: 'shutdown' })).toBe('settled');
    k.reboot('b4');
    k.start();
    expect((await bootPatches(k.host(state), B)).items.map((i) => i.outcome)).toEqual(['loaded', 'loaded']);
    k.setUptime(5);
    k.reboot('b5');
    k.start();
    await bootPatches(k.host(state), { timeoutMs: 5000, windowSec: 60 });
    k.setUptime(66);
    expect(settleWindow(k.host(state))).toBe('settled');
    expect(existsSync(k.host(state).store.armedPath)).toBe(false);
  });

  it('a kernel report naming a patched function inside the window trips the guard against that patch', async () => {
    k = new FakeKernel({ bootId: 'b1' });
    k.start();
    const state = newState();
    await installPatch(k.host(state), ko('fake_patch'));
    k.setUptime(100);
    await bootPatches(k.host(state), { timeoutMs: 5000, windowSec: 300 });
    k.logLines(['BUG: kernel NULL pointer dereference, address: 0000000000000008', 'Modules linked in: fake_patch(OEK) fake_bound(OEK)', 'RIP: 0010:cmdline_proc_show+0x12/0x40 [fake_patch]'], 101_000_000);
    expect(settleWindow(k.host(state))).toBe('tripped');
    expect(k.host(state).store.guard()).toMatchObject({ when: 'oops', blame: 'fake_patch', evidence: expect.stringContaining('RIP: 0010:cmdline_proc_show+0x12/0x40 [fake_patch]') });
  });

  it('a signal while loading is not a crash: the boot record says interrupted, the guard is not armed, the next boot loads', async () => {
    k = new FakeKernel({ bootId: 'b1' });
    k.start();
    const state = newState();
    await installPatch(k.host(state), ko('fake_patch'));
    await installPatch(k.host(state), ko('fake_bound'));
    k.held.add('fake_patch');
    const ac = new AbortController();
    const run = bootPatches(k.host(state), { ...B, signal: ac.signal });
    await vi.waitFor(() => expect(k.insmods).toHaveLength(1));
    ac.abort('SIGTERM');
    const r = await run;
    expect(r.end).toBe('interrupted');
    expect(r.items.map((i) => i.outcome)).toEqual(['not-loaded', 'not-loaded']);
    expect(r.firstError).toMatchObject({ kind: 'interrupted' });
    expect(r.firstError!.message).toMatch(/^suture boot was interrupted by SIGTERM: nothing loaded; not loaded: fake_patch, fake_bound\. This is not a crash/);
    expect(r.items[0]!.error!.message).toMatch(/livepatch fake_patch is loaded and its patching transition is still running/);
    expect(k.host(state).store.bootRecord()).toMatchObject({ end: 'interrupted', reason: 'SIGTERM' });
    expect(existsSync(k.host(state).store.armedPath)).toBe(false);
    expect(existsSync(join(k.root, '/run/suture/lock'))).toBe(false);
    // a second suture boot in the same boot finishes the job; the next boot loads everything, no guard
    k.release('fake_patch');
    expect((await bootPatches(k.host(state), B)).items.map((i) => i.outcome)).toEqual(['already-loaded', 'loaded']);
    k.reboot('b2');
    k.start();
    const r2 = await bootPatches(k.host(state), B);
    expect(r2.firstError).toBeUndefined();
    expect(r2.items.map((i) => i.outcome)).toEqual(['loaded', 'loaded']);
  });

  it('an error that is not a SutureError ends the boot as an error, not a crash', async () => {
    k = new FakeKernel({ bootId: 'b1' });
    k.start();
    const state = newState();
    const host = k.host(state);
    await installPatch(host, ko('fake_patch'));
    const insmod = host.loader.insmod;
    host.loader.insmod = async () => {
      throw new TypeError('boom');
    };
    await expect(bootPatches(host, B)).rejects.toThrow('boom');
    host.loader.insmod = insmod;
    expect(host.store.bootRecord()).toMatchObject({ end: 'error', reason: 'boom' });
    expect(existsSync(host.store.armedPath)).toBe(false);
    k.reboot('b2');
    k.start();
    expect((await bootPatches(k.host(state), B)).items.map((i) => i.outcome)).toEqual(['loaded']);
  });

  it('a full disk: the patches still load, the guard is not armed (said), and the next boot is not blamed', async () => {
    k = new FakeKernel({ bootId: 'b1' });
    k.start();
    const state = newState();
    await installPatch(k.host(state), ko('fake_patch'));
    vi.spyOn(stateIo, 'writeSync').mockImplementation(() => {
      throw enospc();
    });
    const r = await bootPatches(k.host(state), B);
    expect(r.items.map((i) => i.outcome)).toEqual(['loaded']);
    expect(r.warnings[0]).toMatch(/^the crash-loop guard is not armed \(writing suture state: no space left on the device holding .*loading\.json\): loading anyway$/);
    expect(r.warnings[1]).toMatch(/^the boot record could not be written/);
    vi.restoreAllMocks();
    k.reboot('b2');
    k.start();
    expect((await bootPatches(k.host(state), B)).items.map((i) => i.outcome)).toEqual(['loaded']);
  });

  it('armed but "done" cannot be written (disk full after loading): disarming needs no space, the next boot is not blamed', async () => {
    k = new FakeKernel({ bootId: 'b1' });
    k.start();
    const state = newState();
    await installPatch(k.host(state), ko('fake_patch'));
    const real = stateIo.writeSync;
    let writes = 0;
    vi.spyOn(stateIo, 'writeSync').mockImplementation((...a: Parameters<typeof real>) => {
      // loading.json is written twice (armed, then the patch being loaded); everything after fails
      if (++writes > 2) throw enospc();
      return real(...a);
    });
    const r = await bootPatches(k.host(state), B);
    expect(r.items.map((i) => i.outcome)).toEqual(['loaded']);
    expect(existsSync(k.host(state).store.armedPath)).toBe(false);
    vi.restoreAllMocks();
    k.reboot('b2');
    k.start();
    expect((await bootPatches(k.host(state), B)).firstError).toBeUndefined();
  });

  it('a patch that fails does not stop the others; the boot is still marked finished', async () => {
    k = new FakeKernel({ bootId: 'b1' });
    k.start();
    const state = newState();
    const host = k.host(state);
    await installPatch(host, ko('fake_patch'));
    k.refuse.set('fake_patch', 'fake_patch: Unknown symbol foo (err -2)');
    const r = await bootPatches(host, B);
    expect(r.items[0]).toMatchObject({ name: 'fake_patch', outcome: 'failed', error: { kind: 'kernel-refused' } });
    expect(r.firstError?.kind).toBe('kernel-refused');
    expect(host.store.bootRecord()?.end).toBe('failed');
  });

  it('--stop keeps every boot from loading anything until --resume', async () => {
    k = new FakeKernel({ bootId: 'b1' });
    k.start();
    const state = newState();
    const host = k.host(state);
    await installPatch(host, ko('fake_patch'));
    host.store.stop('maintenance');
    const r = await bootPatches(host, B);
    expect(r.stopped?.reason).toBe('maintenance');
    expect(k.insmods).toEqual([]);
    expect(host.store.resume()).toBe(true);
    expect((await bootPatches(host, B)).items.map((i) => i.outcome)).toEqual(['loaded']);
  });

  it('refuses installed files that are symlinks, writable by others, or changed since install', async () => {
    k = new FakeKernel({ bootId: 'b1' });
    k.start();
    const state = newState();
    const host = k.host(state);
    const a = await installPatch(host, ko('fake_patch'));
    chmodSync(a.path, 0o666);
    let r = await bootPatches(host, B);
    expect(r.items[0]!.error!.message).toBe(`${a.path} is writable by every user (mode 666): suture will not load it`);
    rmSync(a.path);
    symlinkSync(ko('fake_patch'), a.path);
    r = await bootPatches(host, B);
    expect(r.items[0]!.error!.message).toBe(`${a.path} is a symbolic link: suture loads only regular files it can trust`);
    rmSync(a.path);
    const changed = readFileSync(ko('fake_patch'));
    changed.write('FAKE', changed.indexOf('fake livepatch for unit tests'), 'latin1');
    writeFileSync(a.path, changed, { mode: 0o600 });
    r = await bootPatches(host, B);
    expect(r.items[0]!.error!.message).toMatch(new RegExp(`^${a.path} has changed since it was installed \\(sha256 \\w+…, installed \\w+…\\): suture will not load it$`));
    expect(k.insmods).toEqual([]);
  });
});

describe('damaged state files', () => {
  it.each([
    ['not JSON', '{not json'],
    ['empty', ''],
    ['a list', '[]'],
    ['another version', '{"version": 7, "trippedAt": "T", "previous": {}}'],
  ])('a crash-guard.json that is %s: boot says the guard is unreadable (crash-loop, not an environment error), --clear-guard clears it', async (_, text) => {
    k = new FakeKernel({ bootId: 'b1' });
    k.start();
    const state = newState();
    const host = k.host(state);
    await installPatch(host, ko('fake_patch'));
    writeFileSync(join(state, 'crash-guard.json'), text);
    const err = await bootPatches(host, B).catch((e) => e);
    expect(err).toMatchObject({ kind: 'crash-loop' });
    expect(err.message).toMatch(new RegExp(`^crash-loop guard: ${join(state, 'crash-guard.json')} is damaged \\(.+\\): it is not a file suture wrote; suture treats the guard as tripped and loads nothing$`));
    expect(k.insmods).toEqual([]);
    expect(host.store.clearGuard().damaged).toBe(true);
    expect((await bootPatches(host, B)).items.map((i) => i.outcome)).toEqual(['loaded']);
  });

  it('a damaged installed.json is named (state-damaged) with what to do', async () => {
    k = new FakeKernel({ bootId: 'b1' });
    const state = newState();
    const host = k.host(state);
    await installPatch(host, ko('fake_patch'));
    const path = join(state, 'kernels/6.1.0-56-amd64/installed.json');
    writeFileSync(path, '{"version":1,"patches":[{"name":"x"}]}');
    await expect(bootPatches(host, B)).rejects.toMatchObject({
      kind: 'state-damaged',
      message: `${path} is damaged (patch x has no usable file name): it is not a file suture wrote`,
      hint: `move it aside (mv ${path} ${path}.bad), then install the patches for 6.1.0-56-amd64 again (suture install PATCH.ko)`,
    });
    expect(host.store.bootRecord()).toMatchObject({ end: 'error' });
  });

  it('a damaged boot.json is set aside and the boot goes on', async () => {
    k = new FakeKernel({ bootId: 'b1' });
    k.start();
    const state = newState();
    const host = k.host(state);
    await installPatch(host, ko('fake_patch'));
    writeFileSync(join(state, 'boot.json'), '{"bootId": 3}');
    const r = await bootPatches(host, B);
    expect(r.items.map((i) => i.outcome)).toEqual(['loaded']);
    expect(r.warnings[0]).toMatch(/boot\.json is damaged \(no boot id\).*; moved to .*boot\.json\.damaged-/);
  });
});

describe('writeDurable under faults', () => {
  it('a short write is continued until every byte is written', () => {
    const path = join(newState(), 'x.json');
    const real = stateIo.writeSync;
    vi.spyOn(stateIo, 'writeSync').mockImplementation((fd: number, buf: any, off?: any, len?: any) => real(fd, buf, off, Math.min(len ?? buf.length, 3)));
    writeDurable(path, '{"a": "0123456789"}\n');
    expect(readFileSync(path, 'utf8')).toBe('{"a": "0123456789"}\n');
  });

  it('ENOSPC halfway keeps the old file whole and says the disk is full (not "run as root")', () => {
    const path = join(newState(), 'x.json');
    writeDurable(path, 'old\n');
    const real = stateIo.writeSync;
    let n = 0;
    vi.spyOn(stateIo, 'writeSync').mockImplementation((fd: number, buf: any, off?: any, len?: any) => {
      if (n++ > 0) throw enospc();
      return real(fd, buf, off, 2);
    });
    expect(() => writeDurable(path, 'new content\n')).toThrow(
      expect.objectContaining({ kind: 'environment', message: `writing suture state: no space left on the device holding ${path}`, hint: expect.stringMatching(/^free some space there/) }),
    );
    expect(readFileSync(path, 'utf8')).toBe('old\n');
    expect(new StateStore(join(path, '..'), 'x').setAside).toBeDefined();
  });
});
