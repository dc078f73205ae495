# the WARN_ONCE fires once, and its __bug_table entry names this file and the line of the WARN;
# the patched function keeps its own name in the trace
if [ "$1" = patched ]; then cat /proc/version >/dev/null; cat /proc/version >/dev/null; dmesg | grep -q "WARNING: CPU: [0-9]* PID: [0-9]* at fs/proc/version.c:12 version_proc_show+0x[0-9a-f]*/0x[0-9a-f]* \[lp_version_warn\]" && [ "$(dmesg | grep -c "suture: /proc/version read")" = 1 ]; else true; fi
