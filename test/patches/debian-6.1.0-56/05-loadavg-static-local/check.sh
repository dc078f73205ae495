# a new static local keeps its value between reads
if [ "$1" = patched ]; then a=$(sed -n "s/^call //p" /proc/loadavg); b=$(sed -n "s/^call //p" /proc/loadavg); [ -n "$a" ] && [ "$b" = $((a + 1)) ]; else ! grep -q "^call" /proc/loadavg; fi
