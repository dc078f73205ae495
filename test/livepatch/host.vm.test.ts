// SPDX-License-Identifier: GPL-2.0-only
/**
 * The host commands where they run in production: suture itself inside the
 * guest (vm run --with-suture), against the real Debian 6.1 kernel's sysfs.
 * One boot runs the load / list / unload, refusal, stalled-transition,
 * revert, cumulative-replace and force scenarios, in order; each --exec step
 * prints what the assertions read (JSON from suture, then sysfs and /proc, the
 * parts separated by "@@" lines).
 */
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ensureKernel, REFERENCE_KERNEL } from '../helpers/kernel.js';
import { buildFixtureModule } from '../helpers/modules.js';
import { sutureJson } from '../helpers/cli.js';

const M = '/modules';
const LP = '/sys/kernel/livepatch';
const CMDLINE_MARKER = 'suture-fixture: cmdline_proc_show is live patched';

interface Step {
  name: string;
  script: string;
}

let mods: Record<string, string> = {};
let dir: string;

/** Each step's output by name, split at "@@" lines. */
type Outputs = Record<string, { parts: string[]; status: number | null; raw: string }>;

function runGuest(steps: Step[], extra: string[] = [], timeoutSec = 1500): { status: number | null; json: any; out: Outputs } {
  const args = ['vm', 'run', '--kernel', REFERENCE_KERNEL, '--with-suture', '--timeout', String(timeoutSec), ...extra];
  for (const s of steps) args.push('--exec', s.script);
  const { status, json } = sutureJson(args, { timeoutMs: (timeoutSec + 120) * 1000 });
  if (json.error) throw new Error(`vm run failed: ${JSON.stringify(json.error)}`);
  const out: Outputs = {};
  steps.forEach((s, i) => {
    const c = json.commands?.[i];
    const raw: string = c?.output ?? '';
    out[s.name] = { parts: raw.split(/^@@\n/m), status: c?.status ?? null, raw };
  });
  return { status, json, out };
}

function parse(text: string | undefined): any {
  try {
    return JSON.parse(text ?? '');
  } catch {
    throw new Error(`not JSON:\n${text}`);
  }
}

beforeAll(async () => {
  const meta = await ensureKernel();
  dir = mkdtempSync(join(tmpdir(), 'suture-host-vm-'));
  for (const n of ['livepatch-cmdline', 'suture-stall-target', 'livepatch-stall', 'livepatch-cumulative-v1', 'livepatch-cumulative-v2', 'suture-many-target', 'livepatch-many']) {
    const ko = await buildFixtureModule(meta, n);
    mods[n] = join(dir, `${n}.ko`);
    copyFileSync(ko, mods[n]!);
  }
  // The same livepatch built "for another kernel": only the vermagic's release differs.
  const lp = readFileSync(mods['livepatch-cmdline']!);
  const at = lp.indexOf('vermagic=6.1.0-56-amd64 ');
  expect(at).toBeGreaterThan(0);
  const other = Buffer.from(lp);
  other.write('vermagic=6.1.0-55-amd64 ', at, 'latin1');
  mods['wrong-release'] = join(dir, 'wrong-release.ko');
  writeFileSync(mods['wrong-release']!, other);
  // ... and one whose vermagic flags differ (the kernel's own check).
  const flags = Buffer.from(lp);
  const f = flags.indexOf('SMP preempt mod_unload');
  flags.write('SMP preemxt mod_unload', f, 'latin1');
  mods['wrong-flags'] = join(dir, 'wrong-flags.ko');
  writeFileSync(mods['wrong-flags']!, flags);
  mods['binfmt_misc'] = join(meta.paths.modules, 'kernel/fs/binfmt_misc.ko');
}, 1_800_000);

const placed = () => Object.values(mods).flatMap((m) => ['--module', m]);

