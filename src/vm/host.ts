// SPDX-License-Identifier: GPL-2.0-only
/**
 * `suture vm host`: boot a real Debian system (host-image.ts) from the target
 * kernel, once or several times in a row on the same disk, and run commands
 * in each boot through the guest unit (host-guest.ts). Each run boots a
 * copy-on-write overlay (qcow2 backed by the cached image), thrown away at
 * the end unless it is a kept disk, whose later boots — in this call or the
 * next — see what earlier ones wrote. A boot is one QEMU process: the guest
 * powers off cleanly through systemd and the next boot starts QEMU again.
 *
 * Network: none unless the spec names forwarded ports (`netPorts`). Then each
 * boot gets a virtio NIC on QEMU's user-mode network with restrict=on (the
 * guest is isolated: no route to the build machine or anywhere else) and one
 * guestfwd rule per port: a connection from the guest to
 * GUEST_NET.gateway:PORT is handed to a small forwarder (tcp-forward.mjs,
 * written into the run's directory and run by QEMU once per connection on
 * this machine's node) that connects to 127.0.0.1:PORT. That is all the guest
 * can reach.
 */
import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { SutureError } from '../util/errors.js';
import { run, runChecked } from '../util/exec.js';
import { GUEST_NET, GUEST_PAYLOAD_DIR, hostBootScript, PAYLOAD_SERIAL } from './host-guest.js';
import type { HostImage } from './host-image.js';
import { classify } from './outcome.js';
import { findQemu, markKvmBad, pickAccel, qemuArgv, type Accel, type AccelChoice } from './qemu.js';
import type { VmCommand, VmEvent, VmResult, VmSpec } from './run.js';
import { KVM_FIRST_OUTPUT_MS, runSession } from './session.js';

/** A host boot's time limit when none is given: systemd under TCG is slower than an initramfs. */
export const HOST_DEFAULT_TIMEOUT_MS = 300_000;

export interface HostBoot {
  commands: VmCommand[];
  /** Files placed at /run/suture-vm/files/<basename> for this boot. */
  files?: string[];
  /**
   * This boot is meant to crash the guest kernel (`echo c > /proc/sysrq-trigger`): a crash is
   * what it should do, and the next boot follows; a boot that does not crash fails the run.
   */
  expectCrash?: boolean;
}

/** One boot's result; `expectedCrash` when it crashed as its HostBoot said it would. */
export type HostBootResult = VmResult & { expectedCrash?: boolean };

export interface HostSpec {
  kernelImage: string;
  image: HostImage;
  boots: HostBoot[];
  /** A qcow2 overlay kept across boots and runs (made if missing); without it each run starts from the clean image. */
  keepDisk?: string;
  /**
   * Loopback ports of this machine that every boot of the run may reach, as GUEST_NET.gateway:PORT
   * (restricted user-mode network, nothing else reachable). Empty or absent: no network device.
   */
  netPorts?: readonly number[];
  cmdline?: string[];
  timeoutMs?: number;
  memoryMb?: number;
  cpus?: number;
  accel?: AccelChoice;
  stateDir: string;
  onEvent?: (e: VmEvent, boot: number) => void;
}

export interface HostResult {
  /** One result per boot that ran; the run stops after the first boot that is not ok (an expected crash is). */
  boots: HostBootResult[];
  outcome: VmResult['outcome'];
  reason?: string;
  /** The kept disk, when there is one. */
  disk?: string;
  diskCreated: boolean;
  totalMs: number;
}

interface QemuImgInfo {
  format?: string;
  'backing-filename'?: string;
  'full-backing-filename'?: string;
}

