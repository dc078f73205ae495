# binfmt_misc's pre-patch callback returns -EBUSY: loading the livepatch fails while binfmt_misc is loaded,
# and once the livepatch is loaded without it, binfmt_misc's own load is refused.
[ "$1" = self-load ] || exit 1
lp=/sys/kernel/livepatch/lp_refuse
grep -q '^binfmt_misc ' /proc/modules || insmod /kmods/*-binfmt_misc.ko || exit 1
if insmod "$2" 2>/dev/null; then echo "refuse: the livepatch loaded although its pre-patch callback refused"; exit 1; fi
[ ! -d $lp ] && ! grep -q '^lp_refuse ' /proc/modules || { echo "refuse: the refused livepatch is still there"; exit 1; }
umount /proc/sys/fs/binfmt_misc 2>/dev/null; rmmod binfmt_misc || exit 1
insmod "$2" || { echo "refuse: the livepatch did not load without binfmt_misc"; exit 1; }
if insmod /kmods/*-binfmt_misc.ko 2>/dev/null; then echo "refuse: binfmt_misc loaded although the pre-patch callback refused"; exit 1; fi
[ "$(dmesg | grep -c 'suture-cb: binfmt_misc refuses')" -ge 2 ] || { echo "refuse: the callback did not run twice"; exit 1; }
