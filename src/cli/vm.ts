// SPDX-License-Identifier: GPL-2.0-only
/** `suture vm run` */
import { Command, InvalidArgumentError, Option } from 'commander';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SutureError } from '../util/errors.js';
import { sutureHome } from '../util/paths.js';
import { readModuleFile } from '../kernel/module-file.js';
import { readModuleIndex, resolveModules } from '../kernel/modules.js';
import { parseKernelRef } from '../kernel/ref.js';
import { requireWorkspace } from '../kernel/workspace.js';
import { DISK_KMODS, ensureDiskImage } from '../vm/disk.js';
import { outcomeErrorKind } from '../vm/outcome.js';
import { runVm, type StepResult, type VmCommand, type VmResult } from '../vm/run.js';

/** The package root (dist/cli/vm.js or dist/bundle/vm-*.js → ../..): what --with-suture carries into the guest. */
const APP_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
import { EXIT, exitCodeFor } from './exit-codes.js';
import { printJson } from './output.js';
import { addVmHostCommand } from './vm-host.js';

interface VmRunOptions {
  kernel: string;
  kmod: string[];
  module: string[];
  file: string[];
  load: string[];
  timeout: number;
  json?: boolean;
  accel: 'auto' | 'kvm' | 'tcg';
  memory: number;
  cpus: number;
  kaslr: boolean;
  append: string[];
  console?: boolean;
  withSuture?: boolean;
  disk?: string;
  diskMount: string;
  diskSize: number;
}

const collect = (v: string, prev: string[] = []) => [...prev, v];
const positiveInt = (name: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError(`${name} must be a positive whole number`);
  return n;
};

/** The exit code of a VM run: 0, the first failing command's own status, or a guest failure code. */
export function vmExitCode(r: VmResult): number {
  switch (r.outcome) {
    case 'ok':
      return EXIT.ok;
    case 'command-failed':
      return r.firstFailedStatus ?? EXIT.failure;
    default:
      // The same map as every other command that boots a guest (vm/outcome.ts).
      return exitCodeFor(outcomeErrorKind(r.outcome));
  }
}

function stepJson(s: StepResult) {
  return { label: s.label, status: s.status, durationMs: s.durationMs, output: s.output };
}

export function vmResultJson(kernel: string, r: VmResult) {
  return {
    kernel,
    outcome: r.outcome,
    reason: r.reason,
    exitCode: vmExitCode(r),
    accel: r.accel,
    bootMs: r.bootMs === null ? null : Math.round(r.bootMs),
    totalMs: Math.round(r.totalMs),
    kmods: r.kmods.map(stepJson),
    loads: r.loads.map((l) => ({ ...stepJson(l), file: l.file, patch: l.patch, kernelTransitionMs: l.kernelTransitionMs })),
    commands: r.commands.map(stepJson),
    livepatchLog: r.livepatchLog,
    crash: r.crash,
    runningStep: r.runningStep,
    dmesg: r.dmesg,
    consoleTail: r.outcome === 'ok' || r.outcome === 'command-failed' ? undefined : r.consoleTail,
    disk: r.disk ? stepJson(r.disk) : undefined,
  };
}

