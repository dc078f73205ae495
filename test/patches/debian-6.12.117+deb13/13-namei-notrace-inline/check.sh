# mkdir, mkfifo and ln -s of the name "suture-refused" fail with EPERM once patched (vfs_mkdir, vfs_mknod, vfs_symlink)
d=$(mktemp -d)
if [ "$1" = patched ]; then
  ! mkdir "$d/suture-refused" 2>/dev/null && ! mkfifo "$d/suture-refused" 2>/dev/null && ! ln -s x "$d/suture-refused" 2>/dev/null &&
    mkdir "$d/suture-refusee" && [ ! -e "$d/suture-refused" ]
else
  mkdir "$d/suture-refused" && rmdir "$d/suture-refused" && mkfifo "$d/suture-refused" && rm "$d/suture-refused" && ln -s x "$d/suture-refused"
fi
r=$?; rm -rf "$d"; exit $r
