// SPDX-License-Identifier: GPL-2.0-only
/**
 * The guest side of `suture vm host`. The image carries a systemd unit
 * (GUEST_UNIT) that starts once multi-user.target is reached and runs
 * GUEST_RUNNER: it unpacks this boot's payload (a plain tar written to a
 * second virtio disk, serial `suture-payload`) into /run/suture-vm and runs
 * its run.sh, which hostBootScript() generates. run.sh speaks the framed
 * channel of protocol.ts on the second serial port, as the initramfs guests
 * do (guest-script.ts), then powers the machine off cleanly through systemd
 * (so units' ExecStop run and the disk is synced, as on a real host).
 * A boot without a payload disk runs nothing and stays up.
 *
 * Network: none, unless a boot asks for it (HostBootPlan.network). Then run.sh
 * writes a runtime systemd-networkd config (/run/systemd/network, so the image
 * itself carries none and a boot without it is as before), starts networkd and
 * waits for the static address GUEST_NET.address; QEMU's restricted user-mode
 * network (host.ts) lets the guest reach nothing but GUEST_NET.gateway on the
 * forwarded ports, each one a loopback port of the build machine.
 */

export const GUEST_UNIT_NAME = 'suture-vm-guest.service';
export const GUEST_RUNNER_PATH = 'usr/local/lib/suture-vm/guest';
/** Where the payload is unpacked in the guest; files given with --file are under files/. */
export const GUEST_PAYLOAD_DIR = '/run/suture-vm';
export const PAYLOAD_SERIAL = 'suture-payload';

/** The guest's side of the restricted network: its own address, and the one address it can reach. */
export const GUEST_NET = {
  address: '10.0.2.15',
  prefix: 24,
  /** Where the forwarded build-machine ports appear (10.0.2.100:PORT → 127.0.0.1:PORT). */
  gateway: '10.0.2.100',
  net: '10.0.2.0/24',
} as const;

/** The networkd config a boot with a network writes under /run/systemd/network (virtio NIC, static, nothing else). */
export const GUEST_NETWORK_FILE = `[Match]
Driver=virtio_net

[Link]
RequiredForOnline=routable

[Network]
Address=${GUEST_NET.address}/${GUEST_NET.prefix}
LinkLocalAddressing=no
IPv6AcceptRA=no
`;

export const GUEST_UNIT = `[Unit]
Description=suture vm host: run this boot's commands, report them on ttyS1, power off
After=multi-user.target
ConditionPathExists=/dev/ttyS1

[Service]
Type=exec
ExecStart=/${GUEST_RUNNER_PATH}
StandardOutput=journal+console
StandardError=journal+console

[Install]
WantedBy=multi-user.target
`;

export const GUEST_RUNNER = `#!/bin/bash
# suture vm host: this boot's payload disk holds run.sh and the files; see ${GUEST_UNIT_NAME}.
dev=/dev/disk/by-id/virtio-${PAYLOAD_SERIAL}
for i in $(seq 200); do [ -b "$dev" ] && break; sleep 0.05; done
if [ ! -b "$dev" ]; then echo "suture-vm: no payload disk ($dev): nothing to run"; exit 0; fi
rm -rf ${GUEST_PAYLOAD_DIR} && mkdir -m 0700 ${GUEST_PAYLOAD_DIR} || exit 1
tar -x -f "$dev" -C ${GUEST_PAYLOAD_DIR} || { echo "suture-vm: the payload disk is not a tar archive"; exit 1; }
exec /bin/bash ${GUEST_PAYLOAD_DIR}/run.sh
`;

function shQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

export interface HostBootPlan {
  marker: string;
  /** Number of commands: each is cmds/<i>.sh in the payload. */
  commands: number;
  /** Power off when done (the default); false leaves the host up (for a test that crashes it itself). */
  powerOff: boolean;
  /** Where the payload is unpacked (GUEST_PAYLOAD_DIR; a test runs the script elsewhere). */
  payloadDir?: string;
  /** The channel's device (/dev/ttyS1; a test writes to a file). */
  channel?: string;
  /**
   * Bring the network up first (frame \`net\`): systemd-networkd with GUEST_NETWORK_FILE, waited for
   * (at most 60 s); the commands see SUTURE_VM_GATEWAY. Without it the boot has no network.
   */
  network?: boolean;
}

/** run.sh for one boot: the same frames as the initramfs guests' init (protocol.ts). */
export function hostBootScript(plan: HostBootPlan): string {
  const d = plan.payloadDir ?? GUEST_PAYLOAD_DIR;
  const tty = shQuote(plan.channel ?? '/dev/ttyS1');
  const lines = [
    '#!/bin/bash',
    'export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 TERM=dumb',
    `export SUTURE_VM_FILES=${shQuote(`${d}/files`)}`,
    'cd "$HOME" 2>/dev/null || cd /',
    `if [ -c ${tty} ]; then stty -F ${tty} raw -echo; fi`,
    `exec 3>>${tty}`,
    'set -o pipefail',
    `M=${shQuote(plan.marker)}`,
    'cs() { read u _ < /proc/uptime; echo "${u%.*}${u#*.}"; }',
    'frame() {',
    '  id=$1; shift',
    '  printf \'%s begin %s\\n\' "$M" "$id" >&3',
    '  t0=$(cs)',
    '  "$@" </dev/null 2>&1 | cat >&3',
    '  rc=$?',
    '  printf \'\\n%s end %s %d %s %s\\n\' "$M" "$id" "$rc" "$t0" "$(cs)" >&3',
    '  return $rc',
    '}',
    'printf \'%s ready %s\\n\' "$M" "$(cs)" >&3',
  ];
  if (plan.network) {
    lines.push(
      `export SUTURE_VM_GATEWAY=${GUEST_NET.gateway}`,
      'net_up() {',
      '  mkdir -p /run/systemd/network || return 1',
      `  printf '%s' ${shQuote(GUEST_NETWORK_FILE)} > /run/systemd/network/10-suture-vm.network || return 1`,
      '  systemctl start systemd-networkd.service || return 1',
      '  w=/usr/lib/systemd/systemd-networkd-wait-online; [ -x $w ] || w=/lib/systemd/systemd-networkd-wait-online',
      '  $w --any --operational-state=routable --timeout=60 || { echo "no routable link within 60 s:"; networkctl --no-pager status 2>&1 | head -n 20; return 1; }',
      `  echo "network up: ${GUEST_NET.address}/${GUEST_NET.prefix}, reaches ${GUEST_NET.gateway} only"`,
      '}',
      // no network, no commands: they would only wait for a server they cannot reach
      'frame net net_up || NET_DOWN=1',
    );
  }
  for (let i = 0; i < plan.commands; i++) lines.push(`${plan.network ? '[ -n "$NET_DOWN" ] || ' : ''}frame cmd:${i} /bin/sh ${shQuote(`${d}/cmds/${i}.sh`)}`);
  lines.push('frame dmesg dmesg', 'sync', 'printf \'%s done\\n\' "$M" >&3');
  if (plan.powerOff) lines.push('systemctl --no-block poweroff');
  return `${lines.join('\n')}\n`;
}
