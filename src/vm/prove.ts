// SPDX-License-Identifier: GPL-2.0-only
/**
 * The proof of a livepatch under load, in one boot of the exact kernel: the
 * patched modules loaded, the patch loaded and its transition complete, a
 * smoke workload over what such patches touch (files on ext4 and tmpfs,
 * /proc, processes and signals, sockets on loopback), the user's own checks,
 * the kernel log free of BUG, Oops, WARNING and hung tasks, and the patch
 * disabled and unloaded. Used by `suture catch-up`; the workload is text,
 * so a person can read exactly what ran.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import type { ModuleLoad } from '../kernel/modules.js';
import { ensureDiskImage } from './disk.js';
import { runVm, type VmCommand, type VmEvent, type VmResult } from './run.js';


/** What the smoke workload does, step by step; each line of output names its part. */
export const SMOKE_SCRIPT = `set -e
work() { # $1: a directory on the file system under test
  d="$1/suture-smoke"; mkdir -p "$d"
  i=0; while [ $i -lt 300 ]; do echo "line $i of the smoke workload" > "$d/f$i"; i=$((i+1)); done
  [ "$(cat "$d"/f* | wc -l)" -eq 300 ]
  dd if=/dev/urandom of="$d/big" bs=4k count=512 2>/dev/null; sync
  sum=$(sha256sum "$d/big" | cut -d' ' -f1); cp "$d/big" "$d/copy"; sync; echo 3 > /proc/sys/vm/drop_caches
  [ "$(sha256sum "$d/copy" | cut -d' ' -f1)" = "$sum" ]
  mv "$d/copy" "$d/moved"; ln -s moved "$d/link"; ln "$d/moved" "$d/hard"; truncate -s 1000 "$d/hard"; [ "$(stat -c %s "$d/moved")" -eq 1000 ]
  rm -r "$d"; sync
  echo "files on $1: ok"
}
mkdir -p /tmp/smoke-tmpfs; mount -t tmpfs tmpfs /tmp/smoke-tmpfs
work /tmp/smoke-tmpfs
work /mnt/disk
for f in /proc/self/status /proc/self/maps /proc/meminfo /proc/cpuinfo /proc/mounts /proc/interrupts /proc/slabinfo /proc/modules; do cat $f > /dev/null; done
for p in /proc/[0-9]*; do cat $p/stat $p/cmdline $p/status > /dev/null 2>&1 || true; done
echo "/proc: ok"
n=0; while [ $n -lt 20 ]; do sleep 5 & p=$!; kill -TERM $p; wait $p || true; n=$((n+1)); done
[ "$(sh -c 'trap "echo caught" USR1; kill -USR1 $$; sleep 0.1')" = caught ]
sh -c 'exit 7' || [ $? -eq 7 ]
echo "processes and signals: ok"
ip link set lo up
nc -l -p 7077 > /tmp/smoke-received & srv=$!
sleep 0.3; i=0; while [ $i -lt 100 ]; do echo "packet $i"; i=$((i+1)); done | nc 127.0.0.1 7077 || true
wait $srv || true
[ "$(wc -l < /tmp/smoke-received)" -eq 100 ]
echo "sockets on loopback: ok"
umount /tmp/smoke-tmpfs
`;

/**
 * Disable a livepatch, wait for its transition and for its directory to go, and unload it. The wait is
 * by the clock, up to `limitS` seconds: a sleeping task in a replaced function holds the transition
 * until it wakes, and once every task has switched the kernel still takes each function's ftrace handler
 * out with an RCU-tasks grace period (ftrace_shutdown; at least the RCU-tasks kthread's 100 ms sleep
 * each), so the whole update's 1133 functions took 140 s with no task pending. How long it took is said.
 */
export function disableAndUnload(patch: string, limitS = 300): string {
  return `p=/sys/kernel/livepatch/${patch}
t0=$(date +%s)
echo 0 > $p/enabled
pending() { n=0; for d in /proc/[0-9]*; do if [ "$(cat $d/patch_state 2>/dev/null)" = 1 ]; then n=$((n+1)); echo "task \${d#/proc/} $(cat $d/comm 2>/dev/null)"; sed 's/^/    /' $d/stack 2>/dev/null; fi; done
  [ $n -gt 0 ] || echo "none: every task has switched; the kernel is completing the transition (each released function's ftrace handler waits for an RCU-tasks grace period)"; }
said=
while [ -d $p ]; do sleep 0.5; e=$(( $(date +%s) - t0 ))
  if [ -z "$said" ] && [ $e -ge 30 ]; then said=1; echo "still waiting after 30 s; the tasks in patched code:"; pending; fi
  if [ $e -gt ${limitS} ]; then
    echo "the transition to disabled did not complete in ${limitS} s; the tasks still in patched code, with their stacks:"; pending
    exit 1
  fi
done
echo "${patch}: disabled in $(( $(date +%s) - t0 )) s"
rmmod ${patch}
! grep -q "^${patch} " /proc/modules
echo "${patch}: disabled and unloaded"
`;
}

