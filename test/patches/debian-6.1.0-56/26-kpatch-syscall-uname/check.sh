# KPATCH_SYSCALL_DEFINE1(newuname): the body is a new function; uname -r gains +kpatch
if [ "$1" = patched ]; then [ "$(uname -r)" = "6.1.0-56-amd64+kpatch" ]; else [ "$(uname -r)" = "6.1.0-56-amd64" ]; fi
