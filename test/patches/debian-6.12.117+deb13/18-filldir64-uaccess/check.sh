# getdents64 (through filldir64, whose user accesses have __ex_table entries) hides suture-hidden
mkdir -p /tmp/rd && touch /tmp/rd/suture-hidden /tmp/rd/visible
if [ "$1" = patched ]; then [ "$(ls /tmp/rd)" = visible ]; else [ "$(ls /tmp/rd | tr "\n" " ")" = "suture-hidden visible " ]; fi