/**
 * Load the patched modules (and their dependencies) after the livepatch, as a
 * host would load a module later: the livepatch core patches each as it
 * comes. A module that cannot load in this guest (hardware it needs, VMX
 * under TCG) is said, not failed: its part of the patch waits for it.
 */
export function loadModulesScript(mods: readonly ModuleLoad[]): string {
  return mods
    .map((m) => `n=${m.name}; if grep -q "^$n " /proc/modules; then echo "already loaded $n"; elif out=$(insmod /modules/${basename(m.path)} 2>&1); then echo "loaded $n"; else echo "not loadable here $n: $out"; fi`)
    .join('\n') + '\n';
}

/** What the module-loading step said, module by module. */
export function parseModuleLoads(output: string): { name: string; loaded: boolean; why?: string }[] {
  const out: { name: string; loaded: boolean; why?: string }[] = [];
  for (const l of output.split('\n')) {
    const ok = /^(?:already )?loaded (\S+)$/.exec(l);
    if (ok) out.push({ name: ok[1]!, loaded: true });
    const no = /^not loadable here (\S+): (.*)$/.exec(l);
    if (no) out.push({ name: no[1]!, loaded: false, why: no[2]! });
  }
  return out;
}

const PROBLEM = /\bBUG[: ]|\bOops\b|\bWARNING:|INFO: task .* blocked for more than|\bgeneral protection fault\b|\bKernel panic\b|\bRIP: /;

/** Kernel log lines that fail a proof. */
export function logProblems(dmesg: readonly string[]): string[] {
  return dmesg.filter((l) => PROBLEM.test(l));
}

/**
 * Each problem with what the kernel printed after it (modules linked in, registers, the call trace:
 * the code that led there, livepatch functions included), up to its end-of-trace line or 40 lines;
 * the first 20 problems.
 */
