// SPDX-License-Identifier: GPL-2.0-only
/** load / disable / unload / replace / force against the pretend kernel (the VM tests use the real one). */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { disablePatch, forcePatch, loadPatch, type HostEvent } from '../../src/livepatch/core.js';
import { hostStatus, listPatches } from '../../src/livepatch/status.js';
import { buildFakePatches, fakeKernels } from './fake-kernel.js';

let ko: (n: string) => string;
beforeAll(() => {
  ko = buildFakePatches();
});
const kernel = fakeKernels();

const T = { timeoutMs: 5000, revertOnTimeout: false };

describe('loadPatch', () => {
  it('insmods, sees the transition complete, records what it loaded, and list shows it', async () => {
    const k = kernel();
    const host = k.host();
    const events: HostEvent[] = [];
    const r = await loadPatch(host, ko('fake_patch'), { ...T, onEvent: (e) => events.push(e) });
    expect(r.outcome).toBe('complete');
    expect(r.patch).toBe('fake_patch');
    expect(r.notes).toEqual(['module some_module is not loaded: the kernel patches it when it loads']);
    // 'ended' the moment the watch sees it, before its final progress report
    expect(events.map((e) => e.type)).toEqual(['note', 'insmod', 'ended', 'transition']);
    expect(r.sysfs).toMatchObject({ name: 'fake_patch', enabled: true, transition: false });
    expect(r.kernelTransitionMs).toBeGreaterThanOrEqual(0);
    const rec = host.store.loadRecord('fake_patch')!;
    expect(rec).toMatchObject({ name: 'fake_patch', replace: false, effectiveVersion: '6.1.194-1', bootId: 'boot-1' });
    const [p] = listPatches(host);
    expect(p).toMatchObject({ name: 'fake_patch', state: 'enabled', loadedBySuture: true, cves: ['CVE-0000-0010', 'CVE-0000-0011', 'CVE-0000-0012'] });
    expect(p!.objects.map((o) => [o.name, o.patched, o.functions.map((f) => `${f.name},${f.sympos}`)])).toEqual([
      ['some_module', false, ['some_module_func,1']],
      ['vmlinux', true, ['cmdline_proc_show,1', 'meminfo_proc_show,2']],
    ]);
    // the lock is released
    expect(() => host.lock.take('test').release()).not.toThrow();
  });

  it('the same file again (an interrupted load run again) watches it to the end; another file of that name is refused, before insmod', async () => {
    const k = kernel();
    const host = k.host();
    await loadPatch(host, ko('fake_patch'), T);
    const events: HostEvent[] = [];
    const again = await loadPatch(host, ko('fake_patch'), { ...T, onEvent: (e) => events.push(e) });
    expect(again.outcome).toBe('complete');
    expect(events.filter((e) => e.type === 'note').map((e) => (e as { message: string }).message)).toContain('fake_patch (this same file) is already loaded: watching its transition');
    // another build under the same name
    const other = join(mkdtempSync(join(tmpdir(), 'suture-other-')), 'fake_patch.ko');
    const bytes = readFileSync(ko('fake_patch'));
    const at = bytes.indexOf('fake livepatch for unit tests');
    bytes.write('FAKE', at, 'latin1');
    writeFileSync(other, bytes);
    await expect(loadPatch(host, other, T)).rejects.toThrow('livepatch fake_patch is already loaded (enabled)');
    expect(k.insmods).toHaveLength(1);
  });

  it("reports the kernel's own reason when insmod fails", async () => {
    const k = kernel();
    k.refuse.set('fake_patch', "fake_patch: disagrees about version of symbol module_layout");
    await expect(loadPatch(k.host(), ko('fake_patch'), T)).rejects.toThrow(/the kernel refused .*fake_patch\.ko: fake_patch: disagrees about version of symbol module_layout/);
  });

  it('a stalled transition times out and is left running, naming the blocker', async () => {
    const k = kernel();
    k.held.add('fake_patch');
    k.addTask(77, 'cat', 'D', '[<0>] meminfo_proc_show+0x5/0x90\n[<0>] seq_read_iter+0x1/0x2\n', 0);
    const host = k.host();
    const r = await loadPatch(host, ko('fake_patch'), { timeoutMs: 700, revertOnTimeout: false });
    expect(r.outcome).toBe('stalled');
    expect(r.transition.blockers?.blockers[0]).toMatchObject({ pid: 77, comm: 'cat' });
    expect(r.transition.blockers?.blockers[0]!.stack[0]!.patched).toBe(true);
    const s = hostStatus(host);
    expect(s.transition).toMatchObject({ patch: 'fake_patch', target: 'patched', pendingTasks: 1 });
    expect(s.attention[0]).toBe('livepatch fake_patch is in transition (1 tasks still to switch)');
    // another load waits its turn
    await expect(loadPatch(host, ko('fake_cumulative'), T)).rejects.toThrow('livepatch fake_patch is in transition; the kernel runs one transition at a time');
  });

  it('with revert-on-timeout: reverses, waits for the kernel to free it, removes the module', async () => {
    const k = kernel();
    k.held.add('fake_patch');
    const host = k.host();
    const events: HostEvent[] = [];
    const run = loadPatch(host, ko('fake_patch'), { timeoutMs: 300, revertOnTimeout: true, onEvent: (e) => events.push(e) });
    // the pretend kernel completes the reversal once it sees enabled = 0
    const poll = setInterval(() => {
      if (k.get('/sys/kernel/livepatch/fake_patch/enabled') === '0\n') {
        clearInterval(poll);
        k.release('fake_patch');
      }
    }, 5);
    const r = await run;
    expect(r.outcome).toBe('reversed');
    expect(r.removed).toEqual(['fake_patch']);
    expect(k.rmmods).toEqual(['fake_patch']);
    expect(events.some((e) => e.type === 'reversing')).toBe(true);
    expect(listPatches(host)).toEqual([]);
    expect(host.store.loadRecord('fake_patch')).toBeUndefined();
  });
});