/** Make the overlay `file` backed by `image`, or check that an existing one is. Returns whether it was made. */
export async function ensureOverlay(file: string, image: HostImage): Promise<boolean> {
  if (existsSync(file)) {
    if (!statSync(file).isFile()) throw new SutureError('invalid-input', `${file} is not a regular file (a kept disk must be one)`);
    const r = await run(['qemu-img', 'info', '-U', '--output=json', file]);
    let info: QemuImgInfo = {};
    try {
      info = JSON.parse(r.stdout) as QemuImgInfo;
    } catch {
      /* reported below */
    }
    const backing = info['full-backing-filename'] ?? info['backing-filename'];
    if (r.code !== 0 || info.format !== 'qcow2' || !backing) {
      throw new SutureError('invalid-input', `${file} is not a disk kept by suture vm host (not a qcow2 overlay of a host image)`, {
        hint: 'name a new file to start a kept disk, or one an earlier --keep-disk run made',
      });
    }
    if (resolve(backing) !== resolve(image.root)) {
      throw new SutureError('invalid-input', `${file} is a kept disk of another image (${backing}), not of ${image.root}`, {
        hint: `boot it with the kernel and --release it was made with, or name a new file`,
      });
    }
    // An overlay records blocks, not files: over an image made again since, it is a damaged file system.
    const madeAt = readOverlayMark(file);
    if (madeAt !== undefined && madeAt !== image.madeAt) {
      throw new SutureError('invalid-input', `${file} was kept over the image made at ${madeAt}; ${image.root} was made again at ${image.madeAt}, so the disk no longer matches it`, {
        hint: 'name a new file for --keep-disk (the old disk cannot be booted any more)',
      });
    }
    return false;
  }
  await runChecked(['qemu-img', 'create', '-q', '-f', 'qcow2', '-F', 'raw', '-b', image.root, file], {
    kind: 'environment',
    what: `qemu-img create of the overlay ${file}`,
  });
  writeFileSync(overlayMark(file), `${JSON.stringify({ image: image.root, madeAt: image.madeAt })}\n`);
  return true;
}

/** Beside a kept disk: which making of the image it was started over. */
function overlayMark(file: string): string {
  return `${file}.image.json`;
}

function readOverlayMark(file: string): string | undefined {
  try {
    return (JSON.parse(readFileSync(overlayMark(file), 'utf8')) as { madeAt?: string }).madeAt;
  } catch {
    return undefined; // no mark (made by hand with qemu-img): only the backing file is checked
  }
}

/** The payload disk of one boot: a plain tar of run.sh, cmds/<i>.sh and files/<basename>. */
async function writePayload(dir: string, boot: HostBoot, marker: string, network: boolean): Promise<string> {
  const stage = join(dir, 'payload');
  rmSync(stage, { recursive: true, force: true });
  mkdirSync(join(stage, 'cmds'), { recursive: true });
  mkdirSync(join(stage, 'files'), { recursive: true });
  writeFileSync(join(stage, 'run.sh'), hostBootScript({ marker, commands: boot.commands.length, powerOff: true, network }), { mode: 0o755 });
  boot.commands.forEach((c, i) => writeFileSync(join(stage, 'cmds', `${i}.sh`), c.script, { mode: 0o755 }));
  for (const f of boot.files ?? []) copyFileSync(f, join(stage, 'files', basename(f)));
  const tar = join(dir, 'payload.tar');
  await runChecked(['tar', '-C', stage, '--owner=0', '--group=0', '-cf', tar, '.'], { kind: 'environment', what: 'tar of the boot payload' });
  return tar;
}

/**
 * Run by QEMU (guestfwd cmd:) for each connection the guest opens to a forwarded port: fd 0 is
 * that connection (fds 1 and 2 too: nothing may be written to them but the stream). Connects to
 * 127.0.0.1:PORT and copies both ways until either side closes.
 */
export const TCP_FORWARDER = `// suture vm host: one guest connection (fd 0) to 127.0.0.1:PORT (argv[2]); see src/vm/host.ts
import { connect, Socket } from 'node:net';
const guest = new Socket({ fd: 0, readable: true, writable: true });
const up = connect({ host: '127.0.0.1', port: Number(process.argv[2]) });
guest.pipe(up);
up.pipe(guest);
const end = () => {
  guest.destroy();
  up.destroy();
  process.exit(0);
};
guest.on('error', end);
up.on('error', end);
guest.on('close', end);
up.on('close', end);
`;

