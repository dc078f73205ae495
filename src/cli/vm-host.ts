// SPDX-License-Identifier: GPL-2.0-only
/** `suture vm host`: a real Debian system booted from the target kernel (src/vm/host.ts). */
import { Command, InvalidArgumentError, Option } from 'commander';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { DEBIAN_CODENAMES, parseKernelRef, type DebianCodename } from '../kernel/ref.js';
import { requireWorkspace } from '../kernel/workspace.js';
import { SutureError } from '../util/errors.js';
import { sutureHome } from '../util/paths.js';
import { bootOk, checkNetPorts, runHost, HOST_DEFAULT_TIMEOUT_MS, type HostBoot, type HostResult } from '../vm/host.js';
import { ensureHostImage } from '../vm/host-image.js';
import { GUEST_NET } from '../vm/host-guest.js';
import { EXIT } from './exit-codes.js';
import { printJson } from './output.js';
import { vmExitCode, vmResultJson } from './vm.js';

interface VmHostOptions {
  kernel: string;
  release?: DebianCodename;
  keepDisk?: string;
  timeout: number;
  accel: 'auto' | 'kvm' | 'tcg';
  memory: number;
  cpus: number;
  append: string[];
  netPort: number[];
  console?: boolean;
  json?: boolean;
}

const positiveInt = (name: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError(`${name} must be a positive whole number`);
  return n;
};

/** The exit code of a host run: that of its first boot that did not go as planned. */
export function hostExitCode(r: HostResult): number {
  const bad = r.boots.find((b) => !bootOk(b));
  return bad ? vmExitCode(bad) : EXIT.ok;
}

