# mkdir of "suture-lsm" fails with EPERM once patched; other names still work
d=$(mktemp -d)
if [ "$1" = patched ]; then
  ! mkdir "$d/suture-lsm" 2>/dev/null && mkdir "$d/suture-lsx"
else
  mkdir "$d/suture-lsm"
fi
r=$?; rm -rf "$d"; exit $r
