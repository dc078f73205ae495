# show_val_kb was inlined into meminfo_proc_show: the patch must carry meminfo_proc_show
# (other lines, printed by other functions, keep "kB")
if [ "$1" = patched ]; then grep -q "^MemTotal: .* KiB$" /proc/meminfo && grep -q "^MemFree: .* KiB$" /proc/meminfo; else grep -q "^MemTotal: .* kB$" /proc/meminfo; fi
