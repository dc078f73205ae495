#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# The demo: fetch Debian 12's kernel, build a livepatch from a source patch
# (examples/proc-cmdline.patch) without a kernel build, boot that exact kernel
# in a throwaway VM and show /proc/cmdline before, during and after the patch.
set -euo pipefail
cd "$(dirname "$0")/.."
suture() { node bin/suture.js "$@"; }
KERNEL=${KERNEL:-debian:6.1.0-56-amd64}
out=$(mktemp -d)

echo "== 1. fetch $KERNEL (cached after the first time)"
suture kernel fetch "$KERNEL"

echo
echo "== 2. build a livepatch from examples/proc-cmdline.patch"
cat examples/proc-cmdline.patch | sed -n '/^---/,$p'
suture build --kernel "$KERNEL" examples/proc-cmdline.patch --name livepatch_demo -o "$out/livepatch_demo.ko" \
  --description "demo: /proc/cmdline says the kernel was live patched"

echo
echo "== 3. prove it in the VM: before, load, after, disable, unload"
lp=/sys/kernel/livepatch/livepatch_demo
suture vm run --kernel "$KERNEL" --module "$out/livepatch_demo.ko" \
  --exec 'echo "before:   $(cat /proc/cmdline)"' \
  --exec "insmod /modules/livepatch_demo.ko && while [ \"\$(cat $lp/transition)\" = 1 ]; do :; done; echo \"loaded:   enabled=\$(cat $lp/enabled), transition complete\"" \
  --exec 'echo "after:    $(cat /proc/cmdline)"' \
  --exec "echo 0 > $lp/enabled; while [ -d $lp ]; do sleep 0.05; done; rmmod livepatch_demo; echo \"removed:  \$(cat /proc/cmdline)\""
