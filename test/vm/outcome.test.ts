// SPDX-License-Identifier: GPL-2.0-only
/** What a guest session means (vm/outcome.ts), and the one map from an outcome to an error kind and exit code. */
import { describe, expect, it } from 'vitest';
import { exitCodeFor } from '../../src/cli/exit-codes.js';
import { vmExitCode } from '../../src/cli/vm.js';
import { classify, vmError } from '../../src/vm/outcome.js';
import type { VmSpec } from '../../src/vm/run.js';
import type { Session } from '../../src/vm/session.js';

const spec: VmSpec = { kernelImage: '/boot/vmlinuz', stateDir: '/tmp', loads: ['/tmp/lp.ko'], commands: [{ label: 'uname -r', script: 'uname -r' }] };
const labels = new Map([
  ['load:0', 'load lp.ko'],
  ['cmd:0', 'uname -r'],
]);
const session = (s: Partial<Session>): Session => ({
  consoleLines: [],
  outputs: new Map(),
  ends: new Map(),
  bootMs: 5000,
  done: true,
  running: undefined,
  timedOut: false,
  kvmSilent: false,
  sawAnything: true,
  qemu: { code: 0, stderr: '' },
  ...s,
});
const ran = (id: string, status: number, out: string) => ({ outputs: [id, [Buffer.from(out)]] as const, ends: [id, { status, durationMs: 10 }] as const });
const steps = (...xs: ReturnType<typeof ran>[]) => ({ outputs: new Map(xs.map((x) => x.outputs)), ends: new Map(xs.map((x) => x.ends)) });

describe('a guest session classified', () => {
  it('ok: every step returned 0', () => {
    const r = classify(spec, session(steps(ran('load:0', 0, 'patch lp\n'), ran('cmd:0', 0, '6.1.0\n'))), labels, 'tcg', 7000);
    expect(r.outcome).toBe('ok');
    expect(r.loads[0]).toMatchObject({ label: 'load lp.ko', patch: 'lp', status: 0 });
    expect(r.commands[0]!.output).toBe('6.1.0\n');
    expect(vmError(r, 'the check')).toBeUndefined();
  });

  it('a guest that stops before its init: boot-failure, a guest crash for every command that boots one', () => {
    const r = classify(spec, session({ bootMs: null, done: false, qemu: { code: 1, stderr: 'qemu: could not load kernel\n' } }), labels, 'tcg', 900);
    expect(r.outcome).toBe('boot-failure');
    expect(r.reason).toBe('the guest stopped before its init started (qemu exit 1: qemu: could not load kernel)');
    const e = vmError(r, 'capturing the symbols')!;
    expect(e.kind).toBe('guest-crash');
    expect(e.message).toBe('capturing the symbols: the guest stopped before its init started (qemu exit 1: qemu: could not load kernel)');
    expect(vmExitCode(r)).toBe(exitCodeFor('guest-crash'));
  });

  it('a crash on the console wins over everything else, naming the running step', () => {
    const r = classify(spec, session({ consoleLines: ['[    3.1] BUG: kernel NULL pointer dereference, address: 0000000000000000'], running: 'load:0', done: false }), labels, 'tcg', 4000);
    expect(r.outcome).toBe('crash');
    expect(r.runningStep).toBe('load lp.ko');
    expect(vmError(r, 'x')!.kind).toBe('guest-crash');
  });

  it('a refused load names the kernel\'s reason; a failed command keeps its status', () => {
    const refused = classify(spec, session({ ...steps(ran('load:0', 1, 'insmod: can\'t insert lp.ko: invalid module format\n'), ran('dmesg', 0, '[ 2.0] lp: version magic \'6.1.0 SMP\' should be \'6.1.0 SMP mod_unload\'\n')) }), labels, 'tcg', 4000);
    expect(refused.outcome).toBe('refused');
    expect(refused.reason).toBe("load lp.ko failed: lp: version magic '6.1.0 SMP' should be '6.1.0 SMP mod_unload' (insmod: can't insert lp.ko: invalid module format)");
    expect(vmError(refused, 'x')!.kind).toBe('guest-refused');
    const failed = classify(spec, session(steps(ran('load:0', 0, 'patch lp\n'), ran('cmd:0', 3, ''))), labels, 'tcg', 4000);
    expect(failed).toMatchObject({ outcome: 'command-failed', firstFailedStatus: 3 });
    expect(vmExitCode(failed)).toBe(3);
  });

  it('a time limit passed: timeout', () => {
    const r = classify({ ...spec, timeoutMs: 30_000 }, session({ timedOut: true, running: 'cmd:0', done: false }), labels, 'tcg', 30_000);
    expect(r.reason).toBe('guest did not finish within 30 s (running: uname -r)');
    expect(vmError(r, 'x')!.kind).toBe('guest-timeout');
  });
});
