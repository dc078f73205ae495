#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# Run the README's two commands the way a newcomer would: in a fresh Debian
# root (debootstrap --variant=minbase) with this machine's Node.js copied in,
# under chroot, as root, from a fresh clone of this repository.
#
#   scripts/check-fresh-root.sh bookworm|trixie [demo|test|both]
#
# The root is kept in $FRESH_ROOT_DIR (default /var/tmp/suture-fresh-<suite>);
# delete it to start from nothing. Logs go to <root>.demo.log and <root>.test.log.
set -euo pipefail
suite=${1:?usage: $0 bookworm|trixie [demo|test|both]}
what=${2:-both}
repo=$(cd "$(dirname "$0")/.." && pwd)
root=${FRESH_ROOT_DIR:-/var/tmp/suture-fresh-$suite}
[ "$(id -u)" -eq 0 ] || { echo "run as root (debootstrap, chroot, mount)" >&2; exit 1; }

# The Debian mirror this host uses (the first .../debian URI in its apt sources).
mirror=$( { grep -rhoE '(https?|file)://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null || true; } | head -n1 | tr -d ' ')
[ -n "$mirror" ] || { echo "no Debian mirror in this host's apt sources" >&2; exit 1; }

if [ ! -x "$root/usr/bin/apt-get" ]; then
  echo "== debootstrap $suite into $root"
  debootstrap --variant=minbase "$suite" "$root" "$mirror"
fi

# Node.js 20 and npm from this machine, and its npm and apt client settings (registry, proxy).
node=$(readlink -f "$(command -v node)")
install -D -m 0755 "$node" "$root/usr/bin/node"
nm=$(dirname "$node")/../lib/node_modules
mkdir -p "$root/usr/lib/node_modules"
cp -a "$nm/npm" "$root/usr/lib/node_modules/"
ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/bin/npm"
ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$root/usr/bin/npx"
for f in /etc/npmrc /usr/etc/npmrc /root/.npmrc; do [ -f "$f" ] && install -D -m 0600 "$f" "$root$f"; done
for f in /etc/apt/apt.conf.d/*; do grep -qiE 'proxy|Check-Valid|Check-Date' "$f" 2>/dev/null && cp "$f" "$root/etc/apt/apt.conf.d/"; done
cp /etc/resolv.conf "$root/etc/resolv.conf"
# The machine's trust store (a proxy in between may sign with a local CA), and the files its variables name.
mkdir -p "$root/usr/local/share/ca-certificates" "$root/etc/ssl/certs"
cp -a /usr/local/share/ca-certificates/. "$root/usr/local/share/ca-certificates/" 2>/dev/null || true
[ -f /etc/ssl/certs/ca-certificates.crt ] && cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
for f in "${NODE_EXTRA_CA_CERTS:-}" "${SSL_CERT_FILE:-}"; do [ -n "$f" ] && [ -f "$f" ] && install -D "$f" "$root$f"; done

rm -rf "$root/root/suture"
git clone -q "$repo" "$root/root/suture"

mounted=()
cleanup() { for ((i=${#mounted[@]}-1; i>=0; i--)); do umount -l "${mounted[$i]}" 2>/dev/null || true; done; }
trap cleanup EXIT
# On a real machine / is a mount point (unshare --propagation needs that); make the root one too.
mount --bind "$root" "$root"
mounted+=("$root")
for m in proc sys dev; do
  mkdir -p "$root/$m"
  if [ "$m" = proc ]; then mount -t proc proc "$root/proc"; else mount --rbind "/$m" "$root/$m"; fi
  mounted+=("$root/$m")
done

in_root() {
  chroot "$root" /usr/bin/env -i HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 CI=true ${NODE_EXTRA_CA_CERTS:+NODE_EXTRA_CA_CERTS=$NODE_EXTRA_CA_CERTS} \
    bash -c "cd /root/suture && $1"
}
rc=0
if [ "$what" = demo ] || [ "$what" = both ]; then
  echo "== demo in a fresh $suite root (log: $root.demo.log)"
  start=$(date +%s)
  in_root 'bash scripts/setup.sh && npm run demo' >"$root.demo.log" 2>&1 || rc=$?
  echo "demo: exit $rc after $(( $(date +%s) - start )) s"; tail -n 12 "$root.demo.log"
fi
if [ "$what" = test ] || [ "$what" = both ]; then
  echo "== tests in a fresh $suite root (log: $root.test.log)"
  start=$(date +%s)
  trc=0
  in_root 'bash scripts/setup.sh && npm test' >"$root.test.log" 2>&1 || trc=$?
  echo "tests: exit $trc after $(( $(date +%s) - start )) s"; grep -E 'Test Files|Tests  |FAIL' "$root.test.log" | tail -n 12
  [ $trc -eq 0 ] || rc=$trc
fi
exit $rc
