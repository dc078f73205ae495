// SPDX-License-Identifier: GPL-2.0-only
/**
 * What a failed proof keeps to say why: each kernel-log problem with the
 * trace the kernel printed after it, and the failed steps' output (a stuck
 * transition's tasks); the catch-up's suspects are read from both. The log
 * lines are the form 6.1 prints (the whole-update proof's own first lines).
 */
import { describe, expect, it } from 'vitest';
import { logContext, logProblems, problemKey, proofEvidence, splitPreexisting } from '../../src/vm/prove.js';

const dmesg = [
  '[   50.000000] loaded',
  '[  170.297000] ------------[ cut here ]------------',
  '[  170.297100] WARNING: CPU: 0 PID: 1323 at kernel/workqueue.c:2809 __flush_workqueue+0x3de/0x430 [livepatch_cu53]',
  '[  170.297200] Modules linked in: livepatch_cu53(OEK) ext4',
  '[  170.298512] RIP: 0010:__flush_workqueue+0x3de/0x430 [livepatch_cu53]',
  '[  170.299000] Call Trace:',
  '[  170.299100]  <TASK>',
  '[  170.299200]  drain_workqueue+0x20/0x120',
  '[  170.299300]  ext4_put_super+0x40/0x3a0 [ext4]',
  '[  170.299400]  </TASK>',
  '[  170.299500] ---[ end trace 0000000000000000 ]---',
  '[  171.000000] EXT4-fs (vda): unmounting filesystem.',
];

describe('a failed proof says why', () => {
  it('each problem with its trace, up to the end-of-trace line; a RIP line is part of its problem', () => {
    expect(logProblems(dmesg)).toEqual([dmesg[2], dmesg[4]]);
    expect(logContext(dmesg)).toEqual([dmesg.slice(2, 11)]);
    expect(logContext(['[ 1.0] BUG: kernel NULL pointer dereference, address: 0000000000000008', '[ 1.1] #PF: supervisor read access in kernel mode'])).toEqual([
      ['[ 1.0] BUG: kernel NULL pointer dereference, address: 0000000000000008', '[ 1.1] #PF: supervisor read access in kernel mode'],
    ]);
  });

  it("the evidence: problems, traces and the failed steps' output, not the steps that passed", () => {
    const steps = [
      { label: 'smoke workload', status: 0, durationMs: 1, output: 'files on /mnt/disk: ok' },
      { label: 'disable and unload lp', status: 1, durationMs: 1, output: 'task 88 kworker/u2:1\n    [<0>] rescuer_thread+0x2a/0x3c0 [lp]' },
    ];
    const e = proofEvidence({ logProblems: logProblems(dmesg), logContext: logContext(dmesg), steps });
    expect(e).toContain('    [<0>] rescuer_thread+0x2a/0x3c0 [lp]');
    expect(e).toContain('[  170.299300]  ext4_put_super+0x40/0x3a0 [ext4]');
    expect(e).not.toContain('files on /mnt/disk: ok');
  });
});

describe("the kernel's own problems", () => {
  // The whole-update proof's crypto self-test WARNING, and the same from a boot without the patch.
  const proof = [
    '[   53.972877] WARNING: CPU: 0 PID: 357 at crypto/testmgr.c:5907 alg_test.cold+0x7c/0xf5',
    '[   53.973542] RIP: 0010:alg_test.cold+0x7c/0xf5',
    '[  170.297100] WARNING: CPU: 0 PID: 1323 at kernel/workqueue.c:2809 __flush_workqueue+0x3de/0x430 [livepatch_cu53]',
    '[  170.310000] WARNING: CPU: 0 PID: 1400 at fs/ext4/inode.c:100 ext4_evict_inode+0x10/0x90 [ext4]',
  ];
  const without = ['[    1.474791] WARNING: CPU: 0 PID: 98 at crypto/testmgr.c:5907 alg_test.cold+0x7c/0xf5', '[    1.479532] RIP: 0010:alg_test.cold+0x7c/0xf5', '[    2.0] WARNING: CPU: 0 PID: 7 at kernel/workqueue.c:2809 __flush_workqueue+0x3de/0x430'];
  it('lines the boot without the patch printed too (times and PIDs aside) are not the patch\'s; code of the livepatch always is', () => {
    expect(problemKey(proof[0]!)).toBe(problemKey(without[0]!));
    expect(splitPreexisting(proof, without, 'livepatch_cu53')).toEqual({ fresh: [proof[2], proof[3]], preexisting: [proof[0], proof[1]] });
  });
});