/** Run a suture command, its stdout to a file, then print: rc, stderr, stdout, separated by @@. */
const capture = (cmd: string, tag: string) =>
  `${cmd} >/tmp/${tag}.out 2>/tmp/${tag}.err; echo "rc=$?"; echo @@; cat /tmp/${tag}.err; echo @@; cat /tmp/${tag}.out`;

/** Start a reader of /proc/suture_stall in the background (it sleeps inside suture_stall_wait while held). */
const startReader = (tag: string) =>
  `cat /proc/suture_stall >/tmp/${tag}.out 2>&1 </dev/null & echo $! >/tmp/${tag}.pid; ` +
  // wait until it sleeps inside the module's function
  `i=0; while ! grep -q suture_stall_wait /proc/$(cat /tmp/${tag}.pid)/stack 2>/dev/null && [ $i -lt 500 ]; do sleep 0.02; i=$((i+1)); done`;

/** Wait until a background command has written its output (its one JSON write, or the reader's answer). */
const waitFile = (file: string, limitCs = 60000) => `i=0; while [ ! -s ${file} ] && [ $i -lt ${limitCs} ]; do sleep 0.01; i=$((i+1)); done`;

describe('suture on a host (in the real kernel, suture running in the guest)', () => {
  let r: ReturnType<typeof runGuest>;

  beforeAll(() => {
    const steps: Step[] = [
      // 1. load, --json checked against sysfs, list, info, status, uname
      { name: 'load', script: capture(`suture load --allow-unsigned --json ${M}/livepatch-cmdline.ko`, 'load') },
      {
        name: 'sysfs',
        script: `for f in enabled transition vmlinux/patched; do cat ${LP}/livepatch_cmdline/$f; done; echo @@; ls ${LP}/livepatch_cmdline/vmlinux; echo @@; cat /proc/cmdline`,
      },
      { name: 'list', script: 'suture list --json; echo @@; suture list' },
      { name: 'info', script: `suture info --json livepatch_cmdline; echo @@; suture info --json ${M}/livepatch-cumulative-v2.ko` },
      { name: 'status', script: 'suture status --json; echo @@; suture uname -r; suture uname -a' },
      // another build under the loaded name is refused; the same file again (an interrupted load run again) is a success
      { name: 'again', script: `${capture(`suture load --allow-unsigned ${M}/wrong-flags.ko`, 'again')}; echo @@; ${capture(`suture load --allow-unsigned ${M}/livepatch-cmdline.ko`, 'same')}` },
      { name: 'unload', script: `${capture('suture unload --json livepatch_cmdline', 'unload')}; echo @@; ls ${LP}; echo @@; grep -c livepatch_cmdline /proc/modules; echo @@; cat /proc/cmdline` },
      { name: 'unload-unknown', script: capture('suture unload livepatch_cmdline', 'unknown') },
      // 2. refusals: one line, an exit code, the kernel untouched
      { name: 'garbage', script: `echo 'this is text, not a module' > /tmp/garbage.ko; ${capture('suture load --allow-unsigned /tmp/garbage.ko', 'garbage')}` },
      { name: 'not-livepatch', script: capture(`suture load --allow-unsigned ${M}/binfmt_misc.ko`, 'plain') },
      { name: 'wrong-release', script: capture(`suture load --allow-unsigned ${M}/wrong-release.ko`, 'release') },
      {
        name: 'wrong-flags-ref',
        script: `mkdir -p /lib/modules/$(uname -r)/kernel/fs && cp ${M}/binfmt_misc.ko /lib/modules/$(uname -r)/kernel/fs/; ${capture(`suture load --allow-unsigned ${M}/wrong-flags.ko`, 'flags')}; rm -r /lib/modules`,
      },
      { name: 'wrong-flags-kernel', script: capture(`suture load --allow-unsigned ${M}/wrong-flags.ko`, 'flags2') },
      {
        name: 'no-livepatch-sysfs',
        script: `mkdir -p /tmp/empty && mount --bind /tmp/empty /sys/kernel && ${capture(`suture load --allow-unsigned ${M}/livepatch-cmdline.ko`, 'nosysfs')}; umount /sys/kernel`,
      },
      {
        name: 'ftrace-off',
        script: `echo 0 > /proc/sys/kernel/ftrace_enabled && ${capture(`suture load --allow-unsigned ${M}/livepatch-cmdline.ko`, 'ftrace')}; echo 1 > /proc/sys/kernel/ftrace_enabled`,
      },
      { name: 'untouched', script: `ls ${LP} | wc -l; echo @@; grep -c livepatch /proc/modules; echo @@; cat /proc/cmdline` },
      // 3. a stalled transition: a reader sleeps in suture_stall_wait, which livepatch-stall replaces
      {
        name: 'stall-status',
        script:
          `insmod ${M}/suture-stall-target.ko && echo hold > /proc/suture_stall && ${startReader('reader1')}; ` +
          `suture load --allow-unsigned --timeout 600 --json ${M}/livepatch-stall.ko >/tmp/load1.json 2>/tmp/load1.err </dev/null & echo $! >/tmp/load1.pid; ` +
          `i=0; while [ "$(cat ${LP}/livepatch_stall/transition 2>/dev/null)" != 1 ] && [ $i -lt 3000 ]; do sleep 0.01; i=$((i+1)); done; ` +
          `sleep 1; suture status --json; s=$?; echo @@; echo "rc=$s"; echo @@; cat /tmp/reader1.pid; echo @@; cat ${LP}/livepatch_stall/transition`,
      },
      {
        name: 'stall-release',
        script: `echo release > /proc/suture_stall; ${waitFile('/tmp/load1.json')}; cat /tmp/load1.json; echo @@; cat /tmp/reader1.out; echo @@; cat /proc/suture_stall; echo @@; cat ${LP}/livepatch_stall/transition`,
      },
      // 4. the same with --revert-on-timeout: reversed, removed, the original code runs
      {
        name: 'revert',
        script:
          `suture unload livepatch_stall >/dev/null 2>&1; echo hold > /proc/suture_stall && ${startReader('reader2')}; ` +
          `${capture(`suture load --allow-unsigned --timeout 4 --revert-on-timeout ${M}/livepatch-stall.ko`, 'revert')}; echo @@; ` +
          `ls ${LP}; echo @@; grep -c livepatch_stall /proc/modules; echo @@; ` +
          `echo release > /proc/suture_stall; ${waitFile('/tmp/reader2.out', 1000)}; cat /tmp/reader2.out; echo @@; cat /proc/suture_stall`,
      },
      // 5. cumulative replace: v1 (cmdline + version), then v2 (replace, cmdline only)
      {
        name: 'v1',
        script: `suture load --allow-unsigned ${M}/livepatch-cumulative-v1.ko >/dev/null 2>&1; echo "rc=$?"; echo @@; cat /proc/cmdline; echo @@; cat /proc/version; echo @@; suture uname -v; echo @@; ${capture(`suture replace --allow-unsigned ${M}/livepatch-cumulative-v1.ko`, 'notcumulative')}`,
      },
      {
        name: 'replace',
        script: `${capture(`suture replace --allow-unsigned --json ${M}/livepatch-cumulative-v2.ko`, 'replace')}; echo @@; ls ${LP}; echo @@; grep -c livepatch_cumulative_v1 /proc/modules; echo @@; cat /proc/cmdline; echo @@; cat /proc/version; echo @@; suture uname -v; suture uname`,
      },
      { name: 'replace-unload', script: 'suture unload livepatch_cumulative_v2 >/dev/null 2>&1; echo "rc=$?"; echo @@; cat /proc/cmdline' },
      // 6. a patch of 64 functions: once every task has switched, the kernel takes each function's ftrace
      // handler out with RCU-tasks grace periods, for seconds. A reader held in the new suture_many_0
      // (hold=1) makes the kernel complete the unpatching from its retry work, as on a busy host, not
      // within the write to `enabled`: suture watches it, and --timeout 3 must not call it stalled.
      {
        name: 'many',
        script:
          `insmod ${M}/suture-many-target.ko; cat /proc/suture_many; echo @@; ` +
          `suture load --allow-unsigned ${M}/livepatch-many.ko >/dev/null 2>&1; echo "rc=$?"; echo @@; cat /proc/suture_many; echo @@; ` +
          `echo 1 > /sys/module/livepatch_many/parameters/hold; cat /proc/suture_many >/tmp/many-reader.out 2>&1 </dev/null & echo $! >/tmp/many-reader.pid; ` +
          `i=0; while ! grep -q livepatch_many_hold /proc/$(cat /tmp/many-reader.pid)/stack 2>/dev/null && [ $i -lt 500 ]; do sleep 0.02; i=$((i+1)); done; ` +
          // released 1.5 s after the transition starts (suture's own start-up under TCG takes about that long)
          `(while [ "$(cat ${LP}/livepatch_many/transition 2>/dev/null)" != 1 ]; do sleep 0.05; done; sleep 1.5; echo 0 > /sys/module/livepatch_many/parameters/hold) & ` +
          `${capture('suture unload --timeout 3 --json livepatch_many', 'many')}; echo @@; ls ${LP}; echo @@; grep -c livepatch_many /proc/modules; echo @@; cat /proc/suture_many; echo @@; ` +
          `cat /tmp/many-reader.out; echo @@; dmesg | grep -c "livepatch_many': unpatching complete"`,
      },
      // 7. force, last: a forced patch's module stays for good
      {
        name: 'force',
        script:
          `echo hold > /proc/suture_stall && ${startReader('reader3')}; ` +
          `${capture(`suture load --allow-unsigned --timeout 2 ${M}/livepatch-stall.ko`, 'stalled')}; echo @@; ` +
          `${capture('suture force livepatch_stall', 'noyes')}; echo @@; ` +
          `${capture('suture force livepatch_stall --yes', 'force')}; echo @@; ` +
          `cat ${LP}/livepatch_stall/transition; echo @@; cat /proc/suture_stall; echo @@; ` +
          `${capture('suture unload livepatch_stall', 'unforce')}; echo @@; suture status; ` +
          `echo release > /proc/suture_stall; ${waitFile('/tmp/reader3.out', 1000)}`,
      },
    ];
    r = runGuest(steps, placed());
  }, 1_800_000);

  it('the guest ran every step', () => {
    expect(r.json.outcome, `${JSON.stringify(r.json.error ?? {})} ${r.json.reason}\n${(r.json.consoleTail ?? []).join('\n')}`).toMatch(/^(ok|command-failed)$/);
    expect(r.json.commands.every((c: { status: number | null }) => c.status !== null)).toBe(true);
  });

  it('load --json: outcome complete, and what it says matches sysfs', () => {
    const [rc, err, out] = r.out.load!.parts;
    expect(rc).toBe('rc=0\n');
    expect(err).toBe('');
    const j = parse(out);
    expect(j).toMatchObject({ command: 'load', patch: 'livepatch_cmdline', outcome: 'complete', exitCode: 0 });
    const [flags, funcs, cmdline] = r.out.sysfs!.parts;
    const [enabled, transition, patched] = flags!.trim().split('\n').map(Number);
    expect(j.sysfs).toEqual({
      name: 'livepatch_cmdline',
      enabled: enabled === 1,
      transition: transition === 1,
      objects: [{ name: 'vmlinux', patched: patched === 1, functions: [{ name: 'cmdline_proc_show', sympos: 1 }] }],
    });
    expect(funcs).toBe('cmdline_proc_show,1\npatched\n');
    expect(cmdline).toBe(`${CMDLINE_MARKER}\n`);
    expect(j.timing.transitionMs).toBeGreaterThanOrEqual(0);
    expect(j.timing.kernelTransitionMs).toBeGreaterThan(0);
  });

  it('list --json and list show it as the kernel has it', () => {
    const [json, text] = r.out.list!.parts;
    const j = parse(json);
    expect(j.patches).toHaveLength(1);
    expect(j.patches[0]).toMatchObject({
      name: 'livepatch_cmdline',
      state: 'enabled',
      enabled: true,
      transition: false,
      replace: false,
      loadedBySuture: true,
      file: '/modules/livepatch-cmdline.ko',
      objects: [{ name: 'vmlinux', patched: true, functions: [{ name: 'cmdline_proc_show', sympos: 1 }] }],
    });
    expect(Date.parse(j.patches[0].loadedAt)).toBeGreaterThan(0);
    expect(text).toMatch(/^NAME +STATE +OBJECTS +FUNCS +REPLACE +VERSION +CVES +LOADED\nlivepatch_cmdline +enabled +vmlinux +1 +no +- +- +\d{4}-/);
  });

  it('info of a loaded name and of a file (its klp structure, CVEs, version, replace flag)', () => {
    const [byName, byFile] = r.out.info!.parts.map(parse);
    expect(byName).toMatchObject({ kind: 'name', name: 'livepatch_cmdline', loaded: { state: 'enabled' }, structure: { replace: false } });
    expect(byFile).toMatchObject({
      kind: 'file',
      name: 'livepatch_cumulative_v2',
      release: '6.1.0-56-amd64',
      livepatch: true,
      replace: true,
      effectiveVersion: '6.1.194-1',
      cves: ['CVE-0000-0001', 'CVE-0000-0003'],
      objects: [{ name: 'vmlinux', functions: [{ name: 'cmdline_proc_show', sympos: 0, newFunction: 'livepatch_cumulative_cmdline_show' }] }],
      loadable: true,
    });
  });

  it('status --json: the kernel, its version, the patch; uname -r keeps the release', () => {
    const [json, uname] = r.out.status!.parts;
    const j = parse(json);
    expect(j.kernel).toMatchObject({ release: '6.1.0-56-amd64', livepatchAvailable: true, ftraceEnabled: true, effective: { kernel: '6.1.192-2', effective: '6.1.192-2' } });
    expect(j.kernel.tainted & (1 << 15)).toBeTruthy();
    expect(j.patches.map((p: { name: string }) => p.name)).toEqual(['livepatch_cmdline']);
    expect(j.transition).toBeNull();
    expect(j.attention).toEqual([]);
    expect(uname).toMatch(/^6\.1\.0-56-amd64\nLinux \S+ 6\.1\.0-56-amd64 #1 SMP PREEMPT_DYNAMIC Debian 6\.1\.192-2 \(\S+\) x86_64 GNU\/Linux\n$/);
  });

  it('loading another build under that name is refused in one line (exit 31); the same file again succeeds without a second insmod', () => {
    const [rc, err, out, sameRc, sameErr, sameOut] = r.out.again!.parts;
    expect(rc).toBe('rc=31\n');
    expect(err).toBe(
      'suture: livepatch livepatch_cmdline is already loaded (enabled)\n  hint: to load a new build of it: suture unload livepatch_cmdline, then load again; or use a cumulative patch with suture replace\n',
    );
    expect(out).toBe('');
    expect(sameRc).toBe('rc=0\n');
    expect(sameErr).toContain('note: livepatch_cmdline (this same file) is already loaded: watching its transition');
    expect(sameOut).toMatch(/^livepatch_cmdline: patching complete in /);
  });

  it('unload --json: unpatched, the directory and the module gone, /proc/cmdline back', () => {
    const [rc, , out, lsLp, count, cmdline] = r.out.unload!.parts;
    expect(rc).toBe('rc=0\n');
    expect(parse(out)).toMatchObject({ command: 'unload', patch: 'livepatch_cmdline', outcome: 'complete', removed: true, exitCode: 0 });
    expect(lsLp).toBe('');
    expect(count).toBe('0\n');
    expect(cmdline).toMatch(/^console=ttyS0/);
    const [rc2, err2] = r.out['unload-unknown']!.parts;
    expect(rc2).toBe('rc=10\n');
    expect(err2).toMatch(/^suture: no livepatch named livepatch_cmdline is loaded\n/);
  });

  it.each([
    ['garbage', 11, /^suture: \/tmp\/garbage\.ko is not a kernel module: .*not an ELF file/],
    ['not-livepatch', 11, /^suture: \/modules\/binfmt_misc\.ko is not a livepatch module \(its \.modinfo has no livepatch=Y\)$/],
    ['wrong-release', 30, /^suture: \/modules\/wrong-release\.ko was built for kernel 6\.1\.0-55-amd64, but this kernel is 6\.1\.0-56-amd64$/],
    [
      'wrong-flags-ref',
      30,
      /^suture: \/modules\/wrong-flags\.ko has vermagic '6\.1\.0-56-amd64 SMP preemxt mod_unload modversions ', but this kernel's modules have '6\.1\.0-56-amd64 SMP preempt mod_unload modversions ' \(\/lib\/modules\/6\.1\.0-56-amd64\/kernel\/fs\/binfmt_misc\.ko\)$/,
    ],
    ['no-livepatch-sysfs', 12, /^suture: livepatch is not available: \/sys\/kernel\/livepatch does not exist$/],
    ['ftrace-off', 12, /^suture: ftrace is disabled \(kernel\.ftrace_enabled = 0\); livepatch redirects functions through ftrace$/],
  ])('refusal before the kernel is touched: %s (exit %i), one line and a hint', (name, code, re) => {
    const [rc, err, out] = r.out[name]!.parts;
    expect(rc).toBe(`rc=${code}\n`);
    const lines = err!.trimEnd().split('\n');
    expect(lines[0]).toMatch(re);
    expect(lines.slice(1).every((l) => l.startsWith('  hint: '))).toBe(true);
    expect(lines.length).toBeLessThanOrEqual(2);
    expect(err).not.toContain('==>');
    expect(out).toBe('');
  });

  it("a vermagic only the kernel can judge: its refusal, in the kernel's words (exit 32)", () => {
    const [rc, err] = r.out['wrong-flags-kernel']!.parts;
    expect(rc).toBe('rc=32\n');
    expect(err).toMatch(/suture: the kernel refused \/modules\/wrong-flags\.ko: .*version magic '6\.1\.0-56-amd64 SMP preemxt mod_unload modversions ' should be '6\.1\.0-56-amd64 SMP preempt mod_unload modversions '/);
  });

  it('after every refusal the kernel has no livepatch and no patch module', () => {
    const [count, mods, cmdline] = r.out.untouched!.parts;
    expect(count).toBe('0\n');
    expect(mods).toBe('0\n');
    expect(cmdline).toMatch(/^console=ttyS0/);
  });

  it('a stalled transition: status names the sleeping task and marks the patched function in its stack', () => {
    const [json, rc, pid, transition] = r.out['stall-status']!.parts;
    expect(rc).toBe('rc=1\n');
    expect(transition).toBe('1\n');
    const j = parse(json);
    expect(j.transition).toMatchObject({ patch: 'livepatch_stall', target: 'patched' });
    expect(j.transition.pendingTasks).toBeGreaterThanOrEqual(1);
    const b = j.transition.blockers.find((x: { pid: number }) => x.pid === Number(pid));
    expect(b, JSON.stringify(j.transition, null, 1)).toMatchObject({ comm: 'cat', kernelThread: false });
    expect(b.reason).toBe('sleeping in suture_stall_wait [suture_stall_target], which the transition replaces');
    const marked = b.stack.filter((f: { patched: boolean }) => f.patched);
    expect(marked).toEqual([expect.objectContaining({ function: 'suture_stall_wait', module: 'suture_stall_target', patched: true })]);
    expect(b.stack.map((f: { function: string }) => f.function)).toContain('vfs_read');
    expect(j.patches[0]).toMatchObject({ name: 'livepatch_stall', state: 'patching', loadedBySuture: true });
    expect(j.attention[0]).toMatch(/^livepatch livepatch_stall is in transition/);
  });

  it('releasing the task lets the transition complete; the patched function runs from then on', () => {
    const [json, reader, after, transition] = r.out['stall-release']!.parts;
    const j = parse(json);
    expect(j).toMatchObject({ patch: 'livepatch_stall', outcome: 'complete', exitCode: 0 });
    expect(j.transition.maxPendingTasks).toBeGreaterThanOrEqual(1);
    // every task seen holding it up, the one in the patched function first, even though it switched before the end
    const cat = j.transition.blockers[0];
    expect(cat, JSON.stringify(j.transition, null, 1)).toMatchObject({ comm: 'cat', reason: 'sleeping in suture_stall_wait [suture_stall_target], which the transition replaces' });
    expect(cat.lastSeenMs - cat.firstSeenMs).toBeGreaterThan(500);
    expect(j.timing.transitionMs).toBeGreaterThan(1000);
    // the reader was inside the original function, and leaves it with the original's answer
    expect(reader).toBe('original\n');
    expect(after).toBe('patched\n');
    expect(transition).toBe('0\n');
  });

  it('--revert-on-timeout: the live display names the blocker, the transition is reversed, the module removed, the original code active (exit 34)', () => {
    const [rc, err, , lsLp, count, reader, after] = r.out.revert!.parts;
    expect(rc).toBe('rc=34\n');
    expect(err).toContain('==> load livepatch-stall.ko');
    expect(err).toMatch(/pid \d+ cat \[[DI]\]: sleeping in suture_stall_wait \[suture_stall_target\], which the transition replaces\n +> suture_stall_wait\+0x[0-9a-f]+\/0x[0-9a-f]+ \[suture_stall_target\] +<- patched function\n +suture_stall_read/);
    expect(err).toMatch(/timed out after [\d.]+ s: reversing the transition of livepatch_stall/);
    expect(err).toMatch(/suture: the transition of livepatch_stall did not complete within 4 s; it was reversed after [\d.]+ s and the module removed: the kernel runs the code it ran before/);
    expect(lsLp).toBe('');
    expect(count).toBe('0\n');
    expect(reader).toBe('original\n');
    expect(after).toBe('original\n');
  });

  it('cumulative replace: v2 replaces v1 in one transition; v1 is gone; the behaviour is v2\'s', () => {
    const [rc1, cmdline1, version1, uname1, rcNc, errNc] = r.out.v1!.parts;
    expect(rc1).toBe('rc=0\n');
    expect(cmdline1).toBe('suture-fixture: cumulative v1\n');
    expect(version1).toBe('suture-fixture: version_proc_show is live patched by v1\n');
    expect(uname1).toMatch(/Debian 6\.1\.193-1 /);
    expect(rcNc).toBe('rc=11\n');
    expect(errNc).toMatch(/^suture: \/modules\/livepatch-cumulative-v1\.ko is not a cumulative patch \(its klp_patch has replace = false\)/);

    const [rc, , json, lsLp, v1count, cmdline, version, uname] = r.out.replace!.parts;
    expect(rc).toBe('rc=0\n');
    const j = parse(json);
    expect(j).toMatchObject({ command: 'replace', patch: 'livepatch_cumulative_v2', outcome: 'complete', replaced: ['livepatch_cumulative_v1'], removed: ['livepatch_cumulative_v1'] });
    expect(lsLp).toBe('livepatch_cumulative_v2\n');
    expect(v1count).toBe('0\n');
    expect(cmdline).toBe('suture-fixture: cumulative v2\n');
    // v1's other function is back to the original: v2 does not carry it
    expect(version).toMatch(/^Linux version 6\.1\.0-56-amd64 /);
    expect(uname).toMatch(/^#1 SMP PREEMPT_DYNAMIC Debian 6\.1\.194-1 \(\S+\)\n6\.1\.194-1\n$/);
    // one transition: v1 was never unpatched on its own
    const log = r.json.livepatchLog.join('\n');
    expect(log).toContain("'livepatch_cumulative_v2': starting patching transition");
    expect(log).not.toContain("'livepatch_cumulative_v1': starting unpatching transition");
    const [rcU, cmdlineU] = r.out['replace-unload']!.parts;
    expect(rcU).toBe('rc=0\n');
    expect(cmdlineU).toMatch(/^console=ttyS0/);
  });

  it('a patch of 64 functions unloads under --timeout 3 though a task held it for 1.5 s: the seconds the kernel spends completing the transition after every task switched are not a stall', () => {
    const [before, load, patched, rc, err, out, ls, count, after, reader, logged] = r.out['many']!.parts;
    expect(before!.trim()).toBe('2016');
    expect(load!.trim()).toBe('rc=0');
    expect(patched!.trim()).toBe('66016');
    expect(rc!.trim(), err).toBe('rc=0');
    const j = parse(out);
    expect(j).toMatchObject({ command: 'unload', outcome: 'complete', removed: true });
    // the reader held it for 1.5 s; then the kernel's completion (64 functions, at least 100 ms each) ran past the 3 s timeout
    expect(j.transition.elapsedMs, r.out['many']!.raw).toBeGreaterThan(3000);
    expect(j.transition.completingMs).toBeGreaterThan(1000);
    expect(j.transition.elapsedMs - j.transition.completingMs, 'the reader held it for 1.5 s first').toBeGreaterThan(1000);
    expect(j.transition.blockers.map((b: { comm: string }) => b.comm)).toContain('cat');
    expect(reader!.trim()).toBe('66016');
    expect(j.transition.states.map((x: { state: string }) => x.state)).toEqual(['idle', 'unpatching', 'complete']);
    expect(ls!.trim()).toBe('');
    expect(count!.trim()).toBe('0');
    expect(after!.trim()).toBe('2016');
    expect(logged!.trim()).toBe('1');
  });

  it('force: explained without --yes (exit 2); with it the transition completes at once; forcing a patching transition pins no module', () => {
    const [rcS, errS, , rcNo, errNo, , rcF, , outF, transition, read, rcU, errU, , status] = r.out.force!.parts;
    expect(rcS).toBe('rc=33\n');
    expect(errS).toMatch(/the transition of livepatch_stall did not complete within 2 s/);
    expect(errS).toContain('suture force livepatch_stall --yes');
    expect(rcNo).toBe('rc=2\n');
    expect(errNo).toContain('writes 1 to /sys/kernel/livepatch/livepatch_stall/force');
    expect(errNo).toContain('never removed (rmmod) until the next reboot');
    expect(errNo).toMatch(/Tasks that would be forced through now:\n +\d+ tasks? still to switch/);
    expect(errNo).toMatch(/cat \[[DI]\]: sleeping in suture_stall_wait/);
    expect(rcF).toBe('rc=0\n');
    expect(outF).toMatch(/^livepatch_stall: transition forced \(\d+ tasks? switched without a stack check\); complete\n/);
    expect(outF).not.toContain('for good');
    expect(transition).toBe('0\n');
    // new readers get the replacement, though the held reader still sleeps in the original
    expect(read).toBe('patched\n');
    // the kernel pins the modules of code being removed; this transition removed none, so unload works
    expect(rcU, errU).toBe('rc=0\n');
    expect(status).not.toContain('was forced');
  });
});
