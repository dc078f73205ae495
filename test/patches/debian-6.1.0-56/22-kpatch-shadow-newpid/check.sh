# shadow variables: kernel_clone attaches a counter to each new task, proc_pid_status shows it, do_exit frees it
sleep 3 & pid=$!
if [ "$1" = patched ]; then grep -q '^newpid:	[0-9][0-9]*$' /proc/$pid/status; r=$?; else ! grep -q '^newpid:' /proc/$pid/status; r=$?; fi
kill $pid; wait $pid 2>/dev/null
[ $r = 0 ]
