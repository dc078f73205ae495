#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# Install what suture needs on a Debian or Ubuntu machine (run as root), then
# its npm packages, then build it. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  qemu-system-x86      # the throwaway VM that proves a patch in the exact kernel
  qemu-utils           # qemu-img: copy-on-write disks of the Debian host images (vm host)
  busybox-static       # the VM's userspace
  debootstrap          # build roots with a kernel's exact compiler when the host's differs
  gcc make flex bison bc libelf-dev libssl-dev dwarves python3   # kbuild: prepare trees (objtool, resolve_btfids), build modules
  cpio xz-utils zstd kmod binutils patch               # unpack packages, depmod, readelf/objdump, apply fixes
  debian-archive-keyring ca-certificates
  apt-utils gnupg      # tests: a signed fixture archive (apt-ftparchive, gpg) read by suture's own apt
  minisign             # tests: bundles are checked by the real tool a host admin would use
  openssl              # tests: a throwaway MOK key and certificate to sign modules with the kernel's sign-file
  lintian              # tests: the Debian package (scripts/package.sh) has no lintian error or unexplained warning
  postgresql           # tests: the fleet server on PostgreSQL with two server processes (the test starts its own cluster)
  chromium             # tests: the fleet dashboard in a real headless browser (puppeteer-core drives it; nothing downloads a browser)
)

if [ "$(id -u)" -ne 0 ]; then
  echo "scripts/setup.sh installs Debian packages: run it as root" >&2
  exit 1
fi
if ! command -v node >/dev/null || ! node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a===20&&b>=19||a>=22?0:1)'; then
  echo "suture needs Node.js 20.19 or newer (found: $(node --version 2>/dev/null || echo none))" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${packages[@]}"

if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi
npm run -s build
echo "suture is set up: $(node bin/suture.js --version)"
