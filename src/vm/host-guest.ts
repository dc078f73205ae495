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
 */

export const GUEST_UNIT_NAME = 'suture-vm-guest.service';
export const GUEST_RUNNER_PATH = 'usr/local/lib/suture-vm/guest';
/** Where the payload is unpacked in the guest; files given with --file are under files/. */
export const GUEST_PAYLOAD_DIR = '/run/suture-vm';
export const PAYLOAD_SERIAL = 'suture-payload';

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
  for (let i = 0; i < plan.commands; i++) lines.push(`frame cmd:${i} /bin/sh ${shQuote(`${d}/cmds/${i}.sh`)}`);
  lines.push('frame dmesg dmesg', 'sync', 'printf \'%s done\\n\' "$M" >&3');
  if (plan.powerOff) lines.push('systemctl --no-block poweroff');
  return `${lines.join('\n')}\n`;
}
