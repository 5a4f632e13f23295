#!/bin/bash
# Measures the in-process reopen after a full disk on a ~10 GiB database (issue 11): a 10.7 GB
# loop-mounted ext4 image (as root) is filled with 1 GiB uploads, with no reserve, until redb
# itself meets the full disk; the server's log gives the reopen's time, then one GET shows reads
# work, and a restart after kill -9 is timed. Needs root, mkfs.ext4, curl, bc and ~11 GB free in
# /work. BIN=path/to/release/shelf (default: ./target/release/shelf). Takes about 2 minutes.
set -u
BIN=${BIN:-./target/release/shelf}
IMG=${IMG:-/work/reopen.img}; MNT=/tmp/reopen-mnt; PORT=18470
umount $MNT 2>/dev/null; rm -f $IMG; mkdir -p $MNT
truncate -s 10700M $IMG && mkfs.ext4 -q -F $IMG && mount -o loop $IMG $MNT || exit 1
export SHELF_ADMIN_TOKEN=0123456789abcdef0123456789abcdef01234567
A="Authorization: token $SHELF_ADMIN_TOKEN"
$BIN serve --db $MNT/s.redb --listen 127.0.0.1:$PORT --min-free-space 0 > /tmp/reopen10g.log 2>&1 &
PID=$!; sleep 1
for i in $(seq 1 12); do
  c=$(head -c 1073741824 /dev/urandom | curl -s -o /tmp/reopen-resp -w "%{http_code}" -H "$A" -T - "http://127.0.0.1:$PORT/api/packages/admin/generic/big/$i/f-$i")
  echo "PUT $i: $c $(df -h $MNT | tail -1 | awk '{print $4}') free"
  [ "$c" != 201 ] && break
done
sleep 3
grep -E "reopen|open again|closed the faulted" /tmp/reopen10g.log | cut -c1-200
ls -la $MNT/s.redb
echo "GET 1: $(curl -s -o /dev/null -w '%{http_code} %{time_total}s' http://127.0.0.1:$PORT/api/packages/admin/generic/big/1/f-1)"
kill -9 $PID; wait $PID 2>/dev/null
# a restart after kill -9 on the same file: the open (with repair) until it listens
S=$(date +%s.%N); $BIN serve --db $MNT/s.redb --listen 127.0.0.1:$PORT --min-free-space 0 > /tmp/reopen10g-restart.log 2>&1 &
PID=$!
until grep -q listening /tmp/reopen10g-restart.log; do sleep 0.05; done
E=$(date +%s.%N); echo "restart after kill -9 until listening: $(echo "$E - $S" | bc) s"
kill -TERM $PID; wait $PID
umount $MNT; rm -f $IMG