export function logContext(dmesg: readonly string[]): string[][] {
  const out: string[][] = [];
  for (let i = 0; i < dmesg.length && out.length < 20; i++) {
    if (!PROBLEM.test(dmesg[i]!) || /\bRIP: /.test(dmesg[i]!)) continue;
    const block = [dmesg[i]!];
    let j = i + 1;
    for (; j < dmesg.length && j < i + 40; j++) {
      block.push(dmesg[j]!);
      if (/---\[ end trace/.test(dmesg[j]!)) break;
    }
    out.push(block);
    i = j;
  }
  return out;
}

export interface ProofRequest {
  readonly kernelImage: string;
  /** The kernel's own modules to load first (the disk's), resolved with their dependencies; any failure fails the proof. */
  readonly kmods: readonly ModuleLoad[];
  /** The patched modules with their dependencies, loaded after the livepatch (loadModulesScript). */
  readonly modules: readonly ModuleLoad[];
  readonly patch: string;
  /** The livepatch's name in /sys/kernel/livepatch. */
  readonly patchName: string;
  readonly checks: readonly VmCommand[];
  readonly stateDir: string;
  readonly timeoutMs?: number;
  readonly onEvent?: (e: VmEvent) => void;
  /** false: no second boot to tell the kernel's own problems from the patch's (default: one beside the proof, kept when needed). */
  readonly baseline?: boolean;
}

export interface ProofResult {
  readonly proven: boolean;
  /** Why not, in one line. */
  readonly reason?: string;
  readonly transitionMs: number | undefined;
  readonly steps: readonly { label: string; status: number | null; durationMs: number | null; output: string }[];
  readonly logProblems: readonly string[];
  /** Each problem with the lines the kernel printed after it (logContext). */
  readonly logContext: readonly (readonly string[])[];
  /**
   * The boot without the patch (same kernel, modules and workload, run beside the proof), kept when the kernel log had problems:
   * the problem lines it printed too are the kernel's own (`preexisting`) and do not fail the proof.
   */
  readonly baseline?: { readonly outcome: string; readonly ms: number; readonly preexisting: readonly string[] };
  /** Each patched module (or dependency) and whether it loaded in the guest. */
  readonly modules: readonly { name: string; loaded: boolean; why?: string }[];
  readonly vm: VmResult;
}

/** A problem line without what changes from boot to boot (time stamp, CPU, PID, task name, addresses). */
export function problemKey(line: string): string {
  return line
    .replace(/^\[\s*[\d.]+\]\s*/, '')
    .replace(/CPU: \d+ PID: \d+/, 'CPU: * PID: *')
    .replace(/\b(Comm|task):? \S+/g, '$1 *')
    .replace(/\b0x[0-9a-f]{8,}\b|\b[0-9a-f]{16}\b/g, '*');
}

/**
 * Which problem lines of the proof the boot without the patch printed too. A line that names code of the
 * livepatch module (`[name]`) is always the patch's.
 */
export function splitPreexisting(proof: readonly string[], without: readonly string[], patchName: string): { fresh: string[]; preexisting: string[] } {
  const known = new Set(without.map(problemKey));
  const fresh: string[] = [];
  const preexisting: string[] = [];
  for (const l of proof) (!l.includes(`[${patchName}]`) && known.has(problemKey(l)) ? preexisting : fresh).push(l);
  return { fresh, preexisting };
}

export async function provePatch(req: ProofRequest): Promise<ProofResult> {
  const dir = mkdtempSync(join(tmpdir(), 'suture-proof-'));
  try {
    const disk = join(dir, 'disk.img');
    await ensureDiskImage(disk, 64);
    const commands: VmCommand[] = [
      ...(req.modules.length ? [{ label: 'load the patched modules', script: loadModulesScript(req.modules) }] : []),
      { label: 'smoke workload', script: SMOKE_SCRIPT },
      ...req.checks,
      { label: `disable and unload ${req.patchName}`, script: disableAndUnload(req.patchName) },
    ];
    const guest = { kernelImage: req.kernelImage, kmods: [...req.kmods], modules: req.modules.map((m) => m.path), stateDir: req.stateDir, timeoutMs: req.timeoutMs ?? 300_000, memoryMb: 1024 };
    // A problem line is the patch's only if the same kernel, the same modules and the same workload do not
    // print it without the patch. That boot runs beside the proof, on its own disk: the proof's guest keeps
    // one CPU busy (and waits for the kernel's RCU grace periods while it unpatches), so the other core
    // makes it for nothing; it is stopped unasked when the proof's log is clean.
    let baselineRun: Promise<{ vm: VmResult; ms: number }> | undefined;
    const cancel = new AbortController();
    const stopBaseline = async () => {
      cancel.abort();
      await baselineRun?.catch(() => undefined);
    };
    if (req.baseline !== false) {
      const baseDisk = join(dir, 'baseline.img');
      await ensureDiskImage(baseDisk, 64);
      const t0 = performance.now();
      baselineRun = runVm({
        ...guest,
        loads: [],
        commands: commands.filter((c) => c.label === 'load the patched modules' || c.label === 'smoke workload'),
        disk: { file: baseDisk, mountpoint: '/mnt/disk' },
        signal: cancel.signal,
      }).then((vm) => ({ vm, ms: Math.round(performance.now() - t0) }));
      // Not awaited until the proof is over; a failure is seen then, and never left unhandled.
      baselineRun.catch(() => undefined);
    }
    let vm: VmResult;
    try {
      vm = await runVm({ ...guest, loads: [req.patch], commands, disk: { file: disk, mountpoint: '/mnt/disk' }, ...(req.onEvent ? { onEvent: req.onEvent } : {}) });
    } catch (e) {
      await stopBaseline();
      throw e;
    }
    const seen = logProblems(vm.dmesg);
    let baseline: ProofResult['baseline'];
    let problems = seen;
    if (seen.length && baselineRun) {
      req.onEvent?.({ type: 'step-start', id: 'baseline', label: 'without the patch: the same modules and workload (the kernel\'s own log lines)' });
      const base = await baselineRun;
      const split = splitPreexisting(seen, logProblems(base.vm.dmesg), req.patchName);
      problems = split.fresh;
      baseline = { outcome: base.vm.outcome, ms: base.ms, preexisting: split.preexisting };
    } else {
      await stopBaseline();
    }
    const steps = [...vm.kmods, ...vm.loads, ...vm.commands].map((s) => ({ label: s.label, status: s.status, durationMs: s.durationMs, output: s.output }));
    const failed = steps.find((s) => s.status !== 0);
    const reason =
      vm.outcome !== 'ok'
        ? `${vm.reason ?? vm.outcome}`
        : failed
          ? `${failed.label} failed (status ${failed.status})`
          : problems.length
            ? `the kernel log shows ${problems.length} problem line${problems.length === 1 ? '' : 's'}: ${problems[0]}`
            : undefined;
    const modules = parseModuleLoads(vm.commands.find((c) => c.label === 'load the patched modules')?.output ?? '');
    const context = logContext(vm.dmesg).filter((b) => !baseline?.preexisting.includes(b[0]!));
    return { proven: reason === undefined, ...(reason ? { reason } : {}), transitionMs: vm.loads[0]?.kernelTransitionMs, steps, logProblems: problems, logContext: context, ...(baseline ? { baseline } : {}), modules, vm };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** What a failed proof shows of the code involved: the kernel log's problems with their traces, and the output of the steps that failed (a stuck transition's tasks and their stacks). */
export function proofEvidence(p: Pick<ProofResult, 'logProblems' | 'logContext' | 'steps'>): string[] {
  return [...p.logProblems, ...p.logContext.flat(), ...p.steps.filter((s) => s.status !== 0).flatMap((s) => s.output.split('\n'))];
}