describe('disable / unload / replace / force', () => {
  it('disable unpatches and keeps the module; unload then removes it', async () => {
    const k = kernel();
    const host = k.host();
    await loadPatch(host, ko('fake_patch'), T);
    const d = await disablePatch(host, 'fake_patch', T);
    expect(d.outcome).toBe('complete');
    expect(k.get('/sys/kernel/livepatch/fake_patch/enabled')).toBeUndefined();
    expect(listPatches(host)).toMatchObject([{ name: 'fake_patch', state: 'disabled' }]);
    const again = await disablePatch(host, 'fake_patch', T);
    expect(again.outcome).toBe('already-disabled');
    const u = await disablePatch(host, 'fake_patch', { ...T, unload: true });
    expect(u).toMatchObject({ outcome: 'already-disabled', removed: true });
    expect(k.rmmods).toEqual(['fake_patch']);
    expect(listPatches(host)).toEqual([]);
  });

  it('unload of an enabled patch disables, waits, and removes', async () => {
    const k = kernel();
    const host = k.host();
    await loadPatch(host, ko('fake_patch'), T);
    const u = await disablePatch(host, 'fake_patch', { ...T, unload: true });
    expect(u).toMatchObject({ outcome: 'complete', removed: true });
    expect(listPatches(host)).toEqual([]);
  });

  it('an unknown name is named, with what is loaded', async () => {
    const k = kernel();
    const host = k.host();
    await loadPatch(host, ko('fake_patch'), T);
    await expect(disablePatch(host, 'nope', T)).rejects.toThrow('no livepatch named nope is loaded');
  });

  it('replace: the cumulative patch replaces the loaded one, whose module is removed', async () => {
    const k = kernel();
    const host = k.host();
    await loadPatch(host, ko('fake_patch'), T);
    await expect(loadPatch(host, ko('fake_patch'), { ...T, replace: true })).rejects.toThrow(/is not a cumulative patch \(its klp_patch has replace = false\)/);
    const r = await loadPatch(host, ko('fake_cumulative'), { ...T, replace: true });
    expect(r.outcome).toBe('complete');
    expect(r.replaced).toEqual(['fake_patch']);
    expect(r.removed).toEqual(['fake_patch']);
    expect(listPatches(host).map((p) => p.name)).toEqual(['fake_cumulative']);
  });

  it('force: refused when not in transition; forcing a patching transition pins no module', async () => {
    const k = kernel();
    const host = k.host();
    await loadPatch(host, ko('fake_patch'), T);
    await expect(forcePatch(host, 'fake_patch')).rejects.toThrow('livepatch fake_patch is not in transition: there is nothing to force');
    await disablePatch(host, 'fake_patch', { ...T, unload: true });
    k.held.add('fake_patch');
    await loadPatch(host, ko('fake_patch'), { timeoutMs: 100, revertOnTimeout: false });
    const f = await forcePatch(host, 'fake_patch');
    expect(f).toMatchObject({ target: 1, pinned: [], completed: true });
    expect(host.store.loadRecord('fake_patch')?.forced).toBeUndefined();
    expect(k.fs.transition('fake_patch')).toBe(false);
  });

  it('forcing a transition towards unpatched pins the patch: recorded, and status says so', async () => {
    const k = kernel();
    const host = k.host();
    k.held.add('fake_patch');
    await loadPatch(host, ko('fake_patch'), { timeoutMs: 100, revertOnTimeout: false });
    // disabling a patch in its patching transition reverses it: the target becomes unpatched
    const d = await disablePatch(host, 'fake_patch', { timeoutMs: 100, revertOnTimeout: false });
    expect(d.outcome).toBe('stalled');
    const f = await forcePatch(host, 'fake_patch');
    expect(f).toMatchObject({ target: 0, pinned: ['fake_patch'] });
    expect(host.store.loadRecord('fake_patch')?.forced).toBe(true);
    expect(hostStatus(host).attention).toContain('livepatch fake_patch was forced: the kernel keeps its module for good; reboot when you can');
  });

});
