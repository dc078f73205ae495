# new static data (suture_new_data = 57, counted up on each read), carried by the patch and read by the patched meminfo_proc_show
if [ "$1" = patched ]; then
	a=$(sed -n 's/^SutureNewData: *//p' /proc/meminfo); b=$(sed -n 's/^SutureNewData: *//p' /proc/meminfo)
	[ -n "$a" ] && [ "$a" -ge 57 ] && [ "$b" = $((a + 1)) ]
else ! grep -q SutureNewData /proc/meminfo && grep -q '^MemTotal:' /proc/meminfo; fi
