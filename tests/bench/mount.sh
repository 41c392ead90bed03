#!/bin/sh
# Benchmark: the same file work on an agentfs mount and on a plain directory, in one run.
# Each step's time ends when the command returns (data may still be in the page cache, as
# on any filesystem); writes through the mount are committed to SQLite when they return.
#
#   sh tests/bench/mount.sh            (as root; needs /dev/fuse)
#
# The source tree is `cargo vendor` of this project's dependencies (thousands of real source
# files), packed once into a tar. Page caches are dropped before the read steps so both sides
# read from disk. Prints one line per step: time on the mount, on the plain directory, ratio.
set -eu
cd "$(dirname "$0")/../.."
cargo build --release --locked -q
bin="$PWD/target/release/agentfs"
work="$(mktemp -d "${TMPDIR:-/tmp}/agentfs-bench.XXXXXX")"
mnt="$work/mnt"
plain="$work/plain"
export AGENTFS_HOME="$work/home"
cleanup() {
    "$bin" umount --lazy "$mnt" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

echo "preparing the source tree (cargo vendor)..." >&2
cargo vendor --locked --versioned-dirs "$work/vendor" >/dev/null 2>&1
tar -C "$work" -cf "$work/src.tar" vendor
rm -rf "$work/vendor"
nfiles=$(tar -tf "$work/src.tar" | grep -vc '/$')
size_mib=$(( $(stat -c %s "$work/src.tar") / 1048576 ))
mkdir -p "$mnt" "$plain"
"$bin" init bench >/dev/null 2>&1
"$bin" mount bench "$mnt" 2>/dev/null

# Warm-up (untimed): on a VM, the first use of freshly freed memory is slow; untar once so
# that neither side pays for it.
mkdir -p "$work/warmup"
tar -C "$work/warmup" -xf "$work/src.tar"
rm -rf "$work/warmup"
sync

now() { date +%s%N; }
drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true; }

# step NAME COMMAND: runs COMMAND with $D set to each side, records both times. Dirty pages
# are flushed before each side starts (untimed), so neither pays for the other's writeback;
# read steps also start with cold caches.
results=""
step() {
    name="$1"; shift
    # The plain directory goes first: the mount's background work (checkpoints, giving space
    # back) must not slow the baseline down.
    D="$plain"; sync; case "$name" in read*|grep*) drop_caches;; esac
    t2=$(now); eval "$@"; t3=$(now)
    D="$mnt"; sync; case "$name" in read*|grep*) drop_caches;; esac
    t0=$(now); eval "$@"; t1=$(now)
    m=$(( (t1 - t0) / 1000000 )); p=$(( (t3 - t2) / 1000000 ))
    results="$results$name|$m|$p
"
}

step "untar ($nfiles files, $size_mib MiB)" 'tar -C "$D" -xf "$work/src.tar"'
step "find + stat all" 'find "$D/vendor" -printf "%s %m %T@\n" > /dev/null'
step "read all files" 'find "$D/vendor" -type f -exec cat {} + > /dev/null'
step "grep -r all" 'grep -r "fn main" "$D/vendor" > /dev/null || true'
step "append to 10% of files" 'find "$D/vendor" -type f | awk "NR % 10 == 0" | while IFS= read -r f; do echo "// appended" >> "$f"; done'
step "write 256 MiB file (+fsync)" 'dd if=/dev/zero of="$D/big" bs=1M count=256 conv=fsync status=none'
step "read 256 MiB file" 'dd if="$D/big" of=/dev/null bs=1M status=none'
step "rm -rf all" 'rm -rf "$D/vendor" "$D/big"'

printf '%-38s %10s %10s %8s\n' step "agentfs" "plain dir" ratio
printf '%s' "$results" | while IFS='|' read -r name m p; do
    ratio=$(awk -v m="$m" -v p="$p" 'BEGIN { if (p > 0) printf "%.1fx", m / p; else print "-" }')
    printf '%-38s %8sms %8sms %8s\n' "$name" "$m" "$p" "$ratio"
done
echo "session files right after rm -rf: $(du -sh "$AGENTFS_HOME" | cut -f1)"
"$bin" umount "$mnt"
echo "session files after unmount (space given back): $(du -sh "$AGENTFS_HOME" | cut -f1)"