export function addVmHostCommand(vm: Command): void {
  // --exec, --script, --file and --reboot keep their order: each --reboot starts the next boot.
  let boots: HostBoot[] = [{ commands: [], files: [] }];
  const current = () => boots[boots.length - 1]!;
  const cmd = vm
    .command('host')
    .description('boot a real Debian system (systemd, apt, nodejs) from the target kernel and run commands in it; --reboot boots the same disk again')
    .requiredOption('--kernel <kernel>', 'the target kernel, e.g. debian:6.1.0-56-amd64 (its own image package is installed in the system)')
    .addOption(new Option('--release <codename>', 'the Debian release of the system (default: the kernel\'s)').choices(Object.values(DEBIAN_CODENAMES)))
    .option('--keep-disk <file>', 'boot this qcow2 overlay of the image (made if missing) and keep it: later boots and runs see what this one wrote')
    .option('--exec <command>', 'run a shell command as root once the system is up; repeatable', (v: string) => {
      current().commands.push({ label: v, script: `${v}\n` });
      return v;
    })
    .option('--script <file.sh>', 'run a shell script as root once the system is up; repeatable', (v: string) => {
      if (!existsSync(v)) throw new InvalidArgumentError(`${v} does not exist`);
      current().commands.push({ label: v, script: readFileSync(v, 'utf8') });
      return v;
    })
    .option('--file <path>', 'place a file in this boot at /run/suture-vm/files/<basename> ($SUTURE_VM_FILES); repeatable', (v: string) => {
      if (!existsSync(v) || !statSync(v).isFile()) throw new InvalidArgumentError(`${v}: no such file`);
      current().files!.push(v);
      return v;
    })
    .option('--reboot', 'power off cleanly and boot the same disk again; the options after it are for that boot')
    .option('--expect-crash', 'this boot is meant to crash the guest kernel (e.g. echo c > /proc/sysrq-trigger): the next boot follows; no crash fails the run')
    .option('--timeout <seconds>', 'give up on a boot after this long', positiveInt('--timeout'), HOST_DEFAULT_TIMEOUT_MS / 1000)
    .addOption(new Option('--accel <accel>', 'accelerator').choices(['auto', 'kvm', 'tcg']).default('auto'))
    .option('--memory <MiB>', 'guest memory', positiveInt('--memory'), 1024)
    .option('--cpus <n>', 'guest CPUs', positiveInt('--cpus'), 1)
    .option(
      '--net-port <port>',
      `give every boot of this run a network on which it reaches only this loopback port of this machine, as ${GUEST_NET.gateway}:PORT (QEMU user networking, restrict=on; the guest is ${GUEST_NET.address}); repeatable. Without it the host has no network`,
      (v: string, p: number[] = []) => [...p, positiveInt('--net-port')(v)],
      [],
    )
    .option('--append <words>', 'extra kernel command-line words; repeatable', (v: string, p: string[] = []) => [...p, v], [])
    .option('--console', 'also show the guest console (kernel and systemd messages) on stderr')
    .option('--json', 'print one JSON object: the image, and each boot\'s commands, dmesg and outcome');
  cmd.on('option:reboot', () => {
    boots.push({ commands: [], files: [] });
  });
  cmd.on('option:expect-crash', () => {
    current().expectCrash = true;
  });
  cmd.action(async (o: VmHostOptions) => {
    const plan = boots;
    boots = [{ commands: [], files: [] }];
    const ref = parseKernelRef(o.kernel);
    const suite = o.release ?? ref.codename;
    if (suite !== ref.codename && !o.json) {
      process.stderr.write(`note: a Debian ${suite} system with ${ref.codename}'s kernel ${ref.release}\n`);
    }
    if (o.keepDisk && existsSync(o.keepDisk) && statSync(o.keepDisk).isDirectory()) {
      throw new SutureError('usage', `--keep-disk ${o.keepDisk} is a directory; name a file`);
    }
    const netPorts = checkNetPorts(o.netPort);
    const home = sutureHome();
    const meta = requireWorkspace(home, ref);
    const live = !o.json;
    const { image, made } = await ensureHostImage({
      home,
      suite,
      meta,
      onProgress: live ? (l) => process.stderr.write(`  ${l}\n`) : undefined,
    });
    if (made && live) {
      process.stderr.write(`made the ${suite} host image for ${meta.release} in ${image.dir} (${Object.entries(image.timings).map(([k, v]) => `${k} ${v} s`).join(', ')})\n`);
    }
    const r = await runHost({
      kernelImage: meta.paths.vmlinuz,
      image,
      boots: plan,
      keepDisk: o.keepDisk,
      netPorts,
      cmdline: o.append,
      timeoutMs: o.timeout * 1000,
      memoryMb: o.memory,
      cpus: o.cpus,
      accel: o.accel,
      stateDir: join(home, 'vm'),
      onEvent: live
        ? (e, boot) => {
            const n = plan.length > 1 ? ` ${boot + 1}/${plan.length}` : '';
            if (e.type === 'output' && e.id.startsWith('cmd:')) process.stdout.write(e.data);
            else if (e.type === 'booting') process.stderr.write(`booting Debian ${suite} with ${meta.release} (${e.accel})${n}${netPorts.length ? `, network to 127.0.0.1:${netPorts.join(',')} only` : ''}\n`);
            else if (e.type === 'ready') process.stderr.write(`host up${n} in ${(e.bootMs / 1000).toFixed(1)} s\n`);
            else if (e.type === 'console' && o.console) process.stderr.write(`console: ${e.line}\n`);
          }
        : undefined,
    });
    if (o.json) {
      printJson({
        kernel: meta.name,
        release: suite,
        image: { dir: image.dir, kernelPackage: `${image.kernelPackage.name} ${image.kernelPackage.version}`, node: image.nodeVersion, made, timings: image.timings },
        disk: r.disk,
        network: netPorts.length ? { address: GUEST_NET.address, reaches: netPorts.map((p) => `${GUEST_NET.gateway}:${p} -> 127.0.0.1:${p}`) } : null,
        diskCreated: r.diskCreated,
        outcome: r.outcome,
        reason: r.reason,
        exitCode: hostExitCode(r),
        totalMs: Math.round(r.totalMs),
        boots: r.boots.map((b) => ({ ...vmResultJson(meta.name, b), expectedCrash: b.expectedCrash ?? false })),
      });
    } else {
      r.boots.forEach((b, i) => {
        if (b.expectedCrash) process.stderr.write(`boot ${i + 1} crashed as expected: ${b.reason}\n`);
      });
      if (r.diskCreated) process.stderr.write(`kept disk ${r.disk} (made now, backed by ${image.root})\n`);
      if (r.outcome !== 'ok') {
        process.stderr.write(`suture: ${r.reason}\n`);
        const bad = r.boots[r.boots.length - 1];
        if (bad && r.outcome !== 'command-failed') process.stderr.write(`${bad.consoleTail.slice(-25).map((l) => `  | ${l}`).join('\n')}\n`);
      }
    }
    process.exitCode = hostExitCode(r);
  });
}
