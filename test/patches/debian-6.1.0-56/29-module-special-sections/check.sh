# binfmt_misc's bm_status_read with an alternative, paravirt calls, a jump label on a vmlinux key, and pr_debug:
# patched, the alternative's branch answers; the pr_debug, switched on through dynamic debug, reaches the log.
grep -q '^binfmt_misc ' /proc/modules || insmod /kmods/*-binfmt_misc.ko || exit 1
[ -f /proc/sys/fs/binfmt_misc/status ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc || exit 1
if [ "$1" != patched ]; then [ "$(cat /proc/sys/fs/binfmt_misc/status)" = enabled ]; exit; fi
[ "$(cat /proc/sys/fs/binfmt_misc/status)" = "enabled (special sections)" ] || exit 1
[ -d /sys/kernel/debug/dynamic_debug ] || mount -t debugfs none /sys/kernel/debug || exit 1
grep -q 'suture: binfmt_misc status read' /sys/kernel/debug/dynamic_debug/control || { echo "special: the pr_debug is not registered"; exit 1; }
echo 'format "suture: binfmt_misc status read" +p' > /sys/kernel/debug/dynamic_debug/control || exit 1
cat /proc/sys/fs/binfmt_misc/status >/dev/null
echo 'format "suture: binfmt_misc status read" -p' > /sys/kernel/debug/dynamic_debug/control
dmesg | grep -q 'suture: binfmt_misc status read' || { echo "special: the pr_debug did not print once enabled"; exit 1; }