export function vmCommand(): Command {
  const cmd = new Command('vm').description('throwaway QEMU guests booted from a target kernel');
  // --exec and --script keep their relative order: both feed this list.
  let steps: VmCommand[] = [];
  cmd
    .command('run')
    .description('boot the kernel, load modules and livepatches, run commands, report what happened')
    .requiredOption('--kernel <kernel>', 'the target kernel, e.g. debian:6.1.0-56-amd64')
    .option('--kmod <name>', "load one of the kernel's own modules (with its dependencies) first; repeatable", collect, [])
    .option('--module <file.ko>', 'place a module file in the guest as /modules/<basename>, not loaded; repeatable', collect, [])
    .option('--file <path>', 'place any file in the guest as /files/<basename> (an executable stays executable); repeatable', collect, [])
    .option('--load <file.ko>', 'place a livepatch module, insmod it and wait for its transition; repeatable', collect, [])
    .option('--exec <command>', 'run a shell command in the guest; repeatable', (v: string) => {
      steps.push({ label: v, script: `${v}\n` });
      return v;
    })
    .option('--script <file.sh>', 'run a shell script in the guest; repeatable', (v: string) => {
      if (!existsSync(v)) throw new InvalidArgumentError(`${v} does not exist`);
      steps.push({ label: v, script: readFileSync(v, 'utf8') });
      return v;
    })
    .option('--timeout <seconds>', 'give up on the guest after this long', positiveInt('--timeout'), 120)
    .addOption(new Option('--accel <accel>', 'accelerator').choices(['auto', 'kvm', 'tcg']).default('auto'))
    .option('--memory <MiB>', 'guest memory', positiveInt('--memory'), 1024)
    .option('--cpus <n>', 'guest CPUs', positiveInt('--cpus'), 1)
    .option('--no-kaslr', 'boot with nokaslr')
    .option('--append <words>', 'extra kernel command-line words; repeatable', collect, [])
    .option('--console', 'also show the guest console (kernel messages) on stderr')
    .option('--with-suture', 'carry suture itself (node and the app) into the guest, as `suture` on its PATH')
    .option('--disk <file>', 'attach a raw ext4 disk image (made if missing) as /dev/vda and mount it; it keeps what the guest writes')
    .option('--disk-mount <dir>', 'where the guest mounts the disk', '/mnt/disk')
    .option('--disk-size <MiB>', 'size of a new disk image', positiveInt('--disk-size'), 64)
    .option('--json', 'print one JSON object with everything that happened')
    .action(async (o: VmRunOptions) => {
      const commands = steps;
      steps = [];
      const ref = parseKernelRef(o.kernel);
      const home = sutureHome();
      // Validate every file before booting anything.
      for (const m of o.module) readModuleFile(m);
      for (const f of o.file) {
        if (!existsSync(f) || !statSync(f).isFile()) throw new SutureError('not-found', `--file ${f}: no such file`);
      }
      for (const m of o.load) {
        const mod = readModuleFile(m);
        if (!mod.livepatch) {
          throw new SutureError('invalid-input', `${m} is not a livepatch module (its .modinfo has no livepatch=Y)`, {
            hint: 'use --module to place an ordinary module in the guest, and load it with --exec "insmod /modules/<file>"',
          });
        }
      }
      const meta = requireWorkspace(home, ref);
      const kmodNames = o.disk ? [...o.kmod, ...DISK_KMODS] : o.kmod;
      const { loads: kmods, builtin } = kmodNames.length
        ? resolveModules(readModuleIndex(meta.paths.modules), meta.paths.modules, kmodNames)
        : { loads: [], builtin: [] };
      if (o.disk && (await ensureDiskImage(o.disk, o.diskSize)) && !o.json) {
        process.stderr.write(`made ${o.diskSize} MiB ext4 disk image ${o.disk}\n`);
      }
      if (builtin.length && !o.json) process.stderr.write(`note: built into the kernel, nothing to load: ${builtin.join(', ')}\n`);

      const live = !o.json;
      const r = await runVm({
        kernelImage: meta.paths.vmlinuz,
        kmods,
        modules: o.module,
        files: o.file,
        loads: o.load,
        commands,
        timeoutMs: o.timeout * 1000,
        accel: o.accel,
        memoryMb: o.memory,
        cpus: o.cpus,
        kaslr: o.kaslr,
        cmdline: o.append,
        stateDir: join(home, 'vm'),
        withSuture: o.withSuture ? { appRoot: APP_ROOT } : undefined,
        disk: o.disk ? { file: resolve(o.disk), mountpoint: o.diskMount } : undefined,
        onEvent: live
          ? (e) => {
              if (e.type === 'output' && e.id.startsWith('cmd:')) process.stdout.write(e.data);
              else if (e.type === 'booting') process.stderr.write(`booting ${meta.name} (${e.accel})\n`);
              else if (e.type === 'ready') process.stderr.write(`guest up in ${(e.bootMs / 1000).toFixed(1)} s\n`);
              else if (e.type === 'step-end' && !e.id.startsWith('cmd:') && e.id !== 'dmesg') {
                process.stderr.write(`${e.status === 0 ? 'ok' : `FAILED (status ${e.status})`}: ${e.id.replace(/:\d+$/, '')} ${e.status === 0 ? `(${e.durationMs} ms)` : ''}\n`);
              } else if (e.type === 'console' && o.console) process.stderr.write(`console: ${e.line}\n`);
            }
          : undefined,
      });
      if (o.json) {
        printJson(vmResultJson(meta.name, r));
      } else {
        for (const l of r.loads) {
          if (l.patch) {
            process.stderr.write(
              `livepatch ${l.patch}: transition complete${l.kernelTransitionMs !== undefined ? ` (kernel: ${l.kernelTransitionMs} ms)` : ''}\n`,
            );
          }
        }
        if (r.outcome !== 'ok') {
          process.stderr.write(`suture: ${r.reason}\n`);
          if (r.outcome !== 'command-failed') {
            const tail = r.outcome === 'refused' ? r.livepatchLog.concat(r.dmesg.slice(-5)) : r.consoleTail.slice(-25);
            if (tail.length) process.stderr.write(`${tail.map((l) => `  | ${l}`).join('\n')}\n`);
          }
        }
      }
      process.exitCode = vmExitCode(r);
    });
  addVmHostCommand(cmd);
  return cmd;
}
