#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
# Run a command inside a suture build root. Called by suture as
#   unshare --mount --propagation private -- sh in-buildroot.sh ROOT BIND CWD -- ARGV...
# in a private mount namespace, so the bind mount of BIND (suture's cache, at
# the same path inside the root), /tmp and /proc vanish when the command ends.
set -eu
root=$1 bind=$2 cwd=$3
shift 3
[ "$1" = "--" ] && shift
mkdir -p "$root$bind"
mount --rbind "$bind" "$root$bind"
mount -t proc proc "$root/proc"
# Temporary build directories (mktemp under /tmp) are seen at the same path inside.
mount --rbind /tmp "$root/tmp"
exec chroot "$root" /usr/bin/env --chdir="$cwd" "$@"
