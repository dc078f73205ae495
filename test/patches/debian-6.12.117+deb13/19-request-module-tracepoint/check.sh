# mounting an unknown filesystem type makes the kernel request module fs-<type> (__request_module, with its tracepoint)
fs=suture$(cut -c1-8 /proc/sys/kernel/random/uuid | tr -d -)
mkdir -p /tmp/mnt && mount -t "$fs" none /tmp/mnt 2>/dev/null
if [ "$1" = patched ]; then dmesg | grep -q "suture: request_module(fs-$fs)"; else ! dmesg | grep -q "request_module(fs-$fs)"; fi