/** Check the ports of HostSpec.netPorts: whole numbers 1–65535, each once. */
export function checkNetPorts(ports: readonly number[]): number[] {
  const seen = new Set<number>();
  for (const p of ports) {
    if (!Number.isInteger(p) || p < 1 || p > 65535) throw new SutureError('usage', `--net-port ${p}: give a TCP port from 1 to 65535 (a port of 127.0.0.1 on this machine)`);
    if (seen.has(p)) throw new SutureError('usage', `--net-port ${p} is given twice`);
    seen.add(p);
  }
  return [...seen];
}

/** QEMU's arguments for the restricted network of a boot: one NIC, one guestfwd per port. */
export function netArgv(ports: readonly number[], forwarder: string, node: string = process.execPath): string[] {
  // QEMU splits -netdev at commas; libslirp splits the command at blanks (no shell)
  if (/[,\s'"\\]/.test(`${node}${forwarder}`)) {
    throw new SutureError('environment', `the forwarder's path (${node} ${forwarder}) has a comma, blank or quote that QEMU's -netdev cannot carry`, { hint: 'set TMPDIR to a plain directory' });
  }
  const rules = ports.map((p) => `guestfwd=tcp:${GUEST_NET.gateway}:${p}-cmd:${node} --no-warnings ${forwarder} ${p}`);
  return ['-netdev', ['user', 'id=n0', 'restrict=on', 'ipv6=off', `net=${GUEST_NET.net}`, ...rules].join(','), '-device', 'virtio-net-pci,netdev=n0'];
}

export async function runHost(spec: HostSpec): Promise<HostResult> {
  const t0 = performance.now();
  const netPorts = checkNetPorts(spec.netPorts ?? []);
  const qemu = findQemu();
  const work = mkdtempSync(join(tmpdir(), 'suture-host-'));
  const boots: HostBootResult[] = [];
  try {
    let net: string[] = [];
    if (netPorts.length) {
      const forwarder = join(work, 'tcp-forward.mjs');
      writeFileSync(forwarder, TCP_FORWARDER, { mode: 0o644 });
      net = netArgv(netPorts, forwarder);
    }
    const disk = spec.keepDisk ? resolve(spec.keepDisk) : join(work, 'overlay.qcow2');
    const diskCreated = await ensureOverlay(disk, spec.image);
    let accel = pickAccel(spec.accel ?? 'auto', spec.stateDir);
    for (let i = 0; i < spec.boots.length; i++) {
      let r = await bootOnce(spec, i, qemu, disk, accel, work, net);
      if ('kvmFailure' in r) {
        markKvmBad(spec.stateDir, r.kvmFailure);
        if ((spec.accel ?? 'auto') !== 'auto') {
          throw new SutureError('guest-timeout', `KVM does not run guests on this host: ${r.kvmFailure}`, { hint: 'use --accel tcg' });
        }
        accel = 'tcg';
        r = await bootOnce(spec, i, qemu, disk, accel, work, net);
        if ('kvmFailure' in r) throw new SutureError('internal', `a TCG guest was taken for a hanging KVM one: ${r.kvmFailure}`);
      }
      const b = judgeBoot(spec.boots[i]!, r);
      boots.push(b);
      if (!bootOk(b)) break;
    }
    const bad = boots.find((b) => !bootOk(b));
    return {
      boots,
      outcome: bad?.outcome ?? 'ok',
      reason: bad ? `boot ${boots.indexOf(bad) + 1}: ${bad.reason}` : undefined,
      disk: spec.keepDisk ? disk : undefined,
      diskCreated: spec.keepDisk ? diskCreated : false,
      totalMs: performance.now() - t0,
    };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** A boot went as planned: ok, or the crash it was meant to have. */
export function bootOk(b: HostBootResult): boolean {
  return b.outcome === 'ok' || b.expectedCrash === true;
}

/** A boot's result against what its HostBoot expected (--expect-crash). */
export function judgeBoot(boot: HostBoot, r: VmResult): HostBootResult {
  if (!boot.expectCrash) return r;
  if (r.outcome === 'crash') return { ...r, expectedCrash: true };
  if (r.outcome === 'ok') {
    return { ...r, outcome: 'boot-failure', reason: 'the boot was expected to crash the guest kernel (--expect-crash), and it powered off cleanly' };
  }
  return r;
}

async function bootOnce(spec: HostSpec, index: number, qemu: string, disk: string, accel: Accel, work: string, net: string[]): Promise<VmResult | { kvmFailure: string }> {
  const t0 = performance.now();
  const boot = spec.boots[index]!;
  const dir = join(work, `boot-${index}`);
  mkdirSync(dir, { recursive: true });
  const marker = `@@suture:${randomBytes(8).toString('hex')}@@`;
  const payload = await writePayload(dir, boot, marker, net.length > 0);
  const labels = new Map<string, string>(boot.commands.map((c, i) => [`cmd:${i}`, c.label]));
  const consoleFile = join(dir, 'console.log');
  const channelFile = join(dir, 'channel.out');
  const cmdline = ['root=/dev/vda', 'rw', 'console=ttyS0,115200', 'panic=-1', 'oops=panic', 'loglevel=4', ...(spec.cmdline ?? [])].join(' ');
  const argv = qemuArgv(qemu, {
    kernel: spec.kernelImage,
    initrd: spec.image.initrd,
    cmdline,
    accel,
    memoryMb: spec.memoryMb ?? 1024,
    cpus: spec.cpus ?? 1,
    consoleFile,
    channelFile,
    extra: [
      '-drive', `file=${disk},format=qcow2,if=none,id=root,cache=unsafe`,
      '-device', 'virtio-blk-pci,drive=root,serial=suture-root',
      '-drive', `file=${payload},format=raw,if=none,id=payload,readonly=on`,
      '-device', `virtio-blk-pci,drive=payload,serial=${PAYLOAD_SERIAL}`,
      ...net,
    ],
  });
  const timeoutMs = spec.timeoutMs ?? HOST_DEFAULT_TIMEOUT_MS;
  const s = await runSession({
    argv,
    accel,
    consoleFile,
    channelFile,
    marker,
    labels,
    timeoutMs,
    t0,
    emit: (e) => spec.onEvent?.(e, index),
  });
  if (s.kvmSilent) return { kvmFailure: `a KVM guest printed nothing within ${KVM_FIRST_OUTPUT_MS / 1000} s` };
  const vmSpec: VmSpec = { kernelImage: spec.kernelImage, commands: boot.commands, stateDir: spec.stateDir, timeoutMs };
  const r = classify(vmSpec, s, labels, accel, performance.now() - t0);
  if (r.outcome === 'boot-failure' && s.bootMs === null) {
    return {
      ...r,
      reason: `the host never started suture's guest unit (systemd did not reach multi-user.target, or the machine stopped first; qemu exit ${s.qemu.code})`,
    };
  }
  const netEnd = s.ends.get('net');
  if (net.length && netEnd && netEnd.status !== 0 && (r.outcome === 'ok' || r.outcome === 'command-failed')) {
    const said = Buffer.concat([...(s.outputs.get('net') ?? [])]).toString('utf8').trim().split('\n').slice(-6).join(' | ');
    return { ...r, outcome: 'boot-failure', reason: `the guest's network did not come up, so no command ran: ${said || `status ${netEnd.status}`}` };
  }
  if (r.outcome === 'timeout' && s.bootMs === null) {
    return { ...r, reason: `the host did not reach multi-user.target and start suture's guest unit within ${Math.round(timeoutMs / 1000)} s` };
  }
  return r;
}

/** Where a boot's --file lands in the guest. */
export function guestFilePath(file: string): string {
  return `${GUEST_PAYLOAD_DIR}/files/${basename(file)}`;
}
