// SPDX-License-Identifier: GPL-2.0-only
/**
 * The guest's /init: a busybox shell script generated from a plan. It speaks
 * the framing protocol of protocol.ts on the second serial port (/dev/ttyS1),
 * while the kernel console stays on the first (/dev/ttyS0).
 */

export interface GuestStep {
  /** Frame id: kmod:N, load:N, cmd:N, ... (no spaces). */
  id: string;
  kind: 'kmod' | 'load' | 'cmd' | 'mount';
  /** kmod/load: the module's path in the guest. cmd: the script's path in the guest. mount: the block device. */
  path: string;
  /** mount: where to mount the device (ext4). */
  mountpoint?: string;
}

export interface GuestPlan {
  marker: string;
  steps: GuestStep[];
  /** Seconds to wait for each livepatch transition to complete. */
  transitionTimeoutSec: number;
  /** Extra frames run at the end whatever happened before (e.g. dmesg). */
  collectDmesg: boolean;
}

function shQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

export function guestInit(plan: GuestPlan): string {
  const lines: string[] = [];
  const add = (s: string) => lines.push(s);
  add('#!/bin/busybox sh');
  add('/bin/busybox --install -s /bin');
  add('export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/root TERM=dumb');
  add('mount -t proc proc /proc');
  add('mount -t sysfs sysfs /sys');
  add('mount -t devtmpfs devtmpfs /dev');
  add('mount -t tmpfs tmpfs /tmp');
  add('mkdir -p /dev/pts && mount -t devpts devpts /dev/pts');
  add('mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null');
  add('stty -F /dev/ttyS1 raw -echo');
  add('exec 3>/dev/ttyS1');
  add('set -o pipefail');
  add(`M=${shQuote(plan.marker)}`);
  // /proc/uptime in centiseconds, with shell builtins only (no fork under TCG).
  add('cs() { read u _ < /proc/uptime; echo "${u%.*}${u#*.}"; }');
  add('frame() {');
  add('  id=$1; shift');
  add('  printf \'%s begin %s\\n\' "$M" "$id" >&3');
  add('  t0=$(cs)');
  // Through a pipe, so commands see no terminal (plain `ls`, no colours), as in a script on a host.
  add('  "$@" </dev/null 2>&1 | cat >&3');
  add('  rc=$?');
  add('  printf \'\\n%s end %s %d %s %s\\n\' "$M" "$id" "$rc" "$t0" "$(cs)" >&3');
  add('  return $rc');
  add('}');
  // Load a livepatch module and wait (tight loop) until its transition completes.
  add('load_lp() {');
  add('  before=" $(ls /sys/kernel/livepatch 2>/dev/null | tr \'\\n\' \' \') "');
  add('  insmod "$1" || return $?');
  add('  name=');
  add('  for d in /sys/kernel/livepatch/*; do n=${d##*/}; case "$before" in *" $n "*) ;; *) name=$n;; esac; done');
  add('  if [ -z "$name" ]; then echo "no new directory in /sys/kernel/livepatch after insmod $1 (not a livepatch module?)"; return 97; fi');
  add('  echo "patch $name"');
  add(`  limit=$(( $(cs) + ${Math.round(plan.transitionTimeoutSec * 100)} ))`);
  add('  while read t < /sys/kernel/livepatch/$name/transition && [ "$t" = 1 ]; do');
  add('    if [ "$(cs)" -gt "$limit" ]; then echo "transition of $name still in progress after ' + plan.transitionTimeoutSec + ' s"; return 98; fi');
  add('  done');
  add('  read e < /sys/kernel/livepatch/$name/enabled');
  add('  echo "enabled $e"');
  add('}');
  // Mount a disk (ext4) once its block device has appeared (the driver probes it asynchronously).
  add('mount_disk() {');
  add('  i=0; while [ ! -b "$1" ] && [ $i -lt 1000 ]; do sleep 0.01; i=$((i+1)); done');
  add('  [ -b "$1" ] || { echo "no block device $1 after 10 s"; return 96; }');
  add('  mkdir -p "$2" && mount -t ext4 "$1" "$2" && echo "mounted $1 on $2"');
  add('}');
  add('printf \'%s ready %s\\n\' "$M" "$(cs)" >&3');
  add('ok=1');
  for (const s of plan.steps) {
    const p = shQuote(s.path);
    if (s.kind === 'kmod') add(`[ $ok = 1 ] && { frame ${s.id} insmod ${p} || ok=0; }`);
    else if (s.kind === 'load') add(`[ $ok = 1 ] && { frame ${s.id} load_lp ${p} || ok=0; }`);
    else if (s.kind === 'mount') add(`[ $ok = 1 ] && { frame ${s.id} mount_disk ${p} ${shQuote(s.mountpoint ?? '/mnt/disk')} || ok=0; }`);
    // Commands all run once setup succeeded; a failing command does not stop the next one.
    else add(`[ $ok = 1 ] && frame ${s.id} sh ${p}`);
  }
  if (plan.collectDmesg) add('frame dmesg dmesg');
  // Whatever a disk holds reaches it before the power goes (poweroff -f does not sync).
  add('sync');
  add('printf \'%s done\\n\' "$M" >&3');
  add('poweroff -f');
  add('sleep 5');
  return `${lines.join('\n')}\n`;
}
