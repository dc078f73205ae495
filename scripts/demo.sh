#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# The demo: fetch Debian 12's kernel, build a livepatch for it, boot that
# exact kernel in a throwaway VM and show /proc/cmdline before and after.
set -euo pipefail
cd "$(dirname "$0")/.."
suture() { node bin/suture.js "$@"; }
KERNEL=${KERNEL:-debian:6.1.0-56-amd64}

echo "== 1. fetch $KERNEL (cached after the first time)"
suture kernel fetch "$KERNEL"

echo
echo "== 2. build the example livepatch (examples/livepatch-cmdline) against its headers"
# kbuild against the workspace's headers, with the kernel's own compiler (the host's or suture's build root)
ko=$(KERNEL=$KERNEL node --input-type=module -e '
  import { buildExternalModule } from "./dist/kernel/kbuild.js";
  import { requireWorkspace } from "./dist/kernel/workspace.js";
  import { parseKernelRef } from "./dist/kernel/ref.js";
  import { sutureHome } from "./dist/util/paths.js";
  import { mkdtempSync } from "node:fs";
  import { tmpdir } from "node:os";
  import { join } from "node:path";
  const meta = requireWorkspace(sutureHome(), parseKernelRef(process.env.KERNEL));
  const [ko] = await buildExternalModule(meta, sutureHome(), "examples/livepatch-cmdline", mkdtempSync(join(tmpdir(), "suture-demo-")));
  console.log(ko);')
ls -l "$ko"

echo
echo "== 3. prove it in the VM: before, load, after, disable, unload"
suture vm run --kernel "$KERNEL" --module "$ko" \
  --exec 'echo "before: $(cat /proc/cmdline)"' \
  --exec 'insmod /modules/livepatch-cmdline.ko && while [ "$(cat /sys/kernel/livepatch/livepatch_cmdline/transition)" = 1 ]; do :; done; echo "loaded: enabled=$(cat /sys/kernel/livepatch/livepatch_cmdline/enabled)"' \
  --exec 'echo "after:  $(cat /proc/cmdline)"' \
  --exec 'echo 0 > /sys/kernel/livepatch/livepatch_cmdline/enabled; while [ -d /sys/kernel/livepatch/livepatch_cmdline ]; do sleep 0.05; done; rmmod livepatch_cmdline; echo "removed: $(cat /proc/cmdline)"'
