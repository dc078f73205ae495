# /proc/self/io syscr: +1 per read syscall originally, +1000 with the patched inline (read loops run in this shell)
syscr() { while read -r k v; do [ "$k" = syscr: ] && n=$v; done < /proc/self/io; }
syscr; a=$n; syscr; b=$n; d=$((b - a))
echo "syscr grew by $d" >&2
if [ "$1" = patched ]; then [ $d -ge 1000 ]; else [ $d -ge 1 ] && [ $d -lt 1000 ]; fi
