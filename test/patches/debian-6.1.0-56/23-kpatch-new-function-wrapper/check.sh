# n_tty_write is a wrapper around the new suture_n_tty_write: write(2) to a tty still works through both
msg="suture n_tty check"
echo "$msg" > /dev/console || exit 1
if [ "$1" = patched ]; then grep -q ' suture_n_tty_write	\[lp_newfunc\]' /proc/kallsyms; else ! grep -q ' suture_n_tty_write' /proc/kallsyms; fi
