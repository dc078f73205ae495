# a function of the binfmt_misc module (loaded first)
[ -f /proc/sys/fs/binfmt_misc/status ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
if [ "$1" = patched ]; then [ "$(cat /proc/sys/fs/binfmt_misc/status)" = "enabled (suture-fixed)" ]; else [ "$(cat /proc/sys/fs/binfmt_misc/status)" = enabled ]; fi
