[ -f /proc/sys/fs/binfmt_misc/status ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
if [ "$1" = patched ]; then grep -q " suture-both$" /proc/cmdline && [ "$(cat /proc/sys/fs/binfmt_misc/status)" = "enabled (suture-both)" ]; else ! grep -q suture /proc/cmdline && [ "$(cat /proc/sys/fs/binfmt_misc/status)" = enabled ]; fi
