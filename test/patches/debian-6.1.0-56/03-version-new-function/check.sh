if [ "$1" = patched ]; then head -n1 /proc/version | grep -qx "suture: new function"; else ! grep -q suture /proc/version; fi
