#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
# Run a command with an overlay of a kernel tree mounted, so that everything it
# writes lands in UPPER and the prepared tree (LOWER) is never modified, even
# if the command or suture is killed. Called by suture as
#   unshare --mount --propagation private -- sh in-overlay.sh LOWER UPPER WORK MERGED -- ARGV...
# The mount lives only as long as the command (private mount namespace).
set -eu
lower=$1 upper=$2 work=$3 merged=$4
shift 4
[ "$1" = "--" ] && shift
mount -t overlay overlay -o "lowerdir=$lower,upperdir=$upper,workdir=$work" "$merged"
exec "$@"
