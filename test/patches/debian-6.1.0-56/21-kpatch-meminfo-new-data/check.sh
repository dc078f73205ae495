# new static data (suture_new_data = 57), carried by the patch and read by the patched meminfo_proc_show
if [ "$1" = patched ]; then grep -q '^SutureNewData: *57$' /proc/meminfo; else ! grep -q SutureNewData /proc/meminfo && grep -q '^MemTotal:' /proc/meminfo; fi
