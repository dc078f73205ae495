# nfsd's e_show calls sunrpc's cache_check: the klp relocation sits in nfsd's section. Every load order:
# the livepatch before nfsd, nfsd unloaded and loaded again while patched, disabled and removed, then the
# livepatch after nfsd (left loaded: the harness disables and removes it).
[ "$1" = self-load ] || exit 1
lp=/sys/kernel/livepatch/lp_nfsd
nfsd=$(ls /kmods/*-nfsd.ko)
head1() { head -1 /proc/fs/nfs/exports; }
settle() { i=0; while [ "$(cat $lp/transition 2>/dev/null)" = 1 ] && [ $i -lt 1000 ]; do sleep 0.01; i=$((i+1)); done; }
gone() { echo 0 > $lp/enabled; i=0; while [ -d $lp ] && [ $i -lt 1000 ]; do sleep 0.01; i=$((i+1)); done; rmmod lp_nfsd; }
[ "$(head1)" = "# Version 1.1" ] || { echo "nfsd: original header expected, got: $(head1)"; exit 1; }
rmmod nfsd || exit 1
insmod "$2" || { echo "nfsd: livepatch refused while nfsd is not loaded"; exit 1; }
settle
insmod "$nfsd" || { echo "nfsd: nfsd refused after the livepatch"; exit 1; }
[ "$(cat $lp/nfsd/patched)" = 1 ] && [ "$(head1)" = "# Version 1.1 (suture-fixed)" ] || { echo "nfsd: not patched when loaded after the livepatch: $(head1)"; exit 1; }
rmmod nfsd || exit 1
insmod "$nfsd" || { echo "nfsd: nfsd could not be loaded again while patched"; exit 1; }
[ "$(head1)" = "# Version 1.1 (suture-fixed)" ] || { echo "nfsd: not patched after reload: $(head1)"; exit 1; }
gone || exit 1
[ "$(head1)" = "# Version 1.1" ] || { echo "nfsd: still patched after disable and rmmod: $(head1)"; exit 1; }
insmod "$2" || { echo "nfsd: livepatch refused while nfsd is loaded"; exit 1; }
settle
[ "$(head1)" = "# Version 1.1 (suture-fixed)" ] || { echo "nfsd: not patched when the livepatch comes after nfsd: $(head1)"; exit 1; }
