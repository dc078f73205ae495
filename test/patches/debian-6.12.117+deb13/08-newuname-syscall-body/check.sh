# __do_sys_newuname is notrace (inline); its callers __x64_sys_newuname/__ia32_sys_newuname carry the fix
if [ "$1" = patched ]; then [ "$(uname -v)" = "#1 suture-fixed-uname" ]; else uname -v | grep -q Debian; fi
