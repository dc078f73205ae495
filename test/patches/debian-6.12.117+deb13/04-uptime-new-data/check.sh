# a new global counter and a new initialised static (from 1000), both counting reads
if [ "$1" = patched ]; then a=$(sed -n "s/^reads \([0-9]*\) calls \([0-9]*\)$/\1 \2/p" /proc/uptime); b=$(sed -n "s/^reads \([0-9]*\) calls \([0-9]*\)$/\1 \2/p" /proc/uptime); set -- $a $b; [ "$2" -ge 1001 ] && [ "$3" = $(($1 + 1)) ] && [ "$4" = $(($2 + 1)) ]; else ! grep -q reads /proc/uptime; fi
