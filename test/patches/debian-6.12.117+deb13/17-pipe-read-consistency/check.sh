# The consistency model: a task sleeping in pipe_read holds the transition until it leaves pipe_read.
# Called with "self-load <module>": this check loads the patch itself.
[ "$1" = self-load ] || exit 0
mkfifo /tmp/fifo
( exec 3<>/tmp/fifo; read -r line <&3; echo "reader got: $line" ) &
sleep 1
insmod "$2" || exit 1
p=/sys/kernel/livepatch/lp_pipe_read
sleep 2
echo "transition after 2 s: $(cat $p/transition)"
[ "$(cat $p/transition)" = 1 ] || exit 2
grep -l pipe_read /proc/[0-9]*/stack 2>/dev/null | head -n 3
echo hello > /tmp/fifo
i=0; while [ "$(cat $p/transition)" = 1 ] && [ $i -lt 500 ]; do sleep 0.01; i=$((i+1)); done
echo "transition after the reader left: $(cat $p/transition)"
[ "$(cat $p/transition)" = 0 ] && [ "$(cat $p/enabled)" = 1 ]
