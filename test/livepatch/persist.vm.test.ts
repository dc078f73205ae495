// SPDX-License-Identifier: GPL-2.0-only
/**
 * install + boot across real reboots of the guest, with suture's state on a
 * small disk image that outlives each boot (vm run --disk, mounted on
 * /var/lib/suture), under the faults of issue 9: a full disk, SIGTERM while
 * `suture boot` loads (then a second boot), a crash after "done" inside the
 * guard window, a crash while loading, a damaged guard file; and the GNU
 * build ID of the real kernel.
 */
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { elfGnuBuildId } from '../../src/kernel/build-id.js';
import { extractVmlinux } from '../../src/kernel/symbols/image.js';
import { sutureJson } from '../helpers/cli.js';
import { ensureKernel, REFERENCE_KERNEL } from '../helpers/kernel.js';
import { buildFixtureModule } from '../helpers/modules.js';

const M = '/modules';
const LP = '/sys/kernel/livepatch';
const S = '/var/lib/suture';
const CMDLINE_MARKER = 'suture-fixture: cmdline_proc_show is live patched\n';

let dir: string;
let disk: string;
let buildId: string;
const mods: Record<string, string> = {};

function boot(steps: string[], timeoutSec = 900): { status: number | null; json: any; parts: string[][] } {
  const args = ['vm', 'run', '--kernel', REFERENCE_KERNEL, '--with-suture', '--timeout', String(timeoutSec), '--disk', disk, '--disk-mount', S, '--disk-size', '16'];
  for (const m of Object.values(mods)) args.push('--module', m);
  for (const s of steps) args.push('--exec', s);
  const { status, json } = sutureJson(args, { timeoutMs: (timeoutSec + 120) * 1000 });
  if (json.error) throw new Error(`vm run failed: ${JSON.stringify(json.error)}`);
  const parts = steps.map((_, i) => String(json.commands?.[i]?.output ?? '').split(/^@@\n/m));
  return { status, json, parts };
}

const j = (t: string | undefined) => {
  try {
    return JSON.parse(t ?? '');
  } catch {
    throw new Error(`not JSON:\n${t}`);
  }
};

/** Run a command: rc, stderr, stdout, separated by @@. */
const capture = (cmd: string, tag: string) => `${cmd} >/tmp/${tag}.out 2>/tmp/${tag}.err; echo "rc=$?"; echo @@; cat /tmp/${tag}.err; echo @@; cat /tmp/${tag}.out`;

/** Hold livepatch_stall's transition: a reader sleeps in the function it replaces. */
const hold = `insmod ${M}/suture-stall-target.ko && echo hold > /proc/suture_stall && { cat /proc/suture_stall >/tmp/reader.out 2>&1 </dev/null & }; sleep 1`;
const waitStalled = `i=0; while [ "$(cat ${LP}/livepatch_stall/transition 2>/dev/null)" != 1 ] && [ $i -lt 6000 ]; do sleep 0.01; i=$((i+1)); done`;

/** The same module with its description turned into modinfo suture_build_id=<id> (same length, NUL padded). */
function withBuildId(src: string, id: string, out: string): void {
  const b = readFileSync(src);
  const desc = 'description=suture test fixture: replaces cmdline_proc_show';
  const at = b.indexOf(desc);
  expect(at).toBeGreaterThan(0);
  const entry = `suture_build_id=${id}`;
  b.fill(0, at, at + desc.length);
  b.write(entry, at, 'latin1');
  writeFileSync(out, b);
}

beforeAll(async () => {
  const meta = await ensureKernel();
  dir = mkdtempSync(join(tmpdir(), 'suture-persist-vm-'));
  disk = join(dir, 'state.img');
  for (const n of ['livepatch-cmdline', 'suture-stall-target', 'livepatch-stall']) {
    mods[n] = join(dir, `${n}.ko`);
    copyFileSync(await buildFixtureModule(meta, n), mods[n]!);
  }
  await extractVmlinux(meta.paths.vmlinuz, join(dir, 'vmlinux'));
  buildId = elfGnuBuildId(readFileSync(join(dir, 'vmlinux')))!;
  expect(buildId).toMatch(/^[0-9a-f]{40}$/);
  mods['bound'] = join(dir, 'bound.ko');
  withBuildId(mods['livepatch-cmdline']!, buildId, mods['bound']!);
  mods['rebuild'] = join(dir, 'rebuild.ko');
  withBuildId(mods['livepatch-cmdline']!, '0'.repeat(40), mods['rebuild']!);
}, 1_800_000);

