#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# Build the Debian package for hosts: suture_<version>_all.deb (dpkg-deb, no debhelper needed).
#
#   scripts/package.sh [OUTDIR]        (or: npm run package; default OUTDIR: dist/deb)
#
# What goes in (packaging/README.md says why each piece is there and what the maintainer scripts do):
#   /usr/bin/suture -> /usr/lib/suture/bin/suture.js   the host CLI (scripts/bundle-host.mjs), run by
#   /usr/lib/suture/{package.json,bin,dist/host}         Debian's nodejs (>= 18.19: Debian 12 and 13)
#   /usr/lib/systemd/system/suture{,-guard}.service      enabled by the maintainer scripts
#   /usr/lib/systemd/system/suture-agent.service         the fleet agent, disabled until an admin enables it
#   /usr/share/man/man8/suture.8.gz                      generated from the commands' own help
#   /var/lib/suture (0700), /etc/suture/keys.d/          root-owned
# Prints the path of the .deb on stdout; runs lintian when it is installed (LINTIAN=0 skips it).
set -euo pipefail
cd "$(dirname "$0")/.."
# The man page's date and every file's mtime: the commit's.
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
out=$(mkdir -p "${1:-dist/deb}" && cd "${1:-dist/deb}" && pwd)
version=$(node -p 'require("./package.json").version')
stage=$(mktemp -d "${TMPDIR:-/tmp}/suture-deb.XXXXXX")
trap 'rm -rf "$stage"' EXIT
root=$stage/root
lib=$root/usr/lib/suture

# The host CLI, built for Debian 12's nodejs; the build refuses builder code (kernel, vm, patchbuild).
node scripts/bundle-host.mjs "$stage/host" >&2
install -d "$lib/dist/host" "$lib/bin" "$root/usr/bin"
install -m 0644 "$stage"/host/*.js "$lib/dist/host/"
# main.js finds its version at ../../package.json, as it does in a checkout (dist/<dir>/main.js).
node -e 'const p=require("./package.json"); process.stdout.write(JSON.stringify({name:p.name,version:p.version,description:p.description,license:p.license,type:"module",private:true},null,2)+"\n")' >"$lib/package.json"
cat >"$lib/bin/suture.js" <<'JS'
#!/usr/bin/node
// SPDX-License-Identifier: GPL-2.0-only
// The suture host commands (Debian package): /usr/bin/suture links here.
import { main } from '../dist/host/main.js';

process.exitCode = await main(process.argv);
JS
chmod 0755 "$lib/bin/suture.js"
ln -s ../lib/suture/bin/suture.js "$root/usr/bin/suture"

install -D -m 0644 packaging/suture.service "$root/usr/lib/systemd/system/suture.service"
install -D -m 0644 packaging/suture-guard.service "$root/usr/lib/systemd/system/suture-guard.service"
# The fleet agent's unit: installed disabled (postinst only tracks it).
install -D -m 0644 packaging/suture-agent.service "$root/usr/lib/systemd/system/suture-agent.service"
install -d -m 0700 "$root/var/lib/suture"
install -d -m 0755 "$root/etc/suture/keys.d"

# The man page, from the host bundle's own commander help.
install -d "$root/usr/share/man/man8"
node scripts/man.mjs "$lib/dist/host/main.js" | gzip -9n >"$root/usr/share/man/man8/suture.8.gz"

doc=$root/usr/share/doc/suture
install -D -m 0644 packaging/debian/copyright "$doc/copyright"
# A native package's changelog (Debian policy 12.7): one entry for this version, dated by the commit.
date=$(git log -1 --format=%cD 2>/dev/null || date -R)
printf 'suture (%s) unstable; urgency=medium\n\n  * Built from suture %s (%s).\n\n -- %s  %s\n' \
  "$version" "$version" "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
  "$(sed -n 's/^Maintainer: //p' packaging/debian/control.in)" "$date" | gzip -9n >"$doc/changelog.gz"
install -D -m 0644 packaging/lintian-overrides "$root/usr/share/lintian/overrides/suture"

install -d "$root/DEBIAN"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@INSTALLED_SIZE@/$size/" packaging/debian/control.in >"$root/DEBIAN/control"
for s in postinst prerm postrm; do install -m 0755 "packaging/debian/$s" "$root/DEBIAN/$s"; done
(cd "$root" && find usr -type f -print0 | sort -z | xargs -0 md5sum) >"$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/md5sums" "$root/DEBIAN/control"

# Reproducible: every mtime is the commit's (SOURCE_DATE_EPOCH, above), files in order, root:root.
find "$root" -newermt "@$SOURCE_DATE_EPOCH" -print0 | xargs -0r touch -h -d "@$SOURCE_DATE_EPOCH"
deb=$out/suture_${version}_all.deb
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >&2
if [ "${LINTIAN:-1}" != 0 ] && command -v lintian >/dev/null; then
  lintian --info --display-info --fail-on error "$deb" >&2
fi
echo "$deb"
