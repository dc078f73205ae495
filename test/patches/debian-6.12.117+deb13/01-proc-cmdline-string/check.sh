# /proc/cmdline ends with the marker only when patched
if [ "$1" = patched ]; then grep -q " suture-fixed$" /proc/cmdline; else ! grep -q suture-fixed /proc/cmdline; fi
