# /proc/mounts hides a mount whose source is "suture-hidden"; /proc/modules marks livepatch modules
mkdir -p /tmp/suture-hidden && mount -t tmpfs suture-hidden /tmp/suture-hidden || exit 1
if [ "$1" = patched ]; then
  ! grep -q '^suture-hidden ' /proc/mounts && grep -q '^lp_twice .* \[livepatch\]$' /proc/modules
else
  grep -q '^suture-hidden /tmp/suture-hidden tmpfs ' /proc/mounts && ! grep -q '\[livepatch\]' /proc/modules
fi
r=$?; umount /tmp/suture-hidden; exit $r
