# a new global counter and a new initialised static: 1000 + reads
if [ "$1" = patched ]; then a=$(sed -n "s/^reads //p" /proc/uptime); b=$(sed -n "s/^reads //p" /proc/uptime); [ "$a" -ge 1001 ] && [ "$b" = $((a + 1)) ]; else ! grep -q reads /proc/uptime; fi
