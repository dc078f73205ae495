// SPDX-License-Identifier: GPL-2.0-only
/**
 * Many suture commands at once in the real kernel (issue 9, item 7): load /
 * unload / list / status / install / uninstall / boot in loops from several
 * shells for a bounded time, with commands killed at random (SIGTERM to the
 * ones that change state, SIGKILL to any); afterwards, and after one more
 * command has taken the lock (as the next command on a host would), every
 * state file parses, suture's records match /sys/kernel/livepatch, and no
 * lock is left behind.
 */
import { copyFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { sutureJson } from '../helpers/cli.js';
import { ensureKernel, REFERENCE_KERNEL } from '../helpers/kernel.js';
import { buildFixtureModule } from '../helpers/modules.js';

const M = '/modules';
const SECONDS = 40;
const mods: Record<string, string> = {};

beforeAll(async () => {
  const meta = await ensureKernel();
  const dir = mkdtempSync(join(tmpdir(), 'suture-stress-vm-'));
  for (const n of ['livepatch-cmdline', 'livepatch-cumulative-v1']) {
    mods[n] = join(dir, `${n}.ko`);
    copyFileSync(await buildFixtureModule(meta, n), mods[n]!);
  }
}, 1_800_000);

/** A shell loop that runs until the stop file exists, counting its runs and exit codes. */
const loop = (tag: string, body: string) =>
  `( while [ ! -e /tmp/stop ]; do ${body}; echo "$?" >> /tmp/rc.${tag}; done ) >/dev/null 2>>/tmp/err.${tag} &`;

describe('stress: concurrent suture commands, some killed', () => {
  it(`${SECONDS} s of load/unload/list/status/install/uninstall/boot from five shells: state parses, records equal sysfs, no lock left`, () => {
    const script = [
      'mkdir -p /var/lib/suture',
      loop('a', `suture load --allow-unsigned --timeout 5 ${M}/livepatch-cmdline.ko; suture unload --timeout 5 livepatch_cmdline`),
      loop('b', `suture load --allow-unsigned --timeout 5 ${M}/livepatch-cumulative-v1.ko; suture unload --timeout 5 livepatch_cumulative_v1`),
      loop('c', `suture install --allow-unsigned ${M}/livepatch-cmdline.ko; suture uninstall livepatch_cmdline; suture install --allow-unsigned ${M}/livepatch-cumulative-v1.ko`),
      loop('d', 'suture list; suture status'),
      loop('e', 'suture boot --guard-window 0 --timeout 5'),
      // the killer: every 1-2 s a random suture process gets SIGTERM (or SIGKILL, one time in three)
      `( n=0; while [ ! -e /tmp/stop ]; do sleep 1.$((RANDOM % 9)); ` +
        `p=$(ps -o pid,args | grep '[s]uture.js' | awk '{print $1}' | awk -v r=$RANDOM 'BEGIN{srand(r)} {a[NR]=$1} END{if (NR) print a[int(rand()*NR)+1]}'); ` +
        `[ -n "$p" ] || continue; if [ $((RANDOM % 3)) = 0 ]; then kill -KILL $p 2>/dev/null && echo KILL >> /tmp/kills; else kill -TERM $p 2>/dev/null && echo TERM >> /tmp/kills; fi; done ) &`,
      `sleep ${SECONDS}; touch /tmp/stop; wait`,
      // one more command takes the lock (a stale one is taken over) and finishes what was left pending
      'suture boot --guard-window 0 --timeout 30 >/tmp/final.out 2>&1; echo "final rc=$?"',
      'echo @@; for t in a b c d e; do echo "$t $(wc -l < /tmp/rc.$t) runs, codes $(sort -n /tmp/rc.$t | uniq -c | tr -s " " | tr "\\n" ";")"; done; echo "kills $(sort /tmp/kills | uniq -c | tr "\\n" " ")"',
      'echo @@; ls -a /run/suture /var/lib/suture',
      'echo @@; for f in $(find /var/lib/suture /run/suture -name "*.json"); do echo "== $f"; cat $f; echo; done',
      'echo @@; suture status --json',
      'echo @@; ls /sys/kernel/livepatch; echo @@; grep -E "^livepatch" /proc/modules | cut -d" " -f1; echo @@; ls /run/suture/loaded 2>/dev/null',
      'echo @@; cat /tmp/err.* | grep -v -E "^suture: |^  hint: |^$" | sort | uniq -c | sort -rn | head -20',
    ].join('\n');
    const { json } = sutureJson(
      ['vm', 'run', '--kernel', REFERENCE_KERNEL, '--with-suture', '--timeout', '900', ...Object.values(mods).flatMap((m) => ['--module', m]), '--exec', script],
      { timeoutMs: 1_100_000 },
    );
    if (json.error) throw new Error(`vm run failed: ${JSON.stringify(json.error)}`);
    expect(json.outcome, json.reason).toMatch(/^(ok|command-failed)$/);
    const [final, counts, ls, files, status, lp, mods2, records, errs] = String(json.commands[0].output).split(/^@@\n/m);
    console.log(`stress: ${final}${counts}${errs ? `unexpected stderr lines:\n${errs}` : ''}`);
    expect(final).toMatch(/final rc=0\n$/);
    // every loop ran (under TCG a loop of three node starts may get only two rounds in), and processes were killed
    const runs = counts!.trim().split('\n').slice(0, 5).map((line) => Number(/ (\d+) runs/.exec(line)?.[1]));
    for (const n of runs) expect(n).toBeGreaterThanOrEqual(1);
    expect(runs.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(10);
    expect(counts).toMatch(/kills .*TERM/);
    // no lock, no temporary or renamed-away lock files
    expect(ls).not.toMatch(/\block\b|\.tmp|\.stale/);
    // every state file parses and carries its version
    const bodies = files!.split(/^== /m).filter(Boolean);
    expect(bodies.length).toBeGreaterThan(1);
    for (const b of bodies) {
      const [name, ...rest] = b.split('\n');
      const v = JSON.parse(rest.join('\n'));
      expect(v.version, name).toBe(1);
    }
    const s = JSON.parse(status!);
    expect(s.attention.filter((a: string) => /damaged/.test(a))).toEqual([]);
    // suture's records equal the kernel's state
    const inSysfs = lp!.trim().split('\n').filter(Boolean).sort();
    const modules = mods2!.trim().split('\n').filter(Boolean).sort();
    const recorded = records!.trim().split('\n').filter(Boolean).map((f) => f.replace(/\.json$/, '')).sort();
    expect(s.patches.map((p: { name: string }) => p.name).sort()).toEqual(modules);
    for (const r of recorded) expect(modules).toContain(r);
    for (const p of inSysfs) expect(modules).toContain(p);
  }, 1_200_000);
});
