if [ "$1" = patched ]; then grep -q "suture-two-files$" /proc/cmdline && grep -qx "suture-two-files" /proc/version; else ! grep -q suture /proc/cmdline /proc/version; fi
