# show_val_kb was inlined into meminfo_proc_show: the patch must carry meminfo_proc_show
if [ "$1" = patched ]; then grep -q "^MemTotal: .* KiB$" /proc/meminfo && ! grep -q " kB$" /proc/meminfo; else grep -q "^MemTotal: .* kB$" /proc/meminfo; fi