describe('install and boot across real reboots, under faults', () => {
  const ids: string[] = [];

  it('boot 1: the build ID binding; install 0600; a full disk keeps the old state, says so, and still loads at boot', () => {
    const r = boot([
      // the kernel's build ID as suture reads it (/sys/kernel/notes); a patch for another build is refused
      `suture status --json; echo @@; ${capture(`suture load --allow-unsigned ${M}/rebuild.ko`, 'rebuild')}; echo @@; ${capture(`suture load --allow-unsigned ${M}/bound.ko`, 'bound')}; suture unload livepatch_cmdline >/dev/null 2>&1`,
      `suture install --allow-unsigned --json ${M}/livepatch-cmdline.ko; echo @@; suture install --allow-unsigned --json ${M}/livepatch-stall.ko; echo @@; stat -c %a ${S}/kernels/$(uname -r)/livepatch_cmdline.ko`,
      // fill the disk, then: install fails with the disk named, the old list intact; boot still loads
      `dd if=/dev/zero of=${S}/fill bs=64k 2>/dev/null; dd if=/dev/zero of=${S}/fill2 bs=4k 2>/dev/null; dd if=/dev/zero of=${S}/fill3 bs=1k 2>/dev/null; df ${S} >/tmp/df; cp ${S}/kernels/$(uname -r)/installed.json /tmp/before.json; ` +
        `${capture(`suture install --allow-unsigned ${M}/livepatch-cmdline.ko`, 'full')}; echo @@; cmp /tmp/before.json ${S}/kernels/$(uname -r)/installed.json && echo same; echo @@; ` +
        `${capture('suture boot --json', 'fullboot')}; echo @@; cat /proc/cmdline; echo @@; ls ${S}`,
      `rm ${S}/fill ${S}/fill2 ${S}/fill3; suture boot --json --guard-window 0 >/dev/null; cat ${S}/boot.json; echo @@; cat /proc/sys/kernel/random/boot_id`,
    ]);
    expect(r.json.outcome, r.json.reason).toMatch(/^(ok|command-failed)$/);
    const [record, bootId] = r.parts[3]!;
    ids.push(bootId!.trim());
    const [status, rbrc, rberr, , bdrc] = r.parts[0]!;
    expect(j(status).kernel.buildId).toBe(buildId);
    expect(rbrc).toBe('rc=30\n');
    expect(rberr).toContain(`was built for the kernel build with GNU build ID ${'0'.repeat(40)}, but the running 6.1.0-56-amd64 is build ${buildId}`);
    expect(bdrc).toBe('rc=0\n');
    const [i1, i2, mode] = r.parts[1]!;
    expect(j(i1)).toMatchObject({ name: 'livepatch_cmdline', order: ['livepatch_cmdline'] });
    expect(j(i2).order).toEqual(['livepatch_cmdline', 'livepatch_stall']);
    expect(mode).toBe('600\n');
    const [frc, ferr, , same, , , fullBoot, cmdline, ls] = r.parts[2]!;
    expect(frc).toBe('rc=12\n');
    expect(ferr).toMatch(/no space left on the device holding \/var\/lib\/suture\/kernels\/6\.1\.0-56-amd64\/livepatch_cmdline\.ko\n  hint: free some space there/);
    expect(same).toBe('same\n');
    const fb = j(fullBoot);
    expect(fb.items.map((i: { outcome: string }) => i.outcome)).toEqual(['loaded', 'loaded']);
    expect(fb.warnings[0], fullBoot).toMatch(/^the crash-loop guard is not armed \(writing suture state: no space left/);
    expect(cmdline).toBe(CMDLINE_MARKER);
    expect(ls).not.toContain('loading.json');
    expect(j(record)).toMatchObject({ version: 1, bootId: ids[0], end: 'complete', patches: ['livepatch_cmdline', 'livepatch_stall'] });
  });

  it('boot 2: SIGTERM while suture boot waits on a transition: exit 130, recorded as interrupted (not a crash), nothing armed, no lock left', () => {
    const r = boot([
      `${hold}; suture boot --timeout 0 >/tmp/b.out 2>/tmp/b.err </dev/null & pid=$!; ${waitStalled}; sleep 0.5; kill -TERM $pid; wait $pid; echo "rc=$?"; echo @@; ` +
        `cat /tmp/b.err; echo @@; cat ${S}/boot.json; echo @@; ls ${S} /run/suture; echo @@; cat /proc/cmdline; echo @@; cat ${LP}/livepatch_stall/transition`,
      `suture status --json; echo @@; echo release > /proc/suture_stall; i=0; while [ "$(cat ${LP}/livepatch_stall/transition)" != 0 ] && [ $i -lt 3000 ]; do sleep 0.01; i=$((i+1)); done; suture boot --json --guard-window 0`,
    ]);
    expect(r.json.outcome, r.json.reason).toMatch(/^(ok|command-failed)$/);
    const [rc, err, record, ls, cmdline, transition] = r.parts[0]!;
    expect(rc).toBe('rc=130\n');
    expect(err).toContain('suture: suture boot was interrupted by SIGTERM: loaded livepatch_cmdline; not loaded: livepatch_stall. This is not a crash: the guard is not tripped');
    expect(err).toContain('livepatch livepatch_stall is loaded and its patching transition is still running');
    expect(j(record)).toMatchObject({ end: 'interrupted', reason: 'SIGTERM' });
    expect(ls).not.toMatch(/loading\.json|crash-guard\.json|\block\b/);
    expect(cmdline).toBe(CMDLINE_MARKER);
    expect(transition).toBe('1\n');
    const [status, again] = r.parts[1]!;
    expect(j(status).attention).toContain('the last suture boot was interrupted (SIGTERM), not a crash: run suture boot to load the rest');
    expect(j(again)).toMatchObject({ exitCode: 0, end: 'complete', items: [{ outcome: 'already-loaded' }, { outcome: 'already-loaded' }] });
  });

  it('boot 3: the next boot loads everything (no guard); then the machine crashes after "done", inside the guard window', () => {
    const r = boot([
      `suture boot --json; echo @@; cat ${S}/loading.json; echo @@; cat /proc/sys/kernel/random/boot_id; echo @@; suture status`,
      'echo c > /proc/sysrq-trigger',
      'echo never reached',
    ]);
    expect(r.status).toBe(20);
    expect(r.json.outcome).toBe('crash');
    const [b, armed, bootId, status] = r.parts[0]!;
    expect(j(b)).toMatchObject({ exitCode: 0, end: 'complete', guard: null, items: [{ outcome: 'loaded' }, { outcome: 'loaded' }] });
    expect(j(armed)).toMatchObject({ loaded: ['livepatch_cmdline', 'livepatch_stall'], window: { seconds: 300 } });
    ids.push(bootId!.trim());
    expect(status).toMatch(/guard window open until uptime \d+ s \(now \d+ s\): a crash before then makes livepatch_cmdline, livepatch_stall the suspects/);
  });

  it('boot 4: both were loaded and nothing names one: the guard bisects (exit 35): this boot loads one, holds the other back; cleared; then a crash while loading', () => {
    const r = boot([
      `${capture('suture boot --json', 'b4')}; echo @@; cat /proc/cmdline; echo @@; ls ${LP}; echo @@; suture status --json`,
      `suture boot --clear-guard; echo @@; ${hold}; suture boot --timeout 0 >/tmp/boot.out 2>&1 </dev/null & ${waitStalled}; cat ${S}/loading.json; echo @@; cat /proc/sys/kernel/random/boot_id`,
      'echo c > /proc/sysrq-trigger',
      'echo never reached',
    ]);
    expect(r.status).toBe(20);
    const [rc, , out, cmdline, lp, status] = r.parts[0]!;
    expect(rc).toBe('rc=35\n');
    const b = j(out);
    expect(b.items.map((i: { name: string; outcome: string }) => [i.name, i.outcome])).toEqual([
      ['livepatch_cmdline', 'loaded'],
      ['livepatch_stall', 'held-back'],
    ]);
    expect(b.error.message).toBe(
      `crash-loop guard: the boot of ${b.guard.previous.startedAt} (boot id ${ids[1]}) died while inside the guard window after loading livepatch_cmdline, livepatch_stall; no kernel report named a patch; bisecting over boots: of the suspects livepatch_cmdline, livepatch_stall, this boot loads livepatch_cmdline and holds back livepatch_stall`,
    );
    expect(cmdline).toBe(CMDLINE_MARKER);
    expect(lp).toBe('livepatch_cmdline\n');
    expect(j(status).attention).toContain(
      'the crash-loop guard has tripped and is bisecting over boots: the suspects are livepatch_cmdline, livepatch_stall; each boot loads half of them until one is left (suture boot --clear-guard stops it)',
    );
    const [cleared, armed, bootId] = r.parts[1]!;
    expect(cleared).toMatch(/^crash-loop guard cleared \(it tripped at \S+\)/);
    ids.push(bootId!.trim());
    expect(j(armed)).toMatchObject({ bootId: ids[2], current: 'livepatch_stall', loaded: ['livepatch_cmdline'] });
  });

  it('boot 5: the crash while loading blames the patch being loaded; a damaged guard file is unreadable, not exit 12, and --clear-guard clears it', () => {
    const r = boot([
      `${capture('suture boot --json --guard-window 0', 'b5')}; echo @@; cat /proc/cmdline`,
      `echo '{broken' > ${S}/crash-guard.json; ${capture('suture boot', 'broken')}; echo @@; suture boot --clear-guard; echo @@; ${capture('suture boot --json --guard-window 0', 'ok')}`,
    ]);
    expect(r.json.outcome, r.json.reason).toMatch(/^(ok|command-failed)$/);
    const [rc, , out, cmdline] = r.parts[0]!;
    expect(rc).toBe('rc=35\n');
    expect(j(out).guard).toMatchObject({ blame: 'livepatch_stall', when: 'loading', previous: { bootId: ids[2] } });
    expect(cmdline).toBe(CMDLINE_MARKER);
    const [brc, berr, , cleared, orc, , ok] = r.parts[1]!;
    expect(brc).toBe('rc=35\n');
    expect(berr).toMatch(/^suture: crash-loop guard: \/var\/lib\/suture\/crash-guard\.json is damaged \(not JSON\): it is not a file suture wrote; suture treats the guard as tripped and loads nothing\n/);
    expect(cleared).toMatch(/^crash-loop guard cleared \(its file was damaged and is removed\)/);
    expect(orc).toBe('rc=0\n');
    expect(j(ok).items.map((i: { outcome: string }) => i.outcome)).toEqual(['already-loaded', 'loaded']);
  });
});
