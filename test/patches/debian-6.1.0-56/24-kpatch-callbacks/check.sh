# kpatch-macros.h callbacks of vmlinux and of binfmt_misc, loaded after the patch: each logs its name;
# the kernel runs them in its order (binfmt_misc's when it loads and when it goes).
[ "$1" = self-load ] || exit 1
lp=/sys/kernel/livepatch/lp_callbacks
cbs() { dmesg | grep -o 'suture-cb: .*' | sed 's/^suture-cb: //'; }
before=$(cbs | wc -l)
umount /proc/sys/fs/binfmt_misc 2>/dev/null
grep -q '^binfmt_misc ' /proc/modules && { rmmod binfmt_misc || exit 1; }
insmod "$2" || exit 1
i=0; while [ "$(cat $lp/transition)" = 1 ] && [ $i -lt 1000 ]; do sleep 0.01; i=$((i+1)); done
insmod /kmods/*-binfmt_misc.ko || { echo "callbacks: binfmt_misc refused"; exit 1; }
rmmod binfmt_misc || exit 1
echo 0 > $lp/enabled; i=0; while [ -d $lp ] && [ $i -lt 1000 ]; do sleep 0.01; i=$((i+1)); done
rmmod lp_callbacks || exit 1
got=$(cbs | tail -n +$((before + 1)) | tr '\n' ';')
want='vmlinux pre_patch;vmlinux post_patch;binfmt_misc pre_patch;binfmt_misc post_patch;binfmt_misc pre_unpatch;binfmt_misc post_unpatch;vmlinux pre_unpatch;vmlinux post_unpatch;'
[ "$got" = "$want" ] || { echo "callbacks: got $got"; exit 1; }
insmod /kmods/*-binfmt_misc.ko && insmod "$2" || exit 1
